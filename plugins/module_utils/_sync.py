# -*- coding: utf-8 -*-
# Copyright (c) airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Host-side logic of the ``airgap.uv.sync`` module.

Runs on the TARGET: standard library only (Python 3.9+).  Nothing here may import
``packaging``, ``tomllib`` or other third-party libraries.

The environment users point at (``venv``) is a symlink to a release directory
``<releases_dir>/<id>``.  A change builds a new release from the wheelhouse with the
shipped uv, smoke-checks it and switches the symlink with one atomic rename; the
release that was in service is kept for rollback.

This module holds what every run needs, a run with nothing to do included: the host
compiles it from source on each run (Ansible ships module_utils as source). Building,
switching and rolling back releases live in ``_sync_change``, which ``SyncRunner``
imports only when something changes.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import pwd
import re
import shutil
import stat
import sys
import tempfile
import time
import typing as t

from ansible_collections.airgap.uv.plugins.module_utils._host_safety import (
    RunAs,
    UnsafePath,
    chown_tree,
    lock_holders,
    read_text,
    require_root_only,
    run,
    run_as_for,
    user_ids,
)
from ansible_collections.airgap.uv.plugins.module_utils._sync_replay import (
    NOOP_RESULT,
    RELEASE_META,
    STATE_FORMAT,
    UNREPORTED,
    environment_fingerprint,
    noop_key,
    sha256_file,
    store_paths,
)
from ansible_collections.airgap.uv.plugins.module_utils._sync_inputs import InputsError, land_staged, require_manifest
from ansible_collections.airgap.uv.plugins.module_utils._sync_report import (
    earlier_message,
    is_record,
    new_record,
    report,
)

if t.TYPE_CHECKING:  # pragma: no cover
    from ansible_collections.airgap.uv.plugins.module_utils._sync_change import ReleaseChanger

MANIFEST_FORMAT = 1
NETWORK_MODES = ("offline", "fallback", "online")
STDERR_TAIL_LINES = 25


class SyncError(Exception):
    """An error with a message for the user (what is wrong and what to do)."""

    def __init__(self, msg: str, **details: t.Any) -> None:
        super().__init__(msg)
        self.msg = msg
        self.details = details


# ---------------------------------------------------------------------------
# Names and versions (PEP 503 / PEP 440 subset, no ``packaging`` on the target)
# ---------------------------------------------------------------------------

_NAME_SEP_RE = re.compile(r"[-_.]+")

# Compiled by re on first use (and cached there), not at import: only a run that changes
# a package's version compares versions, and compiling this pattern costs about 1 ms.
_VERSION_PATTERN = r"""^\s*v?
    (?:(?P<epoch>[0-9]+)!)?
    (?P<release>[0-9]+(?:\.[0-9]+)*)
    (?P<pre>[-_.]?(?P<pre_l>alpha|a|beta|b|preview|pre|c|rc)[-_.]?(?P<pre_n>[0-9]+)?)?
    (?P<post>(?:-(?P<post_n1>[0-9]+))|(?:[-_.]?(?P<post_l>post|rev|r)[-_.]?(?P<post_n2>[0-9]+)?))?
    (?P<dev>[-_.]?dev[-_.]?(?P<dev_n>[0-9]+)?)?
    (?:\+(?P<local>[a-z0-9]+(?:[-_.][a-z0-9]+)*))?
    \s*$"""
_PRE_RANK = {"a": 0, "alpha": 0, "b": 1, "beta": 1, "c": 2, "rc": 2, "pre": 2, "preview": 2}


def canonical_name(name: str) -> str:
    """PEP 503 normalized project name (what uv prints)."""
    return _NAME_SEP_RE.sub("-", name).lower()


