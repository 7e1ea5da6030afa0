# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Host side of airgap.uv.push: what a directory lacks, and putting files in place as a set.

Standard library only. Every path below the destination is entered through directory
descriptors without following links, so a link planted in the deployment root never
redirects a write.

A pushed set lands in one order: files in subdirectories (wheels, uv) first, then the
top-level files that name them (install files), ``manifest.json`` last. A reader that
trusts the manifest therefore never sees it before every file it lists, and a push that
fails half way (a full disk) leaves the previous install files in place.

A push can also be *staged*: the files are unpacked into ``DEST/.incoming/<id>`` and put
in place later by ``land()``, which airgap.uv.sync calls under the lock of the
environment it syncs, so one deployment's push and sync are one step for every other.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
import tarfile
import tempfile
import time
import typing as t
import zipfile

from ansible_collections.airgap.uv.plugins.module_utils._hashing import sha256_file
from ansible_collections.airgap.uv.plugins.module_utils._push_pull import MirrorError, file_url, open_file
from ansible_collections.airgap.uv.plugins.module_utils._shipped_tree import INCOMING, MANIFEST
from ansible_collections.airgap.uv.plugins.module_utils._host_safety import UnsafePath, open_dir, require_root_only

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
# Staged pushes whose sync never came (a run stopped between the two) are removed after this.
STALE_STAGED_SECONDS = 24 * 3600


class PushError(Exception):
    """A push or a landing that cannot go on; the message says what to do."""


def parts_of(relpath: str) -> t.List[str]:
    """RELPATH's components, refusing anything that would leave DEST."""
    if not relpath or relpath.startswith("/") or "\\" in relpath or "\0" in relpath:
        raise ValueError("refusing path %r" % relpath)
    parts = relpath.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError("refusing path %r" % relpath)
    if parts[0] == INCOMING:
        raise ValueError("refusing path %r: %s is where staged pushes wait" % (relpath, INCOMING))
    return parts


def landing_order(relpaths: t.Iterable[str]) -> t.List[str]:
    """Files in subdirectories first, then top-level files, the manifest last."""
    return sorted(relpaths, key=lambda p: ("/" not in p, p == MANIFEST, p))


def _kind(dir_fd: int, name: str) -> str:
    try:
        return "a symlink to %s" % os.readlink(name, dir_fd=dir_fd)
    except OSError:
        return "a file"


def open_parent(dest_fd: int, dest: str, parts: t.List[str], create: bool) -> int:
    """A descriptor of the directory holding DEST/PARTS, entered without following any link.

    A link where a directory should be (say wheelhouse -> /tmp) is refused, never written
    through; with CREATE, missing directories are made (0755). -1 when one is missing.
    """
    fd = os.dup(dest_fd)
    try:
        for index, name in enumerate(parts[:-1]):
            try:
                next_fd = open_dir(name, dir_fd=fd)
            except OSError as exc:
                if exc.errno == errno.ENOENT and create:
                    os.mkdir(name, 0o755, dir_fd=fd)
                    next_fd = open_dir(name, dir_fd=fd)
                elif exc.errno == errno.ENOENT:
                    os.close(fd)
                    return -1
                elif exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UnsafePath("%s is not a directory but %s; airgap.uv writes through no symlink in the "
                                     "deployment root: remove it and run again"
                                     % (os.path.join(dest, *parts[:index + 1]), _kind(fd, name)))
                else:
                    raise
            os.close(fd)
            fd = next_fd
        return fd
    except BaseException:
        os.close(fd)
        raise


def open_dest(dest: str, create: bool) -> int:
    """DEST's descriptor; as root, DEST must be changeable by root alone. -1 when missing."""
    if os.geteuid() == 0:
        require_root_only(dest, "the push destination")
    try:
        return open_dir(dest)
    except OSError as exc:
        if exc.errno == errno.ENOENT and create:
            make_dirs(dest)
            return open_dir(dest)
        if exc.errno == errno.ENOENT:
            return -1
        raise


