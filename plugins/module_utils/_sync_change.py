# -*- coding: utf-8 -*-
# Copyright (c) airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What only a run of ``airgap.uv.sync`` that changes something needs.

Building a new release (``uv venv``, ``uv pip sync``, editable sdists, the smoke check,
ownership, flushing it to disk), switching to a kept one, rolling back, and the check-mode
prediction across a pending copy.

Runs on the TARGET: standard library only (Python 3.9+). It is a module of its own so
that a run with nothing to do never loads it: Ansible ships module_utils as source and
the host compiles every one a module imports, on every run (bench/sync_noop.py).
``SyncRunner`` imports it inside the methods that change something; Ansible still ships
it, because it packages every module_util named anywhere in the module's code.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tarfile
import time
import typing as t

from ansible_collections.airgap.uv.plugins.module_utils._host_safety import chmod_dir, chown_tree, write_file
from ansible_collections.airgap.uv.plugins.module_utils._sync_inputs import prune_wheelhouse, wheelhouse_files
from ansible_collections.airgap.uv.plugins.module_utils._sync_durability import fsync_dir, make_durable
from ansible_collections.airgap.uv.plugins.module_utils._sync_error import SyncError
from ansible_collections.airgap.uv.plugins.module_utils._sync_manifest import ManifestVerifier
from ansible_collections.airgap.uv.plugins.module_utils._sync_packages import (
    PackageDiff,
    Plan,
    Requirement,
    canonical_name,
    compare_versions,
    parse_requirements,
)
from ansible_collections.airgap.uv.plugins.module_utils._sync_params import SyncParams
from ansible_collections.airgap.uv.plugins.module_utils._sync_store import (
    Release,
    ReleaseStore,
    StateFile,
    release_runs,
    resolve_ids,
    whoami,
)
from ansible_collections.airgap.uv.plugins.module_utils._sync_uv import (
    CommandResult,
    Uv,
    run_command,
    stderr_tail,
    uv_environment,
    uv_failure,
)


class RunSteps(t.Protocol):
    """What the change needs of the run that found it (``SyncRunner`` is the one implementation).

    The whole interface between deciding (``_sync``) and changing (this module): the run's
    inputs, the few results the change fills in, and the steps it reuses. Nothing here imports
    ``_sync``, so the two modules have no cycle.
    """

    p: SyncParams
    store: ReleaseStore
    uv: Uv
    check_mode: bool
    state: StateFile
    editables: t.Dict[str, Requirement]
    editable_files: t.Dict[str, str]
    manifest_document: t.Optional[t.Dict[str, t.Any]]
    # Filled in by the change: the project a pending bundle names, what pruning removed, and
    # whether check mode predicted without the host's uv.
    project: t.Optional[t.Dict[str, t.Any]]
    pruned_files: t.Tuple[t.List[str], int]
    uv_usable: bool

    def warn(self, msg: str) -> None:
        ...

    def cache_ready(self) -> bool:
        ...

    def scratch_dir(self, prefix: str, for_uv: bool = False) -> str:
        ...

    def set_editables(self, entries: t.Any, where: str) -> None:
        ...

    def pip_sync(self, python: str, dry_run: bool, what: str, mode: t.Optional[str] = None,
                 requirements: t.Optional[str] = None) -> t.Tuple[CommandResult, str]:
        ...

    def plan_for(self, python: str, after: t.Mapping[str, str]) -> Plan:
        ...

    def fix_attributes(self, release: t.Optional[Release], apply: bool) -> t.List[str]:
        ...

    def note_switch(self, release: Release, previous: t.Optional[Release]) -> None:
        ...

    def result(self, changed: bool, before: t.Mapping[str, str], after: t.Mapping[str, str],
               reinstalled: t.Iterable[str], release: t.Optional[Release], previous: t.Optional[Release],
               network_used: str, reason: t.Optional[str],
               pruned: t.Optional[t.List[str]] = None) -> t.Dict[str, t.Any]:
        ...


