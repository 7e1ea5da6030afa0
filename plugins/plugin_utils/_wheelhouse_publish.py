# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Wheelhouse stage 6, publish the tree: ``files/``, ``uv/``, one ``targets/<id>/`` per target and
``manifest.json`` under dest, each changed only by renames of complete files and directories (a
failed run leaves the previous wheelhouse usable); also what check mode predicts, and the result."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
import time
from typing import Callable, Mapping, Optional

from ansible_collections.airgap.uv.plugins.plugin_utils._collection_version import collection_version
from ansible_collections.airgap.uv.plugins.plugin_utils._download import ArtifactStore
from ansible_collections.airgap.uv.plugins.plugin_utils._os_errors import describe as describe_os_error
from ansible_collections.airgap.uv.plugins.plugin_utils._target_files import (
    FILE_MODE,
    MANIFEST_FORMAT,
    TargetFiles,
    TargetPlan,
    build_constraints_text,
    plan_target_files,
    requirements_text,
    tree_matches,
)
from ansible_collections.airgap.uv.plugins.plugin_utils._verify import FileVerifier, holds
from ansible_collections.airgap.uv.plugins.plugin_utils._wheelhouse_common import (
    WheelhouseError,
    WheelhouseResult,
    write_text,
)
from ansible_collections.airgap.uv.plugins.plugin_utils._wheelhouse_plan import FileSources
from ansible_collections.airgap.uv.plugins.plugin_utils._wheelhouse_uv import SUMS, UvRelease


