# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to the airgap.uv collection
"""Read uv.lock (lock format version 1) into the typed objects of _lock_types.

Controller-only code: it needs ``packaging`` and a TOML parser (_toml_file). The imports
are guarded so that importing this module never fails; :func:`load_lock` raises
:class:`LockError` when a library is missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import traceback
import typing as t
from urllib.parse import unquote, urlsplit

from ansible_collections.airgap.uv.plugins.plugin_utils._lock_paths import declared_locations, outside_reason
from ansible_collections.airgap.uv.plugins.plugin_utils._lock_types import (
    LOCAL_TREE_KINDS,
    SOURCE_KINDS,
    SUPPORTED_LOCK_VERSION,
    Artifact,
    ConflictItem,
    Dependency,
    Lock,
    LockError,
    Package,
    Requirement,
)
from ansible_collections.airgap.uv.plugins.plugin_utils._toml_file import TomlFileError, parse_toml, read_bytes

try:
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.utils import canonicalize_name
except ImportError:  # pragma: no cover - exercised only without packaging
    HAS_PACKAGING = False
    PACKAGING_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    HAS_PACKAGING = True
    PACKAGING_IMPORT_ERROR = None

__all__ = [
    "HAS_PACKAGING",
    "PACKAGING_IMPORT_ERROR",
    "LockError",
    "load_lock",
    "parse_lock",
    "validate_filename",
]


def _require_libraries() -> None:
    if not HAS_PACKAGING:
        raise LockError(
            "The Python library 'packaging' is required on the controller to read uv.lock; "
            "install it next to ansible-core (e.g. `pip install packaging`).\n%s" % PACKAGING_IMPORT_ERROR
        )


def validate_filename(filename: t.Any, where: str) -> str:
    """Return ``filename`` if it is a safe basename, else raise :class:`LockError`.

    The name is later used as a file name in a wheelhouse on the controller and on
    targets, so anything that could escape a directory is refused.
    """
    if not isinstance(filename, str) or not filename:
        raise LockError("%s: empty or non-string artifact file name %r." % (where, filename))
    if (
        "/" in filename
        or "\\" in filename
        or "\x00" in filename
        or ".." in filename
        or filename in (".", "..")
        or filename != filename.strip()
        or ":" in filename
    ):
        raise LockError(
            "%s: refusing unsafe artifact file name %r (path separators, '..', ':' and NUL are not "
            "allowed); the lock file may be corrupt or malicious: re-create it with `uv lock`." % (where, filename)
        )
    return filename


# ---------------------------------------------------------------------------
# Parsing helpers
# ---------------------------------------------------------------------------


def _err(path: str, message: str) -> LockError:
    return LockError("%s: %s" % (path, message))


def _as_table(value: t.Any, path: str, where: str) -> t.Mapping[str, t.Any]:
    if not isinstance(value, dict):
        raise _err(path, "%s must be a table, got %s; re-create the lock with `uv lock`." % (where, type(value).__name__))
    return value


def _as_list(value: t.Any, path: str, where: str) -> list[t.Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _err(path, "%s must be an array, got %s; re-create the lock with `uv lock`." % (where, type(value).__name__))
    return value


def _as_str(value: t.Any, path: str, where: str, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise _err(path, "%s must be a string, got %r; re-create the lock with `uv lock`." % (where, value))
    return value


def _parse_source(table: t.Any, path: str, where: str) -> tuple[str, str, str | None]:
    src = _as_table(table, path, where)
    kinds = [k for k in SOURCE_KINDS if k in src]
    if len(kinds) != 1:
        raise _err(
            path,
            "%s has an unknown source %r (expected exactly one of %s); this lock may come from a newer uv: "
            "upgrade airgap.uv or re-lock." % (where, dict(src), ", ".join(SOURCE_KINDS)),
        )
    kind = kinds[0]
    value = _as_str(src[kind], path, "%s.%s" % (where, kind))
    subdirectory = _as_str(src.get("subdirectory"), path, "%s.subdirectory" % where, optional=True)
    return kind, value, subdirectory


def _split_hash(value: t.Any, path: str, where: str) -> tuple[str | None, str | None]:
    """Return (sha256 hex, other raw hash)."""
    if value is None:
        return None, None
    text = _as_str(value, path, where)
    algo, sep, digest = text.partition(":")
    if not sep or not digest:
        raise _err(path, "%s: malformed hash %r (expected 'sha256:<hex>'); re-create the lock with `uv lock`." % (where, text))
    if algo.lower() == "sha256":
        digest = digest.lower()
        if not _SHA256_HEX.match(digest):
            raise _err(path, "%s: malformed sha256 %r; re-create the lock with `uv lock`." % (where, text))
        return digest, None
    return None, text


_SHA256_HEX = re.compile(r"[0-9a-f]{64}\Z")


def _is_url(text: str) -> bool:
    # Locks hold thousands of https URLs: answer those without parsing them.
    if text.startswith(("https://", "http://")):
        return True
    scheme = urlsplit(text).scheme
    return len(scheme) > 1 and scheme.isalpha()


def _url_basename(url: str) -> str:
    # A lock holds thousands of plain https URLs (a third of load_lock's time went to urlsplit):
    # without a query or fragment, and with a path, the last segment is the file name as is.
    if url.startswith(("https://", "http://")) and "?" not in url and "#" not in url \
            and url.find("/", url.index("//") + 2) >= 0:
        return unquote(url.rsplit("/", 1)[-1])
    return unquote(urlsplit(url).path.rsplit("/", 1)[-1])


def _resolve_local(base_dir: str, value: str) -> str:
    if _is_url(value) and value.startswith("file://"):
        value = unquote(urlsplit(value).path)
    if os.path.isabs(value):
        return os.path.normpath(value)
    return os.path.normpath(os.path.join(base_dir, value))


def _parse_artifact(
    table: t.Any,
    path: str,
    where: str,
    *,
    is_wheel: bool,
    lock_dir: str,
    source_kind: str,
    source: str,
) -> Artifact:
    art = _as_table(table, path, where)
    url = _as_str(art.get("url"), path, where + ".url", optional=True)
    rel = _as_str(art.get("path"), path, where + ".path", optional=True)
    filename = _as_str(art.get("filename"), path, where + ".filename", optional=True)
    sha256, other = _split_hash(art.get("hash"), path, where + ".hash")
    size = art.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise _err(path, "%s.size must be a non-negative integer, got %r." % (where, size))
    upload_time = art.get("upload-time")
    local: str | None = None
    if url is not None:
        if filename is None:
            filename = _url_basename(url)
        if url.startswith("file://"):
            local, url = _resolve_local(lock_dir, url), None
    elif rel is not None:
        # Local registries (find-links directories) record paths relative to the registry.
        base = lock_dir
        if source_kind == "registry" and not _is_url(source):
            base = _resolve_local(lock_dir, source)
        local = _resolve_local(base, rel)
        if filename is None:
            filename = os.path.basename(rel.replace("\\", "/"))
    else:
        # The source itself is the artifact (direct URL or local file).
        if source_kind == "url":
            url = source
            if filename is None:
                filename = _url_basename(source)
        elif source_kind == "path":
            local = _resolve_local(lock_dir, source)
            if filename is None:
                filename = os.path.basename(source.replace("\\", "/"))
        elif filename is None:
            raise _err(path, "%s has neither url, path nor filename; re-create the lock with `uv lock`." % where)
    filename = validate_filename(filename, "%s: %s" % (path, where))
    if is_wheel and not filename.endswith(".whl"):
        raise _err(path, "%s: wheel file name %r does not end in .whl; re-create the lock with `uv lock`." % (where, filename))
    return Artifact(
        filename=filename,
        url=url,
        path=local,
        sha256=sha256,
        size=size,
        is_wheel=is_wheel,
        other_hash=other,
        upload_time=upload_time if isinstance(upload_time, str) else None,
    )


def _canon_extras(value: t.Any, path: str, where: str) -> tuple[str, ...]:
    extras = []
    for item in _as_list(value, path, where):
        text = _as_str(item, path, where)
        extras.append(canonicalize_name(text))
    return tuple(extras)


def _parse_dependency(table: t.Any, path: str, where: str) -> Dependency:
    dep = _as_table(table, path, where)
    name = _as_str(dep.get("name"), path, where + ".name")
    kind = value = None
    if "source" in dep:
        kind, value, _sub = _parse_source(dep["source"], path, where + ".source")
    extras = _canon_extras(dep.get("extra"), path, where + ".extra")
    return Dependency(
        name=canonicalize_name(name),
        version=_as_str(dep.get("version"), path, where + ".version", optional=True),
        source_kind=kind,
        source=value,
        extras=extras,
        marker=_as_str(dep.get("marker"), path, where + ".marker", optional=True),
    )


def _parse_requirement(table: t.Any, path: str, where: str) -> Requirement:
    req = _as_table(table, path, where)
    name = _as_str(req.get("name"), path, where + ".name")
    return Requirement(
        name=canonicalize_name(name),
        extras=_canon_extras(req.get("extras"), path, where + ".extras"),
        marker=_as_str(req.get("marker"), path, where + ".marker", optional=True),
        specifier=_as_str(req.get("specifier"), path, where + ".specifier", optional=True),
    )


def _parse_dep_map(value: t.Any, path: str, where: str) -> dict[str, tuple[Dependency, ...]]:
    result: dict[str, tuple[Dependency, ...]] = {}
    for key, deps in _as_table(value or {}, path, where).items():
        result[canonicalize_name(key)] = tuple(
            _parse_dependency(d, path, "%s.%s[%d]" % (where, key, i)) for i, d in enumerate(_as_list(deps, path, where))
        )
    return result


def _parse_default_groups(value: t.Any, path: str, where: str) -> tuple[str, ...] | str | None:
    if value is None:
        return None
    if value == "all":
        return "all"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(canonicalize_name(v) for v in value)
    raise _err(path, "%s must be \"all\" or an array of group names, got %r." % (where, value))


def _parse_package(table: t.Any, path: str, index: int, lock_dir: str) -> Package:
    where = "[[package]] #%d" % (index + 1)
    pkg = _as_table(table, path, where)
    raw_name = _as_str(pkg.get("name"), path, where + ".name")
    name = canonicalize_name(raw_name)
    where = "package `%s`" % name
    version = _as_str(pkg.get("version"), path, where + ".version", optional=True)
    if "source" not in pkg:
        raise _err(path, "%s has no source; re-create the lock with `uv lock`." % where)
    kind, source, subdirectory = _parse_source(pkg["source"], path, where + ".source")
    wheels = tuple(
        _parse_artifact(w, path, "%s wheel #%d" % (where, i + 1), is_wheel=True, lock_dir=lock_dir, source_kind=kind, source=source)
        for i, w in enumerate(_as_list(pkg.get("wheels"), path, where + ".wheels"))
    )
    sdist = None
    if pkg.get("sdist") is not None:
        sdist = _parse_artifact(pkg["sdist"], path, where + " sdist", is_wheel=False, lock_dir=lock_dir, source_kind=kind, source=source)
    metadata = _as_table(pkg.get("metadata") or {}, path, where + ".metadata")
    provides = metadata.get("provides-extras")
    provides_extras = _canon_extras(provides, path, where + ".metadata.provides-extras") if provides is not None else None
    requires_dev = metadata.get("requires-dev")
    declared_groups = (
        tuple(canonicalize_name(g) for g in _as_table(requires_dev, path, where + ".metadata.requires-dev"))
        if requires_dev is not None
        else None
    )
    requires_dist = tuple(
        _as_table(r, path, where + ".metadata.requires-dist") for r in _as_list(metadata.get("requires-dist"), path, where)
    )
    local_path = None
    if kind in ("path", "directory", "editable", "virtual"):
        local_path = _resolve_local(lock_dir, source)
    elif kind == "registry" and not _is_url(source):
        local_path = _resolve_local(lock_dir, source)
    return Package(
        name=name,
        version=version,
        source_kind=kind,
        source=source,
        wheels=wheels,
        sdist=sdist,
        dependencies=tuple(
            _parse_dependency(d, path, "%s.dependencies[%d]" % (where, i))
            for i, d in enumerate(_as_list(pkg.get("dependencies"), path, where + ".dependencies"))
        ),
        optional_dependencies=_parse_dep_map(pkg.get("optional-dependencies"), path, where + ".optional-dependencies"),
        # uv writes groups as `dev-dependencies`; accept the PEP 735 spelling too.
        dev_dependencies=_parse_dep_map(
            pkg.get("dev-dependencies", pkg.get("dependency-groups")), path, where + ".dev-dependencies"
        ),
        resolution_markers=tuple(
            str(m) for m in _as_list(pkg.get("resolution-markers"), path, where + ".resolution-markers")
        ),
        subdirectory=subdirectory,
        provides_extras=provides_extras,
        declared_groups=declared_groups,
        requires_dist=requires_dist,
        local_path=local_path,
        default_groups=_parse_default_groups(pkg.get("default-groups"), path, where + ".default-groups"),
    )


def _parse_conflicts(value: t.Any, path: str) -> tuple[tuple[ConflictItem, ...], ...]:
    sets = []
    for i, raw_set in enumerate(_as_list(value, path, "conflicts")):
        items = []
        for j, raw in enumerate(_as_list(raw_set, path, "conflicts[%d]" % i)):
            item = _as_table(raw, path, "conflicts[%d][%d]" % (i, j))
            package = _as_str(item.get("package"), path, "conflicts[%d][%d].package" % (i, j))
            if "extra" in item:
                items.append(ConflictItem(canonicalize_name(package), "extra", canonicalize_name(str(item["extra"]))))
            elif "group" in item:
                items.append(ConflictItem(canonicalize_name(package), "group", canonicalize_name(str(item["group"]))))
            else:
                items.append(ConflictItem(canonicalize_name(package), "project", None))
        sets.append(tuple(items))
    return tuple(sets)


def _check_places(packages: list[Package], path: str, lock_dir: str, declared: t.Sequence[str]) -> None:
    """Refuse an entry that points outside the workspace at a place nothing declared (_lock_paths)."""
    for package in packages:
        places = []
        if package.source_kind in LOCAL_TREE_KINDS or package.source_kind == "path" or (
                package.source_kind in ("registry", "git", "url") and not package.source.startswith(("https:", "http:"))):
            places.append(("source", package.source))
        for artifact in package.wheels + ((package.sdist,) if package.sdist else ()):
            if artifact.path:
                places.append(("%s %s" % ("wheel" if artifact.is_wheel else "sdist", artifact.filename), artifact.path))
        for what, value in places:
            reason = outside_reason(value, lock_dir, lock_dir, declared)
            if reason:
                raise _err(path, "package `%s` %s: its %s %s. A lock entry may point only inside the workspace (the "
                           "directory of uv.lock) or at a location its pyproject.toml or uv.toml declares (a "
                           "tool.uv.sources path, a `name @ file:` requirement, find-links or a local index). If "
                           "uv.lock was edited by hand, re-create it with `uv lock`; otherwise move the file into the "
                           "workspace or declare its location, and re-lock."
                           % (package.name, package.version or "", what, reason))


def _check_version(data: t.Mapping[str, t.Any], path: str) -> tuple[int, int]:
    """The lock's (version, revision); a LockError for a version this collection cannot read."""
    version = data.get("version")
    if version is None:
        raise _err(path, "no top-level `version`: this is not a uv.lock file (create one with `uv lock`).")
    if not isinstance(version, int) or isinstance(version, bool):
        raise _err(path, "`version` must be an integer, got %r." % (version,))
    if version > SUPPORTED_LOCK_VERSION:
        raise _err(
            path,
            "lock file version %d was written by a newer uv than airgap.uv understands (it reads version %d); "
            "upgrade airgap.uv, or re-lock with a uv that writes version %d (`uv lock` with uv 0.13.x)."
            % (version, SUPPORTED_LOCK_VERSION, SUPPORTED_LOCK_VERSION),
        )
    if version < SUPPORTED_LOCK_VERSION:
        raise _err(path, "lock file version %d is too old; re-create it with `uv lock`." % version)
    revision = data.get("revision", 0)
    if not isinstance(revision, int) or isinstance(revision, bool) or revision < 0:
        raise _err(path, "`revision` must be a non-negative integer, got %r." % (revision,))
    return version, revision


