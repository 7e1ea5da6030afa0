#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: push
short_description: Copy a directory to a host, sending only the files it lacks
version_added: 0.1.0
description:
  - Makes O(dest) on the host hold every file of O(src) on the controller, with the same content
    and permission bits, in one round trip when nothing differs.
  - The controller sends the list of files with their sha256; the host answers which ones are
    missing or differ; only those travel, bundled into one archive, and each lands by an atomic
    rename, so a reader never sees a half-written file.
  - Files on the host that are not in O(src) are left alone.
  - Made for the per-host directories of M(airgap.uv.wheelhouse), where C(ansible.builtin.copy) would
    need one round trip per file.
author:
  - airgap.uv maintainers (@airgap-uv)
options:
  src:
    description: Directory on the controller. Its contents (not the directory itself) are pushed.
    type: path
    required: true
  dest:
    description: Directory on the host. Created (mode 0755) when missing.
    type: path
    required: true
  files:
    description:
      - Internal, set by the action plugin; do not set it. The files of O(src) with their sha256,
        size and mode.
    type: dict
  archive:
    description:
      - Internal, set by the action plugin; do not set it. The uploaded archive of the files to write.
    type: path
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: Lists the files that would be added or replaced.
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
  platform:
    platforms: posix
notes:
  - Symbolic links and empty directories in O(src) are not copied.
  - No symbolic link on the host is followed below O(dest). A link where a directory should be
    (for example C(wheelhouse) pointing to C(/tmp)) fails the task naming it; a link where a file
    should be is replaced by the file. Running as root, O(dest) and every directory above it must be
    changeable by root alone (root-owned, not group- or world-writable).
  - The host hashes the files it has on every run; hashing is fast compared with a transfer.
seealso:
  - module: ansible.builtin.copy
  - module: airgap.uv.wheelhouse
"""

EXAMPLES = r"""
- name: Send a host its wheelhouse directory
  airgap.uv.push:
    src: "{{ wheelhouse.hosts[inventory_hostname].path }}/"
    dest: /opt/airgap-uv/myapp
"""

RETURN = r"""
sent:
  description: Paths, relative to O(dest), that were (or in check mode would be) written.
  returned: always
  type: list
  elements: str
  sample: [bin/uv, wheelhouse/click-8.5.0-py3-none-any.whl]
files:
  description: Number of files in O(src).
  returned: always
  type: int
bytes_sent:
  description: Size of the files sent.
  returned: always
  type: int
"""

import errno
import hashlib
import os
import stat
import tarfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.airgap.uv.plugins.module_utils._host_safety import UnsafePath, open_dir, require_root_only

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _parts(relpath: str) -> list:
    """RELPATH's components, refusing anything that would leave DEST."""
    if not relpath or relpath.startswith("/") or "\\" in relpath or "\0" in relpath:
        raise ValueError("refusing path %r" % relpath)
    parts = relpath.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError("refusing path %r" % relpath)
    return parts


def _open_parent(dest_fd: int, dest: str, parts: list, create: bool) -> int:
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


def _kind(dir_fd: int, name: str) -> str:
    try:
        return "a symlink to %s" % os.readlink(name, dir_fd=dir_fd)
    except OSError:
        return "a file"


def _sha256_at(dir_fd: int, name: str) -> str:
    digest = hashlib.sha256()
    fd = os.open(name, os.O_RDONLY | _NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    with os.fdopen(fd, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _open_dest(dest: str, create: bool) -> int:
    """DEST's descriptor; as root, DEST must be changeable by root alone. -1 when missing."""
    if os.geteuid() == 0:
        require_root_only(dest, "the push destination")
    try:
        return open_dir(dest)
    except OSError as exc:
        if exc.errno == errno.ENOENT and create:
            os.makedirs(dest, 0o755)
            return open_dir(dest)
        if exc.errno == errno.ENOENT:
            return -1
        raise


def plan(dest: str, files: dict) -> list:
    """Relative paths whose content or permission bits differ on the host (a link always differs)."""
    dest_fd = _open_dest(dest, create=False)
    if dest_fd < 0:
        return sorted(files)
    wanted = []
    try:
        for relpath, meta in sorted(files.items()):
            parts = _parts(relpath)
            parent = _open_parent(dest_fd, dest, parts, create=False)
            if parent < 0:
                wanted.append(relpath)
                continue
            try:
                st = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
                if (not stat.S_ISREG(st.st_mode) or st.st_size != meta["size"]
                        or (st.st_mode & 0o7777) != meta["mode"] or _sha256_at(parent, parts[-1]) != meta["sha256"]):
                    wanted.append(relpath)
            except OSError:
                wanted.append(relpath)
            finally:
                os.close(parent)
    finally:
        os.close(dest_fd)
    return wanted


def _write_member(parent: int, name: str, source, meta: dict, label: str) -> None:
    """Write SOURCE as NAME in PARENT: a fresh temporary file, checked, then renamed over NAME."""
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
        os.replace(tmp, name, src_dir_fd=parent, dst_dir_fd=parent)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=parent)
        except OSError:
            pass
        raise


def apply(dest: str, files: dict, archive: str) -> list:
    """Unpack ARCHIVE's members (only names listed in FILES) into DEST, each by an atomic rename."""
    written = []
    dest_fd = _open_dest(dest, create=True)
    try:
        with tarfile.open(archive) as bundle:
            for member in bundle.getmembers():
                if member.name not in files or not member.isfile():
                    raise ValueError("unexpected archive member %r" % member.name)
                parts = _parts(member.name)
                parent = _open_parent(dest_fd, dest, parts, create=True)
                try:
                    _write_member(parent, parts[-1], bundle.extractfile(member), files[member.name], member.name)
                finally:
                    os.close(parent)
                written.append(member.name)
    finally:
        os.close(dest_fd)
    return written


def main() -> None:
    # Called by the action plugin of the same name: first without 'archive' to learn what to
    # send, then with the uploaded archive to put it in place.
    module = AnsibleModule(
        argument_spec=dict(
            src=dict(type="path", required=True),
            dest=dict(type="path", required=True),
            files=dict(type="dict"),
            archive=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    dest = module.params["dest"]
    files = module.params["files"]
    if files is None:
        module.fail_json(msg="airgap.uv.push runs through its action plugin; call it as a task, not with ansible -m "
                             "on a raw module path.")
    try:
        if module.params["archive"] is None:
            module.exit_json(changed=False, wanted=plan(dest, files))
        written = apply(dest, files, module.params["archive"])
    except (OSError, ValueError, tarfile.TarError, UnsafePath) as exc:
        module.fail_json(msg="Pushing files into %s failed: %s" % (dest, exc))
    module.exit_json(changed=bool(written), written=written)


if __name__ == "__main__":
    main()
