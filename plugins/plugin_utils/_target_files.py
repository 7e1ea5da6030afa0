# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What one target's directory of a wheelhouse (``targets/<id>/``) holds, file by file.

The directory is what airgap.uv.push sends to a host, so everything in it depends only on what
that host installs: the install files and the manifest name no lock, run or host. Its files are
described as ``{relative path: {"sha256", "size", "mode"}}``, the shape airgap.uv.push compares
with a host; check mode describes the directory a real run would write, with ``None`` where a
value is not known without fetching (a uv binary whose wheel the controller has not fetched).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from typing import Callable, NamedTuple, Optional

from ansible_collections.airgap.uv.plugins.module_utils._shipped_tree import BUILD_CONSTRAINTS, MANIFEST, MANIFEST_FORMAT, REQUIREMENTS
from ansible_collections.airgap.uv.plugins.plugin_utils._lock_types import Artifact
from ansible_collections.airgap.uv.plugins.plugin_utils._target import Target
from ansible_collections.airgap.uv.plugins.plugin_utils._verify import FileVerifier

# Modes in the published tree: every file 0644 (store files are chmod-ed so when placed), the uv
# binaries 0755 (as unpacked).
FILE_MODE = 0o644
BINARY_MODE = 0o755


class PackageFile(NamedTuple):
    """One file of a target's wheelhouse and the package (name, version) it holds."""

    name: str
    version: str
    filename: str
    sha256: str


@dataclass
class TargetPlan:
    target: Target
    hosts: list[str]
    entries: list[PackageFile] = field(default_factory=list)
    uv_wheel: Optional[Artifact] = None
    built: int = 0
    # Packages shipped as sdists for the host to build: how many, what their backends ask for, and
    # the wheels pinned for the target that satisfy it (build-constraints.txt).
    host_built: list[str] = field(default_factory=list)
    build_requires: list[str] = field(default_factory=list)
    build_entries: list[PackageFile] = field(default_factory=list)
    # Packages installed editable on the host from their shipped sdist (not in requirements.txt).
    editable_entries: list[PackageFile] = field(default_factory=list)
    # (name, version) of the project deployed (the first root of the selection): the host reports
    # its version with the release in service.
    project: Optional[tuple[str, str]] = None

    @property
    def files(self) -> list[PackageFile]:
        """Every file of the target's wheelhouse, once: what it installs and what its builds use.

        A package can be both (packaging is a dependency and, for hatchling, a build requirement):
        the wheelhouse holds its file once, under the first entry that names it.
        """
        seen: dict[str, PackageFile] = {}
        for entry in self.entries + self.editable_entries + self.build_entries:
            seen.setdefault(entry.filename, entry)
        return list(seen.values())

    def conflicting_file(self, entry: PackageFile) -> Optional[PackageFile]:
        """An entry already planned under ENTRY's file name with another sha256, if any."""
        for other in self.entries + self.editable_entries + self.build_entries:
            if other.filename == entry.filename and other.sha256 != entry.sha256:
                return other
        return None


@dataclass(frozen=True)
class Binary:
    """A uv binary of the target's bin/; sha256 and size None when not known (check mode)."""

    name: str
    sha256: Optional[str]
    size: Optional[int]


def pinned_file(target_id: str, purpose: str, entries) -> str:
    """A hash-pinned requirements file: name==version --hash per entry, sorted, with a header."""
    lines = ["# Written by airgap.uv for target %s." % target_id, "# " + purpose]
    for entry in sorted(set(entries)):
        lines.append("%s==%s \\\n    --hash=sha256:%s" % (entry.name, entry.version, entry.sha256))
    return "\n".join(lines) + "\n"


def requirements_text(plan: TargetPlan) -> str:
    return pinned_file(plan.target.id, "Install with: uv pip sync --offline --no-index --find-links wheelhouse "
                       "--require-hashes requirements.txt", plan.entries)


def build_constraints_text(plan: TargetPlan) -> str:
    """The wheels the host's builds of shipped sdists use (uv pip sync --build-constraint)."""
    return pinned_file(plan.target.id, "Build requirements of the packages shipped as sdists, pinned for this "
                       "target (built on the host: %s)." % (", ".join(plan.host_built) or "nothing"),
                       plan.build_entries)