# ---------------------------------------------------------------------------
# Writing releases
# ---------------------------------------------------------------------------


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class ReleaseWriter:
    """The writing side of a ``ReleaseStore``: new releases, their metadata, the switch, adoption."""

    def __init__(self, store: ReleaseStore) -> None:
        self.store = store

    def new_release(self, suffix: str = "") -> Release:
        now = time.time()
        release_id = "%s%06dZ-%s%s" % (
            time.strftime("%Y%m%dT%H%M%S.", time.gmtime(now)),
            int((now % 1) * 1e6),
            os.urandom(3).hex(),
            suffix,
        )
        rel = Release(os.path.join(self.store.releases_dir, release_id))
        os.mkdir(rel.path, 0o755)
        return rel

    @staticmethod
    def write_meta(release: Release, meta: t.Dict[str, t.Any], uid: int = -1, gid: int = -1) -> None:
        """Write RELEASE's metadata durably: the file, its owner, and its entry in the release directory.

        The release may belong to its owner: nothing planted there is written through.
        """
        data = json.dumps(meta, indent=1, sort_keys=True).encode("utf-8")
        try:
            write_file(release.path, os.path.basename(release.meta_path), data, 0o644, uid, gid, durable=True)
        except OSError as exc:
            raise SyncError("Cannot flush %s to disk: %s; the release in service was left alone"
                            % (release.meta_path, exc.strerror))
        release.remember_meta(meta)

    def _link_target(self, release: Release) -> str:
        store = self.store
        if os.path.dirname(store.releases_dir) == os.path.dirname(store.venv):
            return os.path.join(os.path.basename(store.releases_dir), release.id)
        return release.path

    def activate(self, release: Release) -> None:
        """Point ``venv`` at ``release`` with one atomic rename."""
        venv = self.store.venv
        parent = os.path.dirname(venv)
        tmp = os.path.join(parent, ".%s.tmp-%d-%s" % (os.path.basename(venv), os.getpid(), os.urandom(3).hex()))
        os.symlink(self._link_target(release), tmp)
        try:
            os.replace(tmp, venv)
        except OSError:
            os.unlink(tmp)
            raise
        fsync_dir(parent)

    def adopt(self) -> Release:
        """Move a real directory at ``venv`` into the releases dir and link it."""
        venv = self.store.venv
        now = time.time()
        release = Release(
            os.path.join(
                self.store.releases_dir,
                "%s%06dZ-adopted" % (time.strftime("%Y%m%dT%H%M%S.", time.gmtime(now)), int((now % 1) * 1e6)),
            )
        )
        try:
            os.rename(venv, release.path)
        except OSError as exc:
            hint = " (releases_dir must be on the same filesystem as venv)" if exc.errno == errno.EXDEV else ""
            raise SyncError("Cannot move %s to %s: %s%s" % (venv, release.path, exc.strerror, hint))
        self.write_meta(release, {"format": 1, "id": release.id, "adopted": True, "created": _iso(now), "packages": {}})
        fsync_dir(self.store.releases_dir)
        self.activate(release)
        return release


# ---------------------------------------------------------------------------
# Contents of a new release
# ---------------------------------------------------------------------------


def extract_sdist(archive: str, destination: str) -> str:
    """Unpack the sdist ARCHIVE (.tar.gz) under DESTINATION; return its project directory.

    Every member must stay inside its single top-level directory: no absolute names, no
    ``..``, no links, devices or FIFOs.
    """
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            tops = {m.name.split("/", 1)[0] for m in members}
            if len(tops) != 1:
                raise SyncError("sdist %s must hold one top-level directory, not %s" % (archive, sorted(tops)[:5]))
            for member in members:
                parts = member.name.split("/")
                if member.name.startswith("/") or ".." in parts or not (member.isfile() or member.isdir()):
                    raise SyncError("sdist %s holds an unsafe member %r; rebuild it on the controller" % (archive, member.name))
            os.makedirs(destination, exist_ok=True)
            for member in members:
                target = os.path.join(destination, *member.name.split("/"))
                if member.isdir():
                    os.makedirs(target, exist_ok=True)
                    continue
                os.makedirs(os.path.dirname(target), exist_ok=True)
                source = tar.extractfile(member)
                with open(target, "wb") as out:
                    shutil.copyfileobj(t.cast(t.IO[bytes], source), out)
                os.chmod(target, 0o755 if member.mode & 0o111 else 0o644)
    except (OSError, tarfile.TarError) as exc:
        raise SyncError("Cannot unpack the sdist %s: %s; copy the bundle to the host again" % (archive, exc))
    return os.path.join(destination, tops.pop())


