# -*- coding: utf-8 -*-
# Copyright (c) airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""First deploy of a fleet through the mirror and through push: the controller's bytes and the time (issue 14).

N offline test hosts (PREFIX-01..N) on one enclave; PREFIX-01 is the mirror, the others are the clients.
The project is the ~70 MB one of bench/_fleet.py (or the example with --project example). Steps:

  wheelhouse  the wheelhouse for the clients, built once on the controller (the uv_deploy role's
              wheelhouse entry point, as deploy_offline's first play), reused by both cases
  mirror      on fresh hosts: (1) ansible-playbook airgap.uv.mirror with no feed (pypiserver deployed to
              the mirror host offline: once per enclave), (2) the same fed the wheelhouse
              (uv_mirror_wheelhouses: its wheels and uv; before ee01635, uv_mirror_feed: its files/,
              the wheels only, uv still pushed to each host), (3)
              deploy_offline to the clients with uv_deploy_source=mirror and uv_deploy_mirror_url
  push        on fresh hosts: deploy_offline to the clients (uv_deploy_source push, the default)

For each step: the wall time, and the controller's bytes sent, from the test bed's counters: tx of the
controller-side veth of every host's own link (SSH) plus tx of the enclave's bridge (what the
controller itself sends on the enclave). "One copy of the distinct files" is the size of the
directory a client is sent (WHEELHOUSE/targets/<id>/: uv, uvx, the wheels, the install files).
Goal: the mirror's steps (2) + (3) at most 1.1x one copy, whatever the number of hosts.

Usage (root, after scripts/bootstrap):
  python bench/fleet_mirror_bytes.py [--hosts 30] [--forks N] [--only mirror|push] [--project 70mb|example]
      [--ssh-args '-o ControlMaster=auto -o ControlPersist=60s']
With Ansible's default ssh_args (-C) the counters show compressed bytes (the uv binary shrinks to about
half); the fleet report's bytes_sent (printed too) counts the files' own sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _fleet  # noqa: E402  (bench/_fleet.py: hosts, links, playbook runs)

ENCLAVE = "bfe"
WHEELHOUSE_PLAY = """\
- name: Build the wheelhouse for the clients (deploy_offline's first play)
  hosts: "{{ airgap_uv_hosts }}"
  gather_facts: false
  tasks:
    - name: Build the wheelhouse
      ansible.builtin.include_role:
        name: airgap.uv.uv_deploy
        tasks_from: wheelhouse
"""


