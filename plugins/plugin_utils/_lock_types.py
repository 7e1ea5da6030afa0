# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to the airgap.uv collection
"""What a uv.lock holds, as plain typed objects: packages, their files and edges, the lock.

_lock reads a file into these; everything after it (selection, plans, builds) reads them.
Controller-only code (``packaging``, guarded so that importing this module never fails).
"""

from __future__ import annotations

import os
import posixpath
import typing as t
from dataclasses import dataclass, field

try:
    from packaging.utils import canonicalize_name
except ImportError:  # pragma: no cover - exercised only without packaging (_lock reports it)
    pass

if t.TYPE_CHECKING:
    from packaging.specifiers import SpecifierSet

__all__ = [
    "SUPPORTED_LOCK_VERSION",
    "SOURCE_KINDS",
    "LOCAL_TREE_KINDS",
    "LockError",
    "Artifact",
    "Dependency",
    "Requirement",
    "ConflictItem",
    "Package",
    "Lock",
]


SUPPORTED_LOCK_VERSION = 1
#: Source kinds in uv.lock, in the order uv documents them.
SOURCE_KINDS = ("registry", "git", "path", "directory", "editable", "virtual", "url")
#: Source kinds that are built from a local tree, never downloaded.
LOCAL_TREE_KINDS = frozenset(("directory", "editable", "virtual"))


class LockError(Exception):
    """uv.lock cannot be used; the message names the file and what to do."""


@dataclass(frozen=True)
class Artifact:
    """One downloadable file (wheel or sdist) recorded in uv.lock."""

    filename: str
    url: str | None
    path: str | None
    sha256: str | None
    size: int | None
    is_wheel: bool
    #: The raw ``hash`` value (``algo:hex``) when it is not sha256, else None.
    other_hash: str | None = None
    upload_time: str | None = None


@dataclass(frozen=True)
class Dependency:
    """An edge in the lock graph (``dependencies``, ``optional-dependencies``, ``dev-dependencies``)."""

    name: str
    version: str | None = None
    source_kind: str | None = None
    source: str | None = None
    extras: tuple[str, ...] = ()
    marker: str | None = None


@dataclass(frozen=True)
class Requirement:
    """A manifest-level requirement (``[manifest] requirements`` / ``dependency-groups``)."""

    name: str
    extras: tuple[str, ...] = ()
    marker: str | None = None
    specifier: str | None = None


@dataclass(frozen=True)
class ConflictItem:
    """One member of a ``conflicts`` set: an extra, a group, or a whole package."""

    package: str
    kind: str  # "extra" | "group" | "project"
    name: str | None = None

    @property
    def encoded(self) -> str:
        """uv's encoding of this item inside markers (``extra-3-foo-cpu`` ...)."""
        if self.kind == "project":
            return "project-%d-%s" % (len(self.package), self.package)
        return "%s-%d-%s-%s" % (self.kind, len(self.package), self.package, self.name)

    def __str__(self) -> str:
        if self.kind == "project":
            return "package `%s`" % self.package
        return "%s `%s` of `%s`" % (self.kind, self.name, self.package)


@dataclass(frozen=True)
class Package:
    """One ``[[package]]`` entry of uv.lock."""

    name: str
    version: str | None
    source_kind: str
    source: str
    wheels: tuple[Artifact, ...] = ()
    sdist: Artifact | None = None
    dependencies: tuple[Dependency, ...] = ()
    optional_dependencies: t.Mapping[str, tuple[Dependency, ...]] = field(default_factory=dict, hash=False)
    dev_dependencies: t.Mapping[str, tuple[Dependency, ...]] = field(default_factory=dict, hash=False)
    resolution_markers: tuple[str, ...] = ()
    #: ``subdirectory`` of a git / url source, if any.
    subdirectory: str | None = None
    #: ``[package.metadata] provides-extras`` (None when the lock does not record it).
    provides_extras: tuple[str, ...] | None = None
    #: Names of groups in ``[package.metadata.requires-dev]`` (None when not recorded).
    declared_groups: tuple[str, ...] | None = None
    #: ``[package.metadata] requires-dist`` as raw tables (for callers that need them).
    requires_dist: tuple[t.Mapping[str, t.Any], ...] = field(default=(), hash=False)
    #: Absolute path of a local source (path / directory / editable / virtual), else None.
    local_path: str | None = None
    #: ``default-groups`` uv recorded for this project (tuple, "all"), or None when absent.
    default_groups: tuple[str, ...] | str | None = field(default=None, hash=False)

    @property
    def key(self) -> tuple[str, str | None, str, str]:
        return (self.name, self.version, self.source_kind, self.source)

    @property
    def extras(self) -> tuple[str, ...]:
        """All extras the package declares (metadata, else the locked optional dependencies)."""
        names = set(self.optional_dependencies)
        if self.provides_extras:
            names.update(self.provides_extras)
        return tuple(sorted(names))

    @property
    def groups(self) -> tuple[str, ...]:
        """All dependency groups the package declares (metadata and locked edges)."""
        names = set(self.dev_dependencies)
        if self.declared_groups:
            names.update(self.declared_groups)
        return tuple(sorted(names))

    @property
    def is_local_tree(self) -> bool:
        return self.source_kind in LOCAL_TREE_KINDS

    def __str__(self) -> str:
        return "%s==%s" % (self.name, self.version) if self.version else self.name


