# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Check a bundle and keep it in the inside store, on a controller with no network.

Standard library only (the inside controller has ansible-core and this collection). The
bundle's signature is checked first (_bundle_sign), then every member's sha256 and size while
it is unpacked into a staging directory of the store; only a bundle whose every byte matched
is renamed into ``STORE/<sha256 of the tar>/``. Each target's directory is then made of hard
links to the members, in the shape airgap.uv.push sends.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import typing as t
from dataclasses import dataclass

from ansible_collections.airgap.uv.plugins.module_utils._hashing import sha256_file
from ansible_collections.airgap.uv.plugins.plugin_utils._bundle_format import (
    BUNDLE_DOCUMENT,
    MAX_DOCUMENT_BYTES,
    SIGNATURE_SUFFIX,
    WORKSTATION_DIR,
    BundleError,
    check_document,
)
from ansible_collections.airgap.uv.plugins.plugin_utils._bundle_sign import verify

COMPLETE = ".complete"  # written last into a store entry: its content was checked in full
_CHUNK = 1 << 20


@dataclass
class ImportedBundle:
    sha256: str
    root: str  # STORE/<sha256>; in check mode, where it would be
    document: dict
    changed: bool  # the store gained this bundle (or would, in check mode)
    signer: t.Optional[str]
    pruned: t.List[str]


def _first_member(archive: tarfile.TarFile, path: str) -> dict:
    info = archive.next()
    if info is None or info.name != BUNDLE_DOCUMENT or not info.isfile() or info.size > MAX_DOCUMENT_BYTES:
        raise BundleError("%s: not an airgap.uv bundle (its first member is not %s)." % (path, BUNDLE_DOCUMENT))
    handle = archive.extractfile(info)
    try:
        return check_document(json.loads(t.cast(t.IO[bytes], handle).read().decode("utf-8")), path)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError("%s: %s is not valid JSON (%s)." % (path, BUNDLE_DOCUMENT, exc)) from None


def read_document(path: str) -> dict:
    """bundle.json of the bundle at PATH (checked for shape, not for content: see import_bundle)."""
    try:
        with tarfile.open(path, "r:") as archive:
            return _first_member(archive, path)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BundleError("%s: cannot read it as a bundle: %s." % (path, exc)) from None


def _copy_checked(source: t.IO[bytes], out: t.Optional[t.BinaryIO], size: int) -> t.Tuple[str, int]:
    digest = hashlib.sha256()
    seen = 0
    while True:
        chunk = source.read(_CHUNK)
        if not chunk:
            break
        digest.update(chunk)
        seen += len(chunk)
        if out is not None:
            out.write(chunk)
        if seen > size:
            break
    return digest.hexdigest(), seen


def _unpack(path: str, staging: t.Optional[str]) -> dict:
    """Check every member of the bundle at PATH; write them under STAGING unless it is None."""
    try:
        with tarfile.open(path, "r:") as archive:
            document = _first_member(archive, path)
            members = document["members"]
            expected = set(members) - set(document.get("from_base") or [])
            seen: t.Set[str] = set()
            # next(), not iteration: iterating starts again at the members already read (bundle.json).
            info = archive.next()
            while info is not None:
                _unpack_member(path, archive, info, members, expected, seen, staging)
                info = archive.next()
    except (tarfile.TarError, EOFError) as exc:
        raise BundleError("%s is truncated or damaged (%s); copy it again from the media." % (path, exc)) from None
    missing = sorted(expected - seen)
    if missing:
        raise BundleError("%s is incomplete: it lacks %s%s; copy it again from the media."
                          % (path, ", ".join(missing[:5]), " and %d more" % (len(missing) - 5) if len(missing) > 5 else ""))
    return document


