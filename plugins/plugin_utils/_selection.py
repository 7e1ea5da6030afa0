# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to the airgap.uv collection
"""Choose, for ONE target, exactly the uv.lock packages uv itself would install.

This reproduces what ``uv sync --frozen`` (and ``uv export --frozen``) do with a
lock for a given marker environment, groups and extras:

* refuse a Python outside ``requires-python`` (and outside ``environments``);
* roots are the project (or every workspace member, or one ``--package``);
* breadth-first walk over (package, extra) pairs, evaluating each edge's marker
  in the TARGET's marker environment;
* conflict markers (``extra == 'extra-3-foo-cpu'``, ``extra == 'group-3-foo-dev'``)
  are evaluated against the set of activated extras/groups, which first grows to a
  fixed point over the graph; two activated members of one conflict set are an error;
* groups come from ``dev-dependencies``; default groups come from pyproject.toml.
"""

from __future__ import annotations

import functools
import re
import traceback
import typing as t
from collections import deque
from dataclasses import dataclass

try:
    from packaging.markers import InvalidMarker, Marker, UndefinedComparison, UndefinedEnvironmentName
    from packaging.utils import canonicalize_name
    from packaging.version import InvalidVersion, Version
except ImportError:  # pragma: no cover - exercised only without packaging
    HAS_PACKAGING = False
    PACKAGING_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    HAS_PACKAGING = True
    PACKAGING_IMPORT_ERROR = None

from ansible_collections.airgap.uv.plugins.plugin_utils._lock_types import (
    ConflictItem,
    Dependency,
    Lock,
    LockError,
    Package,
    Requirement,
)
from ansible_collections.airgap.uv.plugins.plugin_utils._toml_file import TomlFileError, read_toml

__all__ = [
    "HAS_PACKAGING",
    "PACKAGING_IMPORT_ERROR",
    "MARKER_ENV_KEYS",
    "SelectionError",
    "SelectionOptions",
    "SelectedPackage",
    "read_default_groups",
    "resolve_groups",
    "select_packages",
    "evaluate_marker",
]

#: The keys a target's marker environment must provide (those of packaging's default_environment()).
MARKER_ENV_KEYS = (
    "implementation_name",
    "implementation_version",
    "os_name",
    "platform_machine",
    "platform_release",
    "platform_system",
    "platform_version",
    "python_full_version",
    "platform_python_implementation",
    "python_version",
    "sys_platform",
)


class SelectionError(Exception):
    """The requested selection cannot be installed on the target (uv would refuse it too)."""


@dataclass(frozen=True)
class SelectionOptions:
    """Groups, extras and packages to install, in uv's vocabulary."""

    groups: tuple[str, ...] = ()  # --group
    only_groups: tuple[str, ...] = ()  # --only-group
    all_groups: bool = False  # --all-groups
    no_default_groups: bool = False  # --no-default-groups
    no_dev: bool = False  # --no-dev
    extras: tuple[str, ...] = ()  # --extra
    all_extras: bool = False  # --all-extras
    package: str | None = None  # --package (workspace member)
    all_packages: bool = False  # --all-packages
    no_groups: tuple[str, ...] = ()  # --no-group
    no_extras: tuple[str, ...] = ()  # --no-extra (with --all-extras)


@dataclass(frozen=True)
class SelectedPackage:
    package: Package
    #: A workspace member / the project itself: built by the caller, not downloaded.
    is_root: bool


# ---------------------------------------------------------------------------
# pyproject.toml
# ---------------------------------------------------------------------------


def read_default_groups(pyproject_path: str) -> tuple[str, ...] | t.Literal["all"]:
    """Return ``tool.uv.default-groups`` of a pyproject.toml (default ``("dev",)``)."""
    try:
        data = read_toml(pyproject_path, "the project directory must hold a valid pyproject.toml")
    except TomlFileError as exc:
        raise SelectionError(str(exc)) from None
    tool = data.get("tool")
    uv = tool.get("uv") if isinstance(tool, dict) else None
    value = uv.get("default-groups") if isinstance(uv, dict) else None
    if value is None:
        return ("dev",)
    if value == "all":
        return "all"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(_canon(v) for v in value)
    raise SelectionError(
        "%s: tool.uv.default-groups must be \"all\" or a list of group names, got %r." % (pyproject_path, value)
    )


