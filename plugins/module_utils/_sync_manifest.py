# -*- coding: utf-8 -*-
# Copyright (c) airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The bundle manifest's check on the host: every file it lists is there, whole.

Runs on the TARGET: standard library only (Python 3.9+).
"""

from __future__ import annotations

import json
import os
import typing as t

from ansible_collections.airgap.uv.plugins.module_utils._sync_error import SyncError
from ansible_collections.airgap.uv.plugins.module_utils._hashing import sha256_file
from ansible_collections.airgap.uv.plugins.module_utils._shipped_tree import MANIFEST_FORMAT
from ansible_collections.airgap.uv.plugins.module_utils._sync_store import StateFile


# ---------------------------------------------------------------------------
# Manifest
# ---------------------------------------------------------------------------


class ManifestVerifier:
    """Checks every file a manifest lists (existence, size, sha256) before uv runs.

    sha256 results are cached in the state file keyed by the file's identity
    (path, size, mtime_ns, ctime_ns, inode), so a no-op run hashes nothing.
    """

    def __init__(self, manifest: str, wheelhouse: str, state: StateFile) -> None:
        self.manifest = manifest
        self.wheelhouse = wheelhouse
        self.state = state
        self.document: t.Dict[str, t.Any] = {}

    def _load(self) -> t.List[t.Dict[str, t.Any]]:
        try:
            with open(self.manifest, "r", encoding="utf-8") as f:
                doc = json.load(f)
        except OSError as exc:
            raise SyncError("Cannot read manifest %s: %s; run the deployment again (the push restores it)" % (self.manifest, exc.strerror))
        except ValueError as exc:
            raise SyncError("Manifest %s is not valid JSON (%s); run the deployment again (the push restores it)" % (self.manifest, exc))
        if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT or not isinstance(doc.get("files"), list):
            raise SyncError(
                "Manifest %s: unsupported format %r (this module reads format %d with a 'files' list)"
                % (self.manifest, doc.get("format") if isinstance(doc, dict) else None, MANIFEST_FORMAT)
            )
        self.document = doc
        return doc["files"]

    def resolve(self, filename: str) -> str:
        """Bare names live in the wheelhouse; names with a slash are relative to the manifest."""
        if "/" in filename:
            return os.path.normpath(os.path.join(os.path.dirname(self.manifest), filename))
        return os.path.join(self.wheelhouse, filename)

    def matches(self, path: str) -> bool:
        """Whether PATH is listed with the size and sha256 it has (False when unlisted or unreadable)."""
        try:
            entries = self._load()
        except SyncError:
            return False
        for entry in entries:
            if isinstance(entry, dict) and entry.get("filename") and self.resolve(str(entry["filename"])) == path:
                try:
                    if entry.get("size") is not None and os.stat(path).st_size != int(entry["size"]):
                        return False
                    return sha256_file(path) == str(entry.get("sha256", "")).lower().replace("sha256:", "")
                except (OSError, ValueError):
                    return False
        return False

    def verify(self) -> None:
        entries = self._load()
        old_cache = self.state.data.get("sha256")
        old_cache = old_cache if isinstance(old_cache, dict) else {}
        new_cache: t.Dict[str, t.List[t.Any]] = {}
        problems: t.List[str] = []
        for entry in entries:
            if not isinstance(entry, dict) or not entry.get("filename") or not entry.get("sha256"):
                raise SyncError("Manifest %s: malformed entry %r" % (self.manifest, entry))
            filename = str(entry["filename"])
            path = self.resolve(filename)
            try:
                st = os.stat(path)
            except OSError as exc:
                problems.append("%s is missing (%s)" % (path, exc.strerror))
                continue
            size = entry.get("size")
            if size is not None and st.st_size != int(size):
                problems.append("%s is corrupt: size %d, manifest says %s" % (path, st.st_size, size))
                continue
            key = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
            cached = old_cache.get(path)
            if isinstance(cached, list) and len(cached) == 5 and cached[:4] == key:
                digest = cached[4]
            else:
                try:
                    digest = sha256_file(path)
                except OSError as exc:
                    problems.append("%s cannot be read (%s)" % (path, exc.strerror))
                    continue
            new_cache[path] = key + [digest]
            expected = str(entry["sha256"]).lower()
            if expected.startswith("sha256:"):
                expected = expected[len("sha256:"):]
            if digest != expected:
                problems.append("%s is corrupt: sha256 %s, manifest says %s" % (path, digest, expected))
        self.state.set("sha256", new_cache)
        if problems:
            raise SyncError(
                "Files on this host do not match manifest %s:\n  %s\nNothing was run or changed; the release in "
                "service is untouched. Run the deployment again: the push replaces these files with the "
                "controller's copies, which it checks against the lock first."
                % (self.manifest, "\n  ".join(problems)),
                files=problems,
            )