def version_key(version: str) -> t.Optional[tuple]:
    """Sort key for a PEP 440 version, ``None`` when the version does not parse."""
    m = re.match(_VERSION_PATTERN, version, re.IGNORECASE | re.VERBOSE)
    if not m:
        return None
    release = [int(x) for x in m.group("release").split(".")]
    while len(release) > 1 and release[-1] == 0:
        release.pop()
    has_pre, has_post, has_dev = m.group("pre"), m.group("post"), m.group("dev")
    if has_pre:
        pre: tuple = (0, _PRE_RANK[m.group("pre_l").lower()], int(m.group("pre_n") or 0))
    elif has_dev and not has_post:
        pre = (-1,)  # 1.0.dev0 sorts before 1.0a0
    else:
        pre = (1,)
    if has_post:
        post: tuple = (1, int(m.group("post_n1") or m.group("post_n2") or 0))
    else:
        post = (0,)
    dev: tuple = (0, int(m.group("dev_n") or 0)) if has_dev else (1,)
    local: tuple = ()
    if m.group("local"):
        local = tuple(
            (1, int(part), "") if part.isdigit() else (0, 0, part.lower())
            for part in re.split(r"[-_.]", m.group("local"))
        )
    return (int(m.group("epoch") or 0), tuple(release), pre, post, dev, local)


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 like ``cmp(a, b)``; unparsable versions compare as strings."""
    ka, kb = version_key(a), version_key(b)
    if ka is None or kb is None:
        return (a > b) - (a < b)
    return (ka > kb) - (ka < kb)


# ---------------------------------------------------------------------------
# requirements.txt (hash-pinned, as produced by the controller)
# ---------------------------------------------------------------------------

_REQ_RE = re.compile(
    r"^(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?:\[[^\]]*\])?\s*"
    r"==\s*(?P<version>[A-Za-z0-9!+._-]+)(?P<rest>.*)$"
)
_HASH_RE = re.compile(r"--hash(?:=|\s+)(?P<algo>[A-Za-z0-9]+):(?P<digest>[0-9A-Fa-f]+)")
_COMMENT_RE = re.compile(r"(^|\s)#.*$")


class Requirement:
    """One pinned requirement: ``name==version --hash=...``."""

    __slots__ = ("name", "version", "hashes")

    def __init__(self, name: str, version: str, hashes: t.Iterable[str]) -> None:
        self.name = canonical_name(name)
        self.version = version
        self.hashes = frozenset(hashes)

    def __repr__(self) -> str:
        return "Requirement(%r, %r)" % (self.name, self.version)


def _logical_lines(text: str) -> t.Iterator[t.Tuple[int, str]]:
    buf: t.List[str] = []
    start = 0
    for lineno, line in enumerate(text.splitlines(), 1):
        if not buf:
            start = lineno
        # comments: whole line, or " #" after content (as pip does)
        stripped = _COMMENT_RE.sub("", line) if "#" in line else line
        if stripped.rstrip().endswith("\\"):
            buf.append(stripped.rstrip()[:-1])
            continue
        buf.append(stripped)
        joined = " ".join(buf).strip()
        buf = []
        if joined:
            yield start, joined
    if buf and " ".join(buf).strip():
        yield start, " ".join(buf).strip()


def parse_requirements(text: str, source: str = "requirements") -> t.Dict[str, Requirement]:
    """Parse the hash-pinned requirements file shipped by the controller.

    Only ``name==version --hash=algo:digest ...`` lines are accepted: markers must
    already be evaluated on the controller, and index or other options could
    re-enable the network or change what gets installed.
    """
    reqs: t.Dict[str, Requirement] = {}
    for lineno, line in _logical_lines(text):
        where = "%s line %d" % (source, lineno)
        if line.startswith("-"):
            raise SyncError(
                "%s: option %r is not allowed; the requirements file must contain only "
                "'name==version --hash=sha256:...' lines (no index or other options)" % (where, line.split()[0])
            )
        m = _REQ_RE.match(line)
        if not m:
            raise SyncError(
                "%s: cannot parse %r; expected 'name==version --hash=sha256:...'" % (where, line)
            )
        rest = m.group("rest")
        if ";" in rest:
            raise SyncError(
                "%s: environment markers are not supported (%r); the controller must evaluate "
                "them for this host" % (where, line)
            )
        hashes = ["%s:%s" % (h.group("algo").lower(), h.group("digest").lower()) for h in _HASH_RE.finditer(rest)]
        leftover = _HASH_RE.sub("", rest).strip()
        if leftover:
            raise SyncError("%s: unexpected %r after the version (only --hash options are allowed)" % (where, leftover))
        if not hashes:
            raise SyncError("%s: %s has no --hash; every requirement must be hash-pinned" % (where, m.group("name")))
        req = Requirement(m.group("name"), m.group("version"), hashes)
        if req.name in reqs:
            raise SyncError("%s: %s is listed twice" % (where, req.name))
        reqs[req.name] = req
    return reqs


def read_requirements(path: str) -> t.Dict[str, Requirement]:
    try:
        with open(path, "r", encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise SyncError("Cannot read requirements file %s: %s" % (path, exc.strerror or exc))
    reqs = parse_requirements(text, source=path)
    if not reqs:
        # uv would silently do nothing (it needs --allow-empty-requirements to clear an environment)
        raise SyncError("requirements file %s lists no packages; the bundle always holds at least the project" % path)
    return reqs


# ---------------------------------------------------------------------------
# uv output
# ---------------------------------------------------------------------------

INSTALL, REMOVE, REINSTALL = "install", "remove", "reinstall"
_JSON_ACTIONS = {
    "installed": INSTALL,
    "install": INSTALL,
    "added": INSTALL,
    "uninstalled": REMOVE,
    "removed": REMOVE,
    "remove": REMOVE,
    "reinstalled": REINSTALL,
    "reinstall": REINSTALL,
}
# uv's human output, read only where uv has no JSON output: compiled by re on first use.
_TEXT_CHANGE_PATTERN = (
    r"^ (?P<op>[-+~]) (?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?"
    r"(?:==(?P<version>\S+)| @ (?P<url>\S.*))?\s*$"
)
_TEXT_OPS = {"+": INSTALL, "-": REMOVE, "~": REINSTALL}


class Change(t.NamedTuple):
    name: str
    version: t.Optional[str]
    action: str


def parse_changes_json(stdout: str) -> t.Optional[t.List[Change]]:
    """Changes from ``uv pip sync --output-format json``; ``None`` if not understood."""
    try:
        doc = json.loads(stdout)
    except ValueError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("changes"), list):
        return None
    changes = []
    for item in doc["changes"]:
        if not isinstance(item, dict) or "name" not in item:
            return None
        action = _JSON_ACTIONS.get(str(item.get("action", "")).lower())
        if action is None:
            return None
        version = item.get("version")
        changes.append(Change(canonical_name(str(item["name"])), None if version is None else str(version), action))
    return changes


def parse_changes_text(stderr: str) -> t.List[Change]:
    """Changes from uv's human output (`` + name==ver``, `` - name==ver``, `` ~ ...``)."""
    changes = []
    for line in stderr.splitlines():
        m = re.match(_TEXT_CHANGE_PATTERN, line)
        if m:
            changes.append(Change(canonical_name(m.group("name")), m.group("version"), _TEXT_OPS[m.group("op")]))
    return changes


