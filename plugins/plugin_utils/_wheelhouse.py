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
import errno
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

from ansible_collections.airgap.uv.plugins.plugin_utils._build import (
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
from ansible_collections.airgap.uv.plugins.plugin_utils._closure import ClosureError, ClosureResolver
from ansible_collections.airgap.uv.plugins.plugin_utils._credentials import CredentialProvider
from ansible_collections.airgap.uv.plugins.plugin_utils._download import (
    ArtifactStore,
    DownloadError,
    FileRequest,
    file_sha256,
    write_atomically,
)
from ansible_collections.airgap.uv.plugins.plugin_utils._lock import (
    Artifact,
    Lock,
    LockError,
    Package,
    load_lock,
    read_toml,
)
from ansible_collections.airgap.uv.plugins.plugin_utils._lock_check import (
    LockCheckError,
    check_lock,
    marker_path,
    python_args,
)
from ansible_collections.airgap.uv.plugins.plugin_utils._os_errors import describe as describe_os_error
from ansible_collections.airgap.uv.plugins.plugin_utils._selection import (
    SelectionError,
    SelectionOptions,
    read_default_groups,
    select_packages,
)
from ansible_collections.airgap.uv.plugins.plugin_utils._tags import (
    TagError,
    choose_wheel,
    priority_map,
    target_platforms,
    target_tags,
)
from ansible_collections.airgap.uv.plugins.plugin_utils._target import Target, TargetError
from ansible_collections.airgap.uv.plugins.plugin_utils._target_files import (
    FILE_MODE,
    MANIFEST_FORMAT,
    Binary,
    PackageFile,
    TargetFiles,
    TargetPlan,
    build_constraints_text,
    plan_target_files,
    requirements_text,
    tree_matches,
)
from ansible_collections.airgap.uv.plugins.plugin_utils._uv_env import (
    UvEnvironmentError,
    check_uv_environment,
    uv_offline,
)
from ansible_collections.airgap.uv.plugins.plugin_utils._uv_tool import (
    UvBinaryStream,
    UvError,
    extract_uv_binaries,
    lock_uv_release,
    run_uv,
    uv_version,
)
from ansible_collections.airgap.uv.plugins.plugin_utils._verify import FileVerifier, holds

COLLECTION_VERSION = "0.1.0"
# Source-tree entries that never affect a built wheel; skipping them keeps the digest cheap.
_SKIP_DIRS = {".git", ".hg", ".venv", "venv", "__pycache__", "dist", "build", ".tox", ".nox",
              ".pytest_cache", ".mypy_cache", ".ruff_cache", "node_modules"}


class WheelhouseError(Exception):
    """The wheelhouse cannot be built; the message names what and how to fix it."""


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
    # The controller Python `uv lock --check` runs with (a path or a version request); None: found.
    lock_check_python: Optional[str] = None


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
        # sha256 -> built file (wheel or sdist) of this run; target id -> what its directory holds.
        self._local_files: dict[str, str] = {}
        self._described: dict[str, TargetFiles] = {}
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
        marker = marker_path(self.options.cache_dir, lock_sha256, self._project_configs())
        if os.path.exists(marker):
            return
        explicit = self.options.lock_check_python

        def found():
            return self.interpreters.interpreters

        exclude_newer = lock.options.get("exclude-newer")
        try:
            check_lock(self.uv, self.project_dir, python_args(lock.requires_python, explicit, found),
                       exclude_newer if isinstance(exclude_newer, str) else None, offline=self.offline,
                       explicit=explicit, requires_python=lock.requires_python_raw, found=found)
        except LockCheckError as exc:
            raise WheelhouseError(str(exc)) from None
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
        # Check mode builds too: into the controller's cache only (never into dest), so that what
        # it predicts carries the built file's real sha256, and the real run reuses the build.
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
        except OSError as exc:
            # Met writing the controller's cache (dest is guarded by _publish): a full disk says so.
            raise WheelhouseError("Writing the controller's cache %s failed: %s"
                                  % (self.options.cache_dir, describe_os_error(exc, self.options.cache_dir))) from None
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
        self._local_files = {}
        for target_id, plan in plans.items():
            self._position += 1  # which target an error here belongs to (see _earlier_error)
            self._plan_target(plan, selections[target_id], requests)
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
            return self._result(plans, self._would_change(plans, version), lock_sha256, version,
                                downloaded=len(missing), reused=len(requests) - len(missing), built=built_count)

        try:
            outcome = self._downloaded(background)
            for sha256, path in self._local_files.items():
                self.store.add_file(path, sha256)
        except DownloadError as exc:
            raise WheelhouseError(str(exc)) from None
        downloaded = sum(1 for state in outcome.values() if state != "reused")
        changed = self._publish(plans, version)
        result = self._result(plans, changed, lock_sha256, version, downloaded=downloaded,
                              reused=len(outcome) - downloaded, built=built_count)
        # What a run with nothing changed returns (_unchanged_result); dest/manifest.json keeps it.
        self._recorded = (dataclasses.replace(result, changed=False, downloaded=0, reused=len(outcome)),
                          sorted(requests), dict(self._local_files))
        # Rewritten when it differs, but it never ships: not a change.
        self._guarded(self.dest, self._write_manifest, plans, lock_sha256, version)
        return result

    def _plan_target(self, plan: TargetPlan, selection: list, requests: dict) -> None:
        """Decide the file TARGET installs for each selected package (building what is not a wheel),
        and its build requirements; note downloads in REQUESTS and built files in _local_files."""
        target = plan.target
        tags = self._tags_for(target)
        for item in selection:
            package = item.package
            if package.source_kind == "virtual":
                continue
            if self.options.editable and (item.is_root or package.source_kind == "editable"):
                filename, sha256, source_path = self._ship_editable(package, item.is_root, target, plan)
                self._local_files[sha256] = source_path
                plan.editable_entries.append(PackageFile(package.name, package.version or _sdist_version(filename),
                                                         filename, sha256))
                if item.is_root and plan.project is None:
                    plan.project = plan.editable_entries[-1][:2]
                continue
            filename, sha256, source_path = self._artifact_for(package, item.is_root, target, tags, plan)
            if source_path:
                self._local_files[sha256] = source_path
                plan.built += 1
            else:
                art = self._chosen[(package.name, package.version, filename)]
                requests[sha256] = FileRequest(filename=filename, sha256=sha256, url=art.url,
                                               path=art.path, label="%s %s" % (package.name, package.version))
            # A dynamic version (not in uv.lock) is the one the built wheel carries.
            plan.entries.append(PackageFile(package.name, package.version or _wheel_version(filename), filename, sha256))
            if item.is_root and plan.project is None:
                plan.project = plan.entries[-1][:2]
        self._resolve_build_closure(plan, tags, requests)

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
                                                        python=python.path if python else None)
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
            lock = self.closures.lock(plan.build_requires, target.python_minor, python.path if python else None)
            selected = select_packages(lock, target.marker_environment, SelectionOptions(), ())
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
            entry = PackageFile(package.name, package.version or "", wheel.filename, wheel.sha256)
            other = plan.conflicting_file(entry)
            if other is not None:
                raise WheelhouseError(
                    "Target %s (hosts %s): the build requirement %s %s is the file %s with sha256 %s, but %s %s "
                    "is a file of that name with sha256 %s; one wheelhouse cannot hold both. Make the project's "
                    "index settings resolve both from one index, then re-lock."
                    % (target.id, ", ".join(plan.hosts), package.name, package.version, wheel.filename,
                       wheel.sha256, other.name, other.version, other.sha256))
            self._chosen[(package.name, package.version, wheel.filename)] = wheel  # its size, for check mode
            requests.setdefault(wheel.sha256, FileRequest(filename=wheel.filename, sha256=wheel.sha256, url=wheel.url,
                                                          path=wheel.path, label="%s %s (build requirement)"
                                                          % (package.name, package.version)))
            plan.build_entries.append(entry)

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
            raise WheelhouseError("uv %s publishes no binary for target %s (hosts %s); choose another uv version "
                                  "with uv_version (role variable uv_deploy_uv_version)."
                                  % (version, target.id, ", ".join(plan.hosts)))
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

    # Options that change how a run fetches or checks, not what it publishes.
    _FETCH_ONLY_OPTIONS = ("workers", "retries", "timeout", "lock_check_python")
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
            for relative, (size, sha256, mode) in published.items():
                path = os.path.join(self.dest, relative)
                st = os.stat(path)
                if (st.st_size != size or st.st_mode & 0o7777 != mode or not sha256
                        or not self.verifier.matches(path, sha256)):
                    return None
            for path, size in record["built_files"].items():
                if os.path.getsize(path) != size:
                    return None
            result = dict(record["result"])
            result["hosts"] = {host: dict(entry, files=record["target_files"][entry["target"]])
                               for host, entry in result["hosts"].items()}
            return WheelhouseResult(changed=False, downloaded=0, requests=self.store.requests_made, **result)
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
            st = os.stat(path)
            published[relative] = [st.st_size, sha256 or file_sha256(path), st.st_mode & 0o7777]

        for filename, sha256 in needed.items():
            note("files/" + filename, sha256)
        for plan in plans.values():
            uv_dir = os.path.relpath(self._uv_dir(version, plan), self.dest).replace(os.sep, "/")
            sums = _read_sums(os.path.join(self.dest, uv_dir))
            for name in os.listdir(os.path.join(self.dest, uv_dir)):
                note(uv_dir + "/" + name, sums.get(name))
            top = os.path.join(self.dest, "targets", plan.target.id)
            wheels = {entry.filename: entry.sha256 for entry in plan.files}
            for root, dummy, files in os.walk(top):
                kind = os.path.basename(root) if root != top else None
                for name in files:
                    expected = wheels.get(name) if kind == "wheelhouse" else sums.get(name) if kind == "bin" else None
                    note(os.path.relpath(os.path.join(root, name), self.dest).replace(os.sep, "/"), expected)
        store = {sha256: os.path.getsize(self.store.path_for(sha256)) for sha256 in set(requested) | set(needed.values())}
        recorded = dataclasses.asdict(result)
        for key in ("changed", "downloaded", "requests", "repaired"):
            recorded.pop(key)
        # Each target's files once, not once per host.
        target_files = {entry["target"]: entry.pop("files") for entry in recorded["hosts"].values()}
        return {"digest": self._inputs, "trees": dict(sorted(self._tree_keys.items())), "published": published,
                "target_files": target_files,
                "store": dict(sorted(store.items())),
                "built_files": {path: os.path.getsize(path) for path in sorted(set(local_files.values()))},
                "result": recorded}

    # -- publishing ----------------------------------------------------------------------

    def _uv_dir(self, version: str, plan: TargetPlan) -> str:
        return os.path.join(self.dest, "uv", version, plan.uv_wheel.filename[:-4])

    def _size_of(self, sha256: str, filename: str) -> Optional[int]:
        """Size of the file with SHA256: a built file's, the store's (or in check mode a verified copy's
        in the store or dest), else what the lock records; None when nothing says."""
        local = self._local_files.get(sha256)
        if local:
            return os.path.getsize(local)
        store = self.store.path_for(sha256)
        if not self.check_mode:
            return os.path.getsize(store)  # everything is in the store, verified, once published
        for path in (store, os.path.join(self.dest, "files", filename)):
            if self.verifier.matches(path, sha256):
                return os.path.getsize(path)
        return next((a.size for a in self._chosen.values() if a.sha256 == sha256 and a.size), None)

    def _uv_binaries_of(self, version: str, plan: TargetPlan) -> list:
        """[Binary] of PLAN's uv wheel: from dest, the cache, or unpacked into the cache now; in check
        mode, when the controller has not fetched the wheel, named by platform with no sha256 or size."""
        wheel = plan.uv_wheel
        if self._uv_in_dest(version, wheel):
            directory = self._uv_dir(version, plan)
        elif self._uv_binaries_ready(wheel):
            directory = self._uv_binaries_dir(wheel)
        elif not self.check_mode or self.verifier.matches(self.store.path_for(wheel.sha256), wheel.sha256):
            directory = self._uv_binaries(wheel)  # the cache only, as the real run would
        else:
            names = ("uv.exe", "uvx.exe") if plan.target.os == "windows" else ("uv", "uvx")
            return [Binary(name, None, None) for name in names]
        return [Binary(name, digest, os.path.getsize(os.path.join(directory, name)))
                for name, digest in sorted(_read_sums(directory).items())]

    def _target_files(self, plan: TargetPlan, version: str) -> TargetFiles:
        """What targets/<id>/ holds once published (worked out once per run)."""
        if plan.target.id not in self._described:
            self._described[plan.target.id] = plan_target_files(plan, version, self._size_of,
                                                                self._uv_binaries_of(version, plan))
        return self._described[plan.target.id]

    def _differs_from_published(self, plan: TargetPlan, version: str) -> bool:
        """True when the target's published directory is not exactly what this plan writes."""
        return not tree_matches(os.path.join(self.dest, "targets", plan.target.id),
                                self._target_files(plan, version).described, self.verifier)

    def _would_change(self, plans: dict, version: str) -> bool:
        """Check mode: whether the real run would add, replace or remove a file that ships (a file of
        files/, a uv binary or a target directory), asking what _publish_files asks before each write."""
        files_dir = os.path.join(self.dest, "files")
        needed = _needed(plans)
        if not all(_placed(os.path.join(files_dir, name), sha256, self.verifier) for name, sha256 in needed.items()):
            return True
        if not all(self._uv_in_dest(version, plan.uv_wheel) for plan in plans.values()):
            return True
        if any(self._differs_from_published(plan, version) for plan in plans.values()):
            return True
        return self.options.prune and bool(_strays(files_dir, needed))

    def _guarded(self, directory: str, function: Callable, *args):
        """FUNCTION(*ARGS), with an OSError reported by what it is (a full disk as one)."""
        try:
            return function(*args)
        except OSError as exc:
            raise WheelhouseError("Writing the wheelhouse under %s failed: %s. The previous wheelhouse is unchanged."
                                  % (self.dest, describe_os_error(exc, directory))) from None

    def _publish(self, plans: dict, version: str) -> bool:
        """Publish every target; True when a file that ships was added, replaced or removed."""
        return self._guarded(self.dest, self._publish_files, plans, version)

    def _publish_files(self, plans: dict, version: str) -> bool:
        changed = False
        files_dir = os.path.join(self.dest, "files")
        os.makedirs(files_dir, exist_ok=True)
        needed = _needed(plans)
        for filename, sha256 in sorted(needed.items()):
            changed |= _place(self.store.path_for(sha256), os.path.join(files_dir, filename), sha256, self.verifier)
        for plan in plans.values():
            changed |= self._publish_uv(version, plan)
        targets_dir = os.path.join(self.dest, "targets")
        os.makedirs(targets_dir, exist_ok=True)
        for plan in plans.values():
            if self._differs_from_published(plan, version):
                self._publish_target(plan, version, targets_dir, files_dir)
                changed = True
        if self.options.prune:
            for name in _strays(files_dir, needed):
                os.unlink(os.path.join(files_dir, name))
                changed = True
        return changed

    def _publish_uv(self, version: str, plan: TargetPlan) -> bool:
        """Put the target's uv binaries under dest/uv/ unless they are there; True when written."""
        if self._uv_in_dest(version, plan.uv_wheel):
            return False
        directory = self._uv_dir(version, plan)
        staging = tempfile.mkdtemp(dir=self.dest, prefix=".uv-")
        os.chmod(staging, 0o755)
        try:
            # Unpacked while the packages downloaded (_fetch_uv_wheels), else now.
            unpacked = self._uv_binaries(plan.uv_wheel)
            for name in sorted(os.listdir(unpacked)):
                _link_or_copy(os.path.join(unpacked, name), os.path.join(staging, name))
            os.makedirs(os.path.dirname(directory), exist_ok=True)
            _replace_directory(staging, directory)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return True

    def _publish_target(self, plan: TargetPlan, version: str, targets_dir: str, files_dir: str) -> None:
        """Write targets/<id>/ afresh beside the old one and swap it in."""
        staging = tempfile.mkdtemp(dir=targets_dir, prefix=".%s-" % plan.target.id)
        # mkdtemp makes 0700; the tree is copied to hosts with its modes.
        os.chmod(staging, 0o755)
        uv_dir = self._uv_dir(version, plan)
        try:
            os.makedirs(os.path.join(staging, "wheelhouse"))
            os.makedirs(os.path.join(staging, "bin"))
            for entry in plan.files:
                _link_or_copy(os.path.join(files_dir, entry.filename), os.path.join(staging, "wheelhouse", entry.filename))
            for name in os.listdir(uv_dir):
                if name != _SUMS:
                    _link_or_copy(os.path.join(uv_dir, name), os.path.join(staging, "bin", name))
            for name, text in self._target_files(plan, version).texts.items():
                _write_text(os.path.join(staging, name), text)
            _replace_directory(staging, os.path.join(targets_dir, plan.target.id))
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _write_manifest(self, plans: dict, lock_sha256: str, version: str) -> None:
        """dest/manifest.json: every file, its targets and hosts, and the record of this run. It never
        ships, so rewriting it (for other hosts, another lock) is no change."""
        needed = _needed(plans)
        files = {}
        for filename, sha256 in sorted(needed.items()):
            files[filename] = {"sha256": sha256, "size": os.path.getsize(self.store.path_for(sha256)),
                               "targets": sorted(p.target.id for p in plans.values()
                                                 if any(e.filename == filename for e in p.files))}
        content = {"format": MANIFEST_FORMAT, "collection_version": COLLECTION_VERSION, "lock_sha256": lock_sha256,
                   "uv_version": version, "files": files,
                   "targets": {p.target.id: {"hosts": sorted(p.hosts), "uv_wheel": p.uv_wheel.filename}
                               for p in plans.values()}}
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
                return
        except (OSError, ValueError, AttributeError):
            pass
        if inputs is not None:
            content["inputs"] = inputs
        content["created"] = created if same and created else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        _write_text(path, json.dumps(content, indent=2, sort_keys=True) + "\n")

    def _result(self, plans: dict, changed: bool, lock_sha256: str, version: str, downloaded: int,
                reused: int, built: int) -> WheelhouseResult:
        hosts = {}
        targets = {}
        all_files: dict[str, int] = {}
        for plan in plans.values():
            described = self._target_files(plan, version)
            sizes = []
            for entry in plan.files:
                size = described.described["wheelhouse/" + entry.filename]["size"] or 0
                sizes.append(size)
                all_files[entry.filename] = size
            path = os.path.join(self.dest, "targets", plan.target.id)
            targets[plan.target.id] = {
                "hosts": sorted(plan.hosts), "files": len(plan.files), "bytes": sum(sizes), "built": plan.built,
                "host_built": len(plan.host_built),
                "packages": sorted("%s==%s" % (e.name, e.version) for e in plan.entries + plan.editable_entries),
                "uv_wheel": plan.uv_wheel.filename if plan.uv_wheel else None,
                "path": path,
                # What the host's install file and wheelhouse will hold (also in check mode,
                # where nothing is written): airgap.uv.sync predicts from it.
                "install_file": {"requirements": requirements_text(plan),
                                 "build_constraints": build_constraints_text(plan),
                                 "editable": [e._asdict() for e in sorted(plan.editable_entries)],
                                 "wheels": sorted(e.filename for e in plan.files),
                                 "project": ({"name": plan.project[0], "version": plan.project[1]}
                                             if plan.project else None)},
            }
            for host in plan.hosts:
                # files: what the host's directory holds (check mode: will hold), as airgap.uv.push
                # describes a tree; it takes it as what is pending in check mode.
                hosts[host] = {"target": plan.target.id, "path": path, "files": described.described}
        return WheelhouseResult(changed=changed, dest=self.dest, hosts=hosts, targets=targets, files=len(all_files),
                                bytes=sum(all_files.values()), downloaded=downloaded, reused=reused, built=built,
                                requests=self.store.requests_made, uv_version=version, lock_sha256=lock_sha256,
                                repaired=list(self.store.repaired))


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
    """A hard link of SOURCE at DESTINATION, else (another file system, no links) a copy; an
    existing DESTINATION is an error, never a copy onto itself."""
    try:
        os.link(source, destination)
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            raise
        try:
            shutil.copy2(source, destination)
        except OSError as failed:
            if failed.errno is None:
                raise
            # Named by where it was written (a full disk is the destination's).
            raise OSError(failed.errno, failed.strerror, destination) from None


