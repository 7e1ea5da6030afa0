# -*- coding: utf-8 -*-
# Copyright (c) airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What root may and may not do on a host where another user owns part of the tree.

Runs on the TARGET: standard library only (Python 3.9+).

The rule (README, "Who runs what on the host"): when root deploys an environment for an
``owner``, every command that executes code from an environment (uv, a release's
interpreter, the check command) runs as that owner, and root itself only works in
directories nobody else can write. Inside the trees the owner does own (its releases
and the uv cache used on its behalf), root follows no symlink and opens no file it did
not create itself.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import signal
import stat
import subprocess
import typing as t

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


class UnsafePath(Exception):
    """A path root must not work in; the message says why and what to do."""


# ---------------------------------------------------------------------------
# Who runs commands
# ---------------------------------------------------------------------------


class RunAs(t.NamedTuple):
    """The user commands run as, when root works on its behalf."""

    uid: int
    gid: int
    groups: t.Tuple[int, ...]
    name: str
    home: str

    def popen_kwargs(self) -> t.Dict[str, t.Any]:
        return {"user": self.uid, "group": self.gid, "extra_groups": list(self.groups)}

    def environ(self, env: t.Mapping[str, str]) -> t.Dict[str, str]:
        """ENV with the user's identity (uv reads HOME; nothing of root's home is used)."""
        out = dict(env)
        out.update(HOME=self.home, USER=self.name, LOGNAME=self.name)
        return out


def user_ids(owner: t.Optional[str], group: t.Optional[str]) -> t.Tuple[int, int]:
    """(uid, gid) of OWNER and GROUP (names or numbers; -1 when unset). KeyError names what is unknown."""
    uid = gid = -1
    if owner not in (None, ""):
        try:
            uid = int(owner) if str(owner).isdigit() else pwd.getpwnam(str(owner)).pw_uid
        except KeyError:
            raise KeyError("owner %r does not exist on this host" % owner)
    if group not in (None, ""):
        try:
            gid = int(group) if str(group).isdigit() else grp.getgrnam(str(group)).gr_gid
        except KeyError:
            raise KeyError("group %r does not exist on this host" % group)
    return uid, gid


def run_as_for(uid: int, gid: int) -> t.Optional[RunAs]:
    """Whom to run environment code as: the owner UID when this process is root, else nobody else.

    GID is the group the files get (the owner's primary group when -1).
    """
    if os.geteuid() != 0 or uid in (-1, 0):
        return None
    try:
        entry = pwd.getpwuid(uid)
        name, home, primary = entry.pw_name, entry.pw_dir or "/", entry.pw_gid
        groups = tuple(g for g in os.getgrouplist(name, primary))
    except KeyError:  # a numeric uid without a passwd entry
        name, home, primary, groups = str(uid), "/", uid, ()
    gid = primary if gid == -1 else gid
    return RunAs(uid, gid, tuple(sorted(set(groups) - {gid})), name, home)


def run(argv: t.List[str], env: t.Mapping[str, str], run_as: t.Optional[RunAs] = None,
        cwd: str = "/", timeout: t.Optional[float] = None) -> subprocess.CompletedProcess:
    """Run ARGV (output captured), as RUN_AS when given.

    With TIMEOUT (seconds) the command runs in a session of its own, and the whole session is
    killed when it outlasts it (``subprocess.TimeoutExpired``, with the output so far): a
    command's children do not keep running after it.
    """
    kwargs: t.Dict[str, t.Any] = {}
    if run_as is not None:
        kwargs = run_as.popen_kwargs()
        env = run_as.environ(env)
    if timeout is None:
        return subprocess.run(argv, env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, check=False, **kwargs)
    with subprocess.Popen(argv, env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, start_new_session=True, **kwargs) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass  # gone meanwhile
            out, err = proc.communicate()
            raise subprocess.TimeoutExpired(argv, timeout, out, err) from None
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


# ---------------------------------------------------------------------------
# Where root works
# ---------------------------------------------------------------------------


