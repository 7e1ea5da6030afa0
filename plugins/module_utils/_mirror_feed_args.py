# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to the airgap.uv collection
"""The options of airgap.uv.mirror_feed, defined once for its action plugin and its module.

Standard library only: the module imports it on the mirror host.
"""

from __future__ import annotations

# What a task gives; the action plugin validates these.
TASK_ARGUMENT_SPEC = dict(
    sources=dict(type="list", elements="path", required=True),
    dest=dict(type="path", required=True),
    state=dict(type="path", required=True),
    keep=dict(type="int", default=3),
    cache_dir=dict(type="path", default="~/.cache/airgap-uv"),
)

# What the action plugin passes on to the module, once per source: the task's options and its own.
MODULE_ARGUMENT_SPEC = dict(
    TASK_ARGUMENT_SPEC,
    project=dict(type="str"),
    files=dict(type="dict"),
    archive=dict(type="path"),
    apply=dict(type="bool", default=False),
)
