# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What one feed of the index inside the air gap (airgap.uv.mirror_feed) sends: every file the hosts of
a wheelhouse or of an imported bundle fetch from the mirror, by name, with its sha256 and size.

A source is a wheelhouse directory (``targets/<id>/``, as airgap.uv.wheelhouse publishes it) or a
bundle's entry in the controller's bundle store (``hosts/<id>/``, as airgap.uv.bundle_import checked
it). Each target directory's ``manifest.json`` names its files and their sha256, so nothing is
hashed again; the wheels are sent as they are, and the uv binaries of each target in one zip named
by their sha256 (_push_pull.uv_container_name), made once into ``CACHE/mirror-uv/`` (the binaries
checked against the manifest while they are zipped) and reused by every later feed. Runs inside
the air gap too: standard library, ansible-core and this collection only.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import typing as t
import zipfile

from ansible_collections.airgap.uv.plugins.module_utils._hashing import sha256_file
from ansible_collections.airgap.uv.plugins.module_utils._push_pull import BINARIES_PREFIX, uv_container_name
from ansible_collections.airgap.uv.plugins.module_utils._shipped_tree import MANIFEST, WHEELHOUSE

# Every member of a uv zip has this time: the same binaries always make the same zip.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_BLOCK = 1 << 20


class FeedError(Exception):
    """A source that cannot feed the mirror; the message says what to do."""


class FeedFile(t.NamedTuple):
    sha256: str
    size: int
    path: str


class Feed(t.NamedTuple):
    project: str
    source: str
    files: t.Dict[str, FeedFile]


def target_dirs(source: str) -> t.List[str]:
    """The target directories of SOURCE (a wheelhouse, or a bundle's entry in the bundle store)."""
    # A bundle's entry holds targets/<id>/ too, with only the install files: its hosts/<id>/ first.
    for holder in ("hosts", "targets"):
        directory = os.path.join(source, holder)
        if os.path.isdir(directory):
            found = sorted(os.path.join(directory, name) for name in os.listdir(directory)
                           if not name.startswith(".") and os.path.isfile(os.path.join(directory, name, MANIFEST)))
            if found:
                return found
    raise FeedError("%s is neither a wheelhouse (targets/<id>/manifest.json) nor a bundle checked into the bundle "
                    "store (hosts/<id>/manifest.json): give uv_mirror_wheelhouses the directory of a wheelhouse the "
                    "airgap.uv.uv_deploy role built (~/.cache/airgap-uv/wheelhouses/<name>), or uv_mirror_bundle a "
                    "bundle." % source)


def _project(source: str, manifests: t.Sequence[dict]) -> str:
    """The project's name (the bundle's, the manifests', else the directory's), as a plain name."""
    name = None
    try:
        with open(os.path.join(source, "bundle.json"), encoding="utf-8") as handle:
            name = (json.load(handle).get("project") or {}).get("name")
    except (OSError, ValueError, AttributeError):
        pass
    for manifest in manifests:
        name = name or (manifest.get("project") or {}).get("name")
    name = name or os.path.basename(os.path.normpath(source))
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(name)).strip(".-_") or "project"


def collect(source: str, cache_dir: str) -> Feed:
    """The files SOURCE's hosts fetch from the mirror, each once (the uv zips made when missing)."""
    files: t.Dict[str, FeedFile] = {}
    manifests = []
    for directory in target_dirs(source):
        path = os.path.join(directory, MANIFEST)
        try:
            with open(path, encoding="utf-8") as handle:
                manifest = json.load(handle)
            entries = manifest["files"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise FeedError("Cannot read %s (%s); build the wheelhouse or import the bundle again." % (path, exc)) from None
        manifests.append(manifest)
        binaries = {}
        for entry in entries:
            name, sha256, size = entry["filename"], entry["sha256"], entry["size"]
            if name.startswith(BINARIES_PREFIX):
                binaries[name] = FeedFile(sha256, size, os.path.join(directory, *name.split("/")))
            elif "/" not in name:
                _add(files, name, FeedFile(sha256, size, os.path.join(directory, WHEELHOUSE, name)))
        container = uv_container_name({name: {"sha256": f.sha256} for name, f in binaries.items()})
        if container:
            _add(files, container, uv_zip(cache_dir, container, binaries))
    return Feed(_project(source, manifests), source, files)


def _add(files: t.Dict[str, FeedFile], name: str, entry: FeedFile) -> None:
    known = files.get(name)
    if known is not None and known.sha256 != entry.sha256:
        raise FeedError("Two different files are named %s (%s and %s); build the wheelhouse again."
                        % (name, known.path, entry.path))
    files.setdefault(name, entry)


def uv_zip(cache_dir: str, name: str, binaries: t.Mapping[str, FeedFile]) -> FeedFile:
    """``CACHE_DIR/mirror-uv/NAME``, the zip of BINARIES (bin/<name> -> file), made once; its description.

    Each binary is checked against its sha256 while it is zipped: a damaged copy never reaches the
    mirror. The zip's own sha256 and size are kept beside it (NAME.json), so a later feed reads them.
    """
    directory = os.path.join(cache_dir, "mirror-uv")
    path = os.path.join(directory, name)
    try:
        with open(path + ".json", encoding="utf-8") as handle:
            known = json.load(handle)
        if os.path.getsize(path) == known["size"]:
            return FeedFile(known["sha256"], known["size"], path)
    except (OSError, ValueError, KeyError, TypeError):
        pass
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".uv-zip-")
    try:
        with os.fdopen(fd, "wb") as out, zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for relpath in sorted(binaries):
                _zip_one(archive, relpath, binaries[relpath])
        description = {"sha256": sha256_file(tmp), "size": os.path.getsize(tmp)}
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    with open(path + ".json", "w", encoding="utf-8") as handle:
        json.dump(description, handle)
    return FeedFile(description["sha256"], description["size"], path)


def _zip_one(archive: zipfile.ZipFile, relpath: str, binary: FeedFile) -> None:
    info = zipfile.ZipInfo(relpath[len(BINARIES_PREFIX):], date_time=_ZIP_TIME)
    info.external_attr = 0o100755 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    digest = hashlib.sha256()
    with open(binary.path, "rb") as source, archive.open(info, "w", force_zip64=binary.size >= 1 << 31) as member:
        for block in iter(lambda: source.read(_BLOCK), b""):
            digest.update(block)
            member.write(block)
    if digest.hexdigest() != binary.sha256:
        raise FeedError("%s has sha256 %s, not the %s its manifest names: it was changed after the wheelhouse was "
                        "built. Nothing was fed; build the wheelhouse (or import the bundle) again."
                        % (binary.path, digest.hexdigest(), binary.sha256))