def parse_changes(stdout: str, stderr: str) -> t.List[Change]:
    parsed = parse_changes_json(stdout) if stdout.strip() else None
    return parsed if parsed is not None else parse_changes_text(stderr)


def parse_uv_version(stdout: str) -> str:
    m = re.search(r"\buv\s+([0-9][^\s]*)", stdout)
    return m.group(1) if m else stdout.strip()


def state_before(after: t.Mapping[str, str], changes: t.Iterable[Change]) -> t.Tuple[t.Dict[str, str], t.Set[str]]:
    """Package set before a sync, from the set after it and uv's plan.

    Returns ``(before, reinstalled)``; ``reinstalled`` names packages uv removes and
    installs again at the same version.
    """
    before = dict(after)
    removed: t.Dict[str, t.Optional[str]] = {}
    installed: t.Set[str] = set()
    for change in changes:
        if change.action in (REMOVE, REINSTALL):
            removed[change.name] = change.version
        if change.action in (INSTALL, REINSTALL):
            installed.add(change.name)
    for name in installed:
        before.pop(name, None)
    for name, version in removed.items():
        before[name] = version if version is not None else after.get(name, "unknown")
    reinstalled = {n for n in installed if n in before and n in after and before[n] == after[n]}
    return before, reinstalled


class PackageDiff:
    """Difference between two package sets (community.docker style before/after)."""

    def __init__(self, before: t.Mapping[str, str], after: t.Mapping[str, str], reinstalled: t.Iterable[str] = ()) -> None:
        self.before = dict(before)
        self.after = dict(after)
        self.installed: t.List[t.Dict[str, str]] = []
        self.removed: t.List[t.Dict[str, str]] = []
        self.upgraded: t.List[t.Dict[str, str]] = []
        self.downgraded: t.List[t.Dict[str, str]] = []
        for name in sorted(set(self.before) | set(self.after)):
            old, new = self.before.get(name), self.after.get(name)
            if old is None and new is not None:
                self.installed.append({"name": name, "version": new})
            elif new is None and old is not None:
                self.removed.append({"name": name, "version": old})
            elif old != new and old is not None and new is not None:
                entry = {"name": name, "from": old, "to": new}
                (self.downgraded if compare_versions(new, old) < 0 else self.upgraded).append(entry)
        self.reinstalled = [
            {"name": n, "version": self.after[n]}
            for n in sorted(set(reinstalled))
            if n in self.after and self.before.get(n) == self.after[n]
        ]

    @property
    def changed(self) -> bool:
        return bool(self.installed or self.removed or self.upgraded or self.downgraded or self.reinstalled)

    def as_dict(self) -> t.Dict[str, t.Any]:
        return {
            "installed": self.installed,
            "removed": self.removed,
            "upgraded": self.upgraded,
            "downgraded": self.downgraded,
            "reinstalled": self.reinstalled,
        }


def format_packages(packages: t.Mapping[str, str]) -> t.List[str]:
    return ["%s==%s" % (n, packages[n]) for n in sorted(packages)]


# ---------------------------------------------------------------------------
# Running uv
# ---------------------------------------------------------------------------

# Variables that could change what uv or the smoke-checked interpreter do.
_TLS_VARS = ("SSL_CERT_FILE", "SSL_CERT_DIR")
_DROP_VARS = ("VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONUSERBASE")


def uv_environment(base: t.Mapping[str, str], cache_dir: str, offline: bool) -> t.Dict[str, str]:
    """A sanitized environment: nothing from the user's uv/pip setup may re-enable the network."""
    env = {k: v for k, v in base.items() if not k.startswith(("UV_", "PIP_")) and k not in _DROP_VARS}
    env["UV_NO_CONFIG"] = "1"
    env["UV_CACHE_DIR"] = cache_dir
    env["UV_PYTHON_DOWNLOADS"] = "never"
    env["NO_COLOR"] = "1"
    if offline:
        env["UV_OFFLINE"] = "1"
        # no TLS offline: uv would still parse every CA certificate these name (~10 ms)
        for key in _TLS_VARS:
            env.pop(key, None)
    return env


class CommandResult(t.NamedTuple):
    argv: t.List[str]
    rc: int
    stdout: str
    stderr: str