def _parse_requires_python(raw: t.Any, path: str) -> SpecifierSet | None:
    if raw is None:
        return None
    try:
        return SpecifierSet(str(raw))
    except InvalidSpecifier:
        raise _err(path, "invalid requires-python %r; fix pyproject.toml and re-lock." % (raw,)) from None


def _check_unique(packages: list[Package], path: str) -> None:
    seen: set[tuple[str, str | None, str, str]] = set()
    for package in packages:
        if package.key in seen:
            raise _err(path, "package `%s` %s is listed twice; re-create the lock with `uv lock`." % (package.name, package.version))
        seen.add(package.key)


def _parse_manifest_groups(manifest: t.Mapping[str, t.Any], path: str) -> dict[str, tuple[Requirement, ...]]:
    groups: dict[str, tuple[Requirement, ...]] = {}
    for group, reqs in _as_table(manifest.get("dependency-groups") or {}, path, "manifest.dependency-groups").items():
        groups[canonicalize_name(group)] = tuple(
            _parse_requirement(r, path, "manifest.dependency-groups.%s[%d]" % (group, i))
            for i, r in enumerate(_as_list(reqs, path, "manifest.dependency-groups.%s" % group))
        )
    return groups


def _check_edges(lock: Lock) -> None:
    """Every edge points at exactly one package, every member has an entry: fail early, naming the file."""
    for package in lock.packages:
        for dep in package.dependencies:
            lock.resolve(dep, package)
        for deps in list(package.optional_dependencies.values()) + list(package.dev_dependencies.values()):
            for dep in deps:
                lock.resolve(dep, package)
    for member in lock.members:
        if not lock.packages_named(member):
            raise _err(lock.path, "workspace member `%s` has no [[package]] entry; re-create the lock with `uv lock`." % member)


