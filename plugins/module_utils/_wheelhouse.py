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

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional

try:
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
except ImportError:  # reported by the action plugin through _lock's HAS_PACKAGING check
    pass

from ansible_collections.airgap.uv.plugins.module_utils._credentials import CredentialProvider
from ansible_collections.airgap.uv.plugins.module_utils._download import (
    ArtifactStore,
    DownloadError,
    FileRequest,
    file_sha256,
)
from ansible_collections.airgap.uv.plugins.module_utils._lock import Artifact, Lock, LockError, Package, load_lock
from ansible_collections.airgap.uv.plugins.module_utils._selection import (
    SelectionError,
    SelectionOptions,
    load_toml,
    read_default_groups,
    select_packages,
)
from ansible_collections.airgap.uv.plugins.module_utils._tags import TagError, choose_wheel, target_platforms, target_tags
from ansible_collections.airgap.uv.plugins.module_utils._target import Target, TargetError
from ansible_collections.airgap.uv.plugins.module_utils._uv_tool import (
    UvError,
    extract_uv_binaries,
    lock_uv_release,
    run_uv,
    uv_version,
)

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


class WheelhouseBuilder:
    """Plans and publishes a wheelhouse; ``check_mode`` plans and reports without writing."""

    def __init__(self, options: WheelhouseOptions, uv: str, check_mode: bool = False,
                 progress: Optional[Callable[[str], None]] = None) -> None:
        self.options = options
        self.uv = uv
        self.check_mode = check_mode
        self._say = progress or (lambda message: None)
        self.store = ArtifactStore(os.path.join(options.cache_dir, "store"), workers=options.workers,
                                   retries=options.retries, timeout=options.timeout, progress=self._say,
                                   credentials=CredentialProvider(project_dir=os.path.abspath(options.project)))
        self.project_dir = os.path.abspath(options.project)
        self.dest = os.path.abspath(options.dest)
        # (name, version, filename) -> the lock's artifact, for the download request
        self._chosen: dict[tuple, Artifact] = {}
        self._uv_lock: Optional[Lock] = None

    # -- planning -----------------------------------------------------------------------

    def _load_lock(self) -> Lock:
        pyproject = os.path.join(self.project_dir, "pyproject.toml")
        if not os.path.isfile(pyproject):
            raise WheelhouseError("%s has no pyproject.toml; point 'project' at a uv project directory." % self.project_dir)
        lock_path = os.path.join(self.project_dir, "uv.lock")
        if not os.path.isfile(lock_path):
            raise WheelhouseError("%s is missing; run 'uv lock' in %s and commit uv.lock." % (lock_path, self.project_dir))
        try:
            return load_lock(lock_path)
        except LockError as exc:
            raise WheelhouseError(str(exc)) from None

    def _check_lock_current(self, lock_sha256: str) -> None:
        """``uv lock --check`` once per (pyproject files, uv.lock) state; cached because it asks the index."""
        digest = hashlib.sha256(lock_sha256.encode())
        for root, dirs, files in os.walk(self.project_dir):
            dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
            if "pyproject.toml" in files:
                path = os.path.join(root, "pyproject.toml")
                digest.update(path.encode() + b"\0" + file_sha256(path).encode())
        marker = os.path.join(self.options.cache_dir, "lock-checked", digest.hexdigest())
        if os.path.exists(marker):
            return
        try:
            run_uv(self.uv, ["lock", "--check", "--quiet", "--directory", self.project_dir], what="uv lock --check")
        except UvError as exc:
            if "needs to be updated" in str(exc):
                raise WheelhouseError("uv.lock in %s does not match pyproject.toml (uv lock --check); run 'uv lock' "
                                      "there and commit the result." % self.project_dir) from None
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
                data = load_toml(path)
            except SelectionError as exc:
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

    def _tags_for(self, target: Target) -> list:
        try:
            platforms = target_platforms(target.os, target.arch, target.libc_family, target.libc_version,
                                         target.macos_version)
            return target_tags(target.python_version, target.implementation, platforms, target.abiflags)
        except TagError as exc:
            raise WheelhouseError("Target %s: %s" % (target.id, exc)) from None

    # -- building non-wheels --------------------------------------------------------------

    def _source_digest(self, directory: str) -> str:
        digest = hashlib.sha256()
        for root, dirs, files in os.walk(directory):
            dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.endswith(".egg-info"))
            for name in sorted(files):
                path = os.path.join(root, name)
                if os.path.islink(path) or not os.path.isfile(path):
                    continue
                digest.update(os.path.relpath(path, directory).encode() + b"\0")
                digest.update(file_sha256(path).encode())
        return digest.hexdigest()

    def _build_wheel(self, source: str, key: str, label: str, sdist_name: Optional[str] = None) -> str:
        """Build SOURCE (a directory, or a stored sdist named SDIST_NAME) into a wheel once per KEY."""
        out_dir = os.path.join(self.options.cache_dir, "built", key)
        if os.path.isdir(out_dir):
            wheels = [name for name in os.listdir(out_dir) if name.endswith(".whl")]
            if len(wheels) == 1:
                return os.path.join(out_dir, wheels[0])
        if self.check_mode:
            raise _WouldBuild(label)
        if sdist_name:
            source = self._named_copy(source, sdist_name)
        os.makedirs(os.path.dirname(out_dir), exist_ok=True)
        work = tempfile.mkdtemp(dir=os.path.dirname(out_dir), prefix=".build-")
        try:
            self._say("building %s" % label)
            try:
                run_uv(self.uv, ["build", "--wheel", "--quiet", "--out-dir", work, source], what="Building %s" % label)
            except UvError as exc:
                raise WheelhouseError("%s could not be built into a wheel on the controller: %s" % (label, exc)) from None
            wheels = [name for name in os.listdir(work) if name.endswith(".whl")]
            if len(wheels) != 1:
                raise WheelhouseError("Building %s produced %d wheels, expected one." % (label, len(wheels)))
            shutil.rmtree(out_dir, ignore_errors=True)
            os.replace(work, out_dir)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return os.path.join(out_dir, wheels[0])

    # -- main ----------------------------------------------------------------------------

    def run(self) -> WheelhouseResult:
        lock = self._load_lock()
        lock_sha256 = file_sha256(lock.path)
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
            self._check_lock_current(lock_sha256)
        version = self.options.uv_version or uv_version(self.uv)
        self._check_required_version(version)

        # Which file each target needs; sha256 -> (filename, request or local path)
        requests: dict[str, FileRequest] = {}
        local_files: dict[str, str] = {}
        would_build: list[str] = []
        for target_id, plan in plans.items():
            target = plan.target
            tags = self._tags_for(target)
            for item in selections[target_id]:
                package = item.package
                if package.source_kind == "virtual":
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
                plan.entries.append((package.name, package.version or "", filename, sha256))
            plan.uv_wheel = self._uv_wheel_for(version, target, plan)
            requests.setdefault(plan.uv_wheel.sha256, FileRequest(
                filename=plan.uv_wheel.filename, sha256=plan.uv_wheel.sha256, url=plan.uv_wheel.url,
                path=plan.uv_wheel.path, label="uv %s" % version))
        built_count = sum(plan.built for plan in plans.values())

        if self.check_mode:
            missing = [r for r in requests.values() if not self.store.has(r.sha256)]
            changed = bool(missing or would_build) or self._differs_from_published(plans, lock_sha256, version)
            return self._result(plans, changed, lock_sha256, version,
                                downloaded=len(missing), reused=len(requests) - len(missing), built=built_count)

        try:
            outcome = self.store.ensure(requests.values())
            for sha256, path in local_files.items():
                self.store.add_file(path, sha256)
        except DownloadError as exc:
            raise WheelhouseError(str(exc)) from None
        downloaded = sum(1 for state in outcome.values() if state != "reused")
        reused = sum(1 for state in outcome.values() if state == "reused")
        changed = self._publish(plans, lock_sha256, version)
        return self._result(plans, changed, lock_sha256, version, downloaded=downloaded, reused=reused,
                            built=built_count)

    def _artifact_for(self, package: Package, is_root: bool, target: Target, tags: list,
                      plan: TargetPlan) -> tuple[str, str, Optional[str]]:
        """(filename, sha256, local path of a built wheel or None) of what TARGET installs for PACKAGE."""
        label = "%s %s" % (package.name, package.version or "")
        if not is_root and package.wheels:
            wheel = choose_wheel(package.wheels, tags)
            if wheel is not None:
                if not wheel.sha256:
                    raise WheelhouseError("%s: uv.lock records no sha256 for %s; hashes are required for an "
                                          "offline install. Re-lock with a registry that serves hashes."
                                          % (label, wheel.filename))
                self._chosen[(package.name, package.version, wheel.filename)] = wheel
                return wheel.filename, wheel.sha256, None
        # Not a wheel: build it here. Directories (the project, workspace members, path
        # dependencies) are built from source; an sdist is fetched, verified and built.
        if package.is_local_tree or is_root:
            source = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(self._lock_path())), package.source))
            key = "tree-" + self._source_digest(source)
        elif package.sdist is not None and package.sdist.sha256:
            sdist = package.sdist
            key = "sdist-" + sdist.sha256
            if self.check_mode:
                if not self.store.has(sdist.sha256):
                    raise _WouldBuild(label)
            else:
                try:
                    self.store.ensure([FileRequest(filename=sdist.filename, sha256=sdist.sha256, url=sdist.url,
                                                   path=sdist.path, label=label)])
                except DownloadError as exc:
                    raise WheelhouseError(str(exc)) from None
            source = self.store.path_for(sdist.sha256)
        else:
            raise WheelhouseError("%s has no wheel for target %s (hosts %s) and no sdist to build from. "
                                  "Pin a version that publishes a wheel for it, limit the dependency with a "
                                  "marker (for example \"; sys_platform == 'win32'\") if the host does not need "
                                  "it, or add the host's platform to tool.uv.required-environments and re-lock."
                                  % (label, target.id, ", ".join(plan.hosts)))
        wheel_path = self._build_wheel(source, key, label,
                                       sdist_name=None if key.startswith("tree-") else package.sdist.filename)
        wheel_name = os.path.basename(wheel_path)
        if choose_wheel([Artifact(filename=wheel_name, url=None, path=wheel_path, sha256=None, size=None,
                                  is_wheel=True)], tags) is None:
            raise WheelhouseError("%s builds into %s, which target %s (hosts %s) cannot install: it is "
                                  "platform-specific and the controller cannot build for that target. Build "
                                  "the wheel on a machine like the target and add it to the index, or pin a "
                                  "version with a compatible wheel."
                                  % (label, wheel_name, target.id, ", ".join(plan.hosts)))
        return wheel_name, file_sha256(wheel_path), wheel_path

    def _lock_path(self) -> str:
        return os.path.join(self.project_dir, "uv.lock")

    def _named_copy(self, stored: str, filename: str) -> str:
        """uv build needs the sdist under its real name; stage it next to the store."""
        staging = os.path.join(self.options.cache_dir, "sdists")
        os.makedirs(staging, exist_ok=True)
        path = os.path.join(staging, filename)
        if not os.path.exists(path):
            _link_or_copy(stored, path)
        return path

    def _uv_wheel_for(self, version: str, target: Target, plan: TargetPlan) -> Artifact:
        if self._uv_lock is None:
            try:
                self._uv_lock = load_lock(lock_uv_release(self.uv, version, self.options.cache_dir))
            except (UvError, LockError) as exc:
                raise WheelhouseError("Cannot learn the uv %s wheels from the index: %s" % (version, exc)) from None
        package = next((p for p in self._uv_lock.packages if p.name == "uv"), None)
        platforms = target_platforms(target.os, target.arch, target.libc_family, target.libc_version,
                                     target.macos_version)
        # uv wheels are tagged py3-none-<platform>: any Python version selects them.
        wheel = choose_wheel(package.wheels if package else (), target_tags("3.8", "cpython", platforms))
        if wheel is None or not wheel.sha256:
            raise WheelhouseError("uv %s publishes no binary for target %s (hosts %s); choose another uv "
                                  "version with airgap_uv_version." % (version, target.id, ", ".join(plan.hosts)))
        return wheel

    # -- publishing ----------------------------------------------------------------------

    def _target_manifest(self, plan: TargetPlan, lock_sha256: str, version: str) -> dict:
        files = []
        for name, pkg_version, filename, sha256 in sorted(plan.entries, key=lambda e: e[2]):
            files.append({"filename": filename, "sha256": sha256, "size": os.path.getsize(self.store.path_for(sha256)),
                          "name": name, "version": pkg_version})
        return {"format": MANIFEST_FORMAT, "target": plan.target.id, "files": files,
                "lock_sha256": lock_sha256, "uv_version": version, "uv_wheel": plan.uv_wheel.filename,
                "uv_wheel_sha256": plan.uv_wheel.sha256}

    @staticmethod
    def _requirements(plan: TargetPlan, lock_sha256: str) -> str:
        lines = ["# Written by airgap.uv for target %s from uv.lock sha256 %s." % (plan.target.id, lock_sha256),
                 "# Install with: uv pip sync --offline --no-index --find-links wheelhouse --require-hashes requirements.txt"]
        for name, version, dummy, sha256 in sorted(plan.entries):
            lines.append("%s==%s \\\n    --hash=sha256:%s" % (name, version, sha256))
        return "\n".join(lines) + "\n"

    def _differs_from_published(self, plans: dict, lock_sha256: str, version: str) -> bool:
        for plan in plans.values():
            directory = os.path.join(self.dest, "targets", plan.target.id)
            try:
                with open(os.path.join(directory, "requirements.txt"), encoding="utf-8") as handle:
                    if handle.read() != self._requirements(plan, lock_sha256):
                        return True
                with open(os.path.join(directory, "manifest.json"), encoding="utf-8") as handle:
                    published = json.load(handle)
            except (OSError, ValueError):
                return True
            if published.get("uv_wheel_sha256") != (plan.uv_wheel.sha256 if plan.uv_wheel else None):
                return True
            if [f["sha256"] for f in published.get("files", [])] != [e[3] for e in sorted(plan.entries, key=lambda e: e[2])]:
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
            for dummy, dummy2, filename, sha256 in plan.entries:
                needed[filename] = sha256
        for filename, sha256 in sorted(needed.items()):
            changed |= _place(self.store.path_for(sha256), os.path.join(files_dir, filename), sha256)

        uv_dirs = {}
        for plan in plans.values():
            wheel = plan.uv_wheel
            directory = os.path.join(self.dest, "uv", version, wheel.filename[:-4])
            if not os.path.isfile(os.path.join(directory, "uv")) and not os.path.isfile(os.path.join(directory, "uv.exe")):
                staging = tempfile.mkdtemp(dir=self.dest, prefix=".uv-")
                os.chmod(staging, 0o755)
                try:
                    extract_uv_binaries(self.store.path_for(wheel.sha256), staging)
                    os.makedirs(os.path.dirname(directory), exist_ok=True)
                    os.replace(staging, directory)
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
                for dummy, dummy2, filename, dummy3 in plan.entries:
                    _link_or_copy(os.path.join(files_dir, filename), os.path.join(staging, "wheelhouse", filename))
                for name in os.listdir(uv_dirs[plan.target.id]):
                    _link_or_copy(os.path.join(uv_dirs[plan.target.id], name), os.path.join(staging, "bin", name))
                _write_text(os.path.join(staging, "requirements.txt"), self._requirements(plan, lock_sha256))
                _write_text(os.path.join(staging, "manifest.json"),
                            json.dumps(self._target_manifest(plan, lock_sha256, version), indent=2, sort_keys=True) + "\n")
                final = os.path.join(targets_dir, plan.target.id)
                retired = None
                if os.path.exists(final):
                    retired = final + ".retired-%d" % os.getpid()
                    os.replace(final, retired)
                os.replace(staging, final)
                if retired:
                    shutil.rmtree(retired, ignore_errors=True)
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
                                                 if any(e[2] == filename for e in p.entries))}
        content = {"format": MANIFEST_FORMAT, "collection_version": COLLECTION_VERSION, "lock_sha256": lock_sha256,
                   "uv_version": version, "files": files,
                   "targets": {p.target.id: {"hosts": sorted(p.hosts), "uv_wheel": p.uv_wheel.filename}
                               for p in plans.values()}}
        path = os.path.join(self.dest, "manifest.json")
        try:
            with open(path, encoding="utf-8") as handle:
                old = json.load(handle)
            old.pop("created", None)
            if old == content:
                return False
        except (OSError, ValueError):
            pass
        content["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        _write_text(path, json.dumps(content, indent=2, sort_keys=True) + "\n")
        return True

    def _result(self, plans: dict, changed: bool, lock_sha256: str, version: str, downloaded: int,
                reused: int, built: int) -> WheelhouseResult:
        hosts = {}
        targets = {}
        all_files: dict[str, int] = {}
        for plan in plans.values():
            sizes = []
            for dummy, dummy2, filename, sha256 in plan.entries:
                path = self.store.path_for(sha256)
                size = os.path.getsize(path) if os.path.exists(path) else 0
                sizes.append(size)
                all_files[filename] = size
            targets[plan.target.id] = {
                "hosts": sorted(plan.hosts), "files": len(plan.entries), "bytes": sum(sizes), "built": plan.built,
                "packages": sorted("%s==%s" % (e[0], e[1]) for e in plan.entries),
                "uv_wheel": plan.uv_wheel.filename if plan.uv_wheel else None,
                "path": os.path.join(self.dest, "targets", plan.target.id),
                # What the host's install file and wheelhouse will hold (also in check mode,
                # where nothing is written): airgap.uv.sync predicts from it.
                "install_file": {"requirements": self._requirements(plan, lock_sha256),
                                 "wheels": sorted(e[2] for e in plan.entries)},
            }
            for host in plan.hosts:
                hosts[host] = {"target": plan.target.id, "path": targets[plan.target.id]["path"]}
        return WheelhouseResult(changed=changed, dest=self.dest, hosts=hosts, targets=targets, files=len(all_files),
                                bytes=sum(all_files.values()), downloaded=downloaded, reused=reused, built=built,
                                requests=self.store.requests_made, uv_version=version, lock_sha256=lock_sha256)


class _WouldBuild(Exception):
    pass


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def _place(source: str, destination: str, sha256: str) -> bool:
    """Put SOURCE at DESTINATION atomically unless an identical file is there; True if written."""
    if os.path.isfile(destination):
        try:
            if os.path.samefile(source, destination):
                return False
        except OSError:
            pass
        if file_sha256(destination) == sha256:
            return False
    tmp = destination + ".incoming-%d" % os.getpid()
    try:
        _link_or_copy(source, tmp)
        os.replace(tmp, destination)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return True


def _write_text(path: str, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".incoming-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