# ---------------------------------------------------------------------------
# Markers
# ---------------------------------------------------------------------------

# One comparison of the `extra` variable in packaging's normalized marker text, either way round.
_EXTRA_ATOM = re.compile(r'\bextra\s*(==|!=)\s*"([^"]*)"|"([^"]*)"\s*(==|!=)\s*extra\b')
# Constant atoms valid in every packaging version and every complete marker environment.
_TRUE_ATOM = 'python_version >= "0"'
_FALSE_ATOM = 'python_version < "0"'


def _canon(name: str) -> str:
    return canonicalize_name(name)


@functools.lru_cache(maxsize=4096)
def _split_marker(marker: str) -> tuple[tuple[str, ...], tuple[tuple[str, bool], ...]]:
    """Split a lock marker into text pieces and its ``extra`` atoms (name, is-equality)."""
    normalized = str(Marker(marker))
    pieces: list[str] = []
    atoms: list[tuple[str, bool]] = []
    pos = 0
    for match in _EXTRA_ATOM.finditer(normalized):
        pieces.append(normalized[pos : match.start()])
        if match.group(1) is not None:
            op, value = match.group(1), match.group(2)
        else:
            op, value = match.group(4), match.group(3)
        atoms.append((_canon(value), op == "=="))
        pos = match.end()
    pieces.append(normalized[pos:])
    return tuple(pieces), tuple(atoms)


@functools.lru_cache(maxsize=8192)
def _compile(text: str) -> Marker:
    return Marker(text)


def evaluate_marker(
    marker: str | None,
    marker_env: t.Mapping[str, str],
    active: t.AbstractSet[str] = frozenset(),
) -> bool:
    """Evaluate a uv.lock marker for the target; ``active`` holds encoded extras/groups.

    uv evaluates ``extra == 'x'`` in uv.lock against the *set* of activated
    (encoded: ``extra-3-foo-cpu``, ``group-3-foo-dev``, ``project-3-foo``)
    extras and groups. Each such comparison is replaced by a constant atom
    before packaging evaluates the rest in the target's environment, which
    works with every packaging release.
    """
    if not marker:
        return True
    try:
        return _evaluate(marker, marker_env, active)
    except InvalidMarker as exc:
        raise SelectionError("Invalid marker %r in the lock (%s); re-create the lock with `uv lock`." % (marker, exc)) from None
    except (UndefinedComparison, UndefinedEnvironmentName) as exc:
        raise SelectionError("Cannot evaluate marker %r for the target: %s" % (marker, exc)) from None


def _evaluate(marker: str, marker_env: t.Mapping[str, str], active: t.AbstractSet[str]) -> bool:
    pieces, atoms = _split_marker(marker)
    if atoms:
        names = {_canon(a) for a in active}
        out = [pieces[0]]
        for (name, equal), piece in zip(atoms, pieces[1:]):
            out.append(_TRUE_ATOM if (name in names) == equal else _FALSE_ATOM)
            out.append(piece)
        text = "".join(out)
    else:
        text = pieces[0]
    return _compile(text).evaluate(dict(marker_env))


def _check_marker_env(marker_env: t.Mapping[str, str]) -> None:
    missing = [k for k in MARKER_ENV_KEYS if k not in marker_env]
    if missing:
        raise SelectionError(
            "The target's marker environment lacks %s; gather it from the target interpreter "
            "(the keys of packaging.markers.default_environment())." % ", ".join(missing)
        )


# ---------------------------------------------------------------------------
# Groups and extras
# ---------------------------------------------------------------------------