def stderr_tail(stderr: str, lines: int = STDERR_TAIL_LINES) -> str:
    kept = [ln for ln in stderr.splitlines() if ln.strip()]
    return "\n".join(kept[-lines:])


CommandRunner = t.Callable[..., CommandResult]


def run_command(argv: t.List[str], env: t.Dict[str, str], run_as: t.Optional[RunAs] = None) -> CommandResult:
    """Run ARGV; as RUN_AS (the owner) when root works for one, see _host_safety."""
    try:
        proc = run(argv, env, run_as)
    except OSError as exc:
        hint = "; is it the binary for this host's platform?" if exc.errno == errno.ENOEXEC else ""
        raise SyncError("Cannot run %s: %s%s" % (argv[0], exc.strerror or exc, hint), cmd=argv)
    return CommandResult(
        argv, proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")
    )


class UvInfo(t.NamedTuple):
    version: str
    json_output: bool  # whether ``uv pip sync`` supports ``--output-format json``


class Uv:
    """The shipped uv binary, always run with ``--no-config`` and a sanitized environment."""

    def __init__(self, path: str, cache_dir: str, environ: t.Mapping[str, str], runner: CommandRunner = run_command) -> None:
        self.path = path
        self.cache_dir = cache_dir
        self.environ = environ
        self.runner = runner
        # Who uv runs as: the owner when root deploys for one (uv runs the releases' interpreters).
        self.run_as: t.Optional[RunAs] = None
        self._info: t.Optional[UvInfo] = None

    def run(self, args: t.Sequence[str], offline: bool = True, extra_env: t.Optional[t.Mapping[str, str]] = None) -> CommandResult:
        # ``--no-config`` must come before the subcommand: after ``pip sync`` uv 0.5
        # takes it for pip-tools' (ignored) option of the same name.
        argv = [self.path, "--no-config"] + list(args)
        env = uv_environment(self.environ, self.cache_dir, offline)
        env.update(extra_env or {})
        if self.run_as is not None:
            return self.runner(argv, env, self.run_as)
        return self.runner(argv, env)

    def check(self, args: t.Sequence[str], what: str, offline: bool = True) -> CommandResult:
        res = self.run(args, offline=offline)
        if res.rc != 0:
            raise uv_failure(what, res)
        return res

    def info(self, state: t.Optional["StateFile"] = None) -> UvInfo:
        """Version and capabilities, cached in the state file by the binary's identity."""
        if self._info is not None:
            return self._info
        try:
            st = os.stat(self.path)
        except OSError as exc:
            raise SyncError("uv binary %s: %s" % (self.path, exc.strerror))
        key = [os.path.realpath(self.path), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        cached = state.data.get("uv") if state is not None else None
        if isinstance(cached, dict) and cached.get("key") == key:
            self._info = UvInfo(str(cached["version"]), bool(cached["json_output"]))
            return self._info
        version = parse_uv_version(self.check(["--version"], "uv --version").stdout)
        helptext = self.check(["pip", "sync", "--help"], "uv pip sync --help").stdout
        self._info = UvInfo(version, "--output-format" in helptext)
        if state is not None:
            state.set("uv", {"key": key, "version": version, "json_output": self._info.json_output})
        return self._info


_DISK_FULL = re.compile(r"No space left on device|os error 28|Disk quota exceeded|os error 122")
DISK_FULL_HINT = ("The host ran out of disk space (or quota): free space on the file systems of the releases "
                  "directory and the uv cache (df -h), then run again. The release in service is unchanged.")


def uv_failure(what: str, res: CommandResult, hint: str = "") -> SyncError:
    tail = stderr_tail(res.stderr)
    if res.rc < 0:
        cause = "was killed by signal %d" % -res.rc
    else:
        cause = "failed (exit code %d)" % res.rc
    msg = "%s %s" % (what, cause)
    if tail:
        msg += ":\n" + tail
    if _DISK_FULL.search(res.stderr):
        msg += "\n" + DISK_FULL_HINT
    elif hint and res.rc >= 0:  # a signal is not a wheelhouse problem
        msg += "\n" + hint
    return SyncError(msg, cmd=res.argv, rc=res.rc, stdout=res.stdout[-4000:], stderr=res.stderr[-8000:])


# ---------------------------------------------------------------------------
# State file (sha256 cache, uv info) and lock
# ---------------------------------------------------------------------------


class StateFile:
    """Small JSON cache next to the releases directory; losing it only costs time.

    Only the user running the module reads and writes it (mode 0600): a file another user
    owns (handed to the owner by releases before 0.5) is not trusted, and replaced.
    """

    def __init__(self, path: str, data: t.Optional[t.Dict[str, t.Any]] = None) -> None:
        self.path = path
        self.data: t.Dict[str, t.Any] = data if data is not None else {"format": STATE_FORMAT}
        self.dirty = False

    @classmethod
    def load(cls, path: str) -> "StateFile":
        try:
            if os.lstat(path).st_uid == os.geteuid():
                data = json.loads(read_text(path, limit=64 << 20))
                if isinstance(data, dict) and data.get("format") == STATE_FORMAT:
                    return cls(path, data)
        except (OSError, ValueError):
            pass
        state = cls(path)
        state.dirty = os.path.lexists(path)  # replace what was there, even when nothing else changes
        return state

    def set(self, key: str, value: t.Any) -> None:
        if self.data.get(key) != value:
            self.data[key] = value
            self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        tmp = "%s.tmp-%d" % (self.path, os.getpid())
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0), 0o600)
            with open(fd, "w", encoding="utf-8") as f:
                os.fchmod(fd, 0o600)
                json.dump(self.data, f, sort_keys=True)
            os.replace(tmp, self.path)
            self.dirty = False
        except OSError:
            # a cache: failing to write it is not an error
            try:
                os.unlink(tmp)
            except OSError:
                pass