def parse_pip_list(stdout: str) -> t.Dict[str, str]:
    try:
        doc = json.loads(stdout or "[]")
        return {canonical_name(str(item["name"])): str(item["version"]) for item in doc}
    except (ValueError, TypeError, KeyError) as exc:
        raise SyncError("Cannot parse the output of 'uv pip list --format json': %s" % exc, stdout=stdout[-2000:])


def _pyvenv_version(path: str) -> t.Optional[str]:
    try:
        with open(os.path.join(path, "pyvenv.cfg"), "r", encoding="utf-8") as f:
            for line in f:
                key, _sep, value = line.partition("=")
                if key.strip() in ("version_info", "version"):
                    return value.strip()
    except OSError:
        pass
    return None


# ---------------------------------------------------------------------------
# The change
# ---------------------------------------------------------------------------


class ReleaseChanger:
    """Carries out what a run found must change: build, reuse, switch, roll back.

    Gets the run as ``RunSteps``: its parameters, release store and uv, and the steps it reuses.
    """

    def __init__(self, runner: RunSteps) -> None:
        self.runner = runner
        self.p = runner.p
        self.store = runner.store
        self.uv = runner.uv
        self.check_mode = runner.check_mode
        self.writer = ReleaseWriter(runner.store)

    # -- state=present ----------------------------------------------------

    def change(self, reqs: t.Mapping[str, Requirement], adopted: bool, current: t.Optional[Release],
               previous: t.Optional[Release], plan: t.Optional[Plan], after: t.Mapping[str, str],
               reasons: t.List[str]) -> t.Dict[str, t.Any]:
        """Bring the venv to REQS for REASONS, or predict it in check mode.

        PLAN is ``None`` when uv had nothing to plan against (no release in service, or a
        broken one); ADOPTED when a real directory was (or would be) moved into the releases.
        """
        runner, p = self.runner, self.p
        # Roll forward: a kept release (the one rolled back from, say) that holds exactly the
        # wanted packages is switched back to instead of building the same thing again.
        reusable = None if adopted else self.find_reusable(reqs, current)
        if plan is None:
            if current is not None:
                plan = Plan(current.packages, set(), "")  # broken release: filled in by the build
            elif self.check_mode and reusable is None:
                plan = self.plan_from_scratch(after)
            else:
                plan = Plan({}, set(), "")  # filled in by the build (or nothing in service)

        if reusable is not None:
            return self.switch_to(reusable, current, previous, plan, after, reasons)

        if self.check_mode:
            return runner.result(True, plan.before, after, plan.reinstalled, current, previous, plan.network_used,
                                 "; ".join(reasons))

        # A fallback whose dry run already found the index unusable installs offline at once
        # instead of paying uv's retries a second time.
        build_mode = "offline" if p.network == "fallback" and plan.network_used == "offline" else None
        release, network_used, installed = self.build(reqs, current, build_mode)
        removed_releases = self.store.cleanup(p.keep_releases, [release, current])
        self.prune_wheelhouse()
        return runner.result(
            True, plan.before, installed, plan.reinstalled, release, current, network_used,
            "; ".join(reasons), pruned=removed_releases,
        )

    def build(self, reqs: t.Mapping[str, Requirement], current: t.Optional[Release],
              mode: t.Optional[str] = None) -> t.Tuple[Release, str, t.Dict[str, str]]:
        """Build, check and switch to a new release; on any failure remove it."""
        p = self.p
        run_as = self.uv.run_as
        if run_as is None and not os.access(p.cache_dir, os.W_OK | os.X_OK):
            raise SyncError("uv cache %s is not writable by %s; set cache_dir to a writable path or fix its ownership"
                            % (p.cache_dir, whoami()))
        self.store.require_writable(os.path.dirname(self.store.venv))
        release = self.writer.new_release()
        releases_fd: t.Optional[int] = None
        try:
            # Opened before uv writes anything: syncfs through it also reports writeback errors meanwhile.
            try:
                releases_fd = os.open(self.store.releases_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError:
                pass
            # Root unpacks the editable sources while the release is still its own, then hands
            # the release to the owner (if any) before uv, which runs as the owner, fills it.
            requirements = self._with_editables(release) if self.runner.editables else None
            if run_as is not None:
                chown_tree(release.path, run_as.uid, run_as.gid)
            self.create_venv(release.path)
            _res, network_used = self.runner.pip_sync(release.python, dry_run=False, what="uv pip sync", mode=mode,
                                                      requirements=requirements)
            smoke = run_command([release.python, "-c", ""], uv_environment(self.uv.environ, p.cache_dir, True), run_as)
            if smoke.rc != 0:
                raise SyncError("Smoke check of the new release failed (%s -c '' exited %d): %s"
                                % (release.python, smoke.rc, stderr_tail(smoke.stderr, 5)))
            listed = self.uv.check(["pip", "list", "--format", "json", "--python", release.python], "uv pip list")
            installed = parse_pip_list(listed.stdout)
            expected = {n: r.version for n, r in reqs.items()}
            if set(installed) != set(expected) or any(
                compare_versions(installed[n], expected[n]) != 0 for n in expected
            ):
                diff = PackageDiff(expected, installed)
                raise SyncError("The new release does not match the requirements after uv pip sync: %s" % diff.as_dict())
            uid, gid = resolve_ids(p.owner, p.group)
            chown_tree(release.path, uid, gid, only_differing=run_as is not None)
            if p.mode is not None:
                chmod_dir(release.path, p.mode)
            # Durable before it is marked complete and switched to: the files uv wrote, then the
            # metadata (the completion mark) with its entry, then the release's entry in the
            # releases directory. Only a change pays for this; a no-op run flushes nothing.
            make_durable(release.path, releases_fd)
            self.writer.write_meta(release, {
                "format": 1,
                "id": release.id,
                "created": _iso(time.time()),
                "python": p.python,
                "python_version": _pyvenv_version(release.path),
                "uv_version": self.uv.info(self.runner.state).version,
                "requirements": p.requirements,
                "packages": {n: {"version": r.version, "hashes": sorted(r.hashes)} for n, r in sorted(reqs.items())},
                "previous": current.id if current is not None else None,
                "project": self.runner.project,
                # What a redeploy of this release's set needs in the wheelhouse (kept when pruning).
                "wheelhouse_files": wheelhouse_files(self.runner.manifest_document),
            }, uid, gid)
            fsync_dir(self.store.releases_dir, strict=True)
            self.activate(release, current)
        except BaseException:
            shutil.rmtree(release.path, ignore_errors=True)
            raise
        finally:
            if releases_fd is not None:
                os.close(releases_fd)
        return release, network_used, installed

    def create_venv(self, path: str) -> None:
        args = ["venv", "--python", self.p.python, "--no-python-downloads", "--allow-existing",
                "--prompt", os.path.basename(self.p.venv)]
        if self.check_mode and not self.runner.cache_ready():
            args.append("--no-cache")
        res = self.uv.run(args + [path], offline=True)
        if res.rc != 0:
            if re.search(r"No interpreter found|not found|No such file", res.stderr, re.IGNORECASE):
                raise uv_failure(
                    "Python interpreter %r not found: uv venv" % self.p.python,
                    res,
                    hint="Install that Python on the host or set 'python' to an existing interpreter path or version.",
                )
            raise uv_failure("uv venv", res)

    def _with_editables(self, release: Release) -> str:
        """Unpack the editable sdists inside RELEASE and write an install file naming them."""
        with open(t.cast(str, self.p.requirements), "r", encoding="utf-8") as handle:
            lines = [handle.read().rstrip("\n")]
        for name in sorted(self.runner.editables):
            archive = os.path.join(t.cast(str, self.p.wheelhouse), self.runner.editable_files[name])
            lines.append("-e %s" % extract_sdist(archive, os.path.join(release.path, "src")))
        path = os.path.join(release.path, ".airgap-uv-requirements.txt")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
        return path

    def plan_from_scratch(self, after: t.Mapping[str, str]) -> Plan:
        """Check mode without a venv: dry-run against an empty throw-away venv."""
        tmp = self.runner.scratch_dir("airgap-uv-check-", for_uv=True)
        try:
            path = os.path.join(tmp, "venv")
            self.create_venv(path)
            return self.runner.plan_for(os.path.join(path, "bin", "python"), after)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def find_reusable(self, reqs: t.Mapping[str, Requirement], current: t.Optional[Release]) -> t.Optional[Release]:
        """A kept release holding exactly REQS, newest first, to switch to instead of building.

        It must be complete, built from the wheelhouse (not adopted) for the same ``python``,
        record the same package names, versions and hashes (a wheel rebuilt without a version
        change, which ``_content_changed`` reports for the release in service, never matches),
        still run, and hold exactly those packages by ``uv pip list`` (nothing installed into
        it by hand since). Reads only: check mode runs it too.
        """
        for release in self.store.releases():
            if current is not None and release.id == current.id:
                continue
            if self.recorded_match(release.meta, reqs) and release_runs(release, self.uv.run_as) \
                    and self.installed_match(release, reqs):
                return release
        return None

    def recorded_match(self, meta: t.Optional[t.Mapping[str, t.Any]], reqs: t.Mapping[str, Requirement]) -> bool:
        if not meta or meta.get("adopted") or meta.get("python") != self.p.python:
            return False
        recorded = meta.get("packages")
        if not isinstance(recorded, dict) or set(recorded) != set(reqs):
            return False
        for name, req in reqs.items():
            info = recorded[name]
            if not isinstance(info, dict) or info.get("version") != req.version:
                return False
            hashes = info.get("hashes")
            if not isinstance(hashes, list) or not hashes or set(hashes) != set(req.hashes):
                return False
        return True

    def installed_match(self, release: Release, reqs: t.Mapping[str, Requirement]) -> bool:
        args = ["pip", "list", "--format", "json", "--python", release.python]
        if self.check_mode and not self.runner.cache_ready():
            args.append("--no-cache")  # check mode must not create the cache
        res = self.uv.run(args, offline=True)
        if res.rc != 0:
            return False
        try:
            installed = parse_pip_list(res.stdout)
        except SyncError:
            return False
        return set(installed) == set(reqs) and all(compare_versions(installed[n], reqs[n].version) == 0 for n in reqs)

    def switch_to(self, release: Release, current: t.Optional[Release], previous: t.Optional[Release], plan: Plan,
                  after: t.Mapping[str, str], reasons: t.List[str]) -> t.Dict[str, t.Any]:
        """Put the kept RELEASE back in service (no uv pip sync); it already holds AFTER."""
        runner = self.runner
        reasons = reasons + ["switched to existing release %s" % release.id]
        if self.check_mode:
            reasons += runner.fix_attributes(release, apply=False)
            return runner.result(True, plan.before, after, plan.reinstalled, current, previous, plan.network_used,
                                 "; ".join(reasons))
        self.store.require_writable(os.path.dirname(self.store.venv))
        reasons += runner.fix_attributes(release, apply=True)
        if current is not None and (release.meta or {}).get("previous") != current.id:
            # A rollback from here goes back to the release that was in service before.
            st = os.lstat(release.meta_path)
            uid, gid = (st.st_uid, st.st_gid) if os.geteuid() == 0 else (-1, -1)
            self.writer.write_meta(release, dict(release.meta or {}, previous=current.id), uid, gid)
        self.activate(release, current)
        removed_releases = self.store.cleanup(self.p.keep_releases, [release, current])
        self.prune_wheelhouse()
        return runner.result(True, plan.before, after, plan.reinstalled, release, current, plan.network_used,
                             "; ".join(reasons), pruned=removed_releases)

    def activate(self, release: Release, current: t.Optional[Release]) -> None:
        """Put RELEASE in service and record it until the controller has the result (_sync_report)."""
        self.writer.activate(release)
        self.runner.note_switch(release, current)

    def prune_wheelhouse(self) -> None:
        """After a switch: remove the wheelhouse files neither the set in place nor a kept release names."""
        p, runner = self.p, self.runner
        in_place = wheelhouse_files(runner.manifest_document)
        if not p.prune_wheelhouse or in_place is None or not p.wheelhouse:
            return  # without a manifest the set in place is not known
        kept = [(r.meta or {}) for r in self.store.releases()]
        needed = [[] if meta.get("adopted") else meta.get("wheelhouse_files") for meta in kept]
        runner.pruned_files = prune_wheelhouse(p.wheelhouse, needed, in_place)

    # -- ownership ----------------------------------------------------------

    def fix_attributes(self, release: Release, ids: t.Optional[t.Tuple[int, int]], mode: t.Optional[int]) -> None:
        """Give RELEASE (recursively) and the shared paths to IDS (uid, gid), and MODE to its top directory."""
        if ids is not None:
            chown_tree(release.path, *ids)
        if mode is not None:
            chmod_dir(release.path, mode)
        fsync_dir(release.path)

    # -- state=rollback ---------------------------------------------------

    def rollback(self) -> t.Dict[str, t.Any]:
        view = self.store.inspect()
        if view.current is None:
            raise SyncError("Cannot roll back %s: no release of this module is in service (%s)" % (self.p.venv, view.kind))
        current = view.current
        target = self.store.previous_of(current)
        if target is None:
            raise SyncError(
                "Cannot roll back %s: there is no previous release in %s (keep_releases must be at least 2 "
                "and a second release must have been built)" % (self.p.venv, self.store.releases_dir)
            )
        if not self.check_mode:
            self.store.require_writable(os.path.dirname(self.store.venv))
            self.activate(target, current)
        return self.runner.result(
            True, current.packages, target.packages, set(), current if self.check_mode else target,
            target if self.check_mode else current, "", "rollback from %s to %s" % (current.id, target.id),
        )

    # -- check mode before the copy ----------------------------------------

    def _uv_verified(self) -> bool:
        """Whether the host's uv matches the manifest beside it (the copy has not replaced it yet).

        A uv that does not is never run; the prediction then works without it.
        """
        if not self.p.manifest or not os.path.isfile(self.p.manifest):
            return True  # used without a bundle manifest: the caller vouches for uv
        verifier = ManifestVerifier(self.p.manifest, t.cast(str, self.p.wheelhouse), self.runner.state)
        if verifier.matches(self.p.uv):
            return True
        self.runner.warn("%s does not match manifest %s, so check mode did not run it; the copy replaces it"
                         % (self.p.uv, self.p.manifest))
        return False

    def predict_pending(self, run: t.Callable[[], t.Dict[str, t.Any]]) -> t.Dict[str, t.Any]:
        """Check mode before the copy: predict from what the copy would put in place.

        In check mode the copy task changes nothing, so the host still holds the previous
        install file. uv's dry run needs only the wheels' names, not their bytes, so the
        pending install file and empty stand-ins named like the pending wheels go to a
        temporary directory and RUN (the runner's normal run) predicts against those.
        """
        runner, p = self.runner, self.p
        pending = t.cast(t.Mapping[str, t.Any], p.pending)
        text = pending.get("requirements")
        wheels = pending.get("wheels") or []
        if not isinstance(text, str) or not isinstance(wheels, list):
            raise SyncError("pending needs 'requirements' (the install file's text) and 'wheels' (a list of file names)")
        runner.set_editables(pending.get("editable") or [], "pending editable")
        if isinstance(pending.get("project"), dict):
            runner.project = pending["project"]
        if not (os.path.isfile(p.uv) and os.access(p.uv, os.X_OK)) or not self._uv_verified():
            # No (trustworthy) uv on the host yet: the environment in service (if any) is
            # compared with the pending set directly, and that uv is never run.
            runner.uv_usable = False
            reqs = {**parse_requirements(text, "pending requirements"), **runner.editables}
            after = {name: r.version for name, r in reqs.items()}
            view = self.store.inspect()
            before = view.current.packages if view.current is not None else {}
            changed = before != after
            return runner.result(changed, before, after, set(), view.current, None, "offline",
                                 "packages changed" if changed else None)
        tmp = runner.scratch_dir("airgap-uv-pending-")
        try:
            wheelhouse = os.path.join(tmp, "wheelhouse")
            os.mkdir(wheelhouse)
            for name in wheels:
                if not isinstance(name, str) or os.path.basename(name) != name or name in ("", ".", ".."):
                    raise SyncError("pending wheel name %r is not a plain file name" % (name,))
                open(os.path.join(wheelhouse, name), "w").close()
            requirements = os.path.join(tmp, "requirements.txt")
            with open(requirements, "w") as handle:
                handle.write(text if text.endswith("\n") else text + "\n")
            p.wheelhouse, p.requirements, p.manifest = wheelhouse, requirements, None
            constraints = pending.get("build_constraints")
            if isinstance(constraints, str):
                p.build_constraints = os.path.join(tmp, "build-constraints.txt")
                with open(p.build_constraints, "w") as handle:
                    handle.write(constraints)
            return run()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