def _unpack_member(path: str, archive: tarfile.TarFile, info: tarfile.TarInfo, members: t.Mapping[str, dict],
                   expected: t.Set[str], seen: t.Set[str], staging: t.Optional[str]) -> None:
    name = info.name
    if name not in expected or name in seen or not info.isfile():
        raise BundleError("%s: refusing member %r: not a file this bundle lists (or listed twice)." % (path, name))
    seen.add(name)
    meta = members[name]
    source = t.cast(t.IO[bytes], archive.extractfile(info))
    out = None
    if staging is not None:
        target = os.path.join(staging, *name.split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        out = open(target, "xb")
    try:
        sha256, size = _copy_checked(source, out, meta["size"])
    finally:
        if out is not None:
            out.close()
            os.chmod(out.name, meta["mode"])
    if size != meta["size"] or sha256 != meta["sha256"]:
        raise BundleError("%s: member %s does not match its sha256 (got %s, %d bytes; bundle.json says %s, %d bytes): "
                          "the bundle was changed or damaged after it was built. Nothing was deployed."
                          % (path, name, sha256, size, meta["sha256"], meta["size"]))


def check_signature(path: str, allowed_signers: t.Optional[str], allow_unsigned: bool) -> t.Optional[str]:
    """The signer of the bundle at PATH, or None when unsigned bundles are allowed."""
    if allowed_signers:
        return verify(path, path + SIGNATURE_SUFFIX, allowed_signers)
    if allow_unsigned:
        return None
    raise BundleError("Refusing %s: no allowed signers file to check its signature with. Set "
                      "uv_deploy_bundle_allowed_signers to the allowed-signers file of the people who sign bundles, "
                      "or uv_deploy_bundle_allow_unsigned: true to deploy it unchecked." % path)


def _complete(root: str, sha256: str) -> bool:
    try:
        with open(os.path.join(root, COMPLETE), encoding="utf-8") as handle:
            return handle.read().strip() == sha256
    except OSError:
        return False


def _base_root(document: dict, store: str) -> str:
    """The store entry of a delta's base; a BundleError naming the base when the store lacks it."""
    base = document["base"]
    base_root = os.path.join(store, base["sha256"])
    if not _complete(base_root, base["sha256"]):
        raise BundleError("This bundle is a delta of %s (sha256 %s), which is not in the bundle store %s: import "
                          "that bundle first (deploy it once), or ask for a full bundle." % (base["name"], base["sha256"], store))
    return base_root


def _link_base(document: dict, staging: str, store: str) -> None:
    """Hard-link the members a delta leaves to its base from the base's store entry."""
    base = document["base"]
    base_root = _base_root(document, store)
    for name in document["from_base"]:
        source = os.path.join(base_root, *name.split("/"))
        if not os.path.isfile(source) or sha256_file(source) != document["members"][name]["sha256"]:
            raise BundleError("The base bundle %s in the store lacks %s (or it was changed); import the base again."
                              % (base["name"], name))
        target = os.path.join(staging, *name.split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.link(source, target)


def _make_target_trees(document: dict, staging: str) -> None:
    for target_id, target in document["targets"].items():
        root = os.path.join(staging, "hosts", target_id)
        trees = [(root, target["tree"])]
        if target.get("workstation"):
            trees.append((os.path.join(staging, WORKSTATION_DIR, target_id), target["workstation"]["tree"]))
        for directory, tree in trees:
            for relpath, member in tree.items():
                link = os.path.join(directory, *relpath.split("/"))
                os.makedirs(os.path.dirname(link), exist_ok=True)
                os.link(os.path.join(staging, *member.split("/")), link)


def stored_document(store: str, sha256: str) -> t.Optional[dict]:
    """bundle.json of the checked bundle SHA256 in STORE, or None when the store lacks it."""
    root = os.path.join(store, sha256)
    if not _complete(root, sha256):
        return None
    try:
        with open(os.path.join(root, BUNDLE_DOCUMENT), encoding="utf-8") as handle:
            return check_document(json.load(handle), root)
    except (OSError, ValueError):
        return None


def target_dir(root: str, target_id: str) -> str:
    """The directory airgap.uv.push sends to the hosts of TARGET_ID."""
    return os.path.join(root, "hosts", target_id)


def import_bundle(path: str, store: str, allowed_signers: t.Optional[str], allow_unsigned: bool, keep: int,
                  check_mode: bool = False) -> ImportedBundle:
    """Check the bundle at PATH and keep it in STORE (unless there already); prune STORE to KEEP."""
    if not os.path.isfile(path):
        raise BundleError("Bundle %s does not exist on the controller." % path)
    signer = check_signature(path, allowed_signers, allow_unsigned)
    sha256 = sha256_file(path)
    root = os.path.join(store, sha256)
    if _complete(root, sha256):
        document = read_document(path)
        return ImportedBundle(sha256, root, document, False, signer, [] if check_mode else prune(store, keep, root))
    if check_mode:
        document = _unpack(path, None)
        if document.get("from_base"):
            _base_root(document, store)
        return ImportedBundle(sha256, root, document, True, signer, [])
    os.makedirs(store, exist_ok=True)
    staging = tempfile.mkdtemp(dir=store, prefix=".import-")
    try:
        document = _unpack(path, staging)
        if document.get("from_base"):
            _link_base(document, staging, store)
        _make_target_trees(document, staging)
        with open(os.path.join(staging, BUNDLE_DOCUMENT), "w", encoding="utf-8") as handle:
            json.dump(document, handle)  # checked already: what stored_document reads back
        with open(os.path.join(staging, COMPLETE), "w", encoding="utf-8") as handle:
            handle.write(sha256 + "\n")
        os.chmod(staging, 0o755)
        if os.path.isdir(root) and not _complete(root, sha256):
            shutil.rmtree(root)  # an entry left incomplete by an interrupted import
        try:
            os.rename(staging, root)
        except OSError:
            if not _complete(root, sha256):
                raise
            # Another deployment imported the same bundle meanwhile: its entry is as good as ours.
    finally:
        if os.path.isdir(staging):
            shutil.rmtree(staging, ignore_errors=True)
    return ImportedBundle(sha256, root, document, True, signer, prune(store, keep, root))


def prune(store: str, keep: int, current: str) -> t.List[str]:
    """Remove all but the KEEP most recently used complete entries (never CURRENT); returns the removed."""
    os.utime(os.path.join(current, COMPLETE))  # used now: a redeploy keeps its bundle
    entries = []
    for name in os.listdir(store):
        root = os.path.join(store, name)
        if not name.startswith(".") and _complete(root, name):
            entries.append((os.stat(os.path.join(root, COMPLETE)).st_mtime, root))
    entries.sort(reverse=True)
    removed = [root for dummy, root in entries[max(keep, 1):] if root != current]
    for root in removed:
        shutil.rmtree(root, ignore_errors=True)
    return removed


def hosts_for(document: dict, root: str, facts_by_host: t.Mapping[str, t.Any]) -> t.Tuple[dict, dict]:
    """The wheelhouse-shaped ``hosts`` and ``targets`` results: each host's directory in the store."""
    from ansible_collections.airgap.uv.plugins.plugin_utils._target import Target, TargetError

    hosts, targets = {}, {}
    for host, facts in sorted(facts_by_host.items()):
        try:
            target_id = Target.from_facts(facts, host).id
        except TargetError as exc:
            raise BundleError(str(exc)) from None
        target = document["targets"].get(target_id)
        if target is None:
            raise BundleError("Host %s is target %s, which this bundle was not built for (it holds %s). Add the host "
                              "to the targets file (ansible-playbook airgap.uv.targets), build the bundle again on the "
                              "connected side and carry it in." % (host, target_id, ", ".join(sorted(document["targets"]))))
        path = target_dir(root, target_id)
        hosts[host] = {"target": target_id, "path": path, "files": target["files"],
                       # Where the target's workstation directory is, when the bundle carries one.
                       "workstation_path": os.path.join(root, WORKSTATION_DIR, target_id) if target.get("workstation") else None}
        entry = targets.setdefault(target_id, {"hosts": [], "path": path, "install_file": target["install_file"]})
        entry["hosts"].append(host)
    return hosts, targets