def resolve_groups(
    options: SelectionOptions,
    known_groups: t.Iterable[str],
    default_groups: t.Iterable[str] | str = ("dev",),
) -> tuple[bool, frozenset[str]]:
    """Return (install production dependencies?, active group names) like uv does."""
    known = frozenset(_canon(g) for g in known_groups)
    only = frozenset(_canon(g) for g in options.only_groups)
    excluded = {_canon(g) for g in options.no_groups}
    if options.no_dev:
        excluded.add("dev")
    if only:
        return False, frozenset(only - excluded)
    active: set[str] = {_canon(g) for g in options.groups}
    if options.all_groups:
        active |= known
    if not options.no_default_groups:
        if default_groups == "all":
            active |= known
        else:
            active |= {_canon(g) for g in default_groups}
    return True, frozenset(active - excluded)


def _check_option_combinations(options: SelectionOptions) -> None:
    """Refuse the flag combinations uv's command line refuses."""
    clashes = []
    if options.only_groups:
        if options.groups:
            clashes.append(("only_groups (--only-group)", "groups (--group)"))
        if options.all_groups:
            clashes.append(("only_groups (--only-group)", "all_groups (--all-groups)"))
        if options.extras:
            clashes.append(("only_groups (--only-group)", "extras (--extra)"))
        if options.all_extras:
            clashes.append(("only_groups (--only-group)", "all_extras (--all-extras)"))
    if options.all_extras and options.extras:
        clashes.append(("all_extras (--all-extras)", "extras (--extra)"))
    if options.package and options.all_packages:
        clashes.append(("package (--package)", "all_packages (--all-packages)"))
    if clashes:
        raise SelectionError(
            "Conflicting selection options: %s; uv refuses these combinations too."
            % "; ".join("%s cannot be used with %s" % pair for pair in clashes)
        )


def _known_list(names: t.Iterable[str]) -> str:
    names = sorted(set(names))
    return ", ".join("`%s`" % n for n in names) if names else "(none)"


# ---------------------------------------------------------------------------
# Selection
# ---------------------------------------------------------------------------


def _check_python(lock: Lock, marker_env: t.Mapping[str, str]) -> None:
    full = marker_env["python_full_version"]
    if lock.requires_python is None:
        return
    try:
        version = Version(full)
    except InvalidVersion:
        raise SelectionError("The target's python_full_version %r is not a valid version." % full) from None
    if not lock.requires_python.contains(version, prereleases=True):
        raise SelectionError(
            "The target's Python %s is outside the project's requires-python `%s` (%s); "
            "use a matching interpreter on the target, or change requires-python and re-lock."
            % (full, lock.requires_python_raw or lock.requires_python, lock.path)
        )


def _check_environments(lock: Lock, marker_env: t.Mapping[str, str]) -> None:
    if lock.supported_markers and not any(evaluate_marker(m, marker_env) for m in lock.supported_markers):
        raise SelectionError(
            "The target does not match any environment the lock supports (tool.uv.environments: %s) in %s; "
            "add the target's environment to tool.uv.environments and re-lock."
            % ("; ".join(lock.supported_markers), lock.path)
        )


def _roots(lock: Lock, options: SelectionOptions) -> list[Package]:
    members = lock.workspace_members
    if options.package:
        name = _canon(options.package)
        if name not in members:
            raise SelectionError(
                "Package `%s` is not a member of the workspace in %s; workspace members: %s."
                % (options.package, lock.path, _known_list(members))
            )
        names: t.Sequence[str] = (name,)
    elif options.all_packages:
        names = members
    else:
        project = lock.project
        if project is not None:
            names = (project.name,)
        else:
            names = members
    if not names and not lock.requirements and not lock.dependency_groups:
        raise SelectionError("%s has no project or workspace member to install." % lock.path)
    roots = []
    for name in names:
        try:
            package = lock.find_unique(name)
        except LockError as exc:
            raise SelectionError(str(exc)) from None
        if package is None:
            raise SelectionError("%s: workspace member `%s` has no [[package]] entry; re-lock." % (lock.path, name))
        roots.append(package)
    return roots


