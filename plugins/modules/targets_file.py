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
module: targets_file
short_description: Write the distinct targets of offline hosts to a file for the connected side
version_added: 0.1.0
description:
  - Runs on the controller inside the air gap. Groups the hosts' C(airgap_uv_target) facts from
    M(airgap.uv.target_facts) into distinct targets (Python, OS, CPU, C library family and version)
    and writes them to a small YAML file that a machine outside the air gap builds a bundle from,
    with no inventory of these hosts.
  - "Each target is the short description the O(airgap.uv.wheelhouse#module:targets) option accepts
    (C(python), C(implementation), C(abiflags), C(os), C(arch), C(libc), C(libc_version), and
    C(macos_version) on C(darwin)), under its target id such as C(cpython3.11.2-linux-x86_64-glibc2.36),
    with the names of the hosts that share it unless O(anonymous)."
  - Nothing else a host reported is written (no paths, kernel strings or uv versions), so the file
    holds nothing secret.
  - The file is written with sorted keys and sorted host names, so the same hosts give a
    byte-identical file. It is replaced by one rename, and only when its content differs.
author:
  - airgap.uv maintainers (@airgap-uv)
options:
  path:
    description:
      - The targets file on the controller. A relative path is relative to the directory
        C(ansible-playbook) was started in. Its directory must exist.
    type: path
    required: true
  facts:
    description:
      - Map of host name to that host's C(airgap_uv_target) fact from M(airgap.uv.target_facts).
      - A host the controller cannot reach may be given as a short description instead, as for
        O(airgap.uv.wheelhouse#module:targets).
      - When not given, the file at O(path) is only read and checked (every entry re-creates its own
        target id), and RV(targets) returns it; this is how the C(airgap.uv.bundle) playbook reads it.
    type: dict
  anonymous:
    description: Leave out the host names; the file then says only which targets exist.
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - airgap.uv.action_plugin
attributes:
  check_mode:
    support: full
    details: Reports whether the file would change, and writes nothing.
  diff_mode:
    support: full
    details: Shows the file before and after.
notes:
  - The playbook C(airgap.uv.targets) gathers the facts and calls this action once.
"""

EXAMPLES = r"""
- name: Describe the host as a target
  airgap.uv.target_facts:

- name: Write the targets of all hosts of the play, once, on the controller
  airgap.uv.targets_file:
    path: "{{ playbook_dir }}/targets.yml"
    facts: "{{ dict(ansible_play_hosts | zip(ansible_play_hosts | map('extract', hostvars, 'airgap_uv_target'))) }}"
  run_once: true
  delegate_to: localhost
"""

RETURN = r"""
path:
  description: Absolute path of the targets file.
  returned: always
  type: str
  sample: /home/ops/targets.yml
targets:
  description: What the file lists, target id to its description.
  returned: always
  type: dict
  sample:
    cpython3.11.2-linux-x86_64-glibc2.36:
      python: 3.11.2
      implementation: cpython
      abiflags: ""
      os: linux
      arch: x86_64
      libc: glibc
      libc_version: "2.36"
      hosts: [web1, web2]
"""
