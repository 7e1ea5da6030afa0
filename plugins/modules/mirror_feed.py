#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: mirror_feed
short_description: Feed the index inside the air gap the files of a wheelhouse or a bundle, and prune it
version_added: 0.1.0
description:
  - Makes the served directory O(dest) of an M(airgap.uv.uv_mirror) host hold every file the hosts of each
    source fetch from it with O(airgap.uv.push#module:mirror_url) (C(uv_deploy_source=mirror)) - the wheels
    and sdists of every target, and the uv binaries of every target in one zip named by their sha256
    (C(airgap_uv_binaries-0+<digest>-py3-none-any.whl)) - sending only the files it lacks or that differ,
    in one archive per source; each file is checked against its sha256 on the mirror before it is put in place.
  - Each source is one feed of its project, recorded under O(state) on the mirror host. The O(keep) newest
    feeds of each project are kept; the files of older feeds that no kept feed references are removed, with
    those feeds' records. Files no feed recorded (copied by hand or with C(uv_mirror_feed)) are never removed.
  - Feeding the same files again changes nothing, unless another feed of the project came since (it then
    becomes the newest again, which is reported as a change).
  - The zip of uv binaries is made once on the controller (under O(cache_dir)) from the binaries the
    wheelhouse or the bundle holds, each checked against its sha256 while it is zipped.
author:
  - airgap.uv maintainers (@airgap-uv)
options:
  sources:
    description:
      - Directories on the controller, each one feed, fed in this order (the last one is the newest) -
        a wheelhouse (C(~/.cache/airgap-uv/wheelhouses/<name>), as M(airgap.uv.wheelhouse) publishes it), or
        a bundle's entry in the controller's bundle store (RV(airgap.uv.bundle_import#module:path)).
    type: list
    elements: path
    required: true
  dest:
    description: The directory the mirror serves, on the mirror host. Created (0755) when missing.
    type: path
    required: true
  state:
    description: Where the feeds are recorded on the mirror host (not served).
    type: path
    required: true
  keep:
    description: How many feeds of each project to keep (the newest), 1 or more.
    type: int
    default: 3
  cache_dir:
    description: The controller's cache, where the zips of uv binaries are made once.
    type: path
    default: ~/.cache/airgap-uv
  project:
    description: Internal, set by the action plugin; do not set it. The project of the feed.
    type: str
  files:
    description: Internal, set by the action plugin; do not set it. The feed's files with their sha256, size and mode.
    type: dict
  archive:
    description: Internal, set by the action plugin; do not set it. The uploaded archive of the files to write.
    type: path
  apply:
    description: Internal, set by the action plugin; do not set it. Record the feed and prune.
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - airgap.uv.action_plugin
attributes:
  check_mode:
    support: full
    details: Reports what would be sent and removed; nothing is sent, recorded or removed.
  diff_mode:
    support: none
notes:
  - With several O(sources), check mode plans each feed against the mirror as it is, not as the feeds
    before it in the list would leave it.
seealso:
  - module: airgap.uv.push
  - module: airgap.uv.bundle_import
"""

EXAMPLES = r"""
- name: Feed the mirror the last wheelhouse of myapp, keeping the files of its two newest feeds
  airgap.uv.mirror_feed:
    sources: ["{{ lookup('ansible.builtin.env', 'HOME') }}/.cache/airgap-uv/wheelhouses/myapp"]
    dest: /srv/airgap-uv/mirror/packages
    state: /srv/airgap-uv/mirror/feeds
    keep: 2
"""

RETURN = r"""
feeds:
  description: One entry per source, in order.
  returned: always
  type: list
  elements: dict
  contains:
    source:
      description: The source directory.
      type: str
    project:
      description: The project the feed is recorded under.
      type: str
    feed:
      description: The feed's id (a digest of its files and their sha256).
      type: str
    files:
      description: Number of files of the feed.
      type: int
    sent:
      description: The files sent (in check mode, that would be sent).
      type: list
      elements: str
    bytes_sent:
      description: Their size.
      type: int
    record:
      description: C(new) (first feed of these files), C(touch) (fed before, newest again) or C(same).
      type: str
    removed:
      description: Files removed (in check mode, that would be removed) by the pruning.
      type: list
      elements: str
    dropped:
      description: Ids of the feeds whose records were (would be) removed.
      type: list
      elements: str
bytes_sent:
  description: Bytes the controller sent (in check mode, would send), all sources.
  returned: always
  type: int
removed:
  description: Every file removed (in check mode, that would be removed).
  returned: always
  type: list
  elements: str
"""

import os
import tarfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.airgap.uv.plugins.module_utils._host_safety import UnsafePath
from ansible_collections.airgap.uv.plugins.module_utils._mirror_feed_args import MODULE_ARGUMENT_SPEC
from ansible_collections.airgap.uv.plugins.module_utils._mirror_state import (
    check_names,
    feed_id,
    plan,
    prune,
    read_records,
    write_record,
)
from ansible_collections.airgap.uv.plugins.module_utils._push_files import apply, open_dest
from ansible_collections.airgap.uv.plugins.module_utils._push_files import plan as wanted_files

ARGUMENT_SPEC = MODULE_ARGUMENT_SPEC


def main() -> None:
    # Called by the action plugin, once per source: first to learn what to send and prune, then
    # (apply) with the uploaded archive to put it in place, record the feed and prune.
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    files, project, dest, state = params["files"], params["project"], params["dest"], params["state"]
    if files is None or project is None:
        module.fail_json(msg="airgap.uv.mirror_feed runs through its action plugin; call it as a task.")
    try:
        check_names(project, files)
        digests = {name: meta["sha256"] for name, meta in files.items()}
        feed = feed_id(digests)
        pruning = plan(read_records(state), project, feed, digests, params["keep"])
        if not params["apply"]:
            module.exit_json(changed=False, wanted=wanted_files(dest, files), feed=feed, record=pruning.record,
                             removed=pruning.removed, dropped=[r.feed for r in pruning.dropped])
        written = apply(dest, files, params["archive"]) if params["archive"] else []
        write_record(state, project, feed, digests, pruning.record)
        dest_fd = open_dest(dest, create=True)
        try:
            removed = prune(state, dest_fd, pruning)
        finally:
            os.close(dest_fd)
    except OSError as exc:
        module.fail_json(msg="Feeding the mirror's %s failed: %s" % (dest, exc))
    except (ValueError, tarfile.TarError, UnsafePath) as exc:
        module.fail_json(msg="Feeding the mirror's %s failed: %s. Files already there were not replaced." % (dest, exc))
    module.exit_json(changed=bool(written or removed or pruning.dropped or pruning.record != "same"), written=written,
                     feed=feed, record=pruning.record, removed=removed, dropped=[r.feed for r in pruning.dropped])


if __name__ == "__main__":
    main()