def target_manifest(plan: TargetPlan, version: str, size_of: Callable[[str, str], Optional[int]],
                    binaries: list[Binary]) -> Optional[dict]:
    """The target's manifest.json content; None when a size or a binary's sha256 is unknown."""
    files: list[dict] = []
    for entry in sorted(plan.files, key=lambda e: e.filename):
        size = size_of(entry.sha256, entry.filename)
        if size is None:
            return None
        files.append({"filename": entry.filename, "sha256": entry.sha256, "size": size, "name": entry.name,
                      "version": entry.version})
    # The uv binaries are checked on the host like the wheels (names with a slash are relative
    # to the manifest).
    for binary in sorted(binaries, key=lambda b: b.name):
        if binary.sha256 is None or binary.size is None:
            return None
        files.append({"filename": "bin/" + binary.name, "sha256": binary.sha256, "size": binary.size})
    editable = [entry._asdict() for entry in sorted(plan.editable_entries)]
    project = {"name": plan.project[0], "version": plan.project[1]} if plan.project else None
    return {"format": MANIFEST_FORMAT, "target": plan.target.id, "files": files, "editable": editable,
            "project": project, "uv_version": version, "uv_wheel": plan.uv_wheel.filename, "uv_wheel_sha256": plan.uv_wheel.sha256}


def manifest_text(manifest: dict) -> str:
    return json.dumps(manifest, indent=2, sort_keys=True) + "\n"


@dataclass
class TargetFiles:
    """The files of one target directory: their description and the text files' content."""

    described: dict
    texts: dict  # relative path -> text, for the files written (not linked) into the directory


def plan_target_files(plan: TargetPlan, version: str, size_of: Callable[[str, str], Optional[int]],
                      binaries: list[Binary]) -> TargetFiles:
    """What targets/<id>/ holds (or will hold): wheelhouse/*, bin/*, the install files and manifest."""
    described: dict = {}
    for entry in plan.files:
        described["wheelhouse/" + entry.filename] = {"sha256": entry.sha256, "size": size_of(entry.sha256, entry.filename),
                                                     "mode": FILE_MODE}
    for binary in binaries:
        described["bin/" + binary.name] = {"sha256": binary.sha256, "size": binary.size, "mode": BINARY_MODE}
    texts = {REQUIREMENTS: requirements_text(plan), BUILD_CONSTRAINTS: build_constraints_text(plan)}
    manifest = target_manifest(plan, version, size_of, binaries)
    for name, text in texts.items():
        described[name] = _text_entry(text)
    if manifest is None:
        described[MANIFEST] = {"sha256": None, "size": None, "mode": FILE_MODE}
    else:
        texts[MANIFEST] = manifest_text(manifest)
        described[MANIFEST] = _text_entry(texts[MANIFEST])
    return TargetFiles(described=dict(sorted(described.items())), texts=texts)


def _text_entry(text: str) -> dict:
    data = text.encode("utf-8")
    return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "mode": FILE_MODE}


def tree_matches(directory: str, described: dict, verifier: FileVerifier) -> bool:
    """Whether DIRECTORY holds exactly the files DESCRIBED (no other entry, no link), each with
    its mode, size and sha256 (hard links of one inode are hashed once: the verifier's record)."""
    try:
        found = set()
        for root, dirs, names in os.walk(directory):
            for name in dirs:
                if os.path.islink(os.path.join(root, name)):
                    return False
            for name in names:
                found.add(os.path.relpath(os.path.join(root, name), directory).replace(os.sep, "/"))
        if found != set(described):
            return False
        for relative, want in described.items():
            path = os.path.join(directory, *relative.split("/"))
            st = os.lstat(path)
            if (not stat.S_ISREG(st.st_mode) or st.st_mode & 0o7777 != want["mode"] or want["sha256"] is None
                    or st.st_size != want["size"] or not verifier.matches(path, want["sha256"])):
                return False
        return True
    except OSError:
        return False
