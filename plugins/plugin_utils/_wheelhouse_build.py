# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Wheelhouse build stage: what is not a wheel becomes one on the controller, or is shipped as
an sdist (with its build requirements noted) for the host to build.

Local trees (the project, workspace members, path, directory and editable dependencies) are built
from where they are, sdists after download and verification, git dependencies from a checkout of
the locked commit. Each is built once per cache key, into ``cache_dir/built/<key>/<variant>``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import Callable, Mapping, NamedTuple, Optional

try:
    from packaging.utils import InvalidSdistFilename, parse_sdist_filename
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
from ansible_collections.airgap.uv.plugins.plugin_utils._download import (
    ArtifactStore,
    DownloadError,
    FileRequest,
    file_sha256,
)
from ansible_collections.airgap.uv.plugins.plugin_utils._lock_types import Artifact, Package
from ansible_collections.airgap.uv.plugins.plugin_utils._tags import choose_wheel
from ansible_collections.airgap.uv.plugins.plugin_utils._target import Target
from ansible_collections.airgap.uv.plugins.plugin_utils._target_files import TargetPlan
from ansible_collections.airgap.uv.plugins.plugin_utils._uv_tool import UvError, run_uv
from ansible_collections.airgap.uv.plugins.plugin_utils._wheelhouse_common import WheelhouseError, write_text

BUILD_RECORD = "build.json"


class ChosenFile(NamedTuple):
    """The file a target installs for a package: from the lock (ARTIFACT, to download) or built
    on the controller (LOCAL, its path)."""

    filename: str
    sha256: str
    local: Optional[str] = None
    artifact: Optional[Artifact] = None


class NeedsHostBuild(Exception):
    """The controller cannot build a wheel the target installs; the message says why and what to do."""


@dataclass(frozen=True)
class BuildSource:
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


