# -*- coding: utf-8 -*-
# Copyright (c) airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The runner of the ``airgap.uv.sync`` module: what must change, decided under the lock.

Runs on the TARGET: standard library only (Python 3.9+).  Nothing here may import
``packaging``, ``tomllib`` or other third-party libraries.

The environment users point at (``venv``) is a symlink to a release directory
``<releases_dir>/<id>``.  A change builds a new release from the wheelhouse with the
shipped uv, smoke-checks it and switches the symlink with one atomic rename; the
release that was in service is kept for rollback.

The host side of sync, one concern a module:

- ``_sync_error``: the error with a message for the user;
- ``_sync_packages``: names, versions, install files, uv's change lists, package diffs;
- ``_sync_uv``: running uv and other commands, and what a failure says;
- ``_sync_store``: the state file, the lock, the releases and their owners;
- ``_sync_manifest``: the bundle manifest's check;
- ``_sync_inputs``: landing the push's staged set, checking it, pruning the wheelhouse;
- ``_sync_report``: switches recorded until the controller acknowledges them;
- this module: the options and the runner, which decides what must change;
- ``_sync_change``: building, switching and rolling back releases, imported only when
  something changes (a no-op never compiles it).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
import typing as t

from ansible_collections.airgap.uv.plugins.module_utils._host_safety import (
    UnsafePath,
    chown_tree,
    require_root_only,
    run_as_for,
)
from ansible_collections.airgap.uv.plugins.module_utils._sync_inputs import InputsError, land_staged, require_manifest
from ansible_collections.airgap.uv.plugins.module_utils._sync_report import (
    earlier_message,
    is_record,
    new_record,
    report,
)
from ansible_collections.airgap.uv.plugins.module_utils._sync_error import SyncError
from ansible_collections.airgap.uv.plugins.module_utils._sync_manifest import ManifestVerifier
from ansible_collections.airgap.uv.plugins.module_utils._sync_packages import (
    Change,
    PackageDiff,
    Plan,
    Requirement,
    canonical_name,
    format_packages,
    parse_changes,
    parse_requirements,
    read_requirements,
    state_before,
)
from ansible_collections.airgap.uv.plugins.module_utils._sync_params import SyncParams, parse_mode
from ansible_collections.airgap.uv.plugins.module_utils._sync_store import (
    FileLock,
    Release,
    ReleaseStore,
    UNREPORTED,
    StateFile,
    VenvView,
    environment_fingerprint,
    release_runs,
    resolve_ids,
    whoami,
)
from ansible_collections.airgap.uv.plugins.module_utils._sync_uv import (
    CommandResult,
    CommandRunner,
    Uv,
    run_command,
    stderr_tail,
    uv_failure,
)

if t.TYPE_CHECKING:  # pragma: no cover
    from ansible_collections.airgap.uv.plugins.module_utils._sync_change import ReleaseChanger

NETWORK_MODES = ("offline", "fallback", "online")


_SYNC_HINT = (
    "Check that wheelhouse and requirements come from the same bundle built for this host "
    "(platform, Python version) and that every wheel is intact."
)


