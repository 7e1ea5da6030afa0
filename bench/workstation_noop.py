# -*- coding: utf-8 -*-
# Copyright (c) airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A no-op rerun of the workstation playbook against the Ansible floor (issue 13).

Brings up one offline test host (wsx-bench), prepares it with ``airgap.uv.workstation`` for the
project of tests/integration/test_workstation.py (hatchling, a dev group, an extra, an sdist, a git
dependency, a win32-only dependency; ruff as a tool), then times, in alternating rounds:

  no-op workstation  ansible-playbook airgap.uv.workstation again (nothing to change)
  ping floor         a playbook of as many ansible.builtin.ping tasks on the host as the no-op
                     run had tasks for it (ok + changed + skipped of its recap, controller-side
                     tasks included)

and prints the medians, their ratio, the median of the per-round ratios (the two runs of a round
are back to back, so a change of the machine's load between rounds cancels out) and the ratio of
the fastest runs (the least disturbed on a shared machine).

Usage (root, after scripts/bootstrap): python bench/workstation_noop.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))
from testbed_env import REPO, TESTBED, ansible_env  # noqa: E402
from test_workstation import make_project  # noqa: E402

HOST = "wsx-bench"
USER = "dev"


def run(argv: list, check: bool = True) -> tuple:
    started = time.monotonic()
    proc = subprocess.run(argv, cwd=REPO, env=ansible_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, check=False)
    took = time.monotonic() - started
    if check and proc.returncode != 0:
        raise SystemExit("%s failed:\n%s" % (" ".join(argv[:4]), proc.stdout[-4000:]))
    return took, proc.stdout


def recap(output: str) -> tuple:
    """(tasks that ran for the host: ok + changed + skipped, changed)."""
    match = re.search(r"^%s\s*: ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=\d+\s+skipped=(\d+)"
                      % re.escape(HOST), output, re.M)
    assert match, output[-2000:]
    ok, changed, skipped = (int(n) for n in match.groups())
    return ok + changed + skipped, changed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    work = pathlib.Path(tempfile.mkdtemp(prefix="airgap-uv-ws-noop-"))
    try:
        subprocess.run([TESTBED, "down", HOST], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([TESTBED, "up", HOST], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([TESTBED, "exec", HOST, "--", "useradd", "-m", "-s", "/bin/bash", USER], check=True)
        inventory = str(work / "inventory.yml")
        subprocess.run([TESTBED, "inventory", "--write", inventory, HOST], check=True, stdout=subprocess.DEVNULL)
        project = make_project(work)
        workstation = ["ansible-playbook", "-i", inventory, "airgap.uv.workstation",
                       "-e", "uv_workstation_project=%s" % project, "-e", "uv_workstation_user=%s" % USER,
                       "-e", "uv_workstation_checkout=/home/%s/wsdemo" % USER, "-e", "uv_workstation_copy=true",
                       "-e", "uv_workstation_wheelhouse_dir=%s" % (work / "controller"),
                       "-e", json.dumps({"uv_workstation_tools": ["ruff"]})]
        first, dummy = run(workstation)
        dummy, out = run(workstation)
        tasks, changed = recap(out)
        assert changed == 0, out[-3000:]
        ping = str(work / "ping.yml")
        with open(ping, "w", encoding="utf-8") as handle:
            handle.write("- hosts: all\n  gather_facts: false\n  tasks:\n")
            for index in range(tasks):
                handle.write("    - name: Ping %d\n      ansible.builtin.ping:\n" % index)
        noop, floor = [], []
        for dummy in range(options.rounds):
            took, out = run(workstation)
            assert recap(out) == (tasks, 0), out[-3000:]
            noop.append(took)
            floor.append(run(["ansible-playbook", "-i", inventory, ping])[0])
        print("first run %.1f s; %d tasks on the host; rounds %d" % (first, tasks, options.rounds))
        print("no-op workstation: median %.2f s  %s" % (statistics.median(noop), " ".join("%.2f" % t for t in noop)))
        print("ping floor:        median %.2f s  %s" % (statistics.median(floor), " ".join("%.2f" % t for t in floor)))
        print("ratio of the medians %.2fx; median of the per-round ratios %.2fx; of the fastest runs %.2fx"
              % (statistics.median(noop) / statistics.median(floor),
                 statistics.median(n / f for n, f in zip(noop, floor)), min(noop) / min(floor)))
    finally:
        subprocess.run([TESTBED, "down", HOST], check=False, stdout=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
