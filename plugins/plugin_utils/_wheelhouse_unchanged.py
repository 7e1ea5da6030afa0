# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Wheelhouse unchanged-run stage: when nothing a run reads changed since the run that published
dest, and all it published, fetched and built is still there, that run's recorded result (kept in
dest/manifest.json under ``inputs``) is the answer, without reading the lock."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Callable, Mapping, Optional

from ansible_collections.airgap.uv.plugins.plugin_utils._collection_version import collection_version
from ansible_collections.airgap.uv.plugins.plugin_utils._download import ArtifactStore, file_sha256
from ansible_collections.airgap.uv.plugins.plugin_utils._target_files import MANIFEST_FORMAT, TargetPlan
from ansible_collections.airgap.uv.plugins.plugin_utils._verify import FileVerifier
from ansible_collections.airgap.uv.plugins.plugin_utils._wheelhouse_common import (
    WheelhouseOptions,
    WheelhouseResult,
    plain,
)
from ansible_collections.airgap.uv.plugins.plugin_utils._wheelhouse_inputs import ProjectInputs
from ansible_collections.airgap.uv.plugins.plugin_utils._wheelhouse_uv import UvRelease, read_sums

# Options that change how a run fetches or checks, not what it publishes.
FETCH_ONLY_OPTIONS = ("workers", "retries", "timeout", "lock_check_python")