class Publisher:
    """Writes (or in check mode, describes) the tree under DEST from the plans and SOURCES."""

    def __init__(self, dest: str, store: ArtifactStore, verifier: FileVerifier, uv: UvRelease, prune: bool,
                 check_mode: bool, sources: FileSources) -> None:
        self.dest = dest
        self.store = store
        self.verifier = verifier
        self.uv = uv
        self.prune = prune
        self.check_mode = check_mode
        self.sources = sources
        self._described: dict[str, TargetFiles] = {}

    def size_of(self, sha256: str, filename: str) -> Optional[int]:
        """Size of the file with SHA256: a built file's, the store's (or in check mode a verified copy's
        in the store or dest), else what the lock records; None when nothing says."""
        local = self.sources.local.get(sha256)
        if local:
            return os.path.getsize(local)
        store = self.store.path_for(sha256)
        if not self.check_mode:
            return os.path.getsize(store)  # everything is in the store, verified, once published
        for path in (store, os.path.join(self.dest, "files", filename)):
            if self.verifier.matches(path, sha256):
                return os.path.getsize(path)
        return self.sources.sizes.get(sha256)

    def described(self, plan: TargetPlan, version: str) -> TargetFiles:
        """What targets/<id>/ holds once published (worked out once per run)."""
        if plan.target.id not in self._described:
            self._described[plan.target.id] = plan_target_files(plan, version, self.size_of,
                                                                self.uv.binaries_of(version, plan, self.check_mode))
        return self._described[plan.target.id]

    def differs_from_published(self, plan: TargetPlan, version: str) -> bool:
        """True when the target's published directory is not exactly what this plan writes."""
        return not tree_matches(os.path.join(self.dest, "targets", plan.target.id),
                                self.described(plan, version).described, self.verifier)

    def would_change(self, plans: Mapping[str, TargetPlan], version: str) -> bool:
        """Check mode: whether the real run would add, replace or remove a file that ships (a file of
        files/, a uv binary or a target directory), asking what publish() asks before each write."""
        files_dir = os.path.join(self.dest, "files")
        needed = needed_files(plans)
        if not all(placed(os.path.join(files_dir, name), sha256, self.verifier) for name, sha256 in needed.items()):
            return True
        if not all(self.uv.in_dest(version, plan.uv_wheel) for plan in plans.values()):
            return True
        if any(self.differs_from_published(plan, version) for plan in plans.values()):
            return True
        return self.prune and bool(strays(files_dir, needed))

    def guarded(self, directory: str, function: Callable, *args):
        """FUNCTION(*ARGS), with an OSError reported by what it is (a full disk as one)."""
        try:
            return function(*args)
        except OSError as exc:
            raise WheelhouseError("Writing the wheelhouse under %s failed: %s. The previous wheelhouse is unchanged."
                                  % (self.dest, describe_os_error(exc, directory))) from None

    def publish(self, plans: Mapping[str, TargetPlan], version: str) -> bool:
        """Publish every target; True when a file that ships was added, replaced or removed."""
        return self.guarded(self.dest, self._publish_files, plans, version)

    def _publish_files(self, plans: Mapping[str, TargetPlan], version: str) -> bool:
        changed = False
        files_dir = os.path.join(self.dest, "files")
        os.makedirs(files_dir, exist_ok=True)
        needed = needed_files(plans)
        for filename, sha256 in sorted(needed.items()):
            changed |= place(self.store.path_for(sha256), os.path.join(files_dir, filename), sha256, self.verifier)
        for plan in plans.values():
            changed |= self._publish_uv(version, plan)
        targets_dir = os.path.join(self.dest, "targets")
        os.makedirs(targets_dir, exist_ok=True)
        for plan in plans.values():
            if self.differs_from_published(plan, version):
                self._publish_target(plan, version, targets_dir, files_dir)
                changed = True
        if self.prune:
            for name in strays(files_dir, needed):
                os.unlink(os.path.join(files_dir, name))
                changed = True
        return changed

    def _publish_uv(self, version: str, plan: TargetPlan) -> bool:
        """Put the target's uv binaries under dest/uv/ unless they are there; True when written."""
        if self.uv.in_dest(version, plan.uv_wheel):
            return False
        directory = self.uv.dest_dir(version, plan.uv_wheel)
        staging = tempfile.mkdtemp(dir=self.dest, prefix=".uv-")
        os.chmod(staging, 0o755)
        try:
            # Unpacked while the packages downloaded (UvRelease.fetch), else now.
            unpacked = self.uv.binaries(plan.uv_wheel)
            for name in sorted(os.listdir(unpacked)):
                link_or_copy(os.path.join(unpacked, name), os.path.join(staging, name))
            os.makedirs(os.path.dirname(directory), exist_ok=True)
            replace_directory(staging, directory)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return True

    def _publish_target(self, plan: TargetPlan, version: str, targets_dir: str, files_dir: str) -> None:
        """Write targets/<id>/ afresh beside the old one and swap it in."""
        staging = tempfile.mkdtemp(dir=targets_dir, prefix=".%s-" % plan.target.id)
        # mkdtemp makes 0700; the tree is copied to hosts with its modes.
        os.chmod(staging, 0o755)
        uv_dir = self.uv.dest_dir(version, plan.uv_wheel)
        try:
            os.makedirs(os.path.join(staging, "wheelhouse"))
            os.makedirs(os.path.join(staging, "bin"))
            for entry in plan.files:
                link_or_copy(os.path.join(files_dir, entry.filename), os.path.join(staging, "wheelhouse", entry.filename))
            for name in os.listdir(uv_dir):
                if name != SUMS:
                    link_or_copy(os.path.join(uv_dir, name), os.path.join(staging, "bin", name))
            for name, text in self.described(plan, version).texts.items():
                write_text(os.path.join(staging, name), text)
            replace_directory(staging, os.path.join(targets_dir, plan.target.id))
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def write_manifest(self, plans: Mapping[str, TargetPlan], lock_sha256: str, version: str,
                       inputs: Optional[dict]) -> None:
        """dest/manifest.json: every file, its targets and hosts, and the record of this run (INPUTS).
        It never ships, so rewriting it (for other hosts, another lock) is no change."""
        files = {}
        for filename, sha256 in sorted(needed_files(plans).items()):
            files[filename] = {"sha256": sha256, "size": os.path.getsize(self.store.path_for(sha256)),
                               "targets": sorted(p.target.id for p in plans.values()
                                                 if any(e.filename == filename for e in p.files))}
        content = {"format": MANIFEST_FORMAT, "collection_version": collection_version(), "lock_sha256": lock_sha256,
                   "uv_version": version, "files": files,
                   "targets": {p.target.id: {"hosts": sorted(p.hosts), "uv_wheel": p.uv_wheel.filename}
                               for p in plans.values()}}
        path = os.path.join(self.dest, "manifest.json")
        same, created = False, None
        try:
            with open(path, encoding="utf-8") as handle:
                old = json.load(handle)
            created = old.pop("created", None)
            old_inputs = old.pop("inputs", None)
            same = old == content
            if same and old_inputs == inputs:
                return
        except (OSError, ValueError, AttributeError):
            pass
        if inputs is not None:
            content["inputs"] = inputs
        content["created"] = created if same and created else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        write_text(path, json.dumps(content, indent=2, sort_keys=True) + "\n")

    def result(self, plans: Mapping[str, TargetPlan], changed: bool, lock_sha256: str, version: str,
               downloaded: int, reused: int, built: int) -> WheelhouseResult:
        hosts = {}
        targets = {}
        all_files: dict[str, int] = {}
        for plan in plans.values():
            described = self.described(plan, version)
            sizes = []
            for entry in plan.files:
                size = described.described["wheelhouse/" + entry.filename]["size"] or 0
                sizes.append(size)
                all_files[entry.filename] = size
            path = os.path.join(self.dest, "targets", plan.target.id)
            targets[plan.target.id] = {
                "hosts": sorted(plan.hosts), "files": len(plan.files), "bytes": sum(sizes), "built": plan.built,
                "host_built": len(plan.host_built),
                "packages": sorted("%s==%s" % (e.name, e.version) for e in plan.entries + plan.editable_entries),
                "uv_wheel": plan.uv_wheel.filename if plan.uv_wheel else None,
                "path": path,
                # What the host's install file and wheelhouse will hold (also in check mode,
                # where nothing is written): airgap.uv.sync predicts from it.
                "install_file": install_file(plan),
            }
            for host in plan.hosts:
                # files: what the host's directory holds (check mode: will hold), as airgap.uv.push
                # describes a tree; it takes it as what is pending in check mode.
                hosts[host] = {"target": plan.target.id, "path": path, "files": described.described}
        return WheelhouseResult(changed=changed, dest=self.dest, hosts=hosts, targets=targets, files=len(all_files),
                                bytes=sum(all_files.values()), downloaded=downloaded, reused=reused, built=built,
                                requests=self.store.requests_made, uv_version=version, lock_sha256=lock_sha256,
                                repaired=list(self.store.repaired))


