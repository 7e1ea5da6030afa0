# -*- coding: utf-8 -*-
# Copyright (c) airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The release store of airgap.uv.sync: its state file and lock, the releases beside the
environment's symlink, and who owns them.

Runs on the TARGET: standard library only (Python 3.9+).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import pwd
import shutil
import stat
import time
import typing as t

from ansible_collections.airgap.uv.plugins.module_utils._host_safety import RunAs, lock_holders, read_text, user_ids
from ansible_collections.airgap.uv.plugins.module_utils._sync_error import SyncError
from ansible_collections.airgap.uv.plugins.module_utils._sync_uv import run_command


RELEASE_META = "airgap-uv-release.json"
STATE_FORMAT = 1
UNREPORTED = "unreported_switch"  # the state file's record of a switch not reported yet (_sync_report)


class StorePaths(t.NamedTuple):
    venv: str
    releases_dir: str
    lock_path: str
    state_path: str


def store_paths(venv: str, releases_dir: t.Optional[str] = None) -> StorePaths:
    """Where the release store of VENV keeps its releases, lock and state file."""
    venv = os.path.abspath(venv)
    parent, name = os.path.split(venv)
    releases = os.path.abspath(releases_dir) if releases_dir else os.path.join(parent, ".%s.releases" % name)
    return StorePaths(venv, releases, releases + ".lock", releases + ".state.json")


def environment_fingerprint(prefix: str) -> t.List[t.List[t.Any]]:
    """What ``uv pip sync --dry-run`` reads of the environment at PREFIX, as cheap ``lstat`` facts.

    uv decides from the installed distributions' metadata directories: every entry of each
    ``site-packages`` (a package installed, removed or replaced changes the entry or its
    inode) and every file of the ``*.dist-info``/``*.egg-info`` directories (an in-place edit
    of ``METADATA`` changes its size or mtime). Nothing here reads a file. Names are looked
    up relative to an open descriptor of their directory: for the 1,200 entries of a
    150-package environment that is about 15 % faster than by full path.
    """
    facts: t.List[t.List[t.Any]] = []
    lib = os.path.join(prefix, "lib")
    try:
        pythons = sorted(n for n in os.listdir(lib) if n.startswith(("python", "pypy")))
    except OSError:
        return facts
    for name in pythons:
        site = os.path.join(lib, name, "site-packages")
        try:
            top = os.lstat(site)
            site_fd = os.open(site, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            try:
                entries = sorted(os.listdir(site_fd))
            except OSError:
                continue
            facts.append([site, top.st_ino, top.st_mtime_ns])
            for entry in entries:
                st = os.stat(entry, dir_fd=site_fd, follow_symlinks=False)
                facts.append([entry, st.st_ino, st.st_size, st.st_mtime_ns])
                if entry.endswith((".dist-info", ".egg-info")) and stat.S_ISDIR(st.st_mode):
                    meta_fd = os.open(entry, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=site_fd)
                    try:
                        for inner in sorted(os.listdir(meta_fd)):
                            ist = os.stat(inner, dir_fd=meta_fd, follow_symlinks=False)
                            facts.append([entry, inner, ist.st_ino, ist.st_size, ist.st_mtime_ns])
                    finally:
                        os.close(meta_fd)
        finally:
            os.close(site_fd)
    return facts


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
