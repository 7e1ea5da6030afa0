# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Write a bundle (_bundle_format) from what airgap.uv.wheelhouse published.

The wheelhouse stages do the work (select, plan, fetch, build, publish); this is the stage
after publish: each file once, in a tar that is byte-identical for the same inputs (sorted
members, fixed times, owners and modes), then signed. Nothing is half-written: the tar, its
signature and its digest file are written beside the destination and renamed into place.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import tempfile
import typing as t
from dataclasses import dataclass, field

from ansible_collections.airgap.uv.plugins.module_utils._hashing import sha256_file
from ansible_collections.airgap.uv.plugins.plugin_utils._bundle_format import (
    BUNDLE_DOCUMENT,
    BUNDLE_FORMAT,
    SBOM,
    SUMS_SUFFIX,
    BundleError,
    member_for,
    pylock_member,
    workstation_member,
)
from ansible_collections.airgap.uv.plugins.plugin_utils._bundle_sign import sign
from ansible_collections.airgap.uv.plugins.plugin_utils._bundle_read import read_document
from ansible_collections.airgap.uv.plugins.plugin_utils._bundle_extras import pylock_for, sbom_for
from ansible_collections.airgap.uv.plugins.plugin_utils._workstation_cache import SEED_FILE


@dataclass
class Member:
    """One member of the bundle: its content comes from SOURCE (a file) or DATA."""

    name: str
    sha256: str
    size: int
    mode: int
    source: t.Optional[str] = None
    data: t.Optional[bytes] = None

    @classmethod
    def of_bytes(cls, name: str, data: bytes) -> "Member":
        return cls(name, hashlib.sha256(data).hexdigest(), len(data), 0o644, data=data)


@dataclass
class BundleRequest:
    """What a bundle is made of: the registered result of airgap.uv.wheelhouse and the targets file."""

    wheelhouse: t.Mapping[str, t.Any]
    specs: t.Mapping[str, t.Mapping[str, t.Any]]
    dest: str
    lock_urls: t.Mapping[str, str] = field(default_factory=dict)
    base: t.Optional[str] = None
    signing_key: t.Optional[str] = None
    mtime: int = 0
    collection_version: str = ""
    # The project's name and version when no target installs a wheel of it (a virtual project).
    project: t.Mapping[str, t.Any] = field(default_factory=dict)
    # The registered result of airgap.uv.workstation_cache for the same targets, to carry their
    # uv caches too (a bundle for workstations inside the gap); empty for a deploy-only bundle.
    workstation: t.Mapping[str, t.Any] = field(default_factory=dict)


@dataclass
class BundleOutcome:
    changed: bool
    path: str
    sha256: str
    size: int
    members: int
    payload_bytes: int
    from_base: int
    signature: t.Optional[str]
    sums: str
    document: dict


def collect(request: BundleRequest) -> t.Tuple[t.Dict[str, Member], t.Dict[str, dict]]:
    """Every member once, and each target's entry of bundle.json, from the published wheelhouse."""
    result = request.wheelhouse
    members: t.Dict[str, Member] = {}
    targets: t.Dict[str, dict] = {}
    described = {entry["target"]: entry["files"] for entry in result.get("hosts", {}).values()}
    for target_id, published in sorted(result.get("targets", {}).items()):
        if target_id not in request.specs:
            raise BundleError("The wheelhouse holds target %s, which the targets file does not describe." % target_id)
        files = described.get(target_id)
        if not isinstance(files, dict):
            raise BundleError("The wheelhouse result has no file list for target %s." % target_id)
        uv_dir = (published.get("uv_wheel") or "uv-%s" % result.get("uv_version", "unknown")).rsplit(".whl", 1)[0]
        tree = {}
        for relpath, meta in sorted(files.items()):
            if not meta.get("sha256"):
                raise BundleError("Target %s: %s has no sha256 (a check-mode wheelhouse result?); build the "
                                  "wheelhouse for real first." % (target_id, relpath))
            name = member_for(target_id, relpath, uv_dir)
            known = members.get(name)
            if known is not None and known.sha256 != meta["sha256"]:
                raise BundleError("Two different files would be bundled as %s (targets share a file name with "
                                  "different content); rebuild the wheelhouse." % name)
            members[name] = Member(name, meta["sha256"], meta["size"], meta["mode"],
                                   source=os.path.join(published["path"], *relpath.split("/")))
            tree[relpath] = name
        spec = dict(request.specs[target_id])
        hosts = spec.pop("hosts", [])
        targets[target_id] = {"spec": spec, "hosts": sorted(hosts), "tree": tree, "files": files,
                              "install_file": published.get("install_file")}
        if request.workstation:
            targets[target_id]["workstation"] = _workstation_entry(request.workstation, target_id, tree, members)
    missing = sorted(set(request.specs) - set(targets))
    if missing:
        raise BundleError("The wheelhouse was not built for target(s) %s of the targets file." % ", ".join(missing))
    return members, targets


