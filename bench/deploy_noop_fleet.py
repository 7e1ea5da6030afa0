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
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _fleet  # noqa: E402  (bench/_fleet.py: hosts, links, playbook runs)

STATE = "/opt/airgap-uv/hello-airgap/.venv.releases.state.json"
DROP_RECORD = ("import json; p = %r; d = json.load(open(p)); d.pop('noop_result', None); "
               "json.dump(d, open(p, 'w'))" % STATE)


def playbook(inventory: str, project: str, wheelhouse: str, forks: int) -> float:
    return _fleet.run(_fleet.deploy_argv(inventory, project, wheelhouse, forks=forks), "deploy_offline")[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--prefix", default="bench", help="host names PREFIX-1..N")
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    names = ["%s-%d" % (options.prefix, i) for i in range(1, options.hosts + 1)]
    with _fleet.workdir("airgap-uv-fleet-", names) as work:
        inventory = os.path.join(work, "inventory.yml")
        _fleet.hosts_up(names, inventory)
        project = _fleet.copy_example(work)
        wheelhouse = os.path.join(work, "wheelhouse")
        first = playbook(inventory, project, wheelhouse, len(names))
        playbook(inventory, project, wheelhouse, len(names))  # records the no-op on every host
        times: dict[str, list[float]] = {"with record": [], "without record": []}
        for dummy in range(options.rounds):
            times["with record"].append(playbook(inventory, project, wheelhouse, len(names)))
            for name in names:
                subprocess.run([_fleet.TESTBED, "exec", name, "--", "python3", "-c", DROP_RECORD], check=True)
            times["without record"].append(playbook(inventory, project, wheelhouse, len(names)))
        medians = {key: statistics.median(values) for key, values in times.items()}
        print("hosts: %d, rounds: %d, first deploy: %.1f s" % (len(names), options.rounds, first))
        for key, values in times.items():
            print("%-16s median %.2f s  (%s)" % (key, medians[key], ", ".join("%.2f" % v for v in values)))
        saved = medians["without record"] - medians["with record"]
        print("the record saves %.2f s, %.1f %% of the no-op playbook without it"
              % (saved, 100 * saved / medians["without record"]))
        print(json.dumps({"medians": medians, "runs": times}))


if __name__ == "__main__":
    main()