def _lock_records_default_groups(lock: Lock) -> bool:
    """Whether the lock comes from a uv that records ``default-groups`` (revision 5+)."""
    if lock.revision >= 5 or lock.default_groups is not None:
        return True
    return any(p.default_groups is not None for p in lock.packages)


def _find_by_markers(lock: Lock, req: Requirement, marker_env: t.Mapping[str, str]) -> Package:
    candidates = lock.packages_named(req.name)
    if len(candidates) > 1:
        candidates = [
            p for p in candidates if not p.resolution_markers or any(evaluate_marker(m, marker_env) for m in p.resolution_markers)
        ]
    if len(candidates) != 1:
        raise SelectionError(
            "%s: cannot pick one entry for `%s` for this target (%d candidates); re-lock."
            % (lock.path, req.name, len(candidates))
        )
    return candidates[0]


def _conflict_error(lock: Lock, first: ConflictItem, second: ConflictItem) -> SelectionError:
    return SelectionError(
        "The %s and the %s are declared as conflicting in %s (tool.uv.conflicts) and cannot be installed "
        "together; choose one of them." % (first, second, lock.path)
    )


@dataclass(frozen=True)
class _Request:
    """What the options ask of the roots, resolved as uv resolves them."""

    #: Install the roots and their production dependencies (not with --only-group).
    prod: bool
    #: The roots' active dependency groups.
    groups: frozenset[str]
    #: The active groups of a workspace root that is not a project ([manifest] dependency-groups).
    manifest_groups: frozenset[str]
    #: The roots' extras to install.
    extras: frozenset[str]


def _target_default_groups(
    lock: Lock, roots: t.Sequence[Package], options: SelectionOptions, default_groups: t.Iterable[str] | str | None
) -> t.Iterable[str] | str:
    """The default groups of this install target (see :func:`select_packages`)."""
    project = lock.project
    if default_groups is not None:
        root_defaults: t.Iterable[str] | str = default_groups
    elif project is not None and project.default_groups is not None:
        root_defaults = project.default_groups
    elif lock.default_groups is not None:
        root_defaults = lock.default_groups
    else:
        root_defaults = ("dev",)
    if not options.package:
        return root_defaults
    # uv 0.13: with --package X, X's default groups as recorded in the lock apply; a lock
    # that records default groups and has none for X means ("dev",); an older lock that
    # records none at all means the workspace root's default groups.
    if roots[0].default_groups is not None:
        return roots[0].default_groups
    if _lock_records_default_groups(lock):
        return ("dev",)
    return root_defaults


def _check_requested_names(
    lock: Lock, roots: t.Sequence[Package], options: SelectionOptions, root_extras: t.AbstractSet[str], known_groups: t.AbstractSet[str]
) -> None:
    """Refuse extras and groups the roots do not declare."""
    # Like uv, only validate extras when the lock format records `provides-extras` (revision 1+).
    validate_extras = lock.revision >= 1
    for extra in options.extras + options.no_extras:
        if validate_extras and _canon(extra) not in root_extras:
            raise SelectionError(
                "Extra `%s` is not defined by %s (known extras: %s); check the extras you asked for."
                % (extra, _describe_roots(roots), _known_list(root_extras))
            )
    for group in options.groups + options.only_groups + options.no_groups:
        if _canon(group) not in known_groups:
            raise SelectionError(
                "Group `%s` is not defined by %s (known groups: %s); check the groups you asked for."
                % (group, _describe_roots(roots), _known_list(known_groups))
            )