def _workstation_entry(caches: t.Mapping[str, t.Any], target_id: str, tree: t.Mapping[str, str],
                       members: t.Dict[str, Member]) -> dict:
    """The tree and files of TARGET_ID's workstation directory (what workstation_cache made), adding
    its files to MEMBERS; uv itself must be the target's own."""
    ship = (caches.get("targets", {}).get(target_id) or {}).get("path")
    if not ship or not os.path.isfile(os.path.join(ship, SEED_FILE)):
        raise BundleError("The uv cache of target %s was not filled (airgap.uv.workstation_cache); run it for every "
                          "target of the targets file, not in check mode." % target_id)
    entry: dict = {"tree": {}, "files": {}}
    for directory, dummy, names in sorted(os.walk(ship)):
        for filename in sorted(names):
            source = os.path.join(directory, filename)
            relpath = os.path.relpath(source, ship).replace(os.sep, "/")
            sha256 = sha256_file(source)
            meta = {"sha256": sha256, "size": os.path.getsize(source),
                    "mode": 0o755 if os.access(source, os.X_OK) else 0o644}
            name = workstation_member(relpath, sha256, tree)
            if name in members and members[name].sha256 != sha256:
                raise BundleError("Target %s: the workstation's %s is not the target's own %s; fill the uv cache "
                                  "again with this wheelhouse." % (target_id, relpath, name))
            members.setdefault(name, Member(name, sha256, meta["size"], meta["mode"], source=source))
            entry["tree"][relpath] = name
            entry["files"][relpath] = meta
    return entry