def tree_size(top: str) -> int:
    """Bytes of the files under TOP, each inode once."""
    seen, total = set(), 0
    for root, dummy, files in os.walk(top):
        for name in files:
            st = os.stat(os.path.join(root, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


class Fleet:
    def __init__(self, options, work: str):
        self.options, self.work = options, work
        self.names = ["%s-%02d" % (options.prefix, i) for i in range(1, options.hosts + 1)]
        self.mirror, self.clients = self.names[0], self.names[1:]
        self.inventory = os.path.join(work, "inventory.yml")
        self.wheelhouse = os.path.join(work, "wheelhouse")
        self.project = (_fleet.write_70mb_project(work) if options.project == "70mb" else _fleet.copy_example(work))
        self.status: dict = {}
        self.links: dict = {}

    def fresh(self) -> None:
        self.status = _fleet.hosts_up(self.names, self.inventory, enclave=ENCLAVE)
        self.links = _fleet.links(self.names, enclave=ENCLAVE)

    def measured(self, what: str, argv: list) -> dict:
        """ARGV run and timed; the controller's bytes sent meanwhile (hosts' links, enclave bridge)."""
        before = _fleet.counters(self.links)
        load = _fleet.load()
        extra = {} if self.options.ssh_args is None else {"ANSIBLE_SSH_ARGS": self.options.ssh_args}
        wall, proc = _fleet.run(argv, what, environ=_fleet.env(**extra))
        moved = _fleet.delta(before, _fleet.counters(self.links))
        bridge = moved.pop("<%s>" % ENCLAVE)[0]
        per_host = {name: moved[name][0] for name in self.names}
        return {"wall": wall, "load": load, "bytes": sum(per_host.values()) + bridge, "bridge": bridge,
                "to_mirror": per_host[self.mirror],
                "per_client_median": statistics.median(per_host[n] for n in self.clients), "stdout": proc.stdout}

    def deploy(self, *extra: str) -> list:
        return _fleet.deploy_argv(self.inventory, self.project, self.wheelhouse, "-e",
                                  "airgap_uv_hosts=%s" % ",".join(self.clients), "-e",
                                  "uv_deploy_report_path=%s" % os.path.join(self.work, "fleet.json"), *extra,
                                  forks=self.options.forks)

    def mirror_play(self, feed: dict) -> list:
        return [_fleet.PLAYBOOK, "-i", self.inventory, "airgap.uv.mirror",
                *(["-f", str(self.options.forks)] if self.options.forks else []),
                "-e", "airgap_uv_mirror_hosts=%s" % self.mirror, "-e", json.dumps(feed),
                "-e", "uv_mirror_project_dir=%s" % os.path.join(self.work, "mirror-project"),
                "-e", "uv_deploy_wheelhouse_dir=%s" % os.path.join(self.work, "mirror-wheelhouse")]

    def build_wheelhouse(self) -> dict:
        play = os.path.join(self.work, "wheelhouse.yml")
        with open(play, "w", encoding="utf-8") as handle:
            handle.write(WHEELHOUSE_PLAY)
        return self.measured("wheelhouse", [
            _fleet.PLAYBOOK, "-i", self.inventory, play, "-e", "airgap_uv_hosts=%s" % ",".join(self.clients),
            "-e", "uv_deploy_project=%s" % self.project, "-e", "uv_deploy_wheelhouse_dir=%s" % self.wheelhouse])

    def feed(self) -> dict:
        """The mirror's feed: the wheelhouse (its wheels and uv) where the role takes uv_mirror_wheelhouses
        (since ee01635, hosts fetch uv from the mirror too), else the wheelhouse's files/ (the wheels only)."""
        if self.uv_from_mirror():
            return {"uv_mirror_wheelhouses": [self.wheelhouse]}
        return {"uv_mirror_feed": [os.path.join(self.wheelhouse, "files") + "/"]}

    @staticmethod
    def uv_from_mirror() -> bool:
        defaults = os.path.join(_fleet.tree(), "roles", "uv_mirror", "defaults", "main.yml")
        with open(defaults, encoding="utf-8") as handle:
            return "uv_mirror_wheelhouses:" in handle.read()

    def through_mirror(self) -> dict:
        self.fresh()
        url = "http://%s:8080" % self.status[self.mirror]["enclave_addr"]
        out = {"setup": self.measured("mirror, no feed (pypiserver)", self.mirror_play({})),
               "feed": self.measured("mirror, fed the wheelhouse", self.mirror_play(self.feed())),
               "deploy": self.measured("deploy_offline through the mirror", self.deploy(
                   "-e", "uv_deploy_source=mirror", "-e", "uv_deploy_mirror_url=%s" % url))}
        out["report"] = _report_summary(self.work)
        return out

    def through_push(self) -> dict:
        self.fresh()
        out = {"deploy": self.measured("deploy_offline through push", self.deploy())}
        out["report"] = _report_summary(self.work)
        return out


def _report_summary(work: str) -> dict:
    with open(os.path.join(work, "fleet.json"), encoding="utf-8") as handle:
        report = json.load(handle)
    rows = report["hosts"].values()
    return {"summary": report["summary"], "bytes_sent": sum(r.get("bytes_sent") or 0 for r in rows),
            "bytes_pulled": sum(r.get("bytes_pulled") or 0 for r in rows)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=30, help="hosts in the enclave, the mirror included")
    parser.add_argument("--forks", type=int, default=None, help="ansible-playbook -f (default: Ansible's, 5)")
    parser.add_argument("--only", choices=("mirror", "push"), default=None)
    parser.add_argument("--project", choices=("70mb", "example"), default="70mb")
    parser.add_argument("--prefix", default="bf")
    parser.add_argument("--ssh-args", default=None,
                        help="ANSIBLE_SSH_ARGS (default: Ansible's, '-C -o ControlMaster=auto -o ControlPersist=60s')")
    options = parser.parse_args()
    names = ["%s-%02d" % (options.prefix, i) for i in range(1, options.hosts + 1)]
    with _fleet.workdir("airgap-uv-fleet-mirror-", names) as work:
        fleet = Fleet(options, work)
        fleet.fresh()
        built = fleet.build_wheelhouse()
        targets = os.path.join(fleet.wheelhouse, "targets")
        ids = sorted(os.listdir(targets))
        one_copy = sum(tree_size(os.path.join(targets, i)) for i in ids)
        results = {"wheelhouse": built}
        if options.only != "push":
            results["mirror"] = fleet.through_mirror()
        if options.only != "mirror":
            results["push"] = fleet.through_push()
        show(options, fleet, ids, one_copy, results)


def show(options, fleet: Fleet, ids: list, one_copy: int, results: dict) -> None:
    print("%d hosts on enclave %s: mirror %s, %d clients; forks %s; project %s; targets %s; ssh args %s"
          % (options.hosts, ENCLAVE, fleet.mirror, len(fleet.clients), options.forks or "5 (default)",
             options.project, ids, "Ansible's default (-C)" if options.ssh_args is None else repr(options.ssh_args)))
    print("hosts fetch uv from the mirror: %s (collection tree %s)" % (fleet.uv_from_mirror(), _fleet.tree()))
    print("one copy of the distinct files (a client's directory): %s" % _fleet.human(one_copy))
    print("wheelhouse build: %.1f s (load %s)" % (results["wheelhouse"]["wall"], results["wheelhouse"]["load"]))
    for case, steps in results.items():
        if case == "wheelhouse":
            continue
        total = 0
        for step, got in steps.items():
            if step == "report":
                continue
            total += got["bytes"] if step != "setup" else 0
            print("%-6s %-6s %7.1f s (load %5s)  controller sent %9s (to the mirror host %s, on the enclave %s, "
                  "per client median %s)" % (case, step, got["wall"], got["load"], _fleet.human(got["bytes"]),
                                             _fleet.human(got["to_mirror"]), _fleet.human(got["bridge"]),
                                             _fleet.human(got["per_client_median"])))
        print("%-6s fleet report: %s" % (case, steps["report"]))
        label = "feed + deploy" if case == "mirror" else "deploy"
        print("%-6s %s: controller sent %s = %.2fx one copy (%.2fx per client); wall %.1f s"
              % (case, label, _fleet.human(total), total / one_copy, total / one_copy / len(fleet.clients),
                 sum(s["wall"] for k, s in steps.items() if k not in ("report", "setup"))))
    print(json.dumps({case: {step: {k: v for k, v in got.items() if k != "stdout"} if step != "report" else got
                             for step, got in steps.items()} if case != "wheelhouse" else
                      {k: v for k, v in steps.items() if k != "stdout"} for case, steps in results.items()}),
          file=sys.stderr)


if __name__ == "__main__":
    main()
