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
  - The files land as a set. Every file is written and checked first, then renamed into place, files
    in subdirectories (wheels, uv) first, then the top-level files, C(manifest.json) last. A push that
    fails half way, for example on a full disk, replaces nothing.
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
    description: Directory on the host. Created with its missing parents (mode 0755, whatever the umask) when missing.
    type: path
    required: true
  stage:
    description:
      - Unpack the files into C(DEST/.incoming/<id>) instead of putting them in place, and return that
        path as RV(staged). M(airgap.uv.sync) with O(airgap.uv.sync#module:incoming) puts them in place
        under the environment's lock, just before it syncs, so the push and the sync of one deployment
        are one step for any other deployment running at the same time.
      - Staged pushes that were never landed (a run stopped in between) are removed after a day by the
        next sync that lands one.
    type: bool
    default: false
  expected:
    description:
      - The files O(src) holds, as M(airgap.uv.wheelhouse) returned them (C(hosts.<host>.files)).
      - In check mode, where the wheelhouse task wrote nothing, the push compares the host with these
        instead of the directory as it is now, and so reports what the real run would send. A file
        whose sha256 or size is not known yet counts as one to send.
      - Outside check mode, O(src) must hold exactly these files, else the push fails and sends
        nothing. Another run that rebuilt the directory in between (another C(uv.lock), other hosts)
        would otherwise have this run send its files.
    type: dict
  dest_absent:
    description:
      - The caller knows that O(dest) does not exist on the host, as M(airgap.uv.target_facts) with
        O(airgap.uv.target_facts#module:root) reports it. Every file is then sent without first asking the
        host what it lacks, one module call less per host on a first deploy (the M(airgap.uv.uv_deploy) role
        sets it).
      - Safe when that knowledge is out of date (another run made O(dest) since). The files sent are still
        checked against their sha256 on the host and land as a set; only bytes the host had travel again.
    type: bool
    default: false
  mirror_url:
    description:
      - The index inside the air gap (M(airgap.uv.uv_mirror) role, pypiserver), for example
        V(http://10.204.1.254:8080). The host fetches the wheelhouse files it lacks from
        C(MIRROR_URL/packages/<file>) itself, and the uv binaries it lacks (C(bin/uv), C(bin/uvx)) out of
        the zip C(MIRROR_URL/packages/airgap_uv_binaries-0+<digest>-py3-none-any.whl) named by their
        sha256; each file must have the sha256 the controller sent, so integrity never depends on the
        HTTP link. Only the install files and the manifest travel from the controller, which sends
        every other file once, to the mirror, whatever the number of hosts.
      - A mirror that cannot be reached, or lacks a file, fails the task naming the URL, before
        anything on the host changes.
    type: str
  pull:
    description:
      - Internal, set by the action plugin; do not set it. The files to fetch from O(mirror_url).
    type: list
    elements: str
  uv_container:
    description:
      - Internal, set by the action plugin; do not set it. The file name, on O(mirror_url), of the zip
        holding the uv binaries to fetch.
    type: str
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
  - airgap.uv.action_plugin
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: Lists the files that would be added or replaced.
notes:
  - Symbolic links and empty directories in O(src) are not copied.
  - No symbolic link on the host is followed below O(dest). A link where a directory should be
    (for example C(wheelhouse) pointing to C(/tmp)) fails the task naming it; a link where a file
    should be is replaced by the file. Running as root, O(dest) and every directory above it must be
    changeable by root alone (root-owned, not group- or world-writable).
  - The host hashes the files it has on every run; hashing is fast compared with a transfer.
  - The files travel as one uncompressed tar. Hosts of one target that lack every file (a first deploy)
    are sent the same archive, written once per run in Ansible's local temporary directory.
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
  description:
    - Size of the files the controller sent (in check mode, would send; files of unknown size count 0), those
      fetched from O(mirror_url) not included.
  returned: always
  type: int
pulled:
  description: Paths among RV(sent) the host fetched (or in check mode would fetch) from O(mirror_url).
  returned: always
  type: list
  elements: str
bytes_pulled:
  description: Their size.
  returned: always
  type: int
staged:
  description: Where the files were staged on the host, for O(airgap.uv.sync#module:incoming).
  returned: when O(stage=true) and files were sent, outside check mode
  type: str
  sample: /opt/airgap-uv/myapp/.incoming/1796380800-5f2a9c0d1e3b
manifest_sha256:
  description:
    - The sha256 of O(src)'s C(manifest.json), for O(airgap.uv.sync#module:manifest_sha256). In check
      mode with O(expected), the one it will have.
  returned: when O(src) holds a manifest.json
  type: str
"""

import errno
import tarfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.airgap.uv.plugins.module_utils._host_safety import UnsafePath
from ansible_collections.airgap.uv.plugins.module_utils._push_args import MODULE_ARGUMENT_SPEC
from ansible_collections.airgap.uv.plugins.module_utils._push_files import apply, plan, stage
from ansible_collections.airgap.uv.plugins.module_utils._push_pull import MirrorError


def main() -> None:
    # Called by the action plugin of the same name: first without 'archive' to learn what to
    # send, then with the uploaded archive to put it in place (or to stage it for airgap.uv.sync).
    module = AnsibleModule(
        argument_spec=MODULE_ARGUMENT_SPEC,
        supports_check_mode=True,
    )
    dest = module.params["dest"]
    files = module.params["files"]
    if files is None:
        module.fail_json(msg="airgap.uv.push runs through its action plugin; call it as a task, not with ansible -m "
                             "on a raw module path.")
    try:
        archive, mirror, pull = module.params["archive"], module.params["mirror_url"], module.params["pull"] or []
        container = module.params["uv_container"]
        if archive is None and not pull:
            module.exit_json(changed=False, wanted=plan(dest, files))
        if module.params["stage"]:
            module.exit_json(changed=True, staged=stage(dest, files, archive, mirror, pull, container))
        written = apply(dest, files, archive, mirror, pull, container)
    except MirrorError as exc:
        module.fail_json(msg="airgap.uv.push changed nothing on this host: %s. The files there and the environment in "
                             "service are as they were." % exc, mirror_url=mirror)
    except OSError as exc:
        module.fail_json(msg="Pushing files into %s failed: %s" % (dest, _os_error(exc, dest)))
    except (ValueError, tarfile.TarError, UnsafePath) as exc:
        module.fail_json(msg="Pushing files into %s failed: %s" % (dest, exc))
    module.exit_json(changed=bool(written), written=written)


def _os_error(exc: OSError, dest: str) -> str:
    if exc.errno == errno.ENOSPC:
        return ("no space left on the device holding it. Nothing was replaced: the files already there are "
                "unchanged. Free space on the host (df -h %s) and run again." % dest)
    return str(exc)


if __name__ == "__main__":
    main()
