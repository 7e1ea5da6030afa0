# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The contract of a bundle: one tar made on the connected side and deployed from inside the gap.

Written by _bundle_write, read by _bundle_read; standard library only, because the controller
inside the air gap has ansible-core and this collection and nothing else.

A bundle is an uncompressed tar (wheels are compressed already) whose first member is
``bundle.json`` (``BUNDLE_DOCUMENT``) and whose other members are, each once:

- ``files/<filename>``: the wheels (and sdists) the targets install;
- ``uv/<uv wheel name>/uv``, ``.../uvx``: the uv binary of each platform;
- ``targets/<id>/manifest.json``, ``requirements.txt``, ``build-constraints.txt``: the install files
  of each target, as ``airgap.uv.wheelhouse`` publishes them;
- ``pylock.<id>.toml`` (dots of the id as underscores): the same install as a PEP 751 lock whose paths point into ``files/``;
- ``sbom.cdx.json``: a CycloneDX SBOM of every shipped file;
- ``cache/<sha256>``, only in a bundle built for workstations too: the files
  airgap.uv.workstation_cache made for a target (uv cache chunks and their seed file), by content.

``bundle.json`` holds: ``format``, ``project`` (name, version), ``lock_sha256``, ``uv_version``,
``collection_version``, ``members`` (every member of the complete bundle but itself: ``sha256``,
``size``, ``mode``), ``base`` (a delta's base: ``sha256`` and ``name`` of the bundle file it
extends, else null), ``from_base`` (members a delta leaves to its base) and ``targets`` (per id:
``spec`` as in a targets file, ``hosts``, ``tree`` (path in the host's directory -> member),
``files`` (that directory as ``airgap.uv.push`` describes it), ``install_file`` and, in a bundle built for
workstations too, ``workstation`` (``tree`` and ``files`` of the directory airgap.uv.push sends to a
workstation of that target: ``bin/uv``, ``bin/uvx`` as in the target's own tree, the cache chunks and
their seed file)).

Beside the tar: ``<bundle>.sig`` (``ssh-keygen -Y sign``, namespace ``SIGNATURE_NAMESPACE``) and
``<bundle>.sha256`` (``sha256sum`` format) for people who check by hand.
"""

from __future__ import annotations

import re
import typing as t

BUNDLE_FORMAT = 1
BUNDLE_DOCUMENT = "bundle.json"
SBOM = "sbom.cdx.json"
SIGNATURE_SUFFIX = ".sig"
SUMS_SUFFIX = ".sha256"
SIGNATURE_NAMESPACE = "airgap.uv-bundle"
# bundle.json is read into memory before anything else: a bound keeps a hostile file small.
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024

_MEMBER = re.compile(r"^(files/[^/]+|uv/[^/]+/[^/]+|targets/[^/]+/[^/]+|pylock\.[^/]+\.toml|sbom\.cdx\.json"
                     r"|cache/[0-9a-f]{64})$")
_TREE_PATH = re.compile(r"^(wheelhouse/[^/]+|bin/[^/]+|[^/]+)$")
_WORKSTATION_PATH = re.compile(r"^([^/]+/)?[^/]+$")  # bin/uv, the chunks' directory, seed.json
WORKSTATION_DIR = "workstations"  # STORE/<sha256>/workstations/<id>: what push sends a workstation of <id>


class BundleError(Exception):
    """A bundle that cannot be written, or must not be trusted; the message says what to do."""


def member_for(target_id: str, relpath: str, uv_dir: str) -> str:
    """Where the file RELPATH of a target's directory is kept in the bundle (each content once)."""
    if relpath.startswith("wheelhouse/"):
        return "files/" + relpath[len("wheelhouse/"):]
    if relpath.startswith("bin/"):
        return "uv/%s/%s" % (uv_dir, relpath[len("bin/"):])
    return "targets/%s/%s" % (target_id, relpath)


def workstation_member(relpath: str, sha256: str, tree: t.Mapping[str, str]) -> str:
    """Where a file of a target's workstation directory is kept: uv as in the target's TREE, the
    rest by content (chunk names are uv's random archive ids, the same wheel's chunk is shared)."""
    if relpath.startswith("bin/") and relpath in tree:
        return tree[relpath]
    return "cache/" + sha256


def pylock_member(target_id: str) -> str:
    """``pylock.<id>.toml`` with the id's dots as underscores: PEP 751 names hold no dot, and pip
    reads a file as a pylock only when its name matches."""
    return "pylock.%s.toml" % target_id.replace(".", "_")


def safe_name(name: str) -> bool:
    """A member name a reader may write under its own directory: no absolute path, no '..'."""
    parts = name.split("/")
    return (bool(_MEMBER.match(name)) and "\\" not in name and "\x00" not in name
            and all(part not in ("", ".", "..") for part in parts))


def check_document(document: t.Any, where: str) -> dict:
    """DOCUMENT if it is a bundle.json this code can read, else a BundleError saying why."""
    if not isinstance(document, dict) or document.get("format") != BUNDLE_FORMAT:
        found = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise BundleError("%s: not an airgap.uv bundle of format %d (found %r); build it again with this "
                          "collection's version of airgap.uv.bundle." % (where, BUNDLE_FORMAT, found))
    members = document.get("members")
    targets = document.get("targets")
    if not isinstance(members, dict) or not isinstance(targets, dict) or not targets:
        raise BundleError("%s: bundle.json lacks its members or targets." % where)
    for name, meta in members.items():
        if not safe_name(name):
            raise BundleError("%s: refusing member %r: not a path a bundle may hold." % (where, name))
        if not (isinstance(meta, dict) and isinstance(meta.get("sha256"), str) and isinstance(meta.get("size"), int)
                and meta.get("mode") in (0o644, 0o755)):
            raise BundleError("%s: member %s has no valid sha256, size and mode." % (where, name))
    from_base = document.get("from_base") or []
    if not isinstance(from_base, list) or any(name not in members for name in from_base):
        raise BundleError("%s: from_base names members the bundle does not list." % where)
    if from_base and not isinstance(document.get("base"), dict):
        raise BundleError("%s: members come from a base, but no base is named." % where)
    for target_id, target in targets.items():
        _check_target(target_id, target, members, where)
    return document


def _check_target(target_id: str, target: t.Any, members: t.Mapping[str, t.Any], where: str) -> None:
    if not isinstance(target, dict) or not isinstance(target.get("spec"), dict):
        raise BundleError("%s: target %s lacks its spec, tree or files." % (where, target_id))
    _check_tree(target_id, target, _TREE_PATH, members, where)
    if target.get("workstation") is not None:
        _check_tree(target_id + " (workstation)", target["workstation"], _WORKSTATION_PATH, members, where)


def _check_tree(target_id: str, entry: t.Any, paths: t.Pattern, members: t.Mapping[str, t.Any], where: str) -> None:
    tree = entry.get("tree") if isinstance(entry, dict) else None
    if not isinstance(tree, dict) or not isinstance(entry.get("files"), dict):
        raise BundleError("%s: target %s lacks its spec, tree or files." % (where, target_id))
    for relpath, member in tree.items():
        if (not paths.match(relpath) or any(part in ("", ".", "..") for part in relpath.split("/"))
                or member not in members):
            raise BundleError("%s: target %s maps %r to %r, which the bundle does not hold." % (where, target_id, relpath, member))
        if entry["files"].get(relpath, {}).get("sha256") != members[member]["sha256"]:
            raise BundleError("%s: target %s: %s does not match member %s." % (where, target_id, relpath, member))