def make_dirs(path: str) -> None:
    """PATH and its missing parents, each mode 0755 whatever the umask: the deployment root must
    be traversable by the service user its environment runs as."""
    parent = os.path.dirname(path)
    if parent != path and not os.path.isdir(parent):
        make_dirs(parent)
    try:
        os.mkdir(path, 0o755)
    except FileExistsError:
        return  # made meanwhile by a concurrent run: left as it is
    os.chmod(path, 0o755)


def _differs(parent: int, name: str, meta: t.Mapping[str, t.Any]) -> bool:
    """Whether NAME in PARENT is not the file META describes (unknown sha256 or size: it differs)."""
    try:
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except OSError:
        return True
    if not stat.S_ISREG(st.st_mode) or (st.st_mode & 0o7777) != meta["mode"]:
        return True
    if meta.get("size") is None or meta.get("sha256") is None or st.st_size != meta["size"]:
        return True
    return sha256_file(name, dir_fd=parent) != meta["sha256"]


def plan(dest: str, files: t.Mapping[str, t.Mapping[str, t.Any]]) -> t.List[str]:
    """Relative paths whose content or permission bits differ on the host (a link always differs)."""
    dest_fd = open_dest(dest, create=False)
    if dest_fd < 0:
        return sorted(files)
    wanted = []
    try:
        for relpath, meta in sorted(files.items()):
            parts = parts_of(relpath)
            parent = open_parent(dest_fd, dest, parts, create=False)
            if parent < 0:
                wanted.append(relpath)
                continue
            try:
                if _differs(parent, parts[-1], meta):
                    wanted.append(relpath)
            finally:
                os.close(parent)
    finally:
        os.close(dest_fd)
    return wanted


def _write_temp(parent: int, source: t.IO[bytes], meta: t.Mapping[str, t.Any], label: str) -> str:
    """SOURCE written to a fresh temporary file in PARENT, its sha256 checked; the file's name."""
    tmp = ".push-%d-%s" % (os.getpid(), os.urandom(4).hex())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=parent)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for block in iter(lambda: source.read(1 << 20), b""):
                digest.update(block)
                out.write(block)
            if digest.hexdigest() != meta["sha256"]:
                raise ValueError("%s arrived with sha256 %s, expected %s" % (label, digest.hexdigest(), meta["sha256"]))
            os.fchmod(out.fileno(), meta["mode"])
        return tmp
    except BaseException:
        _unlink_quietly(parent, tmp)
        raise


def _unlink_quietly(parent: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=parent)
    except OSError:
        pass


def _unpack(root_fd: int, root: str, files: t.Mapping[str, t.Mapping[str, t.Any]], archive: t.Optional[str],
            mirror: t.Optional[str] = None, pull: t.Sequence[str] = (),
            uv_container: t.Optional[str] = None) -> t.List[t.Tuple[int, str, str, str]]:
    """ARCHIVE's members, and the PULL files fetched from MIRROR, as verified temporary files under ROOT.

    The uv binaries among PULL (bin/*) come out of the zip UV_CONTAINER on the mirror. Returns
    (parent fd, temp name, name, relpath) per file. On any error every temporary file is removed
    and every descriptor closed.
    """
    written: t.List[t.Tuple[int, str, str, str]] = []

    def write(relpath: str, source: t.IO[bytes]) -> None:
        parts = parts_of(relpath)
        parent = open_parent(root_fd, root, parts, create=True)
        try:
            tmp = _write_temp(parent, source, files[relpath], relpath)
        except BaseException:
            os.close(parent)
            raise
        written.append((parent, tmp, parts[-1], relpath))

    try:
        if archive is not None:
            with tarfile.open(archive) as bundle:
                for member in bundle.getmembers():
                    if member.name not in files or not member.isfile():
                        raise ValueError("unexpected archive member %r" % member.name)
                    write(member.name, t.cast(t.IO[bytes], bundle.extractfile(member)))
        for relpath in pull:
            if relpath not in files:
                raise ValueError("unexpected file to pull %r" % relpath)
        binaries = [relpath for relpath in pull if relpath.startswith("bin/")]
        for relpath in pull:
            if relpath not in binaries:
                with open_file(t.cast(str, mirror), relpath) as stream:
                    _pinned(t.cast(str, mirror), relpath, write, relpath, stream)
        if binaries:
            _pull_binaries(t.cast(str, mirror), uv_container, root, binaries, write)
    except BaseException:
        for parent, tmp, dummy, dummy in written:
            _unlink_quietly(parent, tmp)
            os.close(parent)
        raise
    return written