class SyncRunner:
    """Brings ``venv`` to exactly the requirements set (or rolls it back).

    It finds out what must change; a ``ReleaseChanger`` (``_sync_change``) makes the change.
    """

    def __init__(
        self,
        params: t.Mapping[str, t.Any],
        check_mode: bool = False,
        diff: bool = False,
        tmpdir: t.Optional[t.Callable[[], str]] = None,
        environ: t.Optional[t.Mapping[str, str]] = None,
        python_executable: t.Optional[str] = None,
        runner: CommandRunner = run_command,
        warn: t.Optional[t.Callable[[str], None]] = None,
    ) -> None:
        self.p = SyncParams(params, python_executable)
        self.params = params
        self.python_executable = python_executable
        self.check_mode = check_mode
        self.diff_mode = diff
        self.tmpdir = tmpdir
        self.store = ReleaseStore(self.p.venv, self.p.releases_dir)
        self.uv = Uv(self.p.uv, self.p.cache_dir, environ if environ is not None else os.environ, runner)
        self.warned = False
        self.uv_usable = True  # False when check mode predicts without the host's uv (_sync_change)
        # environment_fingerprint per prefix, taken once per run: the recorded dry run and the
        # recorded no-op both need the release's, and nothing between changes it.
        self._fingerprints: t.Dict[str, t.List[t.List[t.Any]]] = {}
        self._warn_to = warn or (lambda msg: None)
        self.state: StateFile = StateFile(self.store.state_path)
        # Packages installed editable from their shipped sdist: name -> Requirement (sha256 of the sdist)
        self.editables: t.Dict[str, Requirement] = {}
        self.editable_files: t.Dict[str, str] = {}  # name -> the sdist's file name in the wheelhouse
        self.manifest_document: t.Optional[t.Dict[str, t.Any]] = None
        self.project: t.Optional[t.Dict[str, t.Any]] = None  # {"name", "version"} from the manifest
        self.pruned_files: t.Tuple[t.List[str], int] = ([], 0)

    def fingerprint(self, prefix: str) -> t.List[t.List[t.Any]]:
        if prefix not in self._fingerprints:
            self._fingerprints[prefix] = environment_fingerprint(prefix)
        return self._fingerprints[prefix]

    def warn(self, msg: str) -> None:
        self.warned = True
        self._warn_to(msg)

    # -- entry point ------------------------------------------------------

    def run(self) -> t.Dict[str, t.Any]:
        # Known before anything runs: check mode's scratch directories must suit the owner too.
        self.ids = resolve_ids(self.p.owner, self.p.group)
        self.uv.run_as = run_as_for(*self.ids)
        if self.check_mode and self.p.pending is not None:
            return self._changer().predict_pending(self._run)
        return self._run()

    def _changer(self) -> ReleaseChanger:
        """What makes changes; imported only by a run that changes something (or predicts it).

        A no-op run never loads ``_sync_change``, so the host never compiles it then.
        """
        from ansible_collections.airgap.uv.plugins.module_utils._sync_change import ReleaseChanger

        return ReleaseChanger(self)

    def _run(self) -> t.Dict[str, t.Any]:
        self._validate()
        with self._lock():
            self.state = StateFile.load(self.store.state_path)
            if self.p.acknowledge:
                return self._acknowledge(self.p.acknowledge)
            earlier = self.state.data.get(UNREPORTED)
            if is_record(earlier):
                self.warn(earlier_message(earlier))
            if self.p.state == "rollback":
                result = self._changer().rollback()
            else:
                result = self._present_locked()
            return report(result, earlier, self.state.data.get(UNREPORTED), self.check_mode)

    def _present_locked(self) -> t.Dict[str, t.Any]:
        """state=present under the lock: land this run's staged push, check it is in place, sync."""
        p = self.p
        if p.incoming and not self.check_mode:
            try:
                land_staged(p.incoming)
            except InputsError as exc:
                raise SyncError(str(exc))
            self._validate_inputs()
        if p.manifest_sha256 and p.pending is None:
            try:
                require_manifest(p.manifest, p.manifest_sha256, self.in_service)
            except InputsError as exc:
                raise SyncError(str(exc))
        reqs = read_requirements(t.cast(str, p.requirements))
        if not self.check_mode:
            self.prepare_cache()
        try:
            return self._present(reqs)
        finally:
            if not self.check_mode:
                self.state.save()

    def _acknowledge(self, switch_id: str) -> t.Dict[str, t.Any]:
        """The controller has the result that reported switch SWITCH_ID: forget the record."""
        record = self.state.data.get(UNREPORTED)
        done = isinstance(record, dict) and record.get("id") == switch_id
        if done and not self.check_mode:
            del self.state.data[UNREPORTED]
            self.state.dirty = True
            self.state.save()
        return {"changed": False, "venv": self.p.venv, "acknowledged": done}

    def in_service(self) -> str:
        """The release in service and its project's version, for messages."""
        current = self.store.inspect().current
        if current is None:
            return "no release"
        version = self.project_version(current)
        return "%s%s" % (current.path, " (version %s)" % version if version else "")

    def project_version(self, release: t.Optional[Release],
                        packages: t.Optional[t.Mapping[str, str]] = None) -> t.Optional[str]:
        """The deployed project's version among PACKAGES (default: RELEASE's), when the manifest or RELEASE names it."""
        project = ((release.meta or {}) if release is not None else {}).get("project") or self.project
        if not isinstance(project, dict) or not isinstance(project.get("name"), str):
            return None
        if packages is None:
            packages = release.packages if release is not None else {}
        return packages.get(canonical_name(project["name"]))

    def note_switch(self, release: Release, previous: t.Optional[Release]) -> None:
        """Record at once that RELEASE went into service, until the controller acknowledges it."""
        self.state.set(UNREPORTED, new_record(release.path, self.project_version(release),
                                              previous.path if previous is not None else None))
        self.state.save()

    # -- validation -------------------------------------------------------

    def _validate(self) -> None:
        p = self.p
        if p.state not in ("present", "rollback"):
            raise SyncError("state must be 'present' or 'rollback', got %r" % p.state)
        if p.network not in NETWORK_MODES:
            raise SyncError("network must be one of %s, got %r" % (", ".join(NETWORK_MODES), p.network))
        if p.keep_releases < 1:
            raise SyncError("keep_releases must be at least 1 (the release in service)")
        if p.lock_timeout < 0:
            raise SyncError("lock_timeout must not be negative")
        if p.refresh and p.network == "offline":
            raise SyncError(
                "refresh=true cannot be combined with network=offline (uv refuses --refresh when offline); "
                "drop refresh or use network=online/fallback"
            )
        p.mode = parse_mode(p.mode_input)
        if p.acknowledge:
            return
        if p.state == "present" and not (p.incoming and not self.check_mode):
            self._validate_inputs()  # else once the staged push is in place
        uid, gid = self.ids
        if p.owner or p.group:
            if os.geteuid() != 0 and (uid not in (-1, os.geteuid()) or (gid != -1 and gid not in os.getgroups() and gid != os.getegid())):
                raise SyncError(
                    "owner/group %s:%s can only be set when running as root (running as %s); use become"
                    % (p.owner or "", p.group or "", whoami())
                )
        if os.geteuid() == 0:
            self._require_root_only(uid)

    def _validate_inputs(self) -> None:
        """The shipped files state=present needs."""
        p = self.p
        if not (os.path.isfile(p.uv) and os.access(p.uv, os.X_OK)):
            what = "does not exist" if not os.path.lexists(p.uv) else "is not an executable file"
            raise SyncError("uv binary %s %s; copy the bundle's bin/uv to the host and make it executable (mode 0755)" % (p.uv, what))
        if not p.wheelhouse or not os.path.isdir(p.wheelhouse):
            raise SyncError("wheelhouse %s is not a directory; copy the bundle's wheelhouse/ to the host" % p.wheelhouse)
        if not p.requirements or not os.path.isfile(p.requirements):
            raise SyncError("requirements file %s does not exist; copy the bundle's requirements.txt to the host" % p.requirements)
        if p.build_constraints and not os.path.isfile(p.build_constraints):
            raise SyncError("build constraints file %s does not exist; copy the bundle's build-constraints.txt to "
                            "the host" % p.build_constraints)
        if p.manifest and not os.path.isfile(p.manifest):
            raise SyncError("manifest %s does not exist; copy the bundle's manifest.json to the host" % p.manifest)
        if "/" in p.python and not (os.path.isfile(p.python) and os.access(p.python, os.X_OK)):
            raise SyncError(
                "Python interpreter %s not found (or not executable) on this host; install it or set "
                "'python' to an existing interpreter path or version" % p.python
            )

    def _require_root_only(self, uid: int) -> None:
        """As root: every path root writes in, or executes from, can be changed by root alone.

        What the owner may change (its releases, its uv cache) root never runs: uv and the
        interpreters run as the owner then (_host_safety).
        """
        p = self.p
        if p.mode is not None and p.mode & 0o022 and uid in (-1, 0):
            raise SyncError(
                "mode %04o lets group or others write the environment's top directory, whose interpreter "
                "root runs when no owner is set; drop the write bits or set owner (commands then run as that user)"
                % p.mode)
        paths = [(os.path.dirname(self.store.venv), "the directory holding venv"),
                 (os.path.dirname(self.store.releases_dir), "the directory holding the releases"),
                 (os.path.dirname(p.cache_dir), "the directory holding the uv cache")]
        if p.state == "present":
            paths += [(p.uv, "the uv binary"), (t.cast(str, p.wheelhouse), "the wheelhouse"),
                      (t.cast(str, p.requirements), "the install file")]
            paths += [(path, "a file of the bundle") for path in (p.build_constraints, p.manifest) if path]
            if "/" in p.python and uid in (-1, 0):
                paths.append((os.path.realpath(p.python), "the interpreter root runs"))
        try:
            for path, what in paths:
                require_root_only(path, what)
        except UnsafePath as exc:
            raise SyncError(str(exc))

    def cache_owner(self) -> int:
        return self.uv.run_as.uid if self.uv.run_as is not None else os.geteuid()

    def cache_ready(self) -> bool:
        """Whether uv may use the cache as is: a directory of the user uv runs as (check mode's test)."""
        try:
            st = os.lstat(self.p.cache_dir)
        except OSError:
            return False
        return stat.S_ISDIR(st.st_mode) and st.st_uid == self.cache_owner()

    def prepare_cache(self) -> None:
        """Give uv a cache of its own user before it runs.

        A cache another user could write is never used by uv running as root or as someone
        else (uv links cached files into environments): root empties it, or hands a cache of
        its own to the owner uv runs as. The user running without root gets what is there.
        """
        cache, uid = self.p.cache_dir, self.cache_owner()
        try:
            st: t.Optional[os.stat_result] = os.lstat(cache)
        except FileNotFoundError:
            st = None
        if st is not None and os.geteuid() == 0 and (not stat.S_ISDIR(st.st_mode) or st.st_uid not in (uid, 0)):
            if stat.S_ISDIR(st.st_mode):
                shutil.rmtree(cache)
            else:
                os.unlink(cache)
            st = None
        try:
            if st is None:
                os.makedirs(cache, 0o755, exist_ok=True)
            if self.uv.run_as is not None and (st is None or st.st_uid != uid):
                # Root's own cache handed to the owner, once: what uv adds as the owner is the owner's.
                chown_tree(cache, uid, self.uv.run_as.gid)
        except OSError as exc:
            raise SyncError("Cannot prepare the uv cache %s: %s (running as %s); set cache_dir to a writable path"
                            % (cache, exc.strerror, whoami()))

    def scratch_dir(self, prefix: str, for_uv: bool = False) -> str:
        """A temporary directory for check mode; FOR_UV: one uv (maybe the owner) can write in."""
        run_as = self.uv.run_as
        if run_as is None:
            return tempfile.mkdtemp(prefix=prefix, dir=self.tmpdir() if self.tmpdir else None)
        # Ansible's temporary directory is root's alone: the owner could not read from it.
        path = tempfile.mkdtemp(prefix=prefix)
        if for_uv:
            os.chown(path, run_as.uid, run_as.gid)
        else:
            os.chmod(path, 0o755)  # root writes, the owner reads
        return path

    def _lock(self) -> FileLock:
        if self.check_mode:
            # check mode creates nothing: wait on an existing lock (shared) so it never
            # reads a half-finished switch, but do not create the lock file
            return FileLock(self.store.lock_path, self.p.lock_timeout, shared=True, create=False)
        self.store.ensure_dirs()
        return FileLock(self.store.lock_path, self.p.lock_timeout)

    # -- uv calls ---------------------------------------------------------

    def _sync_args(self, python: str, dry_run: bool, online: bool,
                   requirements: t.Optional[str] = None) -> t.List[str]:
        """uv pip sync's arguments; REQUIREMENTS, when given, is an install file with editables."""
        p = self.p
        args = ["pip", "sync"]
        if online:
            if p.index_url:
                args += ["--index-url", p.index_url]
            args += ["--find-links", t.cast(str, p.wheelhouse)]
            if p.refresh:
                args.append("--refresh")
        else:
            args += ["--offline", "--no-index", "--find-links", t.cast(str, p.wheelhouse)]
        # uv refuses --require-hashes next to editables; the hashes given are still checked.
        args += ["--python", python] if requirements else ["--require-hashes", "--python", python]
        if self._host_builds():
            # Shipped sdists build here, offline, with exactly the pinned (and hash-checked)
            # build requirements.
            args += ["--build-constraint", t.cast(str, p.build_constraints), "--require-build-hashes"]
        else:
            args.append("--no-build")
        if self.check_mode and not self.cache_ready():
            args.append("--no-cache")  # check mode must not create (or fix) the cache
        if dry_run:
            args.append("--dry-run")
        elif p.compile_bytecode:
            args.append("--compile-bytecode")
        if self.uv.info(self.state).json_output:
            args += ["--output-format", "json"]
        args.append(requirements or t.cast(str, p.requirements))
        return args

    def set_editables(self, entries: t.Any, where: str) -> None:
        """Read the editable packages (name, version, sdist filename, sha256) of the bundle."""
        if not isinstance(entries, list):
            raise SyncError("%s: 'editable' must be a list" % where)
        for entry in entries:
            if not (isinstance(entry, dict) and all(isinstance(entry.get(k), str) and entry.get(k)
                                                    for k in ("name", "version", "filename", "sha256"))):
                raise SyncError("%s: malformed editable entry %r (needs name, version, filename, sha256)" % (where, entry))
            filename = entry["filename"]
            if os.path.basename(filename) != filename or filename in (".", ".."):
                raise SyncError("%s: editable sdist name %r is not a plain file name" % (where, filename))
            name = canonical_name(entry["name"])
            self.editables[name] = Requirement(name, entry["version"], [entry["sha256"]])
            self.editable_files[name] = filename

    def _host_builds(self) -> bool:
        """True when the bundle ships sdists to build here: its build constraints list a package."""
        if not self.p.build_constraints:
            return False
        try:
            with open(self.p.build_constraints, encoding="utf-8") as handle:
                return bool(parse_requirements(handle.read(), source=self.p.build_constraints))
        except OSError as exc:
            raise SyncError("Cannot read build constraints file %s: %s" % (self.p.build_constraints, exc.strerror))

    def pip_sync(self, python: str, dry_run: bool, what: str, mode: t.Optional[str] = None,
                 requirements: t.Optional[str] = None) -> t.Tuple[CommandResult, str]:
        """Run ``uv pip sync`` honouring ``network`` (or MODE); returns the result and the mode used."""
        mode = mode or self.p.network
        if mode == "offline":
            res = self.uv.run(self._sync_args(python, dry_run, online=False, requirements=requirements), offline=True)
            if res.rc != 0:
                raise uv_failure(what, res, hint=_SYNC_HINT)
            return res, "offline"
        online = self.uv.run(self._sync_args(python, dry_run, online=True, requirements=requirements), offline=False,
                             extra_env=self._http_env())
        if online.rc == 0:
            return online, "online"
        if mode == "online":
            raise uv_failure(what, online, hint=_SYNC_HINT)
        self.warn("%s with the index failed, falling back to offline: %s" % (what, stderr_tail(online.stderr, 3)))
        offline = self.uv.run(self._sync_args(python, dry_run, online=False, requirements=requirements), offline=True)
        if offline.rc == 0:
            return offline, "offline"
        raise uv_failure(
            what,
            offline,
            hint="%s\nThe online attempt failed before:\n%s" % (_SYNC_HINT, stderr_tail(online.stderr, 10)),
        )

    def _http_env(self) -> t.Dict[str, str]:
        env = {}
        if self.p.http_timeout is not None:
            env["UV_HTTP_TIMEOUT"] = str(self.p.http_timeout)
        if self.p.http_retries is not None:
            env["UV_HTTP_RETRIES"] = str(self.p.http_retries)
        return env

    def plan_for(self, python: str, after: t.Mapping[str, str]) -> Plan:
        key = self._dry_run_key(python)
        if key is not None and self.state.data.get("noop_dry_run") == key:
            # uv answered "nothing to do" to exactly these inputs before: a no-op run is then
            # a few hundred lstat calls instead of a uv process (see _dry_run_key).
            changes: t.List[Change] = []
            network_used = "offline"
        else:
            res, network_used = self.pip_sync(python, dry_run=True, what="uv pip sync --dry-run")
            # The dry run sees the install file only: editables are compared by their sdist's hash
            # (_present) and what the release in service holds, not by uv.
            changes = [c for c in parse_changes(res.stdout, res.stderr) if c.name not in self.editables]
            if key is not None and not changes:
                self.state.set("noop_dry_run", key)
        before, reinstalled = state_before(after, changes)
        for name in self.editables:
            before.pop(name, None)
        return Plan(before, reinstalled, network_used)

    def _dry_run_key(self, python: str) -> t.Optional[str]:
        """Digest of everything an offline ``uv pip sync --dry-run`` of PYTHON's environment reads.

        That is its arguments, the uv binary, the install and build-constraint files' bytes,
        the interpreter and the environment's installed metadata (environment_fingerprint);
        uv and the user's configuration are switched off (uv_environment). The wheelhouse is
        left out: uv looks at it only for packages it would install, which is never the
        case for a recorded no-op. Online and fallback runs ask the index, so they get none.
        """
        if self.p.network != "offline":
            return None
        prefix = os.path.dirname(os.path.dirname(python))
        inputs: t.List[t.Any] = [self._sync_args(python, dry_run=True, online=False)]
        for path in (self.p.uv, os.path.realpath(python), os.path.join(prefix, "pyvenv.cfg")):
            try:
                st = os.stat(path)
            except OSError:
                return None
            inputs.append([path, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns])
        digest = hashlib.sha256(json.dumps(inputs).encode("utf-8"))
        for path in (self.p.requirements, self.p.build_constraints):
            if path:
                try:
                    with open(path, "rb") as handle:
                        digest.update(hashlib.sha256(handle.read()).digest())
                except OSError:
                    return None
        digest.update(json.dumps(self.fingerprint(prefix)).encode("utf-8"))
        return digest.hexdigest()

    # -- state=present ----------------------------------------------------

    def _present(self, reqs: t.Mapping[str, Requirement]) -> t.Dict[str, t.Any]:
        p = self.p
        if p.manifest:
            verifier = ManifestVerifier(p.manifest, t.cast(str, p.wheelhouse), self.state)
            verifier.verify()
            self.manifest_document = verifier.document
            project = verifier.document.get("project")
            self.project = project if isinstance(project, dict) else None
            self._check_manifest_uv(verifier)
            self.set_editables(verifier.document.get("editable") or [], "manifest %s" % p.manifest)
        reqs = {**reqs, **self.editables}
        after = {name: r.version for name, r in reqs.items()}
        view = self.store.inspect()
        if view.kind == "foreign" or (view.kind == "directory" and not p.adopt):
            raise SyncError(self._not_managed_message(view))

        current = view.current
        reasons: t.List[str] = []
        plan: t.Optional[Plan] = None
        if view.kind == "directory":  # adopt=true: a fresh release is built in any case
            if not self.check_mode:
                self.store.require_writable(os.path.dirname(self.store.venv))
                current = self._changer().writer.adopt()
            try:
                plan = self.plan_for(current.python if current else os.path.join(p.venv, "bin", "python"), after)
            except SyncError:
                plan = Plan({}, set(), "")  # not a usable environment: what it holds is unknown
            reasons.append("adopted existing directory %s" % p.venv)
        elif current is None:
            reasons.append("venv created")
        else:
            try:
                plan = self.plan_for(current.python, after)
            except SyncError:
                if release_runs(current):
                    raise
                reasons.append("release in service %s is broken" % current.path)
            meta = current.meta or {}
            if plan is not None:
                for name in self.editables:
                    if name in current.packages:
                        plan.before[name] = current.packages[name]
                if plan.before != after or plan.reinstalled:
                    reasons.append("packages changed")
                content = self._content_changed(meta, reqs)
                if content:
                    plan.reinstalled.update(content)
                    reasons.append("package content changed: %s" % ", ".join(sorted(content)))
            if meta.get("adopted"):
                reasons.append("release in service %s was adopted, not built from the wheelhouse" % current.id)
            elif meta and meta.get("python") != p.python:
                reasons.append("python changed from %s to %s" % (meta.get("python"), p.python))

        previous = self.store.previous_of(current) if current is not None else None
        if reasons:
            return self._changer().change(reqs, view.kind == "directory", current, previous, plan, after, reasons)

        # Nothing to change: uv planned against the release in service (plan is only unset
        # when there is none, or it is broken, and both are reasons).
        plan = t.cast(Plan, plan)
        fixes = self.fix_attributes(current, apply=not self.check_mode)
        pruned = self.store.cleanup(p.keep_releases, [current, previous]) if not self.check_mode else []
        return self.result(bool(fixes), plan.before, after, set(), current, previous, plan.network_used,
                           "; ".join(fixes) or None, pruned=pruned)

    # -- helpers ----------------------------------------------------------

    def _not_managed_message(self, view: VenvView) -> str:
        if view.kind == "directory":
            return (
                "%s is a real directory, not a release symlink managed by airgap.uv; refusing to touch it. "
                "Move it away or remove it, or deploy elsewhere (role variable uv_deploy_venv). Called directly, "
                "airgap.uv.sync can also adopt it (adopt=true moves it into %s as the previous release)."
                % (self.p.venv, self.store.releases_dir)
            )
        if view.target is not None:
            return (
                "%s is a symlink to %s, outside the releases directory %s, so airgap.uv did not make it; refusing "
                "to replace it. Remove the link, or deploy elsewhere (role variable uv_deploy_venv; module option "
                "venv)." % (self.p.venv, view.target, self.store.releases_dir)
            )
        return ("%s exists and is not a directory or symlink; remove it, or deploy elsewhere (role variable "
                "uv_deploy_venv; module option venv)" % self.p.venv)

    @staticmethod
    def _content_changed(meta: t.Mapping[str, t.Any], reqs: t.Mapping[str, Requirement]) -> t.Set[str]:
        """Packages whose wheel changed without a version change (same version, other hash)."""
        changed = set()
        recorded = meta.get("packages") or {}
        for name, req in reqs.items():
            info = recorded.get(name)
            if isinstance(info, dict) and info.get("version") == req.version and info.get("hashes"):
                if not req.hashes.intersection(info["hashes"]):
                    changed.add(name)
        return changed

    def _check_manifest_uv(self, verifier: ManifestVerifier) -> None:
        wanted = verifier.document.get("uv_version")
        have = self.uv.info(self.state).version
        if wanted and str(wanted) != have:
            self.warn("manifest %s was built for uv %s but %s is uv %s" % (verifier.manifest, wanted, self.p.uv, have))

    def fix_attributes(self, release: t.Optional[Release], apply: bool) -> t.List[str]:
        """Reasons for what differs in RELEASE from owner/group (recursive) and mode (top directory).

        With APPLY the differences are fixed; without (check mode) they are only reported.
        """
        p = self.p
        uid, gid = resolve_ids(p.owner, p.group)
        if release is None or ((uid, gid) == (-1, -1) and p.mode is None):
            return []
        st = os.lstat(release.path)
        reasons = []
        ids = None
        if (uid, gid) != (-1, -1) and not ((uid == -1 or st.st_uid == uid) and (gid == -1 or st.st_gid == gid)):
            reasons.append("ownership of %s changed" % release.path)
            ids = (uid, gid)
        have = stat.S_IMODE(st.st_mode)
        mode = None
        if p.mode is not None and have != p.mode:
            reasons.append("mode of %s changed from %04o to %04o" % (release.path, have, p.mode))
            mode = p.mode
        if reasons and apply:
            self._changer().fix_attributes(release, ids, mode)
        return reasons

    def result(
        self,
        changed: bool,
        before: t.Mapping[str, str],
        after: t.Mapping[str, str],
        reinstalled: t.Iterable[str],
        release: t.Optional[Release],
        previous: t.Optional[Release],
        network_used: str,
        reason: t.Optional[str],
        pruned: t.Optional[t.List[str]] = None,
    ) -> t.Dict[str, t.Any]:
        diff = PackageDiff(before, after, reinstalled)
        result: t.Dict[str, t.Any] = {
            "changed": changed,
            "venv": self.p.venv,
            "release": release.path if release is not None else None,
            "version": self.project_version(release, after),
            "previous_release": previous.path if previous is not None else None,
            "packages": format_packages(after),
            "network_used": network_used or None,
            # Not asked of a uv that is missing or failed its manifest check (check mode before the copy).
            "uv_version": self.uv.info(self.state).version if self.p.state == "present" and self.uv_usable else None,
            "reason": reason,
            "pruned_releases": pruned or [],
            "pruned_files": self.pruned_files[0],
            "pruned_bytes": self.pruned_files[1],
        }
        result.update(diff.as_dict())
        if self.diff_mode:
            result["diff"] = {
                "before": "".join(line + "\n" for line in format_packages(before)),
                "after": "".join(line + "\n" for line in format_packages(after)),
                "before_header": "%s (packages)" % self.p.venv,
                "after_header": "%s (packages)" % self.p.venv,
            }
        return result
