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
module: fleet_report
short_description: One report of what a deployment did on every host of the play
version_added: 0.1.0
description:
  - Runs on the controller. Reads what the M(airgap.uv.sync) tasks of the C(airgap.uv.uv_deploy) role
    left on each host of the play (C(uv_deploy_sync), C(uv_deploy_rollback), and the release in service
    before the run from M(airgap.uv.target_facts)) and makes one summary of every host, including the
    hosts a stopped rolling deployment never reached.
  - "Each host gets: its batch, what happened (V(changed), V(unchanged), V(would change) and
    V(would not change) in check mode, V(rolled back), V(failed), V(not reached)), the release in
    service and the project's version in it, the release before the run, the number of packages
    installed, removed and upgraded, the network the sync used, the check command's result and the
    time the host's deployment took."
  - Returns the report as RV(report) and as a short table (RV(table)), and writes it as JSON to O(path)
    when set. It is written in check mode too (it is the check's output) and reports no change.
author:
  - airgap.uv maintainers (@airgap-uv)
options:
  name:
    description: The deployment's name, shown in the report.
    type: str
    required: true
  path:
    description:
      - Where to write the report as JSON on the controller, replaced by one rename. A relative path is
        relative to the directory C(ansible-playbook) was started in; its directory must exist.
      - Not set, no file is written.
    type: path
  serial:
    description:
      - The play's C(serial) (a number, a percentage such as V(25%), or a list of them), to number the batches.
        Not set or V(0), every host is in batch 1.
    type: raw
  max_fail_percentage:
    description:
      - The play's C(max_fail_percentage), to tell whether the failures so far stop the rollout after this
        batch (as Ansible does, failures of the whole run against the batch's size). A batch whose hosts all
        failed always stops it.
    type: float
  hosts:
    description: The hosts to report on. Default is every host of the play (C(ansible_play_hosts_all)).
    type: list
    elements: str
  batch:
    description: The hosts of the batch that just ran. Default is C(ansible_play_batch).
    type: list
    elements: str
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - airgap.uv.action_plugin
attributes:
  check_mode:
    support: full
    details: Reports what check mode predicted on each host, and writes O(path) all the same.
  diff_mode:
    support: none
notes:
  - Run it once (C(run_once)) after each batch; the role does. The durations are measured from the start
    of a host's copy to the end of its sync (or rollback), so they include waiting for the other hosts of
    its batch at each task.
"""

EXAMPLES = r"""
- name: Write the fleet report
  airgap.uv.fleet_report:
    name: myapp
    path: /var/log/deploy/myapp-fleet.json
    serial: "{{ uv_deploy_serial | default(0) }}"
  run_once: true
  register: report

- name: Show it
  ansible.builtin.debug:
    msg: "{{ report.table }}"
  run_once: true
"""

RETURN = r"""
report:
  description: The report, as written to O(path).
  returned: success
  type: dict
  contains:
    format:
      description: Version of this layout, V(1).
      type: int
    deployment:
      description: O(name).
      type: str
    check_mode:
      description: Whether the run was in check mode.
      type: bool
    rollout_stopped:
      description: Whether the failures so far stop the rollout after this batch.
      type: bool
    summary:
      description: How many hosts ended in each status.
      type: dict
      sample: {"changed": 1, "rolled back": 1, "not reached": 2}
    hosts:
      description:
        - Per host, C(status), C(batch), C(release) and C(version) (in service at the end), C(release_before)
          and C(version_before), C(release_attempted) (the release that failed, for a rolled back host),
          C(installed), C(removed), C(upgraded), C(downgraded) (counts) and C(changes) (the lists),
          C(network), C(bytes_sent) (by the controller to the host) and C(bytes_pulled) (by the host from the
          mirror), C(check), C(duration) (seconds) and C(error).
      type: dict
table:
  description: The report as a short table, one line per host after a summary line.
  returned: success
  type: list
  elements: str
final:
  description: Whether this is the last report of the run (the last batch ran, or the rollout stops here).
  returned: success
  type: bool
path:
  description: The file written, V(null) without O(path).
  returned: success
  type: str
"""