def _request(
    lock: Lock, roots: t.Sequence[Package], options: SelectionOptions, default_groups: t.Iterable[str] | str | None
) -> _Request:
    """The groups and extras of the roots that this selection activates."""
    project = lock.project
    # uv's install targets: one project (``--package X`` or the root project), every member
    # (``--all-packages``), or every member of a workspace whose root is not a project.
    member_target = bool(options.package) and (project is None or roots[0].name != project.name)
    target_defaults = _target_default_groups(lock, roots, options, default_groups)
    root_extras = {e for r in roots for e in r.extras}
    root_groups = {g for r in roots for g in r.groups}
    known_groups = root_groups | set(lock.dependency_groups)
    _check_requested_names(lock, roots, options, root_extras, known_groups)
    prod, active_groups = resolve_groups(options, known_groups, target_defaults)
    if member_target:
        # uv 0.13 applies groups of a non-project workspace root to a single member only when
        # they are requested explicitly and the member has no group of that name.
        _prod, explicit = resolve_groups(
            SelectionOptions(
                groups=options.groups,
                only_groups=options.only_groups,
                all_groups=options.all_groups,
                no_default_groups=True,
                no_dev=options.no_dev,
                no_groups=options.no_groups,
            ),
            known_groups,
            (),
        )
        manifest_groups = frozenset(explicit - root_groups)
    else:
        manifest_groups = active_groups
    if options.all_extras:
        wanted_extras = set(root_extras)
    else:
        wanted_extras = {_canon(e) for e in options.extras}
    wanted_extras -= {_canon(e) for e in options.no_extras}
    return _Request(prod, active_groups, manifest_groups, frozenset(wanted_extras))


def _encoded(items: t.Iterable[ConflictItem]) -> frozenset[str]:
    return frozenset(i.encoded for i in items)


def _root_conflict_items(roots: t.Sequence[Package], request: _Request) -> list[ConflictItem]:
    """The conflict items the request activates at the roots: their extras, groups, themselves."""
    activated: list[ConflictItem] = []
    for root in roots:
        if request.prod:
            activated.extend(ConflictItem(root.name, "extra", e) for e in sorted(request.extras) if e in root.optional_dependencies)
        activated.extend(ConflictItem(root.name, "group", g) for g in sorted(request.groups) if g in root.groups)
        if request.prod:
            activated.append(ConflictItem(root.name, "project", None))
    return activated


def _edges(package: Package, extra: str | None) -> t.Sequence[Dependency]:
    if extra is None:
        return package.dependencies
    return package.optional_dependencies.get(extra, ())


_PackageKey = t.Tuple[str, t.Optional[str], str, str]


class _Walk:
    """Breadth-first over (package, extra) pairs, each edge's marker evaluated for the target."""

    def __init__(self, lock: Lock, marker_env: t.Mapping[str, str]) -> None:
        self.lock = lock
        self.marker_env = marker_env
        self.included: dict[_PackageKey, Package] = {}
        self.queue: deque[tuple[Package, str | None]] = deque()
        self.seen: set[tuple[_PackageKey, str | None]] = set()

    def copy(self) -> _Walk:
        """A walk from the same queue that includes nothing (the conflict pass)."""
        other = _Walk(self.lock, self.marker_env)
        other.queue = deque(self.queue)
        other.seen = set(self.seen)
        return other

    def push(self, package: Package, extras: t.Iterable[str]) -> None:
        if (package.key, None) not in self.seen:
            self.seen.add((package.key, None))
            self.queue.append((package, None))
        for extra in extras:
            if (package.key, extra) not in self.seen:
                self.seen.add((package.key, extra))
                self.queue.append((package, extra))

    def include(self, package: Package, extras: t.Iterable[str]) -> None:
        self.included[package.key] = package
        self.push(package, extras)

    def seed_roots(self, roots: t.Sequence[Package], request: _Request, active: t.AbstractSet[str]) -> None:
        """The roots (with production dependencies) and their active groups' edges."""
        for root in roots:
            if request.prod:
                self.included[root.key] = root
                self.queue.append((root, None))
                for extra in sorted(request.extras):
                    if extra in root.optional_dependencies:
                        self.queue.append((root, extra))
            for group in sorted(request.groups):
                for dep in root.dev_dependencies.get(group, ()):
                    if evaluate_marker(dep.marker, self.marker_env, active):
                        self.include(self.lock.resolve(dep, root), dep.extras)

    def seed_manifest(self, request: _Request) -> None:
        """Manifest-level requirements and the groups of a workspace root that is not a project."""
        # PEP 723 scripts: like uv, their own node is only installed with production
        # dependencies, but their dependencies are always walked.
        for req in self.lock.requirements:
            if evaluate_marker(req.marker, self.marker_env):
                target = _find_by_markers(self.lock, req, self.marker_env)
                if request.prod:
                    self.included[target.key] = target
                self.push(target, req.extras)
        for group in sorted(request.manifest_groups):
            for req in self.lock.dependency_groups.get(group, ()):
                if evaluate_marker(req.marker, self.marker_env):
                    self.include(_find_by_markers(self.lock, req, self.marker_env), req.extras)

    def run(self, active: t.AbstractSet[str]) -> None:
        while self.queue:
            package, extra = self.queue.popleft()
            for dep in _edges(package, extra):
                if evaluate_marker(dep.marker, self.marker_env, active):
                    self.include(self.lock.resolve(dep, package), dep.extras)