def _markers(data: t.Mapping[str, t.Any], path: str, key: str) -> tuple[str, ...]:
    return tuple(str(m) for m in _as_list(data.get(key), path, key))


def parse_lock(data: t.Mapping[str, t.Any], path: str, declared: t.Sequence[str] | None = None) -> Lock:
    """Build a :class:`Lock` from already-parsed TOML ``data``; ``path`` anchors relative paths.

    Local entries must lie inside the lock's directory (the workspace) or one of DECLARED, by
    default the locations the workspace's own configuration points at (see _lock_paths).
    """
    _require_libraries()
    version, revision = _check_version(data, path)
    raw_rp = data.get("requires-python")
    requires_python = _parse_requires_python(raw_rp, path)
    lock_dir = os.path.dirname(os.path.abspath(path))
    packages = [_parse_package(p, path, i, lock_dir) for i, p in enumerate(_as_list(data.get("package"), path, "package"))]
    if declared is None:
        declared = declared_locations(lock_dir)
    _check_places(packages, path, lock_dir, declared)
    _check_unique(packages, path)
    manifest = _as_table(data.get("manifest") or {}, path, "[manifest]")
    members = tuple(canonicalize_name(str(m)) for m in _as_list(manifest.get("members"), path, "manifest.members"))
    requirements = tuple(
        _parse_requirement(r, path, "manifest.requirements[%d]" % i)
        for i, r in enumerate(_as_list(manifest.get("requirements"), path, "manifest.requirements"))
    )
    groups = _parse_manifest_groups(manifest, path)
    lock = Lock(
        path=path,
        version=version,
        revision=revision,
        requires_python=requires_python,
        packages=packages,
        members=members,
        conflicts=_parse_conflicts(data.get("conflicts"), path),
        resolution_markers=_markers(data, path, "resolution-markers"),
        supported_markers=_markers(data, path, "supported-markers"),
        required_markers=_markers(data, path, "required-markers"),
        requirements=requirements,
        dependency_groups=groups,
        options=dict(_as_table(data.get("options") or {}, path, "[options]")),
        requires_python_raw=str(raw_rp) if raw_rp is not None else None,
        default_groups=_parse_default_groups(manifest.get("default-groups"), path, "manifest.default-groups"),
    )
    _check_edges(lock)
    return lock