class SourceBuilder:
    """Builds wheels and sdists from the lock's non-wheel sources, and notes what hosts must build."""

    def __init__(self, uv: str, cache_dir: str, project_dir: str, store: ArtifactStore, offline: bool,
                 closures: ClosureResolver, say: Callable[[str], None]) -> None:
        self.uv = uv
        self.cache_dir = cache_dir
        self.project_dir = project_dir
        self.store = store
        self.closures = closures
        self.say = say
        # Git commits fetched into the cache, controller Pythons found once, tree digests computed
        # once per run, and how many builds really ran (0 on a warm run).
        self.git = GitFetcher(os.path.join(cache_dir, "git"), progress=say, offline=offline)
        self.interpreters = InterpreterFinder(uv)
        self.tree_keys: dict[str, str] = {}
        self.builds_run = 0

    def source_digest(self, directory: str) -> str:
        """Cache identity of a local source tree (memoised for the run: several targets share it)."""
        if directory not in self.tree_keys:
            self.tree_keys[directory] = tree_digest(directory)
        return self.tree_keys[directory]

    def build(self, source: BuildSource, interpreter: Optional[Interpreter] = None, dist: str = "wheel") -> str:
        """The wheel (or with DIST "sdist", the sdist) built from SOURCE by INTERPRETER, else the one uv
        picks; built once per key."""
        variant = "sdist" if dist == "sdist" else interpreter.variant if interpreter else "any"
        out_dir = os.path.join(self.cache_dir, "built", source.key, variant)
        cached = cached_wheel(out_dir)
        if cached:
            return cached
        # Check mode builds too: into the controller's cache only (never into dest), so that what
        # it predicts carries the built file's real sha256, and the real run reuses the build.
        os.makedirs(os.path.dirname(out_dir), exist_ok=True)
        work = tempfile.mkdtemp(dir=os.path.dirname(out_dir), prefix=".build-")
        try:
            out = self._run_build(source, interpreter, dist, work)
            shutil.rmtree(out_dir, ignore_errors=True)
            try:
                os.replace(out, out_dir)
            except OSError:
                pass  # a concurrent run placed its build first: use that one, as every later run will
        finally:
            shutil.rmtree(work, ignore_errors=True)
        cached = cached_wheel(out_dir)
        if not cached:
            raise BuildError("The build cache %s does not hold the wheel just built; remove it and run again."
                             % out_dir)
        return cached

    def _run_build(self, source: BuildSource, interpreter: Optional[Interpreter], dist: str, work: str) -> str:
        """`uv build` SOURCE inside WORK; the output directory, with the build record."""
        tree = self._materialize(source, os.path.join(work, "src"))
        out = os.path.join(work, "out")
        args = ["build", "--" + dist, "--quiet", "--out-dir", out]
        if interpreter is not None:
            args += ["--python", interpreter.path]
        using = " with %s" % interpreter.describe() if interpreter else ""
        self.say("building %s%s%s" % ("the sdist of " if dist == "sdist" else "", source.label, using))
        self.builds_run += 1
        try:
            # From the project directory, so its uv settings (indexes, build constraints) apply
            # to the build requirements as they would for `uv sync` there.
            run_uv(self.uv, args + [tree], cwd=self.project_dir, what="Building %s" % source.label)
        except UvError as exc:
            raise BuildError("%s could not be built into a wheel on the controller%s: %s"
                             % (source.label, using, exc)) from None
        suffix = ".whl" if dist == "wheel" else ".tar.gz"
        wheels = [name for name in os.listdir(out) if name.endswith(suffix)] if os.path.isdir(out) else []
        if len(wheels) != 1:
            raise BuildError("Building %s produced %d %ss, expected one." % (source.label, len(wheels), dist))
        check_wheel_identity(wheels[0], source.name, source.version, source.label)
        # The wheel's hash, recorded when it was built: a cached wheel that no longer matches is
        # never shipped (it is built again).
        record = {"wheel": wheels[0], "sha256": file_sha256(os.path.join(out, wheels[0])), "source": source.key,
                  "interpreter": interpreter.variant if interpreter else None,
                  "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        write_text(os.path.join(out, BUILD_RECORD), json.dumps(record, indent=2, sort_keys=True) + "\n")
        return out

    def _materialize(self, source: BuildSource, work: str) -> str:
        """The directory to build SOURCE from: the tree itself, an unpacked sdist or a git checkout."""
        if source.kind == "tree":
            return source.tree
        if source.kind == "git":
            return self.git.checkout(source.git, source.label, work)
        sdist = self.fetch_sdist(source)
        root = extract_archive(self.store.path_for(sdist.sha256), sdist.filename, work, source.label)
        return subdirectory_of(root, source.subdirectory, source.label)

    def fetch_sdist(self, source: BuildSource) -> Artifact:
        """Download and verify SOURCE's sdist into the store (nothing happens when it is there)."""
        sdist = source.sdist
        try:
            self.store.ensure([FileRequest(filename=sdist.filename, sha256=sdist.sha256, url=sdist.url,
                                           path=sdist.path, label=source.label)])
        except DownloadError as exc:
            raise WheelhouseError(str(exc)) from None
        return sdist

    def source_for(self, package: Package, is_root: bool, target: Target, plan: TargetPlan,
                   label: str) -> BuildSource:
        """What to build PACKAGE from, with its cache key; nothing is fetched here."""
        common = dict(name=package.name, version=package.version, label=label)
        if package.is_local_tree or is_root:
            tree = package.local_path or os.path.normpath(os.path.join(self.project_dir, package.source))
            if not os.path.isdir(tree):
                raise WheelhouseError("%s: its source directory %s does not exist; restore it or re-run "
                                      "'uv lock'." % (label, tree))
            return BuildSource(kind="tree", key=build_key("tree", self.source_digest(tree)), tree=tree, **common)
        if package.source_kind == "git":
            git = parse_git_source(package.source, package.subdirectory)
            return BuildSource(kind="git", key=git.cache_key, git=git, subdirectory=git.subdirectory, **common)
        sdist = package.sdist
        if sdist is not None:
            if not sdist.sha256:
                raise WheelhouseError("%s: uv.lock records no sha256 for %s; hashes are required for an offline "
                                      "install. Re-lock with a registry that serves hashes." % (label, sdist.filename))
            return BuildSource(kind="sdist", key=build_key("sdist", sdist.sha256, package.subdirectory),
                               sdist=sdist, subdirectory=package.subdirectory, **common)
        offered = ", ".join(w.filename for w in package.wheels) or "none"
        raise WheelhouseError("%s has no wheel for target %s (hosts %s) and no sdist to build from (wheels in "
                              "uv.lock: %s). Pin a version that publishes a wheel for it, limit the dependency with "
                              "a marker (for example \"; sys_platform == 'win32'\") if the host does not need it, or "
                              "add the host's platform to tool.uv.required-environments and re-lock."
                              % (label, target.id, ", ".join(plan.hosts), offered))

    def wheel_for_target(self, source: BuildSource, target: Target, tags: Mapping, plan: TargetPlan) -> str:
        """A built wheel TARGET can install: uv's own choice of interpreter when the result is pure,
        else a controller Python of the target's kind on a matching platform."""
        first_error = None
        try:
            wheel = self.build(source)
        except BuildError as exc:
            # Old sdists may build only with an older Python: the target's kind may still succeed.
            first_error, wheel = exc, None
        if wheel is not None and wheel_is_pure(os.path.basename(wheel)) and installable(wheel, tags):
            return wheel
        platform_specific = wheel is None or not wheel_is_pure(os.path.basename(wheel))
        interpreter, why = self.interpreters.for_target(target, platform_specific)
        if interpreter is None and wheel is None:
            interpreter, dummy = self.interpreters.for_target(target, False)
        if interpreter is None:
            if wheel is None:
                raise first_error
            raise NeedsHostBuild(cannot_build_message(source, os.path.basename(wheel), target, plan, why))
        try:
            built = self.build(source, interpreter)
        except BuildError as exc:
            if first_error is not None:
                raise WheelhouseError("%s\nRetried with %s: %s" % (first_error, interpreter.describe(), exc)) from None
            raise
        name = os.path.basename(built)
        if not wheel_is_pure(name):
            why = platform_mismatch(interpreter, target)
            if why:
                raise NeedsHostBuild(cannot_build_message(source, name, target, plan, why))
        if not installable(built, tags):
            raise NeedsHostBuild(cannot_build_message(
                source, name, target, plan, "%s built %s, whose tags the target does not accept"
                % (interpreter.describe(), name)))
        return built

    def ship_source(self, source: BuildSource, target: Target, plan: TargetPlan, why: str) -> ChosenFile:
        """Ship SOURCE as an sdist for the host to build, and note its build requirements for TARGET."""
        reason = why.split("\n")[0][:200]
        self.say("%s: shipping the sdist to build on hosts %s (%s)" % (source.label, ", ".join(plan.hosts), reason))
        if source.kind == "sdist":
            if source.subdirectory:
                raise BuildError("%s: its sdist builds from the subdirectory %r, which a host cannot be told to "
                                 "do." % (source.label, source.subdirectory))
            sdist = self.fetch_sdist(source)
            path = self.store.path_for(sdist.sha256)
            chosen = ChosenFile(sdist.filename, sdist.sha256, artifact=sdist)
        else:
            path = self.build(source, dist="sdist")
            chosen = ChosenFile(os.path.basename(path), file_sha256(path), local=path)
        self._note_build_requirements(path, chosen.filename, chosen.sha256, source.label, "wheel", plan)
        return chosen

    def ship_editable(self, package: Package, is_root: bool, target: Target, plan: TargetPlan) -> ChosenFile:
        """The sdist of a local tree to install editable on the host, noting its editable build
        requirements (the backend's PEP 660 hook, e.g. hatchling's `editables`) for TARGET."""
        label = ("%s %s" % (package.name, package.version or "")).strip()
        try:
            source = self.source_for(package, is_root, target, plan, label)
            path = self.build(source, dist="sdist")
            filename, sha256 = os.path.basename(path), file_sha256(path)
            self._note_build_requirements(path, filename, sha256, label, "editable", plan)
        except (BuildError, ClosureError) as exc:
            raise WheelhouseError("%s cannot be shipped for an editable install: %s" % (label, exc)) from None
        return ChosenFile(filename, sha256, local=path)

    def _note_build_requirements(self, sdist_path: str, filename: str, sha256: str, label: str, hook: str,
                                 plan: TargetPlan) -> None:
        """Add what the sdist's backend needs for HOOK to the target's build requirements; the
        hook is asked inside the unpacked sdist, exactly what the host will build from."""
        work = tempfile.mkdtemp(prefix="airgap-uv-sdist-")
        try:
            tree = extract_archive(sdist_path, filename, work, label)
            python = self.controller_python(plan.target, exact=True)
            requires = self.closures.build_requirements(tree, sha256, hook, label,
                                                        python=python.path if python else None)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        plan.build_requires.extend(r for r in requires if r not in plan.build_requires)
        plan.host_built.append(label if hook == "wheel" else "%s (%s)" % (label, hook))

    def controller_python(self, target: Target, exact: bool) -> Optional[Interpreter]:
        """A controller CPython of the target's minor version; unless EXACT, else the oldest newer one."""
        same = [i for i in self.interpreters.interpreters if i.implementation == "cpython" and not i.abiflags]
        for interpreter in same:
            if interpreter.minor == target.python_minor:
                return interpreter
        if exact:
            return None
        newer = sorted((i for i in same if minor_tuple(i.minor) > minor_tuple(target.python_minor)),
                       key=lambda i: minor_tuple(i.minor))
        return newer[0] if newer else None


def cannot_build_message(source: BuildSource, wheel_name: str, target: Target, plan: TargetPlan, why: str) -> str:
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


def minor_tuple(minor: str) -> tuple:
    return tuple(int(p) for p in minor.split(".") if p.isdigit())


def cached_wheel(out_dir: str) -> Optional[str]:
    """The wheel in a build cache entry when it still has the sha256 recorded at build time, else None."""
    try:
        with open(os.path.join(out_dir, BUILD_RECORD), encoding="utf-8") as handle:
            record = json.load(handle)
        path = os.path.join(out_dir, os.path.basename(str(record["wheel"])))
        if os.path.isfile(path) and file_sha256(path) == record["sha256"]:
            return path
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def sdist_version(filename: str) -> str:
    try:
        return str(parse_sdist_filename(filename)[1])
    except InvalidSdistFilename:
        return ""


def wheel_version(filename: str) -> str:
    parts = filename.split("-")
    return parts[1] if filename.endswith(".whl") and len(parts) >= 5 else ""


def installable(wheel_path: str, tags: Mapping) -> bool:
    name = os.path.basename(wheel_path)
    return choose_wheel([Artifact(filename=name, url=None, path=wheel_path, sha256=None, size=None,
                                  is_wheel=True)], tags) is not None