def group_or_world_writable(st: os.stat_result) -> bool:
    return bool(st.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


def require_root_only(path: str, what: str) -> None:
    """Fail unless PATH and every directory above it can be changed by root alone.

    Checked whenever root deploys: a directory another user can write lets that user swap
    what root is about to change (or run) for something of its own, or for a link into the
    rest of the system. An entry of a sticky directory such as /tmp is safe when root owns
    it; PATH itself must not be such a directory. Missing trailing components are fine
    (root creates them).
    """
    path = os.path.abspath(path)
    current, child = path, None  # child: the lstat of the entry below CURRENT already checked
    while True:
        try:
            st = os.lstat(current)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise UnsafePath("Cannot inspect %s: %s" % (current, exc.strerror))
            child = None
        else:
            if stat.S_ISLNK(st.st_mode):
                if current == path:
                    raise UnsafePath("%s (%s) is a symlink; root follows none where it deploys: replace it "
                                     "with a directory" % (current, what))
                st = os.stat(current)  # a link above (such as /var/run -> /run) is judged by its target
            sticky_ok = bool(st.st_mode & stat.S_ISVTX) and child is not None and child.st_uid == 0
            if st.st_uid != 0 or (group_or_world_writable(st) and not sticky_ok):
                raise UnsafePath(_unsafe_message(current, what, st))
            child = st
        parent = os.path.dirname(current)
        if parent == current:
            return
        current = parent


def _unsafe_message(path: str, what: str, st: os.stat_result) -> str:
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = "uid %d" % st.st_uid
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = "gid %d" % st.st_gid
    return ("%s (%s, or a directory above it) is owned by %s:%s with mode %04o, so users other than root can change it; "
            "root will not deploy into a tree another user controls. Make it root's and not group- or "
            "world-writable (chown root %s; chmod go-w %s), choose a path under a root-owned directory "
            "(the role's default /opt/airgap-uv/NAME is), or deploy as that user (become_user)."
            % (path, what, owner, group, stat.S_IMODE(st.st_mode), path, path))


def refuse_symlink(path: str, what: str) -> None:
    """Fail when PATH exists as a symlink (root writes through none in the deployment root)."""
    try:
        st = os.lstat(path)
    except OSError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise UnsafePath("%s (%s) is a symlink to %s; airgap.uv writes through no symlink in the deployment "
                         "root: remove it (the next run recreates it as a directory or file)"
                         % (path, what, os.readlink(path)))


# ---------------------------------------------------------------------------
# Files inside trees another user owns
# ---------------------------------------------------------------------------


def open_dir(path: str, dir_fd: t.Optional[int] = None) -> int:
    """A descriptor of directory PATH; fails (ELOOP/ENOTDIR) when PATH is a symlink."""
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)


def read_text(path: str, limit: int = 1 << 20) -> str:
    """The text of the regular file PATH, never through a symlink, FIFO or device."""
    fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        chunks = []
        size = 0
        while size < limit:
            block = os.read(fd, min(1 << 16, limit - size))
            if not block:
                break
            chunks.append(block)
            size += len(block)
        return b"".join(chunks).decode("utf-8")
    finally:
        os.close(fd)


def write_file(directory: str, name: str, data: bytes, mode: int = 0o644, uid: int = -1, gid: int = -1,
               durable: bool = False) -> None:
    """Replace DIRECTORY/NAME with DATA by an atomic rename, whoever can write DIRECTORY.

    The temporary file is created exclusively and without following links, relative to a
    descriptor of DIRECTORY opened without following links, so a link or file planted by
    the directory's owner is never written through.
    """
    dir_fd = open_dir(directory)
    tmp = ".%s.tmp-%d" % (name, os.getpid())
    try:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if (uid, gid) != (-1, -1):
                os.fchown(fd, uid, gid)
            os.fchmod(fd, mode)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        if durable:
            os.fsync(dir_fd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass
        raise
    finally:
        os.close(dir_fd)


def chown_tree(path: str, uid: int, gid: int, only_differing: bool = False) -> None:
    """``chown -R`` of PATH that follows no symlink, even one swapped in while it runs."""
    if (uid, gid) == (-1, -1):
        return

    def needed(st: os.stat_result) -> bool:
        return not only_differing or not ((uid == -1 or st.st_uid == uid) and (gid == -1 or st.st_gid == gid))

    try:
        top = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(top.st_mode):
        if needed(top):
            os.chown(path, uid, gid, follow_symlinks=False)
        return
    # fwalk opens each directory relative to its parent's descriptor and enters no link.
    for _root, dirs, files, root_fd in os.fwalk(path, follow_symlinks=False):
        if needed(os.fstat(root_fd)):
            os.fchown(root_fd, uid, gid)
        for name in files + dirs:  # links (to directories too) get their own owner, not their target's
            st = os.stat(name, dir_fd=root_fd, follow_symlinks=False)
            if needed(st):
                os.chown(name, uid, gid, dir_fd=root_fd, follow_symlinks=False)


def chmod_dir(path: str, mode: int) -> None:
    """chmod of directory PATH, refusing a symlink."""
    fd = open_dir(path)
    try:
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------
# Locks
# ---------------------------------------------------------------------------


def lock_holders(fd: int) -> t.List[str]:
    """Who holds a lock on the file open as FD: ``pid N (command line)`` each (Linux ``/proc/locks``)."""
    st = os.fstat(fd)
    wanted = "%02x:%02x:%d" % (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    holders = []
    try:
        with open("/proc/locks", "r", encoding="ascii", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return holders
    for line in lines:
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; blocked waiters are marked "->"
        if len(fields) < 6 or fields[1] == "->" or fields[5] != wanted:
            continue
        pid = fields[4]
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as handle:
                cmdline = handle.read(300).replace(b"\0", b" ").decode("utf-8", "replace").strip()
        except OSError:
            cmdline = ""
        entry = "pid %s (%s lock%s)" % (pid, fields[3].lower(), ": " + cmdline if cmdline else "")
        if pid != str(os.getpid()) and entry not in holders:
            holders.append(entry)
    return holders
