# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to the airgap.uv collection
"""The collection's own version, read where the collection is, never written down twice.

An installed collection (``ansible-galaxy collection install``) has ``MANIFEST.json`` at its
root, with ``collection_info.version``; a source checkout has ``galaxy.yml``, whose top-level
``version:`` line is read without a YAML library.
"""

from __future__ import annotations

import functools
import json
import os
import re

__all__ = ["UNKNOWN_VERSION", "collection_version"]

#: What a collection without MANIFEST.json or galaxy.yml reports (a copy of plugins/ alone).
UNKNOWN_VERSION = "0.0.0+unknown"
# plugins/plugin_utils/<this file> -> the collection root.
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_GALAXY_VERSION = re.compile(r"""^version:[ \t]*(["']?)([^"'\s#]+)\1[ \t]*(?:#.*)?$""", re.MULTILINE)


@functools.lru_cache(maxsize=None)
def collection_version(root: str = _ROOT) -> str:
    """The version of the collection at ROOT: MANIFEST.json's, else galaxy.yml's, else UNKNOWN_VERSION."""
    try:
        with open(os.path.join(root, "MANIFEST.json"), encoding="utf-8") as handle:
            version = json.load(handle)["collection_info"]["version"]
        if isinstance(version, str) and version:
            return version
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        with open(os.path.join(root, "galaxy.yml"), encoding="utf-8") as handle:
            match = _GALAXY_VERSION.search(handle.read())
    except (OSError, ValueError):
        match = None
    return match.group(2) if match else UNKNOWN_VERSION