def install_file(plan: TargetPlan) -> dict:
    """The result's description of what the host installs, from which airgap.uv.sync predicts."""
    return {"requirements": requirements_text(plan),
            "build_constraints": build_constraints_text(plan),
            "editable": [e._asdict() for e in sorted(plan.editable_entries)],
            "wheels": sorted(e.filename for e in plan.files),
            "project": ({"name": plan.project[0], "version": plan.project[1]} if plan.project else None)}


def link_or_copy(source: str, destination: str) -> None:
    """A hard link of SOURCE at DESTINATION, else (another file system, no links) a copy; an
    existing DESTINATION is an error, never a copy onto itself."""
    try:
        os.link(source, destination)
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            raise
        try:
            shutil.copy2(source, destination)
        except OSError as failed:
            if failed.errno is None:
                raise
            # Named by where it was written (a full disk is the destination's).
            raise OSError(failed.errno, failed.strerror, destination) from None


def needed_files(plans: Mapping[str, TargetPlan]) -> dict:
    """{file name: sha256} of every file of files/ some target needs."""
    return {entry.filename: entry.sha256 for plan in plans.values() for entry in plan.files}


def strays(files_dir: str, needed: Mapping[str, str]) -> list:
    """Files of files/ no target needs (pruned)."""
    try:
        return sorted(n for n in os.listdir(files_dir) if n not in needed and not n.startswith("."))
    except OSError:
        return []


def placed(path: str, sha256: str, verifier: FileVerifier, origin: Optional[str] = None) -> bool:
    """Whether PATH is a file with the content SHA256 and the published mode."""
    return (os.path.isfile(path) and holds(path, sha256, verifier, origin)
            and os.stat(path).st_mode & 0o7777 == FILE_MODE)


def place(source: str, destination: str, sha256: str, verifier: FileVerifier) -> bool:
    """Put SOURCE (verified) at DESTINATION atomically unless a file with its content and mode is
    there; True if written (a mode fixed counts: it ships)."""
    if placed(destination, sha256, verifier, source):
        return False
    if os.path.isfile(destination) and holds(destination, sha256, verifier, source):
        os.chmod(destination, FILE_MODE)  # older caches stored files 0600
        return True
    tmp = destination + ".incoming-%d" % os.getpid()
    try:
        link_or_copy(source, tmp)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, destination)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return True


def replace_directory(staging: str, final: str) -> None:
    """Put the directory STAGING at FINAL; an old FINAL is moved aside first and then removed."""
    retired = None
    if os.path.exists(final):
        retired = final + ".retired-%d" % os.getpid()
        os.replace(final, retired)
    os.replace(staging, final)
    if retired:
        shutil.rmtree(retired, ignore_errors=True)