class UnchangedRun:
    """The digest of a run's inputs, the check against the record in dest, and the record itself."""

    def __init__(self, options: WheelhouseOptions, uv: str, project: ProjectInputs, dest: str, store: ArtifactStore,
                 verifier: FileVerifier, source_digest: Callable[[str], str]) -> None:
        self.options = options
        self.uv = uv
        self.project = project
        self.dest = dest
        self.store = store
        self.verifier = verifier
        self.source_digest = source_digest
        self.inputs: Optional[str] = None

    def digest(self) -> Optional[str]:
        """sha256 over everything a run reads except the local source trees it builds (those are
        recorded one by one): uv.lock, the project's uv configuration, the options that shape the
        result, the controller's uv, the collection and manifest format. None when unknown."""
        try:
            self.inputs = self._digest()
        except (OSError, ValueError, TypeError):
            self.inputs = None  # the full run says what is wrong
        return self.inputs

    def _digest(self) -> str:
        with open(self.project.lock_path, "rb") as handle:
            lock_sha256 = hashlib.sha256(handle.read()).hexdigest()
        configs = self.project.configs()
        if not any(path == self.project.pyproject for path, dummy in configs):
            raise ValueError("no pyproject.toml")
        options = {item.name: getattr(self.options, item.name) for item in dataclasses.fields(self.options)
                   if item.name not in FETCH_ONLY_OPTIONS}
        uv = os.path.realpath(self.uv)
        uv_stat = os.stat(uv)
        payload = {"format": MANIFEST_FORMAT, "collection_version": collection_version(), "lock_sha256": lock_sha256,
                   "configs": configs, "options": options, "project": self.project.project_dir, "dest": self.dest,
                   "cache_dir": os.path.abspath(self.options.cache_dir),
                   # Which uv answers `uv --version`, runs the lock check and the builds.
                   "uv": [uv, uv_stat.st_size, uv_stat.st_mtime_ns]}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=plain).encode("utf-8")).hexdigest()

    def result(self) -> Optional[WheelhouseResult]:
        """The recorded result of the run that published dest, when none of its inputs changed since,
        no local source tree it built changed, and all it published, fetched and built is still
        there with its recorded size (the install files and manifests by content). Else None."""
        if self.digest() is None:
            return None
        try:
            with open(os.path.join(self.dest, "manifest.json"), encoding="utf-8") as handle:
                manifest = json.load(handle)
            record = manifest["inputs"]
            if (manifest.get("format") != MANIFEST_FORMAT or manifest.get("collection_version") != collection_version()
                    or record["digest"] != self.inputs):
                return None
            if not self._all_there(record):
                return None
            result = dict(record["result"])
            result["hosts"] = {host: dict(entry, files=record["target_files"][entry["target"]])
                               for host, entry in result["hosts"].items()}
            return WheelhouseResult(changed=False, downloaded=0, requests=self.store.requests_made, **result)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def _all_there(self, record: dict) -> bool:
        for tree, digest in record["trees"].items():
            if not os.path.isdir(tree) or self.source_digest(tree) != digest:
                return False
        published = record["published"]
        if self.options.prune:
            present = {name for name in os.listdir(os.path.join(self.dest, "files")) if not name.startswith(".")}
            if present != {name[6:] for name in published if name.startswith("files/")}:
                return False
        # Every file by content: the verifier hashes only what changed since it last looked, and
        # a store file's hard links share its answer. A mismatch leaves the repair to the full run.
        for sha256, size in record["store"].items():
            path = self.store.path_for(sha256)
            if os.path.getsize(path) != size or not self.verifier.matches(path, sha256):
                return False
        for relative, (size, sha256, mode) in published.items():
            path = os.path.join(self.dest, relative)
            st = os.stat(path)
            if (st.st_size != size or st.st_mode & 0o7777 != mode or not sha256
                    or not self.verifier.matches(path, sha256)):
                return False
        return all(os.path.getsize(path) == size for path, size in record["built_files"].items())

    def record(self, plans: Mapping[str, TargetPlan], needed: Mapping[str, str], version: str, uv: UvRelease,
               recorded: Optional[tuple], tree_keys: Mapping[str, str]) -> Optional[dict]:
        """What result() compares, for dest/manifest.json; None when the inputs are unknown.

        RECORDED is (the result a run with nothing changed returns, the sha256 requested, the built files).
        """
        if self.inputs is None or recorded is None:
            return None
        result, requested, local_files = recorded
        published: dict = {}

        def note(relative: str, sha256: Optional[str]) -> None:
            # The sha256 each file must have: what the lock (or the uv wheel's sums) says for the
            # links into files/ and uv/, the content just written for install files and manifests.
            path = os.path.join(self.dest, relative)
            st = os.stat(path)
            published[relative] = [st.st_size, sha256 or file_sha256(path), st.st_mode & 0o7777]

        for filename, sha256 in needed.items():
            note("files/" + filename, sha256)
        for plan in plans.values():
            uv_dir = os.path.relpath(uv.dest_dir(version, plan.uv_wheel), self.dest).replace(os.sep, "/")
            sums = read_sums(os.path.join(self.dest, uv_dir))
            for name in os.listdir(os.path.join(self.dest, uv_dir)):
                note(uv_dir + "/" + name, sums.get(name))
            top = os.path.join(self.dest, "targets", plan.target.id)
            wheels = {entry.filename: entry.sha256 for entry in plan.files}
            for root, dummy, files in os.walk(top):
                kind = os.path.basename(root) if root != top else None
                for name in files:
                    expected = wheels.get(name) if kind == "wheelhouse" else sums.get(name) if kind == "bin" else None
                    note(os.path.relpath(os.path.join(root, name), self.dest).replace(os.sep, "/"), expected)
        store = {sha256: os.path.getsize(self.store.path_for(sha256)) for sha256 in set(requested) | set(needed.values())}
        recorded_result = dataclasses.asdict(result)
        for key in ("changed", "downloaded", "requests", "repaired"):
            recorded_result.pop(key)
        # Each target's files once, not once per host.
        target_files = {entry["target"]: entry.pop("files") for entry in recorded_result["hosts"].values()}
        return {"digest": self.inputs, "trees": dict(sorted(tree_keys.items())), "published": published,
                "target_files": target_files,
                "store": dict(sorted(store.items())),
                "built_files": {path: os.path.getsize(path) for path in sorted(set(local_files.values()))},
                "result": recorded_result}
