# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The controller trusts a stored file only while it is the file whose sha256 was checked.

Hashing every store and wheelhouse file on every run would cost a warm 150-package run
(which otherwise only looks at file sizes) most of its time. Instead a record keeps, per file
(device and inode, so the hard links of one store file share an entry), the size, mtime_ns
and ctime_ns seen when its sha256 was last computed. While they are unchanged the recorded
digest stands; otherwise the file is hashed again. Why these fields: a write through any of
the file's links changes mtime and ctime; ``touch`` or ``os.utime`` can set mtime back but
not ctime, which the kernel sets on every change of content, mode or link count; replacing
the file (a rename over it) changes the inode.

A digest is recorded only when the file did not change while it was hashed and its mtime and
ctime lie clearly before the hashing started (the "racy" rule git uses for its index): on a
file system with coarse timestamps, a write right after the hash could otherwise leave every
field as recorded. A just downloaded file is therefore hashed once more on the next run.

What the record cannot see is a change below the file system (a bad disk flipping a bit):
no stat field moves then; :meth:`FileVerifier.forget_all` makes a run re-hash everything.

Standard library only; the record is a JSON file written atomically, and losing it (or a
concurrent run's writes) only costs re-hashing.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from typing import Optional

from ansible_collections.airgap.uv.plugins.module_utils._hashing import sha256_file as file_sha256

_FORMAT = 1
# A file whose mtime or ctime is this close to the start of its hashing is not recorded: two
# seconds covers the coarsest timestamps of file systems a cache lives on (1 s, FAT's 2 s).
_RACY_NS = 2_000_000_000


def _identity(st: os.stat_result) -> list:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns]


class FileVerifier:
    """sha256 of files, from a record while their stat identity is unchanged, else hashed.

    ``record_path`` None keeps the record in memory only (every new process hashes again).
    Thread-safe: the store verifies files from its download workers.
    """

    def __init__(self, record_path: Optional[str], racy_ns: int = _RACY_NS) -> None:
        self.record_path = record_path
        self.racy_ns = racy_ns
        self._entries: dict[str, list] = {}
        # Digests of this process, racy ones too: hard links of one inode are hashed once per run.
        self._session: dict[str, list] = {}
        self._dirty = False
        self._mutex = threading.Lock()
        self.hashed = 0  # files hashed by this verifier (the rest were answered from the record)
        if record_path:
            try:
                with open(record_path, encoding="utf-8") as handle:
                    data = json.load(handle)
                if isinstance(data, dict) and data.get("format") == _FORMAT and isinstance(data.get("files"), dict):
                    self._entries = data["files"]
            except (OSError, ValueError):
                pass  # no record yet, or a damaged one: everything is hashed and recorded afresh

    def sha256(self, path: str) -> str:
        """The current sha256 of PATH (OSError when it cannot be read)."""
        before = os.stat(path)
        key = "%d:%d" % (before.st_dev, before.st_ino)
        with self._mutex:
            entry = self._entries.get(key)
            seen = self._session.get(key)
        for known in (entry, seen):
            if isinstance(known, list) and len(known) == 4 and known[:3] == _identity(before):
                return str(known[3])
        started = time.time_ns()
        digest = file_sha256(path)
        after = os.stat(path)
        with self._mutex:
            self.hashed += 1
            stable = _identity(after) == _identity(before) and after.st_ino == before.st_ino
            settled = max(after.st_mtime_ns, after.st_ctime_ns) < started - self.racy_ns
            if stable:
                self._session[key] = _identity(after) + [digest]
            if stable and settled:
                self._entries[key] = _identity(after) + [digest]
                self._dirty = True
            elif key in self._entries:
                del self._entries[key]
                self._dirty = True
        return digest

    def matches(self, path: str, expected: str) -> bool:
        """Whether PATH exists and its content has the sha256 EXPECTED."""
        try:
            return self.sha256(path) == expected
        except OSError:
            return False

    def forget(self, path: str) -> None:
        """Drop what is recorded for PATH (a file found bad and removed)."""
        try:
            st = os.stat(path)
        except OSError:
            return
        with self._mutex:
            key = "%d:%d" % (st.st_dev, st.st_ino)
            self._session.pop(key, None)
            if self._entries.pop(key, None) is not None:
                self._dirty = True

    def forget_all(self) -> None:
        """Trust nothing recorded: every file is hashed again (and recorded anew)."""
        with self._mutex:
            self._dirty = self._dirty or bool(self._entries)
            self._entries = {}
            self._session = {}

    def save(self) -> None:
        """Write the record when it changed; failures only cost re-hashing next time."""
        with self._mutex:
            if not self.record_path or not self._dirty:
                return
            payload = json.dumps({"format": _FORMAT, "files": self._entries}, sort_keys=True)
            self._dirty = False
        try:
            os.makedirs(os.path.dirname(self.record_path), exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(self.record_path), prefix=".incoming-")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(payload)
                os.replace(tmp, self.record_path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        except OSError:
            pass


def same_file(path: str, other: str) -> bool:
    """Whether PATH and OTHER are one file (hard links of one inode); False when either is missing."""
    try:
        return os.path.samefile(path, other)
    except OSError:
        return False


def holds(path: str, sha256: str, verifier: FileVerifier, origin: Optional[str] = None) -> bool:
    """Whether PATH has the content SHA256: it is a hard link of ORIGIN (a file verified this run),
    or its own content matches (a copy, where the file systems differ)."""
    if origin is not None and same_file(path, origin):
        return True
    return verifier.matches(path, sha256)


def manifest_mismatches(src: str, files: dict) -> list:
    """What under the wheelhouse target directory SRC does not match SRC/manifest.json.

    FILES is ``{relative path: {"sha256", "size", ...}}`` of what SRC holds (as the push hashed
    it). The manifest lists each wheel (by file name, under ``wheelhouse/``) and each binary
    (``bin/uv``) with the sha256 it was verified to have when the wheelhouse was built. Returns
    one message per file that differs, is missing, or is not listed; none when SRC has no
    manifest (a plain directory: nothing to check against).
    """
    path = os.path.join(src, "manifest.json")
    if not os.path.exists(path):
        return []
    try:
        with open(path, encoding="utf-8") as handle:
            listed = {("wheelhouse/" + entry["filename"] if "/" not in entry["filename"] else entry["filename"]):
                      entry for entry in json.load(handle)["files"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return ["%s cannot be read (%s)" % (path, exc)]
    problems = []
    for relative, entry in sorted(listed.items()):
        found = files.get(relative)
        where = os.path.join(src, *relative.split("/"))
        if found is None:
            problems.append("%s is missing" % where)
        elif found.get("sha256") != entry.get("sha256"):
            problems.append("%s has sha256 %s, but manifest.json records %s"
                            % (where, found.get("sha256"), entry.get("sha256")))
    for relative in sorted(files):
        if relative.split("/")[0] in ("wheelhouse", "bin") and relative not in listed:
            problems.append("%s is not listed in manifest.json" % os.path.join(src, *relative.split("/")))
    return problems