def _generated(request: BundleRequest, members: t.Dict[str, Member], targets: t.Dict[str, dict],
               project: dict) -> None:
    """Add the PEP 751 lock of each target and the SBOM, made from the members themselves."""
    package_of = {}
    for target_id, target in targets.items():
        manifest = members["targets/%s/manifest.json" % target_id]
        with open(t.cast(str, manifest.source), encoding="utf-8") as handle:
            package_files = [entry for entry in json.load(handle).get("files", []) if entry.get("name")]
        package_of.update((entry["filename"], (entry["name"], entry["version"])) for entry in package_files)
        text = pylock_for(target_id, str(target["spec"].get("python", "")), package_files, request.lock_urls)
        members[pylock_member(target_id)] = Member.of_bytes(pylock_member(target_id), text.encode("utf-8"))
    seed = "%s:%s" % (request.wheelhouse.get("lock_sha256", ""), ",".join(sorted(targets)))
    sbom = sbom_for(project, members, package_of, request.wheelhouse.get("uv_version", ""), seed, request.mtime)
    members[SBOM] = Member.of_bytes(SBOM, (json.dumps(sbom, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def _project(targets: t.Mapping[str, dict], declared: t.Mapping[str, t.Any]) -> dict:
    for target in targets.values():
        project = (target.get("install_file") or {}).get("project")
        if project:
            return {"name": project["name"], "version": project["version"]}
    return {"name": declared.get("name"), "version": declared.get("version")}


def _base(path: t.Optional[str], members: t.Mapping[str, Member]) -> t.Tuple[t.Optional[dict], t.List[str]]:
    """The base's name and digest, and the members a delta leaves to it (same name, same content)."""
    if not path:
        return None, []
    if not os.path.isfile(path):
        raise BundleError("Base bundle %s does not exist; pass the bundle last carried inside (uv_deploy_bundle_base)." % path)
    document = read_document(path)
    theirs = document["members"]
    shared = sorted(name for name, member in members.items()
                    if name in theirs and theirs[name]["sha256"] == member.sha256 and name != SBOM)
    return {"sha256": sha256_file(path), "name": os.path.basename(path)}, shared


def document_for(request: BundleRequest, members: t.Mapping[str, Member], targets: dict, project: dict,
                 base: t.Optional[dict], from_base: t.List[str]) -> dict:
    return {
        "format": BUNDLE_FORMAT,
        "project": project,
        "lock_sha256": request.wheelhouse.get("lock_sha256"),
        "uv_version": request.wheelhouse.get("uv_version"),
        "collection_version": request.collection_version,
        "members": {name: {"sha256": m.sha256, "size": m.size, "mode": m.mode} for name, m in sorted(members.items())},
        "base": base,
        "from_base": from_base,
        "targets": targets,
    }


class _Sink:
    """A file-like end for tarfile that hashes (and, given OUT, writes) what the archive holds."""

    def __init__(self, out: t.Optional[t.BinaryIO]) -> None:
        self.out = out
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        if self.out is not None:
            self.out.write(data)
        return len(data)

    def tell(self) -> int:
        return self.size


class _CheckedReader(io.RawIOBase):
    """Reads a source file while hashing it, so a file changed since publishing is caught."""

    def __init__(self, handle: t.BinaryIO) -> None:
        super().__init__()
        self.handle = handle
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.digest.update(data)
        return data


def _tarinfo(name: str, size: int, mode: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, mode, mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_tar(sink: _Sink, document: dict, members: t.Mapping[str, Member], from_base: t.Sequence[str],
              mtime: int) -> None:
    """bundle.json first, then every member this bundle carries, sorted by name."""
    encoded = (json.dumps(document, indent=2, sort_keys=True) + "\n").encode("utf-8")
    skipped = set(from_base)
    with tarfile.open(fileobj=t.cast(t.IO[bytes], sink), mode="w", format=tarfile.PAX_FORMAT) as archive:
        archive.addfile(_tarinfo(BUNDLE_DOCUMENT, len(encoded), 0o644, mtime), io.BytesIO(encoded))
        for name in sorted(members):
            if name in skipped:
                continue
            member = members[name]
            info = _tarinfo(name, member.size, member.mode, mtime)
            if member.data is not None:
                archive.addfile(info, io.BytesIO(member.data))
                continue
            with open(t.cast(str, member.source), "rb") as handle:
                reader = _CheckedReader(handle)
                archive.addfile(info, t.cast(t.IO[bytes], reader))
            if reader.digest.hexdigest() != member.sha256:
                raise BundleError("%s changed after the wheelhouse published it; run again." % member.source)


def build_bundle(request: BundleRequest, check_mode: bool = False) -> BundleOutcome:
    """Write (or in check mode, work out) the bundle at REQUEST.dest with its signature and digest."""
    members, targets = collect(request)
    project = _project(targets, request.project)
    _generated(request, members, targets, project)
    base, from_base = _base(request.base, members)
    document = document_for(request, members, targets, project, base, from_base)
    dest = os.path.abspath(request.dest)
    sums = dest + SUMS_SUFFIX
    signature = dest + ".sig" if request.signing_key else None
    carried = [m for name, m in members.items() if name not in set(from_base)]
    outcome = BundleOutcome(False, dest, "", 0, len(carried), sum(m.size for m in carried), len(from_base),
                            signature, sums, document)
    if check_mode:
        sink = _Sink(None)
        write_tar(sink, document, members, from_base, request.mtime)
        outcome.sha256, outcome.size = sink.digest.hexdigest(), sink.size
        outcome.changed = not _in_place(dest, outcome.sha256, signature)
        return outcome
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(dest), prefix=".%s." % os.path.basename(dest))
    written = [tmp]
    try:
        with os.fdopen(fd, "wb") as out:
            sink = _Sink(out)
            write_tar(sink, document, members, from_base, request.mtime)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        outcome.sha256, outcome.size = sink.digest.hexdigest(), sink.size
        if request.signing_key:
            written.append(sign(tmp, request.signing_key))
        with open(tmp + SUMS_SUFFIX, "w", encoding="utf-8") as handle:
            handle.write("%s  %s\n" % (outcome.sha256, os.path.basename(dest)))
        written.append(tmp + SUMS_SUFFIX)
        outcome.changed = _put_in_place(tmp, dest, signed=bool(request.signing_key))
        return outcome
    finally:
        for path in written:
            if os.path.lexists(path):
                os.unlink(path)


def _put_in_place(tmp: str, dest: str, signed: bool) -> bool:
    """Rename the bundle TMP and its companions over DEST's where they differ; True when any did.

    The tar goes first: a reader who sees a new tar with an old signature refuses it, never the
    reverse. A signature left from an earlier, signed bundle is removed when this one is unsigned.
    """
    changed = False
    for suffix in ("", ".sig" if signed else None, SUMS_SUFFIX):
        if suffix is None:
            continue
        if not _same_bytes(tmp + suffix, dest + suffix):
            os.replace(tmp + suffix, dest + suffix)
            changed = True
    if not signed and os.path.lexists(dest + ".sig"):
        os.unlink(dest + ".sig")
        changed = True
    return changed


def _same_bytes(new: str, old: str) -> bool:
    try:
        if os.path.getsize(new) != os.path.getsize(old):
            return False
    except OSError:
        return False
    return sha256_file(new) == sha256_file(old)


def _in_place(dest: str, sha256: str, signature: t.Optional[str]) -> bool:
    """Whether DEST already is this bundle, with its digest file and (when signing) a signature."""
    try:
        same = sha256_file(dest) == sha256
    except OSError:
        return False
    return same and os.path.isfile(dest + SUMS_SUFFIX) and (signature is None or os.path.isfile(signature))