def load_lock(path: str, cache_dir: str | None = None, declared: t.Sequence[str] | None = None) -> Lock:
    """Read and validate the uv.lock at ``path``; the result's ``sha256`` is the file's.

    With CACHE_DIR, the parsed TOML is kept there as JSON keyed by the file's sha256: a large
    lock takes a quarter of a second to parse as TOML and a hundredth as JSON, which is most
    of a warm wheelhouse run.
    """
    remedy = "resolve merge conflicts or re-create it next to pyproject.toml with `uv lock`, and commit it"
    _require_libraries()
    try:
        raw = read_bytes(path, remedy)
    except TomlFileError as exc:
        raise LockError(str(exc)) from None
    digest = hashlib.sha256(raw).hexdigest()
    cached = os.path.join(cache_dir, "parsed-locks", digest + ".json") if cache_dir else None
    data = None
    if cached:
        try:
            with open(cached, encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, ValueError):
            pass
    if data is None:
        try:
            data = parse_toml(raw, path, remedy)
        except TomlFileError as exc:
            raise LockError(str(exc)) from None
        if cached:
            _cache_json(cached, data)
    lock = parse_lock(data, path, declared)
    lock.sha256 = digest
    return lock


def _cache_json(path: str, data: dict) -> None:
    tmp = "%s.%d.tmp" % (path, os.getpid())
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        os.replace(tmp, path)
    except (OSError, TypeError, ValueError):
        pass  # a cache only: TOML dates or a read-only cache just mean parsing next time
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
