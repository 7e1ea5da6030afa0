# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Build a wheelhouse for a set of targets from a uv project: plan, fetch, build, publish.

Layout written under ``dest``::

    files/<artifact>                every file any target needs, once
    uv/<version>/<platform wheel>/  uv and uvx for each target platform
    targets/<target id>/            exactly what one host gets, hard links into files/:
        bin/uv, bin/uvx
        wheelhouse/<artifact>
        requirements.txt            name==version with --hash, markers already decided
        manifest.json
    manifest.json                   every file, its sha256, size and targets

The dest tree only ever changes by renames of complete files and directories, so a failed
run leaves the previous wheelhouse usable.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional

try:
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.utils import InvalidSdistFilename, canonicalize_name, parse_sdist_filename
except ImportError:  # reported by the action plugin through _lock's HAS_PACKAGING check
    pass

from ansible_collections.airgap.uv.plugins.module_utils._build import (
    BuildError,
    GitFetcher,
    GitSource,
    Interpreter,
    InterpreterFinder,
    build_key,
    check_wheel_identity,
    extract_archive,
    parse_git_source,
    platform_mismatch,
    subdirectory_of,
    tree_digest,
    wheel_is_pure,
)
from ansible_collections.airgap.uv.plugins.module_utils._closure import ClosureError, ClosureNotCached, ClosureResolver
from ansible_collections.airgap.uv.plugins.module_utils._credentials import CredentialProvider
from ansible_collections.airgap.uv.plugins.module_utils._download import (
    ArtifactStore,
    DownloadError,
    FileRequest,
    file_sha256,
    write_atomically,
)
from ansible_collections.airgap.uv.plugins.module_utils._lock import (
    Artifact,
    Lock,
    LockError,
    Package,
    load_lock,
    read_toml,
)
from ansible_collections.airgap.uv.plugins.module_utils._selection import (
    SelectionError,
    SelectionOptions,
    read_default_groups,
    select_packages,
)
from ansible_collections.airgap.uv.plugins.module_utils._tags import (
    TagError,
    choose_wheel,
    priority_map,
    target_platforms,
    target_tags,
)
from ansible_collections.airgap.uv.plugins.module_utils._target import Target, TargetError
from ansible_collections.airgap.uv.plugins.module_utils._uv_env import (
    UvEnvironmentError,
    check_uv_environment,
    uv_offline,
)
from ansible_collections.airgap.uv.plugins.module_utils._uv_tool import (
    UvBinaryStream,
    UvError,
    controller_python_args,
    extract_uv_binaries,
    lock_uv_release,
    run_uv,
    uv_version,
)
from ansible_collections.airgap.uv.plugins.module_utils._verify import FileVerifier, holds

COLLECTION_VERSION = "0.1.0"
MANIFEST_FORMAT = 1
# Source-tree entries that never affect a built wheel; skipping them keeps the digest cheap.
_SKIP_DIRS = {".git", ".hg", ".venv", "venv", "__pycache__", "dist", "build", ".tox", ".nox",
              ".pytest_cache", ".mypy_cache", ".ruff_cache", "node_modules"}


class WheelhouseError(Exception):
    """The wheelhouse cannot be built; the message names what and how to fix it."""


@dataclass
class TargetPlan:
    target: Target
    hosts: list[str]
    # (package name, version, artifact filename, sha256)
    entries: list[tuple[str, str, str, str]] = field(default_factory=list)
    uv_wheel: Optional[Artifact] = None
    built: int = 0
    # Packages shipped as sdists for the host to build: how many, what their backends ask for, and
    # the wheels pinned for the target that satisfy it (build-constraints.txt).
    host_built: list[str] = field(default_factory=list)
    build_requires: list[str] = field(default_factory=list)
    build_entries: list[tuple[str, str, str, str]] = field(default_factory=list)
    # Packages installed editable on the host from their shipped sdist (not in requirements.txt).
    editable_entries: list[tuple[str, str, str, str]] = field(default_factory=list)

    @property
    def files(self) -> list[tuple[str, str, str, str]]:
        """Every file of the target's wheelhouse: what it installs and what its builds use."""
        return self.entries + self.editable_entries + self.build_entries


@dataclass
class WheelhouseResult:
    changed: bool
    dest: str
    hosts: dict
    targets: dict
    files: int
    bytes: int
    downloaded: int
    reused: int
    built: int
    requests: int
    uv_version: str
    lock_sha256: str
    # Controller files found corrupt this run, removed and fetched or built again.
    repaired: list = field(default_factory=list)


@dataclass(frozen=True)
class WheelhouseOptions:
    project: str
    dest: str
    targets: Mapping[str, Mapping]
    selection: SelectionOptions = SelectionOptions()
    uv_version: Optional[str] = None
    cache_dir: str = os.path.join(os.path.expanduser("~"), ".cache", "airgap-uv")
    workers: int = 8
    retries: int = 3
    timeout: float = 60.0
    check_lock: bool = True
    prune: bool = True
    # Package names shipped as sdists (with their build requirements) for the hosts to build.
    host_builds: tuple[str, ...] = ()
    # Install the project, workspace members and editable path dependencies in editable mode (uv
    # sync's default) instead of as wheels (uv sync --no-editable).
    editable: bool = False


