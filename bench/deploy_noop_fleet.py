# -*- coding: utf-8 -*-
# Copyright (c) airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Is the recorded no-op worth its code? A no-op deploy_offline of a fleet, with and without it.

Brings up N offline test hosts (tests/testbed), deploys the example project to all of them
once, then times no-op runs of ``ansible-playbook airgap.uv.deploy_offline`` (the whole
playbook: facts, wheelhouse check, push, sync) in alternating rounds:

  with record      as shipped: each host's sync answers from its recorded no-op
  without record   the record is removed from every host's state file before the run (not
                   timed), so each sync takes the full run: lock, manifest check, uv's dry run

and prints the medians and the share of the playbook's wall time the record saves.

Usage (root, after scripts/bootstrap): python bench/deploy_noop_fleet.py [--hosts 10] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
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
STATE = "/opt/airgap-uv/hello-airgap/.venv.releases.state.json"
DROP_RECORD = ("import json; p = %r; d = json.load(open(p)); d.pop('noop_result', None); "
               "json.dump(d, open(p, 'w'))" % STATE)


def env() -> dict:
    out = dict(os.environ, PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, ".venv", "collections"), ANSIBLE_PIPELINING="true",
               ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
    out.pop("PYTHONPATH", None)
    return out


def playbook(inventory: str, project: str, wheelhouse: str, forks: int) -> float:
    argv = [os.path.join(VENV_BIN, "ansible-playbook"), "-i", inventory, "airgap.uv.deploy_offline",
            "-e", "uv_deploy_project=%s" % project, "-e", "uv_deploy_wheelhouse_dir=%s" % wheelhouse,
            "-f", str(forks)]
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env(), capture_output=True, text=True, check=False)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit("deploy failed:\n%s" % proc.stdout[-4000:])
    return took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    names = ["bench-%d" % i for i in range(1, options.hosts + 1)]
    work = tempfile.mkdtemp(prefix="airgap-uv-fleet-")
    try:
        subprocess.run([TESTBED, "down", *names], check=True, capture_output=True)
        subprocess.run([TESTBED, "up", *names], check=True, capture_output=True)
        inventory = os.path.join(work, "inventory.yml")
        subprocess.run([TESTBED, "inventory", "--write", inventory, *names], check=True, capture_output=True)
        project = os.path.join(work, "hello-airgap")
        shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".venv", "__pycache__"))
        subprocess.run([os.path.join(VENV_BIN, "uv"), "lock", "--quiet", "--directory", project], check=True,
                       env=env())
        wheelhouse = os.path.join(work, "wheelhouse")
        first = playbook(inventory, project, wheelhouse, len(names))
        playbook(inventory, project, wheelhouse, len(names))  # records the no-op on every host
        times: dict[str, list[float]] = {"with record": [], "without record": []}
        for dummy in range(options.rounds):
            times["with record"].append(playbook(inventory, project, wheelhouse, len(names)))
            for name in names:
                subprocess.run([TESTBED, "exec", name, "--", "python3", "-c", DROP_RECORD], check=True)
            times["without record"].append(playbook(inventory, project, wheelhouse, len(names)))
        medians = {key: statistics.median(values) for key, values in times.items()}
        print("hosts: %d, rounds: %d, first deploy: %.1f s" % (len(names), options.rounds, first))
        for key, values in times.items():
            print("%-16s median %.2f s  (%s)" % (key, medians[key], ", ".join("%.2f" % v for v in values)))
        saved = medians["without record"] - medians["with record"]
        print("the record saves %.2f s, %.1f %% of the no-op playbook without it"
              % (saved, 100 * saved / medians["without record"]))
        print(json.dumps({"medians": medians, "runs": times}))
    finally:
        subprocess.run([TESTBED, "down", *names], check=False, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
