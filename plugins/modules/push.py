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

import hashlib
import os
import tarfile
import tempfile

from ansible.module_utils.basic import AnsibleModule


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _safe_join(dest: str, relpath: str) -> str:
    """DEST/RELPATH, refusing anything that would leave DEST."""
    if not relpath or relpath.startswith("/") or "\\" in relpath or "\0" in relpath:
        raise ValueError("refusing path %r" % relpath)
    parts = relpath.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError("refusing path %r" % relpath)
    return os.path.join(dest, *parts)


def plan(dest: str, files: dict) -> list:
    """Relative paths whose content or permission bits differ on the host."""
    wanted = []
    for relpath, meta in sorted(files.items()):
        path = _safe_join(dest, relpath)
        try:
            st = os.stat(path)
        except OSError:
            wanted.append(relpath)
            continue
        if (st.st_size != meta["size"] or (st.st_mode & 0o7777) != meta["mode"]
                or _sha256(path) != meta["sha256"]):
            wanted.append(relpath)
    return wanted


def apply(dest: str, files: dict, archive: str) -> list:
    """Unpack ARCHIVE's members (only names listed in FILES) into DEST, each by an atomic rename."""
    written = []
    with tarfile.open(archive) as bundle:
        for member in bundle.getmembers():
            if member.name not in files or not member.isfile():
                raise ValueError("unexpected archive member %r" % member.name)
            meta = files[member.name]
            path = _safe_join(dest, member.name)
            directory = os.path.dirname(path)
            if not os.path.isdir(directory):
                os.makedirs(directory, 0o755)
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=".push-")
            try:
                digest = hashlib.sha256()
                with os.fdopen(fd, "wb") as out:
                    source = bundle.extractfile(member)
                    for block in iter(lambda: source.read(1 << 20), b""):
                        digest.update(block)
                        out.write(block)
                if digest.hexdigest() != meta["sha256"]:
                    raise ValueError("%s arrived with sha256 %s, expected %s" % (member.name, digest.hexdigest(),
                                                                                 meta["sha256"]))
                os.chmod(tmp, meta["mode"])
                os.replace(tmp, path)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
            written.append(member.name)
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
        if not os.path.isdir(dest):
            os.makedirs(dest, 0o755)
        written = apply(dest, files, module.params["archive"])
    except (OSError, ValueError, tarfile.TarError) as exc:
        module.fail_json(msg="Pushing files into %s failed: %s" % (dest, exc))
    module.exit_json(changed=bool(written), written=written)


if __name__ == "__main__":
    main()