class WheelhouseBuilder:
    """Plans and publishes a wheelhouse; ``check_mode`` plans and reports without writing."""

    def __init__(self, options: WheelhouseOptions, uv: str, check_mode: bool = False,
                 progress: Optional[Callable[[str], None]] = None) -> None:
        self.options = options
        self.uv = uv
        self.check_mode = check_mode
        self._say = progress or (lambda message: None)
        # uv's boolean variables are checked before anything runs uv (as uv itself would refuse them).
        try:
            check_uv_environment()
            self.offline = uv_offline()
        except UvEnvironmentError as exc:
            raise WheelhouseError(str(exc)) from None
        # Store, wheelhouse and uv binaries count only once their content matched (see _verify).
        self.verifier = FileVerifier(os.path.join(options.cache_dir, "verified.json"))
        self.store = ArtifactStore(os.path.join(options.cache_dir, "store"), workers=options.workers,
                                   retries=options.retries, timeout=options.timeout, progress=self._say,
                                   credentials=CredentialProvider(project_dir=os.path.abspath(options.project)),
                                   verifier=self.verifier, offline=self.offline)
        self.project_dir = os.path.abspath(options.project)
        self.dest = os.path.abspath(options.dest)
        # (name, version, filename) -> the lock's artifact, for the download request
        self._chosen: dict[tuple, Artifact] = {}
        self._uv_lock: Optional[Lock] = None
        # Building non-wheels: git commits fetched into the cache, controller Pythons found once,
        # tree digests computed once per run, and how many builds really ran (0 on a warm run).
        self.git = GitFetcher(os.path.join(options.cache_dir, "git"), progress=self._say, offline=self.offline)
        self.interpreters = InterpreterFinder(uv)
        self._tree_keys: dict[str, str] = {}
        self.builds_run = 0
        self._host_builds = {canonicalize_name(name) for name in options.host_builds}
        # The lock's exclude-newer is set once the lock is read.
        self.closures = ClosureResolver(uv, options.cache_dir, self.project_dir, progress=self._say)

    # -- planning -----------------------------------------------------------------------

    def _load_lock(self) -> Lock:
        pyproject = os.path.join(self.project_dir, "pyproject.toml")
        if not os.path.isfile(pyproject):
            raise WheelhouseError("%s has no pyproject.toml; point 'project' at a uv project directory." % self.project_dir)
        lock_path = os.path.join(self.project_dir, "uv.lock")
        if not os.path.isfile(lock_path):
            raise WheelhouseError("%s is missing; run 'uv lock' in %s and commit uv.lock." % (lock_path, self.project_dir))
        try:
            # Refuses entries outside the project that its configuration does not point at (_lock_paths).
            return load_lock(lock_path, cache_dir=self.options.cache_dir)
        except LockError as exc:
            raise WheelhouseError(str(exc)) from None

    def _check_lock_current(self, lock: Lock, lock_sha256: str) -> None:
        """``uv lock --check`` once per (pyproject files, uv.lock) state; cached because it asks the index."""
        digest = hashlib.sha256(lock_sha256.encode())
        for path, sha256 in self._project_configs():
            if os.path.basename(path) == "pyproject.toml":
                digest.update(path.encode() + b"\0" + sha256.encode())
        marker = os.path.join(self.options.cache_dir, "lock-checked", digest.hexdigest())
        if os.path.exists(marker):
            return
        args = ["lock", "--check", "--quiet", "--directory", self.project_dir,
                *controller_python_args(lock.requires_python)]
        # A lock made with `uv lock --exclude-newer DATE` records DATE; uv re-resolves (and calls
        # the lock stale) unless the check uses the same cut-off.
        exclude_newer = lock.options.get("exclude-newer")
        if isinstance(exclude_newer, str):
            args += ["--exclude-newer", exclude_newer]
        try:
            run_uv(self.uv, args, what="uv lock --check")
        except UvError as exc:
            if "needs to be updated" in str(exc):
                raise WheelhouseError("uv.lock in %s does not match pyproject.toml (uv lock --check); run 'uv lock' "
                                      "there and commit the result." % self.project_dir) from None
            if self.offline:
                raise WheelhouseError("Could not check that uv.lock in %s is current with UV_OFFLINE set (uv had "
                                      "only its cache): %s\nRun once with network access (unset UV_OFFLINE) or set "
                                      "check_lock: false." % (self.project_dir, exc)) from None
            # uv needs an interpreter inside requires-python even to check a lock.
            raise WheelhouseError("Could not check that uv.lock in %s is current: %s\nMake a Python that satisfies "
                                  "the project's requires-python findable by uv on the controller (for example "
                                  "UV_PYTHON=/path/to/python), or set check_lock: false." % (self.project_dir, exc)) from None
        if not self.check_mode:
            os.makedirs(os.path.dirname(marker), exist_ok=True)
            open(marker, "w").close()

    def _check_required_version(self, version: str) -> None:
        """Honour ``tool.uv.required-version``: every uv command in the project refuses other versions."""
        required = None
        for name, table in (("uv.toml", None), ("pyproject.toml", "tool")):
            path = os.path.join(self.project_dir, name)
            if not os.path.isfile(path):
                continue
            try:
                data = read_toml(path)
            except LockError as exc:
                raise WheelhouseError(str(exc)) from None
            settings = (data.get(table) or {}).get("uv") if table else data
            if isinstance(settings, dict) and settings.get("required-version"):
                required = (path, str(settings["required-version"]).strip())
                break
        if required is None:
            return
        path, text = required
        spec = "==" + text if text[:1].isdigit() else text
        try:
            allowed = SpecifierSet(spec).contains(version, prereleases=True)
        except InvalidSpecifier:
            raise WheelhouseError("%s: tool.uv.required-version %r is not a version specifier." % (path, text)) from None
        if not allowed:
            raise WheelhouseError("%s sets required-version %r, so uv %s would refuse to run there; set uv_version "
                                  "(uv_deploy_uv_version) to a uv release that matches it." % (path, text, version))

    def _group_targets(self) -> dict[str, TargetPlan]:
        plans: dict[str, TargetPlan] = {}
        if not self.options.targets:
            raise WheelhouseError("No targets given; pass the airgap_uv_target facts of each host as 'targets'.")
        for host, facts in sorted(self.options.targets.items()):
            try:
                target = Target.from_facts(facts, host)
            except TargetError as exc:
                raise WheelhouseError(str(exc)) from None
            plan = plans.setdefault(target.id, TargetPlan(target=target, hosts=[]))
            plan.hosts.append(host)
        return plans

    def _tags_for(self, target: Target) -> dict:
        try:
            platforms = target_platforms(target.os, target.arch, target.libc_family, target.libc_version,
                                         target.macos_version)
            return priority_map(target_tags(target.python_version, target.implementation, platforms, target.abiflags))
        except TagError as exc:
            raise WheelhouseError("Target %s: %s" % (target.id, exc)) from None

    # -- building non-wheels --------------------------------------------------------------

    def _source_digest(self, directory: str) -> str:
        """Cache identity of a local source tree (memoised for the run: several targets share it)."""
        if directory not in self._tree_keys:
            self._tree_keys[directory] = tree_digest(directory)
        return self._tree_keys[directory]

    def _built_dir(self, source: "_BuildSource", interpreter: Optional[Interpreter], dist: str = "wheel") -> str:
        variant = "sdist" if dist == "sdist" else interpreter.variant if interpreter else "any"
        return os.path.join(self.options.cache_dir, "built", source.key, variant)

    def _build_wheel(self, source: "_BuildSource", interpreter: Optional[Interpreter] = None,
                     dist: str = "wheel") -> str:
        """The wheel (or with DIST "sdist", the sdist) built from SOURCE by INTERPRETER, else the one uv
        picks; built once per key."""
        out_dir = self._built_dir(source, interpreter, dist)
        suffix = ".whl" if dist == "wheel" else ".tar.gz"
        cached = _cached_wheel(out_dir)
        if cached:
            return cached
        if self.check_mode:
            raise _WouldBuild(source.label)
        os.makedirs(os.path.dirname(out_dir), exist_ok=True)
        work = tempfile.mkdtemp(dir=os.path.dirname(out_dir), prefix=".build-")
        try:
            tree = self._materialize(source, os.path.join(work, "src"))
            out = os.path.join(work, "out")
            args = ["build", "--" + dist, "--quiet", "--out-dir", out]
            if interpreter is not None:
                args += ["--python", interpreter.path]
            using = " with %s" % interpreter.describe() if interpreter else ""
            self._say("building %s%s%s" % ("the sdist of " if dist == "sdist" else "", source.label, using))
            self.builds_run += 1
            try:
                # From the project directory, so its uv settings (indexes, build constraints) apply
                # to the build requirements as they would for `uv sync` there.
                run_uv(self.uv, args + [tree], cwd=self.project_dir, what="Building %s" % source.label)
            except UvError as exc:
                raise BuildError("%s could not be built into a wheel on the controller%s: %s"
                                 % (source.label, " with %s" % interpreter.describe() if interpreter else "",
                                    exc)) from None
            wheels = [name for name in os.listdir(out) if name.endswith(suffix)] if os.path.isdir(out) else []
            if len(wheels) != 1:
                raise BuildError("Building %s produced %d %ss, expected one." % (source.label, len(wheels), dist))
            check_wheel_identity(wheels[0], source.name, source.version, source.label)
            # The wheel's hash, recorded when it was built: a cached wheel that no longer matches is
            # never shipped (it is built again).
            record = {"wheel": wheels[0], "sha256": file_sha256(os.path.join(out, wheels[0])), "source": source.key,
                      "interpreter": interpreter.variant if interpreter else None,
                      "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            _write_text(os.path.join(out, _BUILD_RECORD), json.dumps(record, indent=2, sort_keys=True) + "\n")
            shutil.rmtree(out_dir, ignore_errors=True)
            try:
                os.replace(out, out_dir)
            except OSError:
                pass  # a concurrent run placed its build first: use that one, as every later run will
        finally:
            shutil.rmtree(work, ignore_errors=True)
        cached = _cached_wheel(out_dir)
        if not cached:
            raise BuildError("The build cache %s does not hold the wheel just built; remove it and run again."
                             % out_dir)
        return cached

    def _materialize(self, source: "_BuildSource", work: str) -> str:
        """The directory to build SOURCE from: the tree itself, an unpacked sdist or a git checkout."""
        if source.kind == "tree":
            return source.tree
        if source.kind == "git":
            return self.git.checkout(source.git, source.label, work)
        sdist = self._fetch_sdist(source)
        root = extract_archive(self.store.path_for(sdist.sha256), sdist.filename, work, source.label)
        return subdirectory_of(root, source.subdirectory, source.label)

    def _fetch_sdist(self, source: "_BuildSource") -> Artifact:
        """Download and verify SOURCE's sdist into the store (nothing happens when it is there)."""
        sdist = source.sdist
        try:
            self.store.ensure([FileRequest(filename=sdist.filename, sha256=sdist.sha256, url=sdist.url,
                                           path=sdist.path, label=source.label)])
        except DownloadError as exc:
            raise WheelhouseError(str(exc)) from None
        return sdist

    def _build_source(self, package: Package, is_root: bool, target: Target, plan: TargetPlan,
                      label: str) -> "_BuildSource":
        """What to build PACKAGE from, with its cache key; nothing is fetched here."""
        common = dict(name=package.name, version=package.version, label=label)
        if package.is_local_tree or is_root:
            tree = package.local_path or os.path.normpath(
                os.path.join(os.path.dirname(self._lock_path()), package.source))
            if not os.path.isdir(tree):
                raise WheelhouseError("%s: its source directory %s does not exist; restore it or re-run "
                                      "'uv lock'." % (label, tree))
            return _BuildSource(kind="tree", key=build_key("tree", self._source_digest(tree)), tree=tree, **common)
        if package.source_kind == "git":
            git = parse_git_source(package.source, package.subdirectory)
            return _BuildSource(kind="git", key=git.cache_key, git=git, subdirectory=git.subdirectory, **common)
        sdist = package.sdist
        if sdist is not None:
            if not sdist.sha256:
                raise WheelhouseError("%s: uv.lock records no sha256 for %s; hashes are required for an offline "
                                      "install. Re-lock with a registry that serves hashes." % (label, sdist.filename))
            return _BuildSource(kind="sdist", key=build_key("sdist", sdist.sha256, package.subdirectory),
                                sdist=sdist, subdirectory=package.subdirectory, **common)
        offered = ", ".join(w.filename for w in package.wheels) or "none"
        raise WheelhouseError("%s has no wheel for target %s (hosts %s) and no sdist to build from (wheels in "
                              "uv.lock: %s). Pin a version that publishes a wheel for it, limit the dependency with "
                              "a marker (for example \"; sys_platform == 'win32'\") if the host does not need it, or "
                              "add the host's platform to tool.uv.required-environments and re-lock."
                              % (label, target.id, ", ".join(plan.hosts), offered))

    def _wheel_for_target(self, source: "_BuildSource", target: Target, tags: Mapping, plan: TargetPlan) -> str:
        """A built wheel TARGET can install: uv's own choice of interpreter when the result is pure,
        else a controller Python of the target's kind on a matching platform."""
        first_error = None
        try:
            wheel = self._build_wheel(source)
        except BuildError as exc:
            # Old sdists may build only with an older Python: the target's kind may still succeed.
            first_error, wheel = exc, None
        if wheel is not None and wheel_is_pure(os.path.basename(wheel)) and _installable(wheel, tags):
            return wheel
        platform_specific = wheel is None or not wheel_is_pure(os.path.basename(wheel))
        interpreter, why = self.interpreters.for_target(target, platform_specific)
        if interpreter is None and wheel is None:
            interpreter, dummy = self.interpreters.for_target(target, False)
        if interpreter is None:
            if wheel is None:
                raise first_error
            raise _NeedsHostBuild(self._cannot_build_message(source, os.path.basename(wheel), target, plan, why))
        try:
            built = self._build_wheel(source, interpreter)
        except BuildError as exc:
            if first_error is not None:
                raise WheelhouseError("%s\nRetried with %s: %s" % (first_error, interpreter.describe(), exc)) from None
            raise
        name = os.path.basename(built)
        if not wheel_is_pure(name):
            why = platform_mismatch(interpreter, target)
            if why:
                raise _NeedsHostBuild(self._cannot_build_message(source, name, target, plan, why))
        if not _installable(built, tags):
            raise _NeedsHostBuild(self._cannot_build_message(
                source, name, target, plan, "%s built %s, whose tags the target does not accept"
                % (interpreter.describe(), name)))
        return built

    @staticmethod
    def _cannot_build_message(source: "_BuildSource", wheel_name: str, target: Target, plan: TargetPlan,
                              why: str) -> str:
        if why.startswith("no "):
            remedy = ("install a %s %s%s interpreter on the controller (for example `uv python install %s`) so it "
                      "can build the wheel, or build the wheel on a builder host like the target and publish it "
                      "to your index, then re-lock"
                      % (target.implementation, target.python_minor, target.abiflags or "", target.python_minor))
        else:
            remedy = ("build the wheel on a builder host like the target (%s) and publish it to your index (or "
                      "depend on it as a path or URL wheel), then re-lock; or keep the target from needing it with "
                      "a marker" % target.id)
        return ("%s has no wheel for target %s (hosts %s) and builds into a platform-specific wheel (%s) that "
                "this controller cannot make for that target: %s. Remedy: %s."
                % (source.label, target.id, ", ".join(plan.hosts), wheel_name, why, remedy))

    # -- main ----------------------------------------------------------------------------

    def run(self) -> WheelhouseResult:
        try:
            return self._run()
        finally:
            if not self.check_mode:
                self.verifier.save()  # what was hashed this run is not hashed again next run

    def _run(self) -> WheelhouseResult:
        self._configs = None
        self._recorded = None
        # Nothing changed since the run that published dest: its recorded result is the answer,
        # without reading the lock. Only reads, so check mode takes it too.
        unchanged = self._unchanged_result()
        if unchanged is not None:
            return unchanged
        # The fixed costs run beside the planning and the downloads: finding (and fetching and
        # unpacking) the uv release starts now, `uv lock --check` once the lock is read; both wait
        # on the index in subprocesses. Nothing under dest is written before the check passed,
        # and errors come in the order of a sequential run (_earlier_error).
        background = _Background()
        self._position = -1
        try:
            background.version = background.submit(lambda: self.options.uv_version or uv_version(self.uv))
            background.uv_wheels = background.submit(self._resolve_uv_wheels, background.version)
            if not self.check_mode:
                background.uv_fetch = background.submit(self._fetch_uv_wheels, background.uv_wheels)
            return self._run_full(background)
        except BaseException:
            self.store.cancel()
            earlier = self._earlier_error(background)
            if earlier is not None:
                raise earlier
            raise
        finally:
            background.close()

    def _run_full(self, background: "_Background") -> WheelhouseResult:
        """run() without the short cut: read the lock, select, then plan, fetch and publish."""
        lock = self._load_lock()
        lock_sha256 = lock.sha256
        # Build requirements resolve with the project's own cut-off, like its packages.
        exclude_newer = lock.options.get("exclude-newer")
        self.closures.exclude_newer = exclude_newer if isinstance(exclude_newer, str) else None
        plans = self._group_targets()
        try:
            default_groups = read_default_groups(os.path.join(self.project_dir, "pyproject.toml"))
        except (SelectionError, LockError) as exc:
            raise WheelhouseError(str(exc)) from None
        # Selection first: a target outside requires-python or a bad group is the clearer error.
        selections = {}
        for target_id, plan in plans.items():
            try:
                selections[target_id] = select_packages(lock, plan.target.marker_environment, self.options.selection,
                                                        default_groups)
            except SelectionError as exc:
                raise WheelhouseError("Target %s (hosts %s): %s" % (target_id, ", ".join(plan.hosts), exc)) from None
        if self.options.check_lock:
            background.lock_check = background.submit(self._check_lock_current, lock, lock_sha256)
        return self._run_planned(lock, lock_sha256, plans, selections, background)

    def _run_planned(self, lock: Lock, lock_sha256: str, plans: dict, selections: dict,
                     background: "_Background") -> WheelhouseResult:
        """run() once the selection stands: plan each target, fetch, publish."""
        version = background.version.result()
        self._check_required_version(version)

        # Which file each target needs; sha256 -> (filename, request or local path)
        requests: dict[str, FileRequest] = {}
        local_files: dict[str, str] = {}
        would_build: list[str] = []
        for target_id, plan in plans.items():
            self._position += 1  # which target an error here belongs to (see _earlier_error)
            target = plan.target
            tags = self._tags_for(target)
            for item in selections[target_id]:
                package = item.package
                if package.source_kind == "virtual":
                    continue
                if self.options.editable and (item.is_root or package.source_kind == "editable"):
                    try:
                        filename, sha256, source_path = self._ship_editable(package, item.is_root, target, plan)
                    except _WouldBuild as pending:
                        # Check mode: as for wheels below, a stand-in with an unknown hash.
                        would_build.append(str(pending))
                        plan.editable_entries.append((package.name, package.version or "", "%s-%s.tar.gz" % (
                            package.name.replace("-", "_"), package.version or "0"), "0" * 64))
                        continue
                    local_files[sha256] = source_path
                    plan.editable_entries.append((package.name, package.version or _sdist_version(filename),
                                                  filename, sha256))
                    continue
                try:
                    filename, sha256, source_path = self._artifact_for(package, item.is_root, target, tags, plan)
                except _WouldBuild as pending:
                    # Check mode: the wheel is not built yet; a stand-in entry keeps the
                    # predicted install file complete (its hash is unknown until built).
                    would_build.append(str(pending))
                    plan.entries.append((package.name, package.version or "", "%s-%s-py3-none-any.whl"
                                         % (package.name.replace("-", "_"), package.version or "0"), "0" * 64))
                    continue
                if source_path:
                    local_files[sha256] = source_path
                    plan.built += 1
                else:
                    art = self._chosen[(package.name, package.version, filename)]
                    requests[sha256] = FileRequest(filename=filename, sha256=sha256, url=art.url,
                                                   path=art.path, label="%s %s" % (package.name, package.version))
                # A dynamic version (not in uv.lock) is the one the built wheel carries.
                plan.entries.append((package.name, package.version or _wheel_version(filename), filename, sha256))
            try:
                self._resolve_build_closure(plan, tags, requests)
            except _WouldBuild as pending:
                would_build.append(str(pending))
        built_count = sum(plan.built for plan in plans.values())
        self._position = len(plans)
        # The packages, largest first; the uv wheels are on their way already (_fetch_uv_wheels).
        if not self.check_mode:
            background.downloads = background.submit(self.store.ensure, self._download_order(requests))
        if background.lock_check is not None:
            background.lock_check.result()
        dummy, uv_wheels, uv_error = background.uv_wheels.result()
        if uv_error is not None:
            raise uv_error[1]
        for target_id, plan in plans.items():
            plan.uv_wheel = uv_wheels[target_id]
            requests.setdefault(plan.uv_wheel.sha256, FileRequest(
                filename=plan.uv_wheel.filename, sha256=plan.uv_wheel.sha256, url=plan.uv_wheel.url,
                path=plan.uv_wheel.path, label="uv %s" % version))

        if self.check_mode:
            # A store file that no longer matches counts as missing: the real run fetches it again.
            missing = [r for r in requests.values()
                       if not self.verifier.matches(self.store.path_for(r.sha256), r.sha256)]
            changed = bool(missing or would_build) or self._differs_from_published(plans, lock_sha256, version)
            return self._result(plans, changed, lock_sha256, version,
                                downloaded=len(missing), reused=len(requests) - len(missing), built=built_count)

        try:
            outcome = self._downloaded(background)
            for sha256, path in local_files.items():
                self.store.add_file(path, sha256)
        except DownloadError as exc:
            raise WheelhouseError(str(exc)) from None
        downloaded = sum(1 for state in outcome.values() if state != "reused")
        reused = sum(1 for state in outcome.values() if state == "reused")
        # What a run with nothing changed returns (_unchanged_result); dest/manifest.json keeps it.
        self._recorded = (self._result(plans, False, lock_sha256, version, downloaded=0, reused=len(outcome),
                                       built=built_count), sorted(requests), dict(local_files))
        changed = self._publish(plans, lock_sha256, version)
        return self._result(plans, changed, lock_sha256, version, downloaded=downloaded, reused=reused,
                            built=built_count)

    def _artifact_for(self, package: Package, is_root: bool, target: Target, tags: Mapping,
                      plan: TargetPlan) -> tuple[str, str, Optional[str]]:
        """(filename, sha256, local path of a built file or None) of what TARGET installs for PACKAGE."""
        label = ("%s %s" % (package.name, package.version or "")).strip()
        on_host = canonicalize_name(package.name) in self._host_builds
        if not is_root and package.wheels and not on_host:
            wheel = choose_wheel(package.wheels, tags)
            if wheel is not None:
                if not wheel.sha256:
                    raise WheelhouseError("%s: uv.lock records no sha256 for %s; hashes are required for an "
                                          "offline install. Re-lock with a registry that serves hashes."
                                          % (label, wheel.filename))
                self._chosen[(package.name, package.version, wheel.filename)] = wheel
                return wheel.filename, wheel.sha256, None
        # Not a wheel: build it here. Local trees (the project, workspace members, path, directory
        # and editable dependencies) from where they are, sdists after download and verification,
        # git dependencies from a checkout of the locked commit. Each is built once per cache key.
        try:
            source = self._build_source(package, is_root, target, plan, label)
            if on_host:
                return self._ship_source(source, target, plan, "host_builds names it")
            try:
                wheel_path = self._wheel_for_target(source, target, tags, plan)
            except _NeedsHostBuild as needed:
                try:
                    return self._ship_source(source, target, plan, str(needed))
                except (BuildError, ClosureError) as exc:
                    raise WheelhouseError("%s\nShipping its source with its build requirements to build on the "
                                          "host failed too: %s" % (needed, exc)) from None
        except (BuildError, ClosureError) as exc:
            raise WheelhouseError(str(exc)) from None
        return os.path.basename(wheel_path), file_sha256(wheel_path), wheel_path

    def _ship_source(self, source: "_BuildSource", target: Target, plan: TargetPlan,
                     why: str) -> tuple[str, str, Optional[str]]:
        """Ship SOURCE as an sdist for the host to build, and note its build requirements for TARGET."""
        reason = why.split("\n")[0][:200]
        self._say("%s: shipping the sdist to build on hosts %s (%s)" % (source.label, ", ".join(plan.hosts), reason))
        if source.kind == "sdist":
            if source.subdirectory:
                raise BuildError("%s: its sdist builds from the subdirectory %r, which a host cannot be told to "
                                 "do." % (source.label, source.subdirectory))
            sdist = source.sdist
            if self.check_mode and not self.store.has(sdist.sha256):
                raise _WouldBuild(source.label)
            self._fetch_sdist(source)
            path, local = self.store.path_for(sdist.sha256), None
            filename, sha256 = sdist.filename, sdist.sha256
            self._chosen[(source.name, source.version, filename)] = sdist
        else:
            path = local = self._build_wheel(source, dist="sdist")
            filename, sha256 = os.path.basename(path), file_sha256(path)
        self._note_build_requirements(path, filename, sha256, source.label, "wheel", plan)
        return filename, sha256, local

    def _ship_editable(self, package: Package, is_root: bool, target: Target,
                       plan: TargetPlan) -> tuple[str, str, str]:
        """The sdist of a local tree to install editable on the host, noting its editable build
        requirements (the backend's PEP 660 hook, e.g. hatchling's `editables`) for TARGET."""
        label = ("%s %s" % (package.name, package.version or "")).strip()
        try:
            source = self._build_source(package, is_root, target, plan, label)
            path = self._build_wheel(source, dist="sdist")
            filename, sha256 = os.path.basename(path), file_sha256(path)
            self._note_build_requirements(path, filename, sha256, label, "editable", plan)
        except (BuildError, ClosureError) as exc:
            raise WheelhouseError("%s cannot be shipped for an editable install: %s" % (label, exc)) from None
        return filename, sha256, path

    def _note_build_requirements(self, sdist_path: str, filename: str, sha256: str, label: str, hook: str,
                                 plan: TargetPlan) -> None:
        """Add what the sdist's backend needs for HOOK to the target's build requirements; the
        hook is asked inside the unpacked sdist, exactly what the host will build from."""
        work = tempfile.mkdtemp(prefix="airgap-uv-sdist-")
        try:
            tree = extract_archive(sdist_path, filename, work, label)
            python = self._controller_python(plan.target, exact=True)
            requires = self.closures.build_requirements(tree, sha256, hook, label,
                                                        python=python.path if python else None,
                                                        cached_only=self.check_mode)
        except ClosureNotCached:
            raise _WouldBuild(label) from None
        finally:
            shutil.rmtree(work, ignore_errors=True)
        plan.build_requires.extend(r for r in requires if r not in plan.build_requires)
        plan.host_built.append(label if hook == "wheel" else "%s (%s)" % (label, hook))

    def _controller_python(self, target: Target, exact: bool) -> Optional[Interpreter]:
        """A controller CPython of the target's minor version; unless EXACT, else the oldest newer one."""
        same = [i for i in self.interpreters.interpreters if i.implementation == "cpython" and not i.abiflags]
        for interpreter in same:
            if interpreter.minor == target.python_minor:
                return interpreter
        if exact:
            return None
        newer = sorted((i for i in same if _minor_tuple(i.minor) > _minor_tuple(target.python_minor)),
                       key=lambda i: _minor_tuple(i.minor))
        return newer[0] if newer else None

    def _resolve_build_closure(self, plan: TargetPlan, tags: Mapping,
                               requests: dict) -> None:
        """Pin, for the target, every wheel the host's builds need (plan.build_entries) and request them."""
        if not plan.build_requires:
            return
        target = plan.target
        python = self._controller_python(target, exact=False)
        try:
            lock = self.closures.lock(plan.build_requires, target.python_minor, python.path if python else None,
                                      cached_only=self.check_mode)
            selected = select_packages(lock, target.marker_environment, SelectionOptions(), ())
        except ClosureNotCached:
            raise _WouldBuild("the build requirements") from None
        except (ClosureError, SelectionError) as exc:
            remedy = ("" if python else "no CPython %s or newer was found on the controller to resolve them; install "
                      "one (for example `uv python install %s`). " % (target.python_minor, target.python_minor))
            raise WheelhouseError("Target %s (hosts %s): %s must be built on the host, but its build requirements "
                                  "(%s) cannot be resolved for it: %sAlternatively build the wheel on a builder host "
                                  "like the target and publish it to your index, then re-lock.\n%s"
                                  % (target.id, ", ".join(plan.hosts), ", ".join(plan.host_built),
                                     ", ".join(plan.build_requires), remedy, exc)) from None
        for item in selected:
            package = item.package
            if package.source_kind == "virtual":
                continue
            wheel = choose_wheel(package.wheels, tags)
            if wheel is None or not wheel.sha256:
                raise WheelhouseError(
                    "Target %s (hosts %s): the build requirement %s %s has no wheel for the target%s, so the host "
                    "could not install it to build the packages shipped as source (%s). Build the wheel on a "
                    "builder host like the target and publish it to your index, or pin a build requirement that "
                    "publishes one." % (target.id, ", ".join(plan.hosts), package.name, package.version,
                                        "" if wheel is None else " with a sha256",
                                        ", ".join(plan.build_requires)))
            requests.setdefault(wheel.sha256, FileRequest(filename=wheel.filename, sha256=wheel.sha256, url=wheel.url,
                                                          path=wheel.path, label="%s %s (build requirement)"
                                                          % (package.name, package.version)))
            plan.build_entries.append((package.name, package.version or "", wheel.filename, wheel.sha256))

    def _lock_path(self) -> str:
        return os.path.join(self.project_dir, "uv.lock")

    def _uv_wheel_for(self, version: str, target: Target, plan: TargetPlan) -> Artifact:
        if self._uv_lock is None:
            try:
                self._uv_lock = load_lock(lock_uv_release(self.uv, version, self.options.cache_dir))
            except (UvError, LockError) as exc:
                hint = (" UV_OFFLINE is set and the controller has not locked uv %s before (%s); run once with "
                        "network access." % (version, os.path.join(self.options.cache_dir, "uv-releases", version))
                        if self.offline else "")
                raise WheelhouseError("Cannot learn the uv %s wheels from the index: %s%s"
                                      % (version, exc, hint)) from None
        package = next((p for p in self._uv_lock.packages if p.name == "uv"), None)
        platforms = target_platforms(target.os, target.arch, target.libc_family, target.libc_version,
                                     target.macos_version)
        # uv wheels are tagged py3-none-<platform>: any Python version selects them.
        wheel = choose_wheel(package.wheels if package else (), target_tags("3.8", "cpython", platforms))
        if wheel is None or not wheel.sha256:
            raise WheelhouseError("uv %s publishes no binary for target %s (hosts %s); choose another uv "
                                  "version with airgap_uv_version." % (version, target.id, ", ".join(plan.hosts)))
        return wheel

    # -- fixed costs beside the downloads ----------------------------------------------------

    def _resolve_uv_wheels(self, version: Future) -> tuple:
        """(version, {target id: uv wheel}, None), or with the first error and its target's index:
        (version, wheels, (i, exc)).

        Runs beside reading the lock and the planning; run() puts its error where a sequential run
        would have met it. When the version or the targets are wrong there is nothing to do: the
        main thread meets and reports that itself.
        """
        try:
            version = version.result()
            plans = self._group_targets()
        except Exception:  # pylint: disable=broad-except
            return None, {}, None
        wheels = {}
        for index, (target_id, plan) in enumerate(plans.items()):
            try:
                wheels[target_id] = self._uv_wheel_for(version, plan.target, plan)
            except Exception as exc:  # pylint: disable=broad-except
                return version, wheels, (index, exc)
        return version, wheels, None

    def _fetch_uv_wheels(self, resolved: Future) -> tuple:
        """Fetch every platform's uv wheel and unpack its binaries as soon as it is verified.

        Returns ({sha256: state}, [download errors]). Unpacking goes to the cache (_uv_binaries),
        never to dest, and a failure there is left for _publish to meet and report.
        """
        version, wheels, error = resolved.result()
        if error is not None:
            return {}, []
        unique = {}
        for wheel in wheels.values():
            unique.setdefault(wheel.sha256, wheel)

        def fetch(wheel: Artifact) -> tuple:
            wanted = not self._uv_in_dest(version, wheel)
            # uv and uvx inflate while the wheel downloads (into a staging directory, trusted only
            # once the wheel matched the lock: _uv_binaries); a wheel the store has is unzipped.
            stream = (UvBinaryStream(os.path.dirname(self._uv_binaries_dir(wheel)))
                      if wanted and not self._uv_binaries_ready(wheel) else None)
            request = FileRequest(filename=wheel.filename, sha256=wheel.sha256, url=wheel.url, path=wheel.path,
                                  label="uv %s" % version, consumer=stream)
            try:
                try:
                    outcome = self.store.ensure([request])
                except DownloadError as exc:
                    return {}, exc.errors
                if wanted:
                    try:
                        self._uv_binaries(wheel, stream)
                    except Exception:  # pylint: disable=broad-except
                        pass
                return outcome, []
            finally:
                if stream is not None:
                    stream.abort()  # whatever was not taken over

        outcome, errors = {}, []
        if unique:
            with ThreadPoolExecutor(max_workers=len(unique)) as pool:
                for states, failures in pool.map(fetch, list(unique.values())):
                    outcome.update(states)
                    errors += failures
        return outcome, errors

    def _downloaded(self, background: "_Background") -> dict:
        """Wait for the package and uv downloads: {sha256: state}; their failures raised together."""
        outcome, errors = {}, []
        try:
            outcome.update(background.downloads.result())
        except DownloadError as exc:
            errors += exc.errors
        uv_outcome, uv_errors = background.uv_fetch.result()
        for sha256, state in uv_outcome.items():
            if outcome.get(sha256, "reused") == "reused":
                outcome[sha256] = state
        errors = sorted(set(errors + uv_errors))
        if errors:
            raise DownloadError("; ".join(errors), errors=errors)
        return outcome

    def _earlier_error(self, background: "_Background") -> Optional[BaseException]:
        """The error a sequential run would have raised before the one at hand, if any: a stale lock
        comes before everything after the check, a target's uv wheel before the next target's plan."""
        if background.lock_check is not None:
            error = background.lock_check.exception()
            if error is not None:
                return error
        if background.uv_wheels is not None and self._position >= 0:
            dummy, dummy2, uv_error = background.uv_wheels.result()
            if uv_error is not None and uv_error[0] < self._position:
                return uv_error[1]
        return None

    def _download_order(self, requests: Mapping[str, FileRequest]) -> list:
        """Largest first, so the long transfers start at once and small ones fill in around them.

        Sizes come from the lock where it records them; else platform wheels (mostly the big
        ones) go before pure wheels and sdists. Equal estimates keep the lock's order.
        """
        sizes = {artifact.sha256: artifact.size for artifact in self._chosen.values() if artifact.sha256}

        def estimate(request: FileRequest) -> int:
            size = sizes.get(request.sha256)
            if size:
                return size
            name = request.filename
            return 4000000 if name.endswith(".whl") and not name.endswith("-any.whl") else 200000

        return sorted(requests.values(), key=estimate, reverse=True)

    def _uv_in_dest(self, version: str, wheel: Artifact) -> bool:
        return _binaries_intact(os.path.join(self.dest, "uv", version, wheel.filename[:-4]), self.verifier)

    def _uv_binaries_dir(self, wheel: Artifact) -> str:
        return os.path.join(self.options.cache_dir, "uv-binaries", wheel.sha256)

    def _uv_binaries_ready(self, wheel: Artifact) -> bool:
        return _binaries_intact(self._uv_binaries_dir(wheel), self.verifier)

    def _uv_binaries(self, wheel: Artifact, streamed: Optional[UvBinaryStream] = None) -> str:
        """``cache_dir/uv-binaries/<wheel sha256>``: uv and uvx of WHEEL and their SHA256SUMS, unpacked once.

        _publish links them into dest; the sums spare hashing the 40 MB binary for every manifest.
        With STREAMED (fed while the wheel downloaded), its files are used once they agree with the
        wheel's central directory; else, or when anything streamed is in doubt, the wheel is unzipped.
        """
        directory = self._uv_binaries_dir(wheel)
        if self._uv_binaries_ready(wheel):
            return directory
        os.makedirs(os.path.dirname(directory), exist_ok=True)
        wheel_path = self.store.path_for(wheel.sha256)
        digests: dict = {}
        staging = streamed.verified(wheel_path, digests) if streamed is not None else None
        try:
            if staging is None:
                digests = {}
                staging = tempfile.mkdtemp(dir=os.path.dirname(directory), prefix=".uv-")
                os.chmod(staging, 0o755)
                extract_uv_binaries(wheel_path, staging, digests=digests)
            else:
                os.chmod(staging, 0o755)
            _write_text(os.path.join(staging, _SUMS), _format_sums(digests))
            if os.path.isdir(directory):
                shutil.rmtree(directory, ignore_errors=True)  # left without its sums: unpack afresh
            try:
                os.replace(staging, directory)
            except OSError:
                if not os.path.isfile(os.path.join(directory, _SUMS)):
                    raise
                # A concurrent run placed the same binaries first.
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
        return directory

    # -- nothing changed -------------------------------------------------------------------

    # Options that change how a run fetches, not what it publishes.
    _FETCH_ONLY_OPTIONS = ("workers", "retries", "timeout")
    # Per run (set in run()): the project's config files, the inputs digest, what to record.
    _configs: Optional[list] = None
    _inputs: Optional[str] = None
    _recorded: Optional[tuple] = None
    _position = -1

    def _project_configs(self) -> list:
        """[(path, sha256)] of every pyproject.toml, uv.toml and .python-version in the project, in
        the order _check_lock_current has always hashed pyproject.toml files (read once per run)."""
        if self._configs is None:
            found = []
            for root, dirs, files in os.walk(self.project_dir):
                dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
                for name in ("pyproject.toml", "uv.toml", ".python-version"):
                    if name in files:
                        path = os.path.join(root, name)
                        found.append((path, file_sha256(path)))
            self._configs = found
        return self._configs

    def _inputs_digest(self) -> str:
        """sha256 over everything a run reads except the local source trees it builds (those are
        recorded one by one): uv.lock, the project's uv configuration, the options that shape the
        result, the controller's uv, the collection and manifest format."""
        with open(self._lock_path(), "rb") as handle:
            lock_sha256 = hashlib.sha256(handle.read()).hexdigest()
        configs = self._project_configs()
        if not any(path == os.path.join(self.project_dir, "pyproject.toml") for path, dummy in configs):
            raise ValueError("no pyproject.toml")
        options = {item.name: getattr(self.options, item.name) for item in dataclasses.fields(self.options)
                   if item.name not in self._FETCH_ONLY_OPTIONS}
        uv = os.path.realpath(self.uv)
        uv_stat = os.stat(uv)
        payload = {"format": MANIFEST_FORMAT, "collection_version": COLLECTION_VERSION, "lock_sha256": lock_sha256,
                   "configs": configs, "options": options, "project": self.project_dir, "dest": self.dest,
                   "cache_dir": os.path.abspath(self.options.cache_dir),
                   # Which uv answers `uv --version`, runs the lock check and the builds.
                   "uv": [uv, uv_stat.st_size, uv_stat.st_mtime_ns]}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=_plain).encode("utf-8")).hexdigest()

    def _unchanged_result(self) -> Optional[WheelhouseResult]:
        """The recorded result of the run that published dest, when none of its inputs changed since,
        no local source tree it built changed, and all it published, fetched and built is still
        there with its recorded size (the install files and manifests by content). Else None."""
        try:
            self._inputs = self._inputs_digest()
        except (OSError, ValueError, TypeError):
            self._inputs = None  # the full run says what is wrong
            return None
        try:
            with open(os.path.join(self.dest, "manifest.json"), encoding="utf-8") as handle:
                manifest = json.load(handle)
            record = manifest["inputs"]
            if (manifest.get("format") != MANIFEST_FORMAT or manifest.get("collection_version") != COLLECTION_VERSION
                    or record["digest"] != self._inputs):
                return None
            for tree, digest in record["trees"].items():
                if not os.path.isdir(tree) or self._source_digest(tree) != digest:
                    return None
            published = record["published"]
            if self.options.prune:
                present = {name for name in os.listdir(os.path.join(self.dest, "files")) if not name.startswith(".")}
                if present != {name[6:] for name in published if name.startswith("files/")}:
                    return None
            # Every file by content: the verifier hashes only what changed since it last looked, and
            # a store file's hard links share its answer. A mismatch leaves the repair to the full run.
            for sha256, size in record["store"].items():
                path = self.store.path_for(sha256)
                if os.path.getsize(path) != size or not self.verifier.matches(path, sha256):
                    return None
            for relative, (size, sha256) in published.items():
                path = os.path.join(self.dest, relative)
                if os.path.getsize(path) != size or not sha256 or not self.verifier.matches(path, sha256):
                    return None
            for path, size in record["built_files"].items():
                if os.path.getsize(path) != size:
                    return None
            return WheelhouseResult(changed=False, downloaded=0, requests=self.store.requests_made,
                                    **record["result"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def _inputs_record(self, plans: dict, needed: Mapping[str, str], version: str) -> Optional[dict]:
        """What _unchanged_result compares, for dest/manifest.json; None when the inputs are unknown."""
        if self._inputs is None or self._recorded is None:
            return None
        result, requested, local_files = self._recorded
        published: dict = {}

        def note(relative: str, sha256: Optional[str]) -> None:
            # The sha256 each file must have: what the lock (or the uv wheel's sums) says for the
            # links into files/ and uv/, the content just written for install files and manifests.
            path = os.path.join(self.dest, relative)
            published[relative] = [os.path.getsize(path), sha256 or file_sha256(path)]

        for filename, sha256 in needed.items():
            note("files/" + filename, sha256)
        for plan in plans.values():
            uv_dir = os.path.relpath(self._uv_dir(version, plan), self.dest).replace(os.sep, "/")
            sums = _read_sums(os.path.join(self.dest, uv_dir))
            for name in os.listdir(os.path.join(self.dest, uv_dir)):
                note(uv_dir + "/" + name, sums.get(name))
            top = os.path.join(self.dest, "targets", plan.target.id)
            wheels = {entry[2]: entry[3] for entry in plan.files}
            for root, dummy, files in os.walk(top):
                kind = os.path.basename(root) if root != top else None
                for name in files:
                    expected = wheels.get(name) if kind == "wheelhouse" else sums.get(name) if kind == "bin" else None
                    note(os.path.relpath(os.path.join(root, name), self.dest).replace(os.sep, "/"), expected)
        store = {sha256: os.path.getsize(self.store.path_for(sha256)) for sha256 in set(requested) | set(needed.values())}
        recorded = dataclasses.asdict(result)
        for key in ("changed", "downloaded", "requests", "repaired"):
            recorded.pop(key)
        return {"digest": self._inputs, "trees": dict(sorted(self._tree_keys.items())), "published": published,
                "store": dict(sorted(store.items())),
                "built_files": {path: os.path.getsize(path) for path in sorted(set(local_files.values()))},
                "result": recorded}

    # -- publishing ----------------------------------------------------------------------

    def _target_manifest(self, plan: TargetPlan, lock_sha256: str, version: str, uv_dir: str) -> dict:
        files = []
        for name, pkg_version, filename, sha256 in sorted(plan.files, key=lambda e: e[2]):
            files.append({"filename": filename, "sha256": sha256, "size": os.path.getsize(self.store.path_for(sha256)),
                          "name": name, "version": pkg_version})
        # The uv binaries are checked on the host like the wheels (names with a slash are
        # relative to the manifest). Their sha256 was noted when they were unpacked.
        sums = _read_sums(uv_dir)
        for binary in sorted(os.listdir(uv_dir)):
            if binary == _SUMS:
                continue
            path = os.path.join(uv_dir, binary)
            files.append({"filename": "bin/" + binary, "sha256": sums.get(binary) or file_sha256(path),
                          "size": os.path.getsize(path)})
        editable = [{"name": name, "version": pkg_version, "filename": filename, "sha256": sha256}
                    for name, pkg_version, filename, sha256 in sorted(plan.editable_entries)]
        return {"format": MANIFEST_FORMAT, "target": plan.target.id, "files": files, "editable": editable,
                "lock_sha256": lock_sha256, "uv_version": version, "uv_wheel": plan.uv_wheel.filename,
                "uv_wheel_sha256": plan.uv_wheel.sha256}

    @staticmethod
    def _requirements(plan: TargetPlan, lock_sha256: str) -> str:
        return _pinned_file(plan, lock_sha256, "Install with: uv pip sync --offline --no-index --find-links "
                            "wheelhouse --require-hashes requirements.txt", plan.entries)

    @staticmethod
    def _build_constraints(plan: TargetPlan, lock_sha256: str) -> str:
        """The wheels the host's builds of shipped sdists use (uv pip sync --build-constraint)."""
        return _pinned_file(plan, lock_sha256, "Build requirements of the packages shipped as sdists, pinned for "
                            "this target (built on the host: %s)." % (", ".join(plan.host_built) or "nothing"),
                            plan.build_entries)

    def _uv_dir(self, version: str, plan: TargetPlan) -> str:
        return os.path.join(self.dest, "uv", version, plan.uv_wheel.filename[:-4])

    def _differs_from_published(self, plans: dict, lock_sha256: str, version: str) -> bool:
        """True when any target's published install file or manifest is not what this plan writes."""
        for plan in plans.values():
            directory = os.path.join(self.dest, "targets", plan.target.id)
            uv_dir = self._uv_dir(version, plan)
            try:
                with open(os.path.join(directory, "requirements.txt"), encoding="utf-8") as handle:
                    if handle.read() != self._requirements(plan, lock_sha256):
                        return True
                with open(os.path.join(directory, "build-constraints.txt"), encoding="utf-8") as handle:
                    if handle.read() != self._build_constraints(plan, lock_sha256):
                        return True
                with open(os.path.join(directory, "manifest.json"), encoding="utf-8") as handle:
                    manifest = json.load(handle)
                if manifest != self._target_manifest(plan, lock_sha256, version, uv_dir):
                    return True
                # Each file the manifest lists is still there with its content: a link of the verified
                # store file (or uv binary), or a copy that hashes right (a removed link counts too).
                for entry in manifest["files"]:
                    name = entry["filename"]
                    path = os.path.join(directory, name if "/" in name else "wheelhouse/" + name)
                    origin = (os.path.join(uv_dir, os.path.basename(name)) if "/" in name
                              else self.store.path_for(entry["sha256"]))
                    if os.path.getsize(path) != entry["size"] or not holds(path, entry["sha256"], self.verifier,
                                                                           origin):
                        return True
            except (OSError, ValueError, KeyError, TypeError):
                # Also a wheel not in the store yet (check mode) or uv not unpacked yet.
                return True
        return False

    def _publish(self, plans: dict, lock_sha256: str, version: str) -> bool:
        try:
            return self._publish_unsafe(plans, lock_sha256, version)
        except OSError as exc:
            raise WheelhouseError("Writing the wheelhouse under %s failed: %s. The previous wheelhouse is "
                                  "unchanged; free space or fix permissions and run again." % (self.dest, exc)) from None

    def _publish_unsafe(self, plans: dict, lock_sha256: str, version: str) -> bool:
        changed = False
        files_dir = os.path.join(self.dest, "files")
        os.makedirs(files_dir, exist_ok=True)
        needed: dict[str, str] = {}
        for plan in plans.values():
            for dummy, dummy2, filename, sha256 in plan.files:
                needed[filename] = sha256
        for filename, sha256 in sorted(needed.items()):
            changed |= _place(self.store.path_for(sha256), os.path.join(files_dir, filename), sha256, self.verifier)

        uv_dirs = {}
        for plan in plans.values():
            wheel = plan.uv_wheel
            directory = self._uv_dir(version, plan)
            if not self._uv_in_dest(version, wheel):
                staging = tempfile.mkdtemp(dir=self.dest, prefix=".uv-")
                os.chmod(staging, 0o755)
                try:
                    # Unpacked while the packages downloaded (_fetch_uv_wheels), else now.
                    unpacked = self._uv_binaries(wheel)
                    for name in sorted(os.listdir(unpacked)):
                        _link_or_copy(os.path.join(unpacked, name), os.path.join(staging, name))
                    os.makedirs(os.path.dirname(directory), exist_ok=True)
                    _replace_directory(staging, directory)
                finally:
                    shutil.rmtree(staging, ignore_errors=True)
                changed = True
            uv_dirs[plan.target.id] = directory

        targets_dir = os.path.join(self.dest, "targets")
        os.makedirs(targets_dir, exist_ok=True)
        for plan in plans.values():
            if not self._differs_from_published({plan.target.id: plan}, lock_sha256, version):
                continue
            changed = True
            staging = tempfile.mkdtemp(dir=targets_dir, prefix=".%s-" % plan.target.id)
            # mkdtemp makes 0700; the tree is copied to hosts with its modes.
            os.chmod(staging, 0o755)
            try:
                os.makedirs(os.path.join(staging, "wheelhouse"))
                os.makedirs(os.path.join(staging, "bin"))
                for dummy, dummy2, filename, dummy3 in plan.files:
                    _link_or_copy(os.path.join(files_dir, filename), os.path.join(staging, "wheelhouse", filename))
                for name in os.listdir(uv_dirs[plan.target.id]):
                    if name != _SUMS:
                        _link_or_copy(os.path.join(uv_dirs[plan.target.id], name), os.path.join(staging, "bin", name))
                _write_text(os.path.join(staging, "requirements.txt"), self._requirements(plan, lock_sha256))
                _write_text(os.path.join(staging, "build-constraints.txt"), self._build_constraints(plan, lock_sha256))
                _write_text(os.path.join(staging, "manifest.json"),
                            json.dumps(self._target_manifest(plan, lock_sha256, version, uv_dirs[plan.target.id]),
                                       indent=2, sort_keys=True) + "\n")
                _replace_directory(staging, os.path.join(targets_dir, plan.target.id))
            finally:
                shutil.rmtree(staging, ignore_errors=True)

        if self.options.prune:
            for name in os.listdir(files_dir):
                if name not in needed and not name.startswith("."):
                    os.unlink(os.path.join(files_dir, name))
                    changed = True
        changed |= self._write_manifest(plans, needed, lock_sha256, version)
        return changed

    def _write_manifest(self, plans: dict, needed: Mapping[str, str], lock_sha256: str, version: str) -> bool:
        files = {}
        for filename, sha256 in sorted(needed.items()):
            files[filename] = {"sha256": sha256, "size": os.path.getsize(self.store.path_for(sha256)),
                               "targets": sorted(p.target.id for p in plans.values()
                                                 if any(e[2] == filename for e in p.files))}
        content = {"format": MANIFEST_FORMAT, "collection_version": COLLECTION_VERSION, "lock_sha256": lock_sha256,
                   "uv_version": version, "files": files,
                   "targets": {p.target.id: {"hosts": sorted(p.hosts), "uv_wheel": p.uv_wheel.filename}
                               for p in plans.values()}}
        # The record of this run's inputs and result (for the "nothing changed" short cut) is
        # rewritten when it differs, but only the rest makes a change.
        inputs = self._inputs_record(plans, needed, version)
        path = os.path.join(self.dest, "manifest.json")
        same, created = False, None
        try:
            with open(path, encoding="utf-8") as handle:
                old = json.load(handle)
            created = old.pop("created", None)
            old_inputs = old.pop("inputs", None)
            same = old == content
            if same and old_inputs == inputs:
                return False
        except (OSError, ValueError, AttributeError):
            pass
        if inputs is not None:
            content["inputs"] = inputs
        content["created"] = created if same and created else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        _write_text(path, json.dumps(content, indent=2, sort_keys=True) + "\n")
        return not same

    def _result(self, plans: dict, changed: bool, lock_sha256: str, version: str, downloaded: int,
                reused: int, built: int) -> WheelhouseResult:
        hosts = {}
        targets = {}
        all_files: dict[str, int] = {}
        for plan in plans.values():
            sizes = []
            for dummy, dummy2, filename, sha256 in plan.files:
                path = self.store.path_for(sha256)
                size = os.path.getsize(path) if os.path.exists(path) else 0
                sizes.append(size)
                all_files[filename] = size
            targets[plan.target.id] = {
                "hosts": sorted(plan.hosts), "files": len(plan.files), "bytes": sum(sizes), "built": plan.built,
                "host_built": len(plan.host_built),
                "packages": sorted("%s==%s" % (e[0], e[1]) for e in plan.entries + plan.editable_entries),
                "uv_wheel": plan.uv_wheel.filename if plan.uv_wheel else None,
                "path": os.path.join(self.dest, "targets", plan.target.id),
                # What the host's install file and wheelhouse will hold (also in check mode,
                # where nothing is written): airgap.uv.sync predicts from it.
                "install_file": {"requirements": self._requirements(plan, lock_sha256),
                                 "build_constraints": self._build_constraints(plan, lock_sha256),
                                 "editable": [{"name": e[0], "version": e[1], "filename": e[2], "sha256": e[3]}
                                              for e in sorted(plan.editable_entries)],
                                 "wheels": sorted(e[2] for e in plan.files)},
            }
            for host in plan.hosts:
                hosts[host] = {"target": plan.target.id, "path": targets[plan.target.id]["path"]}
        return WheelhouseResult(changed=changed, dest=self.dest, hosts=hosts, targets=targets, files=len(all_files),
                                bytes=sum(all_files.values()), downloaded=downloaded, reused=reused, built=built,
                                requests=self.store.requests_made, uv_version=version, lock_sha256=lock_sha256,
                                repaired=list(self.store.repaired))


class _WouldBuild(Exception):
    pass


class _NeedsHostBuild(Exception):
    """The controller cannot build a wheel the target installs; the message says why and what to do."""


def _minor_tuple(minor: str) -> tuple:
    return tuple(int(p) for p in minor.split(".") if p.isdigit())


@dataclass(frozen=True)
class _BuildSource:
    """What a non-wheel is built from; KEY names the cache entry of its wheels."""

    kind: str  # "tree", "sdist" or "git"
    key: str
    name: str
    version: Optional[str]
    label: str
    tree: Optional[str] = None
    sdist: Optional[Artifact] = None
    git: Optional[GitSource] = None
    subdirectory: Optional[str] = None


_BUILD_RECORD = "build.json"


def _cached_wheel(out_dir: str) -> Optional[str]:
    """The wheel in a build cache entry when it still has the sha256 recorded at build time, else None."""
    try:
        with open(os.path.join(out_dir, _BUILD_RECORD), encoding="utf-8") as handle:
            record = json.load(handle)
        path = os.path.join(out_dir, os.path.basename(str(record["wheel"])))
        if os.path.isfile(path) and file_sha256(path) == record["sha256"]:
            return path
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _pinned_file(plan: TargetPlan, lock_sha256: str, purpose: str, entries) -> str:
    """A hash-pinned requirements file: name==version --hash per entry, sorted, with a header."""
    lines = ["# Written by airgap.uv for target %s from uv.lock sha256 %s." % (plan.target.id, lock_sha256),
             "# " + purpose]
    for name, version, dummy, sha256 in sorted(entries):
        lines.append("%s==%s \\\n    --hash=sha256:%s" % (name, version, sha256))
    return "\n".join(lines) + "\n"


def _sdist_version(filename: str) -> str:
    try:
        return str(parse_sdist_filename(filename)[1])
    except InvalidSdistFilename:
        return ""


def _wheel_version(filename: str) -> str:
    parts = filename.split("-")
    return parts[1] if filename.endswith(".whl") and len(parts) >= 5 else ""


def _installable(wheel_path: str, tags: Mapping) -> bool:
    name = os.path.basename(wheel_path)
    return choose_wheel([Artifact(filename=name, url=None, path=wheel_path, sha256=None, size=None,
                                  is_wheel=True)], tags) is not None


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def _place(source: str, destination: str, sha256: str, verifier: FileVerifier) -> bool:
    """Put SOURCE (verified) at DESTINATION atomically unless a file with its content is there; True if written."""
    if os.path.isfile(destination):
        if holds(destination, sha256, verifier, source):
            if os.stat(destination).st_mode & 0o777 != 0o644:
                os.chmod(destination, 0o644)  # older caches stored files 0600
            return False
    tmp = destination + ".incoming-%d" % os.getpid()
    try:
        _link_or_copy(source, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, destination)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return True


def _replace_directory(staging: str, final: str) -> None:
    """Put the directory STAGING at FINAL; an old FINAL is moved aside first and then removed."""
    retired = None
    if os.path.exists(final):
        retired = final + ".retired-%d" % os.getpid()
        os.replace(final, retired)
    os.replace(staging, final)
    if retired:
        shutil.rmtree(retired, ignore_errors=True)


def _binaries_intact(directory: str, verifier: FileVerifier) -> bool:
    """Whether DIRECTORY holds uv (or uv.exe) and each binary its SHA256SUMS lists, with that sha256."""
    sums = _read_sums(directory)
    if "uv" not in sums and "uv.exe" not in sums:
        return False
    return all(verifier.matches(os.path.join(directory, name), digest) for name, digest in sums.items())


def _write_text(path: str, text: str) -> None:
    write_atomically(path, lambda out: out.write(text.encode("utf-8")))


# Beside the uv binaries: their sha256, written when they are unpacked.
_SUMS = "SHA256SUMS"


def _format_sums(digests: Mapping[str, str]) -> str:
    return "".join("%s  %s\n" % (digest, name) for name, digest in sorted(digests.items()))


def _read_sums(directory: str) -> dict:
    """{name: sha256} from DIRECTORY's SHA256SUMS; empty when there is none."""
    sums = {}
    try:
        with open(os.path.join(directory, _SUMS), encoding="utf-8") as handle:
            for line in handle:
                digest, sep, name = line.rstrip("\n").partition("  ")
                if sep and len(digest) == 64:
                    sums[name] = digest
    except OSError:
        pass
    return sums


def _plain(value):
    """JSON stand-in for the option values json does not know (for the inputs digest)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    return repr(value)


class _Background:
    """What runs beside the planning: uv lock --check, the uv release's wheels, the downloads."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=5, thread_name_prefix="airgap-uv")
        self.version: Optional[Future] = None
        self.lock_check: Optional[Future] = None
        self.uv_wheels: Optional[Future] = None
        self.uv_fetch: Optional[Future] = None
        self.downloads: Optional[Future] = None

    def submit(self, function: Callable, *args) -> Future:
        return self._pool.submit(function, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
