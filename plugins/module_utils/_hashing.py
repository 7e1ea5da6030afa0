# -*- coding: utf-8 -*-
# Copyright (c) airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The one file hash of airgap.uv: sha256, read in blocks, on the host and on the controller.

Standard library only (Python 3.9+): the host imports it, and so does the controller.
"""

from __future__ import annotations

import hashlib
import os
import typing as t

_BLOCK = 1 << 20


def sha256_file(path: str, dir_fd: t.Optional[int] = None) -> str:
    """The sha256 of the file at PATH. With DIR_FD, PATH is a name in that directory and a
    symlink there is not followed (the open fails instead)."""
    flags = os.O_RDONLY | os.O_CLOEXEC | (getattr(os, "O_NOFOLLOW", 0) if dir_fd is not None else 0)
    digest = hashlib.sha256()
    with os.fdopen(os.open(path, flags, dir_fd=dir_fd), "rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()