def _pinned(mirror: str, name: str, write: t.Callable[[str, t.IO[bytes]], None], relpath: str,
            stream: t.IO[bytes]) -> None:
    """WRITE(RELPATH, STREAM), the file NAME from MIRROR: a sha256 other than the controller's pin is
    the mirror's fault, and said so."""
    try:
        write(relpath, stream)
    except ValueError as exc:
        raise MirrorError("the mirror %s served %s (%s) that is not what the controller pinned: %s. Its copy is "
                          "damaged or was replaced; feed the mirror again (ansible-playbook airgap.uv.mirror)"
                          % (mirror, name, file_url(mirror, name), exc)) from None


def _pull_binaries(mirror: str, container: t.Optional[str], root: str, binaries: t.Sequence[str],
                   write: t.Callable[[str, t.IO[bytes]], None]) -> None:
    """The uv BINARIES out of the zip CONTAINER from MIRROR, each checked against its pin by WRITE."""
    if not container:
        raise ValueError("the uv binaries are to be pulled but no uv_container names their zip on the mirror")
    # Downloaded whole first (a zip is read from its end), into an unnamed file beside the set.
    with tempfile.TemporaryFile(dir=root) as carrier:
        with open_file(mirror, container) as stream:
            shutil.copyfileobj(stream, carrier, 1 << 20)
        carrier.seek(0)
        try:
            with zipfile.ZipFile(carrier) as archive:
                for relpath in binaries:
                    name = relpath.split("/", 1)[1]
                    with archive.open(name) as member:
                        _pinned(mirror, container, write, relpath, t.cast(t.IO[bytes], member))
        except (zipfile.BadZipFile, KeyError, EOFError) as exc:
            raise MirrorError("the mirror %s served %s (%s), which is not the zip of uv binaries the controller "
                              "named (%s). Its copy is damaged or was replaced; feed the mirror again "
                              "(ansible-playbook airgap.uv.mirror)" % (mirror, container, file_url(mirror, container),
                                                                       exc)) from None


def apply(dest: str, files: t.Mapping[str, t.Mapping[str, t.Any]], archive: t.Optional[str],
          mirror: t.Optional[str] = None, pull: t.Sequence[str] = (), uv_container: t.Optional[str] = None) -> t.List[str]:
    """Put ARCHIVE's members (only names listed in FILES) in place under DEST, as a set.

    Every member is written and checked first; only then are they renamed into place, in
    landing order. A failure before that (a full disk) changes nothing.
    """
    dest_fd = open_dest(dest, create=True)
    try:
        written = _unpack(dest_fd, dest, files, archive, mirror, pull, uv_container)
    finally:
        os.close(dest_fd)
    by_path = {relpath: (parent, tmp, name) for parent, tmp, name, relpath in written}
    try:
        for relpath in landing_order(by_path):
            parent, tmp, name = by_path[relpath]
            os.replace(tmp, name, src_dir_fd=parent, dst_dir_fd=parent)
    finally:
        for parent, tmp, dummy in by_path.values():
            _unlink_quietly(parent, tmp)  # gone already unless a rename failed
            os.close(parent)
    return landing_order(by_path)