def _grow_conflict_items(walk: _Walk, activated: list[ConflictItem]) -> None:
    """Grow ACTIVATED to a fixed point over the graph (``foo[cpu]`` edges); refuse a conflict."""
    known = set(activated)
    first = walk.copy()
    while first.queue:
        package, extra = first.queue.popleft()
        for dep in _edges(package, extra):
            extra_items = [ConflictItem(dep.name, "extra", e) for e in dep.extras]
            additional = [i for i in extra_items if i not in known]
            if not evaluate_marker(dep.marker, walk.marker_env, _encoded(activated + additional)):
                continue
            for item in additional:
                known.add(item)
                activated.append(item)
            first.push(walk.lock.resolve(dep, package), dep.extras)
    for conflict_set in walk.lock.conflicts:
        hits = [item for item in conflict_set if item in known]
        if len(hits) > 1:
            raise _conflict_error(walk.lock, hits[0], hits[1])


def select_packages(
    lock: Lock,
    marker_env: t.Mapping[str, str],
    options: SelectionOptions,
    default_groups: t.Iterable[str] | str | None = None,
) -> list[SelectedPackage]:
    """Return the packages uv would install for the target, sorted by name.

    ``marker_env`` is the TARGET interpreter's marker environment (all keys of
    packaging's ``default_environment()``).

    ``default_groups`` is the workspace root's ``tool.uv.default-groups`` (what
    :func:`read_default_groups` returns for the root pyproject.toml; uv reads it
    from there). ``None`` takes them from the lock (uv 0.12+ records non-default
    values), else ``("dev",)``. With ``options.package``, uv 0.13 uses the
    package's default groups recorded in the lock (``("dev",)`` when a lock of
    revision 5+ records none), and the root's only for older locks.
    """
    if not HAS_PACKAGING:
        raise SelectionError("The Python library 'packaging' is required on the controller: %s" % PACKAGING_IMPORT_ERROR)
    _check_marker_env(marker_env)
    _check_python(lock, marker_env)
    _check_environments(lock, marker_env)
    _check_option_combinations(options)
    roots = _roots(lock, options)
    request = _request(lock, roots, options, default_groups)
    activated = _root_conflict_items(roots, request) if lock.conflicts else []
    walk = _Walk(lock, marker_env)
    walk.seed_roots(roots, request, _encoded(activated))
    walk.seed_manifest(request)
    if lock.conflicts:
        _grow_conflict_items(walk, activated)
    walk.run(_encoded(activated))
    members = set(lock.workspace_members)
    result = [SelectedPackage(package=p, is_root=p.name in members or p.is_local_tree and p.source_kind == "virtual") for p in walk.included.values()]
    result.sort(key=lambda s: (s.package.name, _version_key(s.package.version), s.package.source))
    return result


def _version_key(version: str | None) -> tuple[int, t.Any]:
    if version is None:
        return (0, "")
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (2, version)


def _describe_roots(roots: t.Sequence[Package]) -> str:
    if len(roots) == 1:
        return "`%s`" % roots[0].name
    return "the workspace members %s" % _known_list(r.name for r in roots)
