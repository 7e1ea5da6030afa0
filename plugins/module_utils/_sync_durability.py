# -*- coding: utf-8 -*-
# Copyright (c) airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Making a new release durable before it goes into service (_sync_change).

A release is switched to by a rename; if the host loses power right after, the release must be
on disk in full. One ``syncfs`` of the release's file system is the fast way; where that is
missing (not Linux, no ctypes, refused by a seccomp filter) every file and directory is
fsynced instead (bench/sync_fsync.py compares them).

Runs on the TARGET: standard library only (Python 3.9+).
"""

from __future__ import annotations

import errno
import os
import typing as t

from ansible_collections.airgap.uv.plugins.module_utils._sync_error import SyncError

# fsync errors that mean "this file system or file type cannot be flushed", not "the data is lost"
_FSYNC_UNSUPPORTED = frozenset((errno.EINVAL, errno.EROFS, errno.EBADF, errno.ENOTSUP, errno.EOPNOTSUPP))
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


def _fsync_path(path: str, flags: int, strict: bool) -> None:
    """fsync one file or directory; with ``strict`` an I/O error fails the run.

    A path that cannot be opened (a symlink under ``O_NOFOLLOW``, no permission) is
    skipped: there is nothing this process could flush.
    """
    try:
        fd = os.open(path, flags | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if strict and exc.errno not in _FSYNC_UNSUPPORTED:
            raise SyncError("Cannot flush %s to disk: %s; the release in service was left alone" % (path, exc.strerror))
    finally:
        os.close(fd)


def fsync_dir(path: str, strict: bool = False) -> None:
    """Make the entries of directory PATH (creations, renames, removals) durable."""
    _fsync_path(path, os.O_RDONLY | os.O_DIRECTORY, strict)


def fsync_tree(path: str, workers: int = 1) -> int:
    """fsync every regular file and directory under PATH; returns how many.

    Symlinks are not followed (a venv's ``bin/python`` points outside it); their entries
    become durable with their directory. The order does not matter: the caller writes
    its completion marker only after all of them. ``workers`` > 1 issues the fsyncs from
    that many threads (fsync releases the GIL, and the file system can batch them into
    one journal commit). An I/O error raises ``SyncError``.
    """
    file_flags = os.O_RDONLY | _NOFOLLOW | _NONBLOCK
    dir_flags = os.O_RDONLY | os.O_DIRECTORY
    jobs: t.List[t.Tuple[str, int]] = []
    for root, _dirs, files in os.walk(path):
        jobs.append((root, dir_flags))
        jobs.extend((os.path.join(root, n), file_flags) for n in files)

    def flush(job: t.Tuple[str, int]) -> None:
        _fsync_path(job[0], job[1], strict=True)

    if workers > 1 and len(jobs) > 64:
        from concurrent.futures import ThreadPoolExecutor  # only here: a build without threads never pays the import

        with ThreadPoolExecutor(max_workers=workers) as pool:
            for _done in pool.map(flush, jobs, chunksize=64):
                pass
    else:
        for job in jobs:
            flush(job)
    return len(jobs)


def _libc_syncfs() -> t.Optional[t.Callable[[int], int]]:
    """``syncfs(2)`` through ctypes, or ``None`` (not Linux, no ctypes, old libc)."""
    try:
        import ctypes  # only on the build path

        func = ctypes.CDLL(None, use_errno=True).syncfs
    except (ImportError, OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int]
    func.restype = ctypes.c_int

    def call(fd: int) -> int:
        return 0 if func(fd) == 0 else (ctypes.get_errno() or errno.EIO)

    return call


def make_durable(path: str, dir_fd: t.Optional[int] = None) -> str:
    """Flush everything under PATH (a release uv just filled) to disk; returns how.

    On Linux: one ``syncfs(2)`` of the file system holding PATH, through DIR_FD when given
    (a descriptor opened before the files were written, so that writeback errors in
    between are reported too). It flushes that one file system, never the others (unlike
    ``sync(2)``), and costs about 2 % of a build (45 ms for a 150-package environment of
    18,600 files built from a warm cache), where an fsync of each file costs as much as
    the build itself or twice that (bench/sync_fsync.py). Elsewhere, or when syncfs is
    refused, every file and directory is fsynced instead.
    An I/O error raises ``SyncError``.
    """
    syncfs = _libc_syncfs()
    if syncfs is not None:
        fd = dir_fd if dir_fd is not None else os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            err = syncfs(fd)
        finally:
            if dir_fd is None:
                os.close(fd)
        if err == 0:
            return "syncfs"
        if err not in (errno.ENOSYS, errno.EPERM, errno.EACCES) and err not in _FSYNC_UNSUPPORTED:
            raise SyncError("Cannot flush %s to disk: %s; the release in service was left alone" % (path, os.strerror(err)))
    fsync_tree(path, workers=8)
    return "fsync"