def _needed(plans: Mapping[str, TargetPlan]) -> dict:
    """{file name: sha256} of every file of files/ some target needs."""
    return {entry.filename: entry.sha256 for plan in plans.values() for entry in plan.files}


def _strays(files_dir: str, needed: Mapping[str, str]) -> list:
    """Files of files/ no target needs (pruned)."""
    try:
        return sorted(n for n in os.listdir(files_dir) if n not in needed and not n.startswith("."))
    except OSError:
        return []


def _placed(path: str, sha256: str, verifier: FileVerifier, origin: Optional[str] = None) -> bool:
    """Whether PATH is a file with the content SHA256 and the published mode."""
    return (os.path.isfile(path) and holds(path, sha256, verifier, origin)
            and os.stat(path).st_mode & 0o7777 == FILE_MODE)


def _place(source: str, destination: str, sha256: str, verifier: FileVerifier) -> bool:
    """Put SOURCE (verified) at DESTINATION atomically unless a file with its content and mode is
    there; True if written (a mode fixed counts: it ships)."""
    if _placed(destination, sha256, verifier, source):
        return False
    if os.path.isfile(destination) and holds(destination, sha256, verifier, source):
        os.chmod(destination, FILE_MODE)  # older caches stored files 0600
        return True
    tmp = destination + ".incoming-%d" % os.getpid()
    try:
        _link_or_copy(source, tmp)
        os.chmod(tmp, FILE_MODE)
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