class FileLock:
    """``fcntl.flock`` on a lock file, waiting up to ``timeout`` seconds.

    The file is the running user's, mode 0600: no other user can open it, so no other
    user can hold the lock and stall a deployment (a shared lock needs only read access).
    """

    def __init__(self, path: str, timeout: float, shared: bool = False, create: bool = True) -> None:
        self.path = path
        self.timeout = timeout
        self.shared = shared
        self.create = create
        self.fd: t.Optional[int] = None

    def __enter__(self) -> "FileLock":
        flags = os.O_RDWR | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0) | (os.O_CREAT if self.create else 0)
        try:
            fd = os.open(self.path, flags, 0o600)
        except OSError as exc:
            if exc.errno == errno.ENOENT and not self.create:
                return self  # check mode: no lock file, nothing to wait for
            if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise SyncError("Cannot open lock file %s: %s" % (self.path, exc.strerror))
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)  # flock works on read-only fds
            except OSError as exc2:
                raise SyncError(
                    "Cannot create lock file %s: %s (running as %s); make its directory writable for "
                    "this user or run with become" % (self.path, exc2.strerror, whoami())
                )
        if self.create:
            self._own(fd)
        op = (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB
        deadline = time.monotonic() + self.timeout
        delay = 0.02
        while True:
            try:
                fcntl.flock(fd, op)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    os.close(fd)
                    raise SyncError("Cannot lock %s: %s" % (self.path, exc.strerror))
            if time.monotonic() >= deadline:
                holders = lock_holders(fd) or ["pid %s" % _read_small(self.path).strip() or "an unknown process"]
                os.close(fd)
                raise SyncError(
                    "Timed out after %ss waiting for the lock %s, held by %s (another run on this venv); "
                    "wait for it to finish or raise lock_timeout" % (self.timeout, self.path, ", ".join(holders))
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.25)
        self.fd = fd
        if not self.shared:
            try:
                os.ftruncate(fd, 0)
                os.write(fd, b"%d\n" % os.getpid())
            except OSError:
                pass
        return self

    @staticmethod
    def _own(fd: int) -> None:
        """Make the lock file the running user's, mode 0600 (older releases made it 0644 and handed it over)."""
        st = os.fstat(fd)
        try:
            if st.st_uid != os.geteuid() and os.geteuid() == 0:
                os.fchown(fd, 0, 0)
            if stat.S_IMODE(st.st_mode) != 0o600:
                os.fchmod(fd, 0o600)
        except OSError:
            pass

    def __exit__(self, *exc_info: t.Any) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing releases the flock
            self.fd = None


def _read_small(path: str) -> str:
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as f:
            return f.read(64)
    except OSError:
        return ""


def whoami() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return "uid %d" % os.geteuid()


# ---------------------------------------------------------------------------
# Manifest
# ---------------------------------------------------------------------------


class ManifestVerifier:
    """Checks every file a manifest lists (existence, size, sha256) before uv runs.

    sha256 results are cached in the state file keyed by the file's identity
    (path, size, mtime_ns, ctime_ns, inode), so a no-op run hashes nothing.
    """

    def __init__(self, manifest: str, wheelhouse: str, state: StateFile) -> None:
        self.manifest = manifest
        self.wheelhouse = wheelhouse
        self.state = state
        self.document: t.Dict[str, t.Any] = {}

    def _load(self) -> t.List[t.Dict[str, t.Any]]:
        try:
            with open(self.manifest, "r", encoding="utf-8") as f:
                doc = json.load(f)
        except OSError as exc:
            raise SyncError("Cannot read manifest %s: %s; run the deployment again (the push restores it)" % (self.manifest, exc.strerror))
        except ValueError as exc:
            raise SyncError("Manifest %s is not valid JSON (%s); run the deployment again (the push restores it)" % (self.manifest, exc))
        if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT or not isinstance(doc.get("files"), list):
            raise SyncError(
                "Manifest %s: unsupported format %r (this module reads format %d with a 'files' list)"
                % (self.manifest, doc.get("format") if isinstance(doc, dict) else None, MANIFEST_FORMAT)
            )
        self.document = doc
        return doc["files"]

    def resolve(self, filename: str) -> str:
        """Bare names live in the wheelhouse; names with a slash are relative to the manifest."""
        if "/" in filename:
            return os.path.normpath(os.path.join(os.path.dirname(self.manifest), filename))
        return os.path.join(self.wheelhouse, filename)

    def matches(self, path: str) -> bool:
        """Whether PATH is listed with the size and sha256 it has (False when unlisted or unreadable)."""
        try:
            entries = self._load()
        except SyncError:
            return False
        for entry in entries:
            if isinstance(entry, dict) and entry.get("filename") and self.resolve(str(entry["filename"])) == path:
                try:
                    if entry.get("size") is not None and os.stat(path).st_size != int(entry["size"]):
                        return False
                    return sha256_file(path) == str(entry.get("sha256", "")).lower().replace("sha256:", "")
                except (OSError, ValueError):
                    return False
        return False

    def verify(self) -> None:
        entries = self._load()
        old_cache = self.state.data.get("sha256")
        old_cache = old_cache if isinstance(old_cache, dict) else {}
        new_cache: t.Dict[str, t.List[t.Any]] = {}
        problems: t.List[str] = []
        for entry in entries:
            if not isinstance(entry, dict) or not entry.get("filename") or not entry.get("sha256"):
                raise SyncError("Manifest %s: malformed entry %r" % (self.manifest, entry))
            filename = str(entry["filename"])
            path = self.resolve(filename)
            try:
                st = os.stat(path)
            except OSError as exc:
                problems.append("%s is missing (%s)" % (path, exc.strerror))
                continue
            size = entry.get("size")
            if size is not None and st.st_size != int(size):
                problems.append("%s is corrupt: size %d, manifest says %s" % (path, st.st_size, size))
                continue
            key = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
            cached = old_cache.get(path)
            if isinstance(cached, list) and len(cached) == 5 and cached[:4] == key:
                digest = cached[4]
            else:
                try:
                    digest = sha256_file(path)
                except OSError as exc:
                    problems.append("%s cannot be read (%s)" % (path, exc.strerror))
                    continue
            new_cache[path] = key + [digest]
            expected = str(entry["sha256"]).lower()
            if expected.startswith("sha256:"):
                expected = expected[len("sha256:"):]
            if digest != expected:
                problems.append("%s is corrupt: sha256 %s, manifest says %s" % (path, digest, expected))
        self.state.set("sha256", new_cache)
        if problems:
            raise SyncError(
                "Files on this host do not match manifest %s:\n  %s\nNothing was run or changed; the release in "
                "service is untouched. Run the deployment again: the push replaces these files with the "
                "controller's copies, which it checks against the lock first."
                % (self.manifest, "\n  ".join(problems)),
                files=problems,
            )


# ---------------------------------------------------------------------------
# Releases
# ---------------------------------------------------------------------------


class Release:
    """A release directory; complete once its metadata file exists."""

    __slots__ = ("path", "_meta")

    def __init__(self, path: str) -> None:
        self.path = path
        self._meta: t.Optional[t.Dict[str, t.Any]] = None

    @property
    def id(self) -> str:
        return os.path.basename(self.path)

    @property
    def meta_path(self) -> str:
        return os.path.join(self.path, RELEASE_META)

    @property
    def meta(self) -> t.Optional[t.Dict[str, t.Any]]:
        if self._meta is None:
            try:
                # The release may belong to its owner: read no link it planted.
                data = json.loads(read_text(self.meta_path))
                self._meta = data if isinstance(data, dict) else None
            except (OSError, ValueError):
                self._meta = None
        return self._meta

    @property
    def complete(self) -> bool:
        return self.meta is not None

    @property
    def python(self) -> str:
        return os.path.join(self.path, "bin", "python")

    @property
    def packages(self) -> t.Dict[str, str]:
        pkgs = (self.meta or {}).get("packages") or {}
        return {name: str(info.get("version")) for name, info in pkgs.items() if isinstance(info, dict)}

    def remember_meta(self, meta: t.Dict[str, t.Any]) -> None:
        """Use META, just written to ``meta_path`` (``ReleaseWriter``), instead of reading it again."""
        self._meta = meta


def release_runs(release: Release, run_as: t.Optional[RunAs] = None) -> bool:
    """Whether RELEASE's interpreter starts (a release can be broken by hand, or half-removed).

    Runs it as RUN_AS, the release's owner when root deploys for one.
    """
    if not os.path.exists(release.python):
        return False
    res = run_command([release.python, "-c", ""], {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, run_as)
    return res.rc == 0


def _is_real_dir(path: str) -> bool:
    """A directory, not a link to one (a release is never a link)."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


class VenvView(t.NamedTuple):
    kind: str  # absent | release | dangling | directory | foreign
    current: t.Optional[Release]
    target: t.Optional[str]


class ReleaseStore:
    """``venv`` -> ``<releases_dir>/<id>`` symlink plus the releases next to it."""

    def __init__(self, venv: str, releases_dir: t.Optional[str] = None) -> None:
        self.venv, self.releases_dir, self.lock_path, self.state_path = store_paths(venv, releases_dir)

    def inspect(self) -> VenvView:
        try:
            target = os.readlink(self.venv)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return VenvView("absent", None, None)
            if exc.errno == errno.EINVAL:  # exists, not a symlink
                return VenvView("directory" if os.path.isdir(self.venv) else "foreign", None, None)
            raise SyncError("Cannot inspect %s: %s" % (self.venv, exc.strerror))
        resolved = os.path.normpath(os.path.join(os.path.dirname(self.venv), target))
        if os.path.realpath(os.path.dirname(resolved)) != os.path.realpath(self.releases_dir):
            return VenvView("foreign", None, target)
        release = Release(os.path.join(self.releases_dir, os.path.basename(resolved)))
        if not _is_real_dir(release.path):
            return VenvView("dangling", None, target)
        return VenvView("release", release, target)

    def releases(self) -> t.List[Release]:
        """All release directories, newest first (ids sort by creation time)."""
        try:
            names = os.listdir(self.releases_dir)
        except OSError:
            return []
        return [
            Release(os.path.join(self.releases_dir, n))
            for n in sorted(names, reverse=True)
            if not n.startswith(".") and _is_real_dir(os.path.join(self.releases_dir, n))
        ]

    def get(self, release_id: t.Optional[str]) -> t.Optional[Release]:
        if not release_id or "/" in release_id or release_id.startswith("."):
            return None
        rel = Release(os.path.join(self.releases_dir, release_id))
        return rel if _is_real_dir(rel.path) and rel.complete else None

    def previous_of(self, current: Release) -> t.Optional[Release]:
        """The release that was in service before ``current`` (else the newest older one)."""
        prev = self.get((current.meta or {}).get("previous"))
        if prev is not None and prev.id != current.id:
            return prev
        for rel in self.releases():
            if rel.id < current.id and rel.complete:
                return rel
        return None

    def ensure_dirs(self) -> None:
        for path in (os.path.dirname(self.venv), self.releases_dir):
            try:
                os.makedirs(path, mode=0o755, exist_ok=True)
            except OSError as exc:
                raise SyncError(
                    "Cannot create directory %s: %s (running as %s); fix the permissions of its parent, "
                    "run with become, or choose another venv/releases_dir" % (path, exc.strerror, whoami())
                )
        if os.geteuid() == 0:
            self._take_back()
        self.require_writable(self.releases_dir)

    def _take_back(self) -> None:
        """Root keeps the releases directory (releases before 0.5 handed it to the owner).

        Its parent is root's alone (checked before), so the entry cannot be swapped meanwhile;
        links the owner may have planted in it are removed, never followed.
        """
        st = os.lstat(self.releases_dir)
        if not stat.S_ISDIR(st.st_mode):
            raise SyncError("%s is not a directory; remove it so that the releases can live there" % self.releases_dir)
        if st.st_uid != 0:
            os.chown(self.releases_dir, 0, 0, follow_symlinks=False)
        if stat.S_IMODE(st.st_mode) & 0o022:
            os.chmod(self.releases_dir, stat.S_IMODE(st.st_mode) & ~0o022)
        for name in os.listdir(self.releases_dir):
            path = os.path.join(self.releases_dir, name)
            if os.path.islink(path):
                os.unlink(path)

    @staticmethod
    def require_writable(path: str) -> None:
        """Fail unless the running user can create entries in PATH.

        The directory holding the venv symlink is checked only before a switch (build,
        adopt, rollback): a run with nothing to do, for example by the owner the releases
        were handed over to, does not need to write there.
        """
        if not os.access(path, os.W_OK | os.X_OK):
            raise SyncError(
                "Directory %s is not writable by %s; fix its ownership/permissions or run with become"
                % (path, whoami())
            )

    def cleanup(self, keep: int, protect: t.Iterable[Release]) -> t.List[str]:
        """Remove half-built releases and all but ``keep`` complete ones (protected first)."""
        protected_ids = [r.id for r in protect if r is not None]
        kept: t.List[str] = list(dict.fromkeys(protected_ids))
        removed: t.List[str] = []
        for rel in self.releases():
            if rel.id in kept:
                continue
            if rel.complete and len(kept) < keep:
                kept.append(rel.id)
                continue
            shutil.rmtree(rel.path, ignore_errors=True)
            removed.append(rel.path)
        self._cleanup_tmp_links()
        return removed

    def _cleanup_tmp_links(self) -> None:
        parent = os.path.dirname(self.venv)
        prefix = ".%s.tmp-" % os.path.basename(self.venv)
        try:
            names = os.listdir(parent)
        except OSError:
            return
        for n in names:
            if n.startswith(prefix) and os.path.islink(os.path.join(parent, n)):
                try:
                    os.unlink(os.path.join(parent, n))
                except OSError:
                    pass


# ---------------------------------------------------------------------------
# Ownership
# ---------------------------------------------------------------------------


def resolve_ids(owner: t.Optional[str], group: t.Optional[str]) -> t.Tuple[int, int]:
    try:
        return user_ids(owner, group)
    except KeyError as exc:
        raise SyncError(exc.args[0])


# ---------------------------------------------------------------------------
# The runner
# ---------------------------------------------------------------------------


def parse_mode(value: t.Any) -> t.Optional[int]:
    """The ``mode`` option: an octal string (``'0750'``, ``'750'``, ``'0o750'``) or, as
    Ansible's file module takes it, a number that already is the mode (YAML ``0750``).
    ``None`` or ``''``: not managed.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise SyncError("mode must be an octal string such as '0755', got %r" % (value,))
    if isinstance(value, int):
        mode = value
        shown = "%r (the number %04o in octal; quote octal modes in YAML)" % (value, value)
    else:
        text = str(value).strip().lower()
        digits = text[2:] if text.startswith("0o") else text
        if not digits or any(c not in "01234567" for c in digits):
            raise SyncError(
                "mode %r is not an octal mode such as '0755' (symbolic modes like 'u=rwx' are not supported)" % (value,)
            )
        mode = int(digits, 8)
        shown = repr(value)
    if not 0 <= mode <= 0o7777:
        raise SyncError("mode %s is out of range (0000 to 7777 in octal)" % shown)
    if mode & 0o700 != 0o700:
        raise SyncError(
            "mode %s must give the owner rwx on the environment directory (for example '0750'): without them "
            "the environment cannot be used, updated or removed by its owner; is it a file mode such as '0644'?" % shown
        )
    return mode


class SyncParams:
    """Module parameters with defaults applied (see the module's argument spec)."""

    def __init__(self, params: t.Mapping[str, t.Any], python_executable: t.Optional[str] = None) -> None:
        uv = params.get("uv")
        self.uv: str = os.path.abspath(str(uv)) if uv else ""
        self.venv: str = os.path.abspath(str(params["venv"]))
        self.state: str = params.get("state") or "present"
        wheelhouse = params.get("wheelhouse")
        requirements = params.get("requirements")
        self.wheelhouse: t.Optional[str] = os.path.abspath(str(wheelhouse)) if wheelhouse else None
        self.requirements: t.Optional[str] = os.path.abspath(str(requirements)) if requirements else None
        manifest = params.get("manifest")
        self.manifest: t.Optional[str] = os.path.abspath(str(manifest)) if manifest else None
        constraints = params.get("build_constraints")
        self.build_constraints: t.Optional[str] = os.path.abspath(str(constraints)) if constraints else None
        self.releases_dir: t.Optional[str] = params.get("releases_dir") or None
        cache_dir = params.get("cache_dir")
        if cache_dir:
            self.cache_dir: str = os.path.abspath(str(cache_dir))
        elif self.wheelhouse:
            self.cache_dir = os.path.join(os.path.dirname(self.wheelhouse), "cache")
        else:
            self.cache_dir = os.path.join(os.path.dirname(self.uv), "cache")
        python = params.get("python")
        self.python: str = str(python) if python else os.path.realpath(python_executable or sys.executable)
        self.network: str = params.get("network") or "offline"
        self.index_url: t.Optional[str] = params.get("index_url") or None
        self.refresh: bool = bool(params.get("refresh"))
        self.adopt: bool = bool(params.get("adopt"))
        self.owner: t.Optional[str] = params.get("owner") or None
        self.group: t.Optional[str] = params.get("group") or None
        self.keep_releases: int = int(params.get("keep_releases") if params.get("keep_releases") is not None else 2)
        lock_timeout = params.get("lock_timeout")
        self.lock_timeout: float = float(lock_timeout if lock_timeout is not None else 600)
        self.compile_bytecode: bool = bool(params.get("compile_bytecode"))
        self.http_timeout: t.Optional[int] = params.get("http_timeout")
        self.http_retries: t.Optional[int] = params.get("http_retries")
        self.mode_input: t.Any = params.get("mode")
        self.mode: t.Optional[int] = None  # parsed by SyncRunner._validate (errors become task failures)
        pending = params.get("pending")
        self.pending: t.Optional[t.Mapping[str, t.Any]] = pending if pending else None
        # The push's staged set to land first, and the manifest this run pushed (_sync_inputs).
        self.incoming: t.Optional[str] = params.get("incoming") or None
        self.manifest_sha256: t.Optional[str] = params.get("manifest_sha256") or None
        self.prune_wheelhouse: bool = params.get("prune_wheelhouse") is not False
        self.acknowledge: t.Optional[str] = params.get("acknowledge") or None


_SYNC_HINT = (
    "Check that wheelhouse and requirements come from the same bundle built for this host "
    "(platform, Python version) and that every wheel is intact."
)


class Plan(t.NamedTuple):
    before: t.Dict[str, str]
    reinstalled: t.Set[str]
    network_used: str


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
        self.warned = True  # a run that warned is not recorded as a no-op (_sync_replay)
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
                require_manifest(p.manifest, p.manifest_sha256, self.in_service())
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
        result = self.result(bool(fixes), plan.before, after, set(), current, previous, plan.network_used,
                             "; ".join(fixes) or None)
        if not (fixes or pruned or self.warned or self.check_mode):
            # The next run with the same inputs returns this without loading this file (_sync_replay).
            key = noop_key(self.params, self.diff_mode, self.python_executable, fingerprint=self.fingerprint)
            if key is not None:
                self.state.set(NOOP_RESULT, {"key": key, "result": result})
        return result

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
