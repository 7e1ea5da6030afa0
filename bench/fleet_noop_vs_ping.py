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
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTBED = os.path.join(REPO, "tests", "testbed", "offline-hosts")
VENV_BIN = os.path.join(REPO, ".venv", "bin")
EXAMPLE = os.path.join(REPO, "examples", "hello-airgap")


def env() -> dict:
    out = dict(os.environ, PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, ".venv", "collections"), ANSIBLE_PIPELINING="true",
               ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
    out.pop("PYTHONPATH", None)
    return out


def timed(argv: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env(), capture_output=True, text=True, check=False)
    took = time.perf_counter() - start
    print("  %.2f s  %s" % (took, " ".join(os.path.basename(a) for a in argv[3:5])), file=sys.stderr, flush=True)
    if proc.returncode != 0:
        sys.exit("failed: %s\n%s" % (" ".join(argv), proc.stdout[-4000:]))
    return took, proc.stdout


def tasks_per_host(output: str, host: str) -> int:
    match = re.search(r"^%s\s*: ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=\d+\s+skipped=(\d+)"
                      % re.escape(host), output, re.M)
    assert match, output[-2000:]
    return sum(int(n) for n in match.groups())


# The tasks of a no-op deploy that run a module on the host (the others run on the controller).
REMOTE_TASKS = ("Describe the host as a target for Python wheels", "Create the deployment root",
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
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    names = ["fleet-%d" % i for i in range(1, options.hosts + 1)]
    work = tempfile.mkdtemp(prefix="airgap-uv-fleet-noop-")
    try:
        subprocess.run([TESTBED, "down", *names], check=True, capture_output=True)
        start = time.perf_counter()
        subprocess.run([TESTBED, "up", *names], check=True, capture_output=True)
        print("  %.2f s  up %d hosts" % (time.perf_counter() - start, len(names)), file=sys.stderr, flush=True)
        inventory = os.path.join(work, "inventory.yml")
        subprocess.run([TESTBED, "inventory", "--write", inventory, *names], check=True, capture_output=True)
        project = os.path.join(work, "hello-airgap")
        shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".venv", "__pycache__"))
        subprocess.run([os.path.join(VENV_BIN, "uv"), "lock", "--quiet", "--directory", project], check=True, env=env())
        forks = str(len(names))
        deploy = [os.path.join(VENV_BIN, "ansible-playbook"), "-i", inventory, "airgap.uv.deploy_offline", "-f", forks,
                  "-e", "uv_deploy_project=%s" % project, "-e", "uv_deploy_wheelhouse_dir=%s" % os.path.join(work, "wh"),
                  "-e", "uv_deploy_report_path=%s" % os.path.join(work, "fleet.json")]
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
                times[key].append(timed([os.path.join(VENV_BIN, "ansible-playbook"), "-i", inventory, ping,
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
    finally:
        subprocess.run([TESTBED, "down", *names], check=False, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