def stage(dest: str, files: t.Mapping[str, t.Mapping[str, t.Any]], archive: t.Optional[str],
          mirror: t.Optional[str] = None, pull: t.Sequence[str] = (), uv_container: t.Optional[str] = None) -> str:
    """Unpack ARCHIVE (and the PULL files from MIRROR) into a new DEST/.incoming/<id>, checked; its path.

    Nothing under DEST changes.
    """
    dest_fd = open_dest(dest, create=True)
    try:
        try:
            os.mkdir(INCOMING, 0o700, dir_fd=dest_fd)
        except FileExistsError:
            pass
        incoming_fd = open_parent(dest_fd, dest, [INCOMING, "x"], create=False)
    finally:
        os.close(dest_fd)
    name = "%d-%s" % (int(time.time()), os.urandom(6).hex())
    staged = os.path.join(dest, INCOMING, name)
    try:
        os.mkdir(name, 0o700, dir_fd=incoming_fd)
        staged_fd = open_dir(name, dir_fd=incoming_fd)
    finally:
        os.close(incoming_fd)
    try:
        written = _unpack(staged_fd, staged, files, archive, mirror, pull, uv_container)
        for parent, tmp, final, dummy in written:
            os.replace(tmp, final, src_dir_fd=parent, dst_dir_fd=parent)
            os.close(parent)
    except BaseException:
        os.close(staged_fd)
        shutil.rmtree(staged, ignore_errors=True)
        raise
    os.close(staged_fd)
    return staged


def _staged_files(staged_fd: int, staged: str, prefix: str = "") -> t.List[str]:
    """Relative paths of the regular files under STAGED; anything else is refused."""
    found = []
    for entry in sorted(os.listdir(staged_fd)):
        st = os.stat(entry, dir_fd=staged_fd, follow_symlinks=False)
        relpath = prefix + entry
        if stat.S_ISDIR(st.st_mode):
            sub = open_dir(entry, dir_fd=staged_fd)
            try:
                found += _staged_files(sub, staged, relpath + "/")
            finally:
                os.close(sub)
        elif stat.S_ISREG(st.st_mode):
            found.append(relpath)
        else:
            raise PushError("%s in the staged push %s is not a regular file; remove %s and run the deployment again"
                            % (relpath, staged, staged))
    return found


def staged_root(staged: str) -> str:
    """The deployment root a staged push STAGED (DEST/.incoming/<id>) belongs to."""
    staged = os.path.abspath(staged)
    holder = os.path.dirname(staged)
    if os.path.basename(holder) != INCOMING or os.path.basename(staged).startswith("."):
        raise PushError("%s is not a staged push (DEST/%s/<id>, as airgap.uv.push returns in 'staged')"
                        % (staged, INCOMING))
    return os.path.dirname(holder)


def land(staged: str) -> t.List[str]:
    """Move the staged push STAGED into its deployment root, in landing order; the paths landed.

    Renames within one file system: each file appears whole, and the install files and
    manifest only once every file they name is in place. Staged pushes older than a day
    (runs that stopped before their sync) are removed.
    """
    dest = staged_root(staged)
    if os.geteuid() == 0:
        require_root_only(staged, "the staged push")
    try:
        staged_fd = open_dir(staged)
    except OSError as exc:
        raise PushError("The staged push %s cannot be opened (%s): another run may have landed or removed it. "
                        "Run the deployment again." % (staged, exc.strerror))
    dest_fd = open_dest(dest, create=False)
    try:
        relpaths = landing_order(_staged_files(staged_fd, staged))
        for relpath in relpaths:
            parts = parts_of(relpath)
            source = open_parent(staged_fd, staged, parts, create=False)
            target = open_parent(dest_fd, dest, parts, create=True)
            try:
                os.replace(parts[-1], parts[-1], src_dir_fd=source, dst_dir_fd=target)
            finally:
                os.close(source)
                os.close(target)
    finally:
        os.close(staged_fd)
        os.close(dest_fd)
    shutil.rmtree(staged, ignore_errors=True)
    remove_stale_staged(dest)
    return relpaths


def remove_stale_staged(dest: str, now: t.Optional[float] = None) -> t.List[str]:
    """Remove staged pushes under DEST older than STALE_STAGED_SECONDS; their names."""
    holder = os.path.join(dest, INCOMING)
    now = time.time() if now is None else now
    removed = []
    try:
        names = os.listdir(holder)
    except OSError:
        return removed
    for name in names:
        path = os.path.join(holder, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if now - st.st_mtime > STALE_STAGED_SECONDS:
            if stat.S_ISDIR(st.st_mode):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)
            removed.append(name)
    return removed
