# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Make the collection importable as ansible_collections.airgap.uv when pytest runs from the repo."""

from __future__ import annotations

import os
import sys

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_ROOT = os.path.join(_REPO, ".venv", "collections")


def _ensure_collection_path() -> None:
    link = os.path.join(_ROOT, "ansible_collections", "airgap", "uv")
    if not os.path.exists(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(_REPO, link)
    if _ROOT not in sys.path:
        sys.path.insert(0, _ROOT)


_ensure_collection_path()
