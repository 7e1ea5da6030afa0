#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# The work happens in the action plugin of the same name, on the controller; this file
# carries the documentation.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: workstation_cache
short_description: Make, on the controller, the uv cache an offline developer workstation needs
version_added: 0.1.0
description:
  - "Runs on the controller. For each distinct target of the play's hosts it fills a uv cache with the
    controller's uv, which must be the version the workstations get (O(uv_version)), for the host's
    platform (uv's C(--python-platform), exact glibc version) and a controller Python of the host's version,
    by C(uv sync --frozen) with the groups and extras the user may ask for, in a scratch copy of the project,
    and by C(uv tool install) of each of O(tools). Each step is tried C(--offline) first, as the host will run
    it, and goes to the index only when the cache cannot serve it."
  - "The cache is kept between runs under O(dest), and packed into C(<dest>/<target>/ship/) as one gzip tar
    per unpacked archive and one for uv's metadata, plus C(seed.json) and the target's C(bin/uv) and
    C(bin/uvx) from the wheelhouse. An unchanged cache packs to the same bytes, so M(airgap.uv.push) sends
    nothing and M(airgap.uv.workstation_seed) unpacks nothing."
author:
  - airgap.uv maintainers (@airgap-uv)
options:
  project:
    description: The project on the controller (C(pyproject.toml), C(uv.lock)); its tracked files are copied to a scratch directory.
    type: path
    required: true
  dest:
    description: Controller directory holding one cache and one ship directory per target.
    type: path
    required: true
  wheelhouse_hosts:
    description: C(hosts) of the M(airgap.uv.wheelhouse) result for these hosts (their target id and directory).
    type: dict
    required: true
  facts:
    description: Each host's C(airgap_uv_target) facts from M(airgap.uv.target_facts).
    type: dict
    required: true
  groups:
    description: Dependency groups the cache serves when O(all_groups) is false.
    type: list
    elements: str
    default: []
  all_groups:
    description: Serve every dependency group.
    type: bool
    default: true
  extras:
    description: Extras the cache serves when O(all_extras) is false.
    type: list
    elements: str
    default: []
  all_extras:
    description: Serve every extra.
    type: bool
    default: true
  tools:
    description: Requirements of tools for C(uvx) and C(uv tool install), such as C(ruff) or C(pre-commit==4.0.1).
    type: list
    elements: str
    default: []
  uv_version:
    description: The uv version of the workstations; the controller's uv must be this version.
    type: str
    required: true
  uv_executable:
    description: The controller's uv; default C(uv) on C(PATH) or beside the Python running Ansible.
    type: path
  prune:
    description:
      - "Ship only what serves: the archives uv uses when the host's steps (C(uv sync --frozen --offline) into a
        fresh environment, which builds the project editable, and C(uv tool install --offline) of each tool)
        are replayed against a copy of the cache (archives hard linked, C(UV_LINK_MODE=hardlink): an archive
        whose files got a new status change time was installed, in an environment or a build environment),
        and the metadata that goes with them (links, HTTP cache entries, the source entries of built sdists,
        the index pages of those names, git). A second offline replay against only that must succeed;
        when either fails, everything ships and C(pruning) in the result says why."
      - The replays take about a second and run again only when the project's files, the tools, the target
        or the cache changed (C(<dest>/<target>/selection.json)).
      - With V(false), everything the cache holds ships (the old lock's wheels too).
    type: bool
    default: true
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - airgap.uv.action_plugin
attributes:
  check_mode:
    support: full
    details:
      - Writes nothing under O(dest). For a target that shipped before, the steps run offline in a throwaway
        copy of its cache (archives hard linked) and the result is packed in memory and compared with what
        shipped; a step that would need the index is a change (C(online)).
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Make the workstations' uv caches
  airgap.uv.workstation_cache:
    project: /src/myapp
    dest: ~/.cache/airgap-uv/workstations/myapp
    wheelhouse_hosts: "{{ wheelhouse.hosts }}"
    facts: "{{ dict(ansible_play_hosts | zip(ansible_play_hosts | map('extract', hostvars, 'airgap_uv_target'))) }}"
    tools: [ruff]
    uv_version: 0.13.8
  run_once: true
  delegate_to: localhost
"""

RETURN = r"""
hosts:
  description:
    - For each host, its target id (C(target)), the ship directory to push (C(path)) and whether that directory
      exists (C(ready); false only in check mode before the first real run); in check mode, C(pending) when a
      real run would ship something new to it.
  returned: always
  type: dict
targets:
  description:
    - Per target, the chunks C(written) and C(removed) in this run, their number (C(chunks)) and total
      size (C(bytes)), the unpacked size of what they hold (C(unpacked_bytes)), the size of the target's
      wheels in the wheelhouse (C(wheel_bytes)), the steps that needed the index (C(online)), the
      C(platform) and the C(controller_python) used, C(pruning) (C(verified), or why everything ships),
      the archives of the cache that no longer serve and so do not ship (C(left_out)) and C(changed).
  returned: always
  type: dict
"""
