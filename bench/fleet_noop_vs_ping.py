# -*- coding: utf-8 -*-
# Copyright (c) airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A no-op deploy_offline of a fleet against the Ansible floor (issue 14).

Brings up N offline test hosts (fleet-1..N), deploys the example project to all of them, then
times, in alternating rounds and with the same forks:

  no-op deploy   ansible-playbook airgap.uv.deploy_offline again (nothing to change), with the
                 fleet report written as JSON
  ping floor     a playbook of as many ansible.builtin.ping tasks per host as the no-op deploy
                 ran on a host (ok + changed + skipped of its recap, controller-side tasks such as
                 assert, set_fact and debug included)
  ping floor (remote)  as many ping tasks as the no-op deploy runs modules on a host (target
                 facts, deployment root, push, sync)

and prints the medians and the ratios (goal of issue 14: at most 1.3).

Usage (root, after scripts/bootstrap): python bench/fleet_noop_vs_ping.py [--hosts 30] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _fleet  # noqa: E402  (bench/_fleet.py: hosts, links, playbook runs)


def timed(argv: list[str]) -> tuple[float, str]:
    took, proc = _fleet.run(argv)
    return took, proc.stdout


def tasks_per_host(output: str, host: str) -> int:
    match = re.search(r"^%s\s*: ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=\d+\s+skipped=(\d+)"
                      % re.escape(host), output, re.M)
    assert match, output[-2000:]
    return sum(int(n) for n in match.groups())


# The tasks of a no-op deploy that run a module on the host (the others run on the controller).
REMOTE_TASKS = ("Describe the host as a target for Python wheels",
                "Send uv, this host's wheels and its install file (only what the host lacks)",
                "Sync the virtual environment from the wheelhouse")


def remote_tasks(output: str) -> int:
    return sum(1 for name in REMOTE_TASKS if "TASK [airgap.uv.uv_deploy : %s]" % name in output)


def ping_playbook(path: str, count: int) -> str:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("- hosts: all\n  gather_facts: false\n  tasks:\n")
        for index in range(count):
            handle.write("    - name: Ping %d\n      ansible.builtin.ping:\n" % index)
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=30)
    parser.add_argument("--prefix", default="fleet", help="host names PREFIX-1..N")
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    names = ["%s-%d" % (options.prefix, i) for i in range(1, options.hosts + 1)]
    with _fleet.workdir("airgap-uv-fleet-noop-", names) as work:
        inventory = os.path.join(work, "inventory.yml")
        _fleet.hosts_up(names, inventory)
        project = _fleet.copy_example(work)
        forks = str(len(names))
        deploy = _fleet.deploy_argv(inventory, project, os.path.join(work, "wh"), "-e",
                                    "uv_deploy_report_path=%s" % os.path.join(work, "fleet.json"), forks=len(names))
        first, dummy = timed(deploy)
        dummy, out = timed(deploy)  # records the no-op on every host
        count, remote = tasks_per_host(out, names[-1]), remote_tasks(out)
        floors = {"ping floor": ping_playbook(os.path.join(work, "ping.yml"), count),
                  "ping floor (remote)": ping_playbook(os.path.join(work, "ping-remote.yml"), remote)}
        load = os.getloadavg()
        times: dict[str, list[float]] = {"no-op deploy": [], "ping floor": [], "ping floor (remote)": []}
        for dummy in range(options.rounds):
            times["no-op deploy"].append(timed(deploy)[0])
            for key, ping in floors.items():
                times[key].append(timed([_fleet.PLAYBOOK, "-i", inventory, ping,
                                         "-f", forks])[0])
        with open(os.path.join(work, "fleet.json"), encoding="utf-8") as handle:
            summary = json.load(handle)["summary"]
        medians = {key: statistics.median(values) for key, values in times.items()}
        print("load average before/after: %s / %s" % (load, os.getloadavg()))
        print("hosts: %d, forks: %s, rounds: %d, first deploy: %.1f s, tasks per host: %d (%d remote), report: %s"
              % (len(names), forks, options.rounds, first, count, remote, summary))
        for key, values in times.items():
            print("%-19s median %.2f s  (%s)" % (key, medians[key], ", ".join("%.2f" % v for v in values)))
        for key in floors:
            print("no-op deploy / %s: %.2fx" % (key, medians["no-op deploy"] / medians[key]))


if __name__ == "__main__":
    main()