@dataclass
class Lock:
    """A parsed uv.lock."""

    path: str
    version: int
    revision: int
    requires_python: SpecifierSet | None
    packages: list[Package]
    members: tuple[str, ...] = ()
    conflicts: tuple[tuple[ConflictItem, ...], ...] = ()
    resolution_markers: tuple[str, ...] = ()
    supported_markers: tuple[str, ...] = ()
    required_markers: tuple[str, ...] = ()
    requirements: tuple[Requirement, ...] = ()
    dependency_groups: t.Mapping[str, tuple[Requirement, ...]] = field(default_factory=dict)
    options: t.Mapping[str, t.Any] = field(default_factory=dict)
    requires_python_raw: str | None = None
    #: ``[manifest] default-groups`` (workspace root's tool.uv.default-groups), or None when absent.
    default_groups: tuple[str, ...] | str | None = None
    #: sha256 of the file, set by load_lock.
    sha256: str = ""

    def __post_init__(self) -> None:
        self._by_name: dict[str, list[Package]] = {}
        for package in self.packages:
            self._by_name.setdefault(package.name, []).append(package)

    @property
    def directory(self) -> str:
        return os.path.dirname(os.path.abspath(self.path))

    def packages_named(self, name: str) -> list[Package]:
        return list(self._by_name.get(canonicalize_name(name), ()))

    def find_unique(self, name: str) -> Package | None:
        """The single package called ``name``; LockError if there are several."""
        found = self._by_name.get(canonicalize_name(name), [])
        if len(found) > 1:
            raise LockError(
                "%s: several entries for `%s` (%s) where uv expects one; re-create the lock with `uv lock`."
                % (self.path, name, ", ".join(str(p.version) for p in found))
            )
        return found[0] if found else None

    def resolve(self, dep: Dependency, owner: Package | None = None) -> Package:
        """Return the package an edge points at (by name; version/source when ambiguous)."""
        candidates = self._by_name.get(dep.name, [])
        if dep.version is not None:
            candidates = [p for p in candidates if p.version == dep.version]
        if dep.source_kind is not None:
            candidates = [p for p in candidates if p.source_kind == dep.source_kind and p.source == dep.source]
        where = " (required by %s)" % owner if owner is not None else ""
        if not candidates:
            raise LockError(
                "%s: dependency `%s`%s%s points at no [[package]] entry; the lock is inconsistent: "
                "re-create it with `uv lock`."
                % (self.path, dep.name, " " + dep.version if dep.version else "", where)
            )
        if len(candidates) > 1:
            raise LockError(
                "%s: dependency `%s`%s matches several [[package]] entries (%s); the lock is ambiguous: "
                "re-create it with `uv lock`."
                % (self.path, dep.name, where, ", ".join(str(p.version) for p in candidates))
            )
        return candidates[0]

    @property
    def project(self) -> Package | None:
        """The package at the workspace root (source ``.``), or None (virtual workspace root)."""
        for package in self.packages:
            if package.is_local_tree and posixpath.normpath(package.source.replace("\\", "/")) == ".":
                return package
        return None

    @property
    def workspace_members(self) -> tuple[str, ...]:
        """Workspace member names: ``[manifest] members``, else the single project."""
        if self.members:
            return self.members
        project = self.project
        return (project.name,) if project is not None else ()
