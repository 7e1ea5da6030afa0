# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a bundle carries for other tools: a PEP 751 lock per target (_pylock) and the SBOM (_sbom),
made from the bundle's own members, and the original URLs from uv.lock (connected side only)."""

from __future__ import annotations

import os
import typing as t

from ansible_collections.airgap.uv.plugins.plugin_utils._bundle_format import BundleError
from ansible_collections.airgap.uv.plugins.plugin_utils._pylock import PylockPackage, pylock_text
from ansible_collections.airgap.uv.plugins.plugin_utils._sbom import BundleComponent, sbom_document, timestamp_from_epoch


class FileFacts(t.Protocol):
    """What the SBOM needs of a bundle member (_bundle_write.Member)."""

    sha256: str
    size: int


def lock_urls(lock_path: str) -> dict:
    """{file name: URL} of every registry file of the uv.lock at LOCK_PATH."""
    from ansible_collections.airgap.uv.plugins.plugin_utils._lock import load_lock
    from ansible_collections.airgap.uv.plugins.plugin_utils._lock_types import LockError

    try:
        lock = load_lock(lock_path)
    except LockError as exc:
        raise BundleError(str(exc)) from None
    urls = {}
    for package in lock.packages:
        for artifact in list(package.wheels) + ([package.sdist] if package.sdist else []):
            if artifact.url:
                urls[artifact.filename] = artifact.url
    return urls


def project_of(project_dir: str) -> dict:
    """``name`` and ``version`` of pyproject.toml's [project] (a virtual project installs no wheel of its own)."""
    from ansible_collections.airgap.uv.plugins.plugin_utils._toml_file import TomlFileError, read_toml

    try:
        table = read_toml(os.path.join(project_dir, "pyproject.toml")).get("project") or {}
    except TomlFileError as exc:
        raise BundleError(str(exc)) from None
    return {"name": table.get("name") or os.path.basename(os.path.abspath(project_dir)), "version": table.get("version")}


def pylock_for(target_id: str, python_version: str, package_files: t.Sequence[t.Mapping[str, t.Any]],
               urls: t.Mapping[str, str]) -> str:
    """The pylock.<id>.toml of a target from its manifest's package files (paths into files/)."""
    packages = []
    for entry in package_files:
        filename = entry.get("filename", "")
        if "/" in filename or not entry.get("name"):
            continue  # bin/uv and other non-package files
        packages.append(PylockPackage(
            name=entry["name"], version=entry["version"], filename=filename, sha256=entry["sha256"],
            size=entry["size"], url=urls.get(filename), path="files/" + filename,
            is_sdist=not filename.endswith(".whl")))
    return pylock_text(target_id, python_version or None, packages)


def sbom_for(project: t.Mapping[str, t.Any], members: t.Mapping[str, FileFacts],
             package_of: t.Mapping[str, t.Tuple[str, str]], uv_version: str, seed: str, mtime: int) -> dict:
    """The CycloneDX SBOM of every package file (PACKAGE_OF: file name -> name, version) and uv binary."""
    components = []
    for name, member in sorted(members.items()):
        if name.startswith("files/"):
            filename = name[len("files/"):]
            if filename in package_of:
                package, version = package_of[filename]
                components.append(BundleComponent(package, version, filename, member.sha256, member.size,
                                                  "wheel" if filename.endswith(".whl") else "sdist"))
        elif name.startswith("uv/") and name.endswith("/uv"):
            components.append(BundleComponent("uv", uv_version, name, member.sha256, member.size, "uv-binary"))
    return sbom_document(project, components, serial_seed=seed, timestamp=timestamp_from_epoch(mtime))
