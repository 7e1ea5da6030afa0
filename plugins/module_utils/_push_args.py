# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to the airgap.uv collection
"""The options of airgap.uv.push, defined once for its action plugin and its module.

Standard library only: the module imports it on the host.
"""

from __future__ import annotations

# What a task gives; the action plugin validates these.
TASK_ARGUMENT_SPEC = dict(
    src=dict(type="path", required=True),
    dest=dict(type="path", required=True),
    stage=dict(type="bool", default=False),
    expected=dict(type="dict"),
    dest_absent=dict(type="bool", default=False),
    mirror_url=dict(type="str"),
)

# What the action plugin passes on to the module: the task's options and its own.
MODULE_ARGUMENT_SPEC = dict(
    TASK_ARGUMENT_SPEC,
    files=dict(type="dict"),
    archive=dict(type="path"),
    pull=dict(type="list", elements="str"),
    uv_container=dict(type="str"),
)
