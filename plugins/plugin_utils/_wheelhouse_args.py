# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to the airgap.uv collection
"""The options of airgap.uv.wheelhouse, and their defaults, defined once.

The action validates its arguments with ARGUMENT_SPEC; WheelhouseOptions takes its defaults
from here (:func:`default`); tests/unit/plugins/test_argument_specs.py checks that the module's
DOCUMENTATION says the same. Standard library only: the action imports it even when
``packaging`` is missing, to report that after validating its arguments.
"""

from __future__ import annotations

import os
import typing as t

__all__ = ["ARGUMENT_SPEC", "DEFAULT_CACHE_DIR", "default"]

#: Where downloads and builds are kept when ``cache_dir`` is not set (the documentation says so too).
DEFAULT_CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "airgap-uv")

ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = dict(
    project=dict(type="path", required=True),
    dest=dict(type="path", required=True),
    targets=dict(type="dict", required=True),
    groups=dict(type="list", elements="str", default=[]),
    only_groups=dict(type="list", elements="str", default=[]),
    all_groups=dict(type="bool", default=False),
    no_default_groups=dict(type="bool", default=False),
    no_dev=dict(type="bool", default=False),
    extras=dict(type="list", elements="str", default=[]),
    all_extras=dict(type="bool", default=False),
    package=dict(type="str"),
    uv_version=dict(type="str"),
    uv_executable=dict(type="path"),
    cache_dir=dict(type="path"),
    workers=dict(type="int", default=8),
    retries=dict(type="int", default=3),
    timeout=dict(type="int", default=60),
    check_lock=dict(type="bool", default=True),
    lock_check_python=dict(type="str"),
    prune=dict(type="bool", default=True),
    host_builds=dict(type="list", elements="str", default=[]),
    editable=dict(type="bool", default=False),
)


def default(name: str) -> t.Any:
    """The default of option NAME (None when it has none); lists come back as tuples."""
    value = ARGUMENT_SPEC[name].get("default")
    return tuple(value) if isinstance(value, list) else value
