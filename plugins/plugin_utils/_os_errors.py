# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What to tell the user about an OSError met while writing on the controller.

A full disk is named as one, with the directory whose file system is full; a permission
problem names the directory to fix; anything else is reported as it is, without a remedy
that does not apply (a SameFileError is neither a disk nor a permission problem).
"""

from __future__ import annotations

import errno
import os
from typing import Optional

_FULL = {errno.ENOSPC: "No space left on device", errno.EDQUOT: "Disk quota exceeded"}
_DENIED = (errno.EACCES, errno.EPERM, errno.EROFS)


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in _FULL


def where(exc: OSError, fallback: str) -> str:
    """The directory EXC happened in: its file name's directory, else FALLBACK (write() errors
    carry no file name)."""
    name = exc.filename if isinstance(exc.filename, str) and exc.filename else None
    return os.path.dirname(name) if name else fallback


def disk_full_message(directory: str, reason: str = _FULL[errno.ENOSPC]) -> str:
    return "%s in %s: free space on its file system (or point the directory elsewhere) and run again" % (
        reason, directory)


def describe(exc: OSError, fallback: str) -> str:
    """One sentence for EXC, with the remedy that fits it."""
    directory = where(exc, fallback)
    if exc.errno in _FULL:
        return disk_full_message(directory, _FULL[exc.errno])
    if exc.errno in _DENIED:
        return "%s: fix the permissions of %s (the controller user must be able to write there) and run again" % (
            _plain(exc), directory)
    return _plain(exc)


def _plain(exc: OSError) -> str:
    text = exc.strerror or str(exc)
    names = [name for name in (exc.filename, getattr(exc, "filename2", None)) if name]
    if exc.strerror and names:
        text += ": " + " -> ".join("%s" % name for name in names)
    elif not exc.strerror:
        text = str(exc) or exc.__class__.__name__
    return text


def with_path(exc: OSError, path: str) -> Optional[OSError]:
    """A copy of EXC naming PATH when EXC names no file (write() errors), else None."""
    if exc.filename or exc.errno is None:
        return None
    return OSError(exc.errno, exc.strerror, path)
