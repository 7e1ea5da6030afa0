# -*- coding: utf-8 -*-
# Copyright (c) airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""First deploy through push of a ~70 MB project to 10 hosts, against its floor (issue 14).

The project (written and locked here, uv picks the index): numpy, pandas, scipy and sympy for
CPython 3.11 (the test hosts' Python), 70.5 MB of wheels for Linux x86_64 plus uv and uvx (38.3 MB).
Each round brings up fresh offline test hosts (PREFIX-01..N) for each case and, in an order that
rotates from round to round, times:

  playbook  ansible-playbook airgap.uv.deploy_offline with the forks given (default: none, so
            Ansible's default 5), the first deploy on those hosts; each host's bytes over its link
            (the controller's veth counters) and each task's time per host (bench/callback_plugins)
  playbook, ssh args  (with --ssh-args) the same with ANSIBLE_SSH_ARGS set, e.g. Ansible's default
            without -C, which compresses the whole SSH session
  floor     the same files (the directory the playbook pushed to each host, WHEELHOUSE/targets/<id>/: bin/uv,
            bin/uvx, wheelhouse/, requirements.txt, ...) copied with scp -r over the same SSH, then on the host
            `uv venv` + `uv pip sync --offline --no-index --find-links --require-hashes` with an empty
            uv cache, FORKS hosts at a time (each host: copy, then sync), into another directory

The first round is "as a new user would": a fresh HOME (empty airgap.uv and uv caches on the
controller: the wheelhouse is downloaded) and a fresh wheelhouse directory; later rounds reuse that
wheelhouse (the controller's part is then its no-change short cut). The ratio playbook / floor is
printed per round, with the median of the rounds' ratios (all rounds, and the warm ones), and where
the playbook's time goes.

Usage (root, after scripts/bootstrap):
  python bench/fleet_push_floor.py [--hosts 10] [--rounds 3] [--forks N] [--ssh-args '-o ControlMaster=auto ...']
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
import typing as t

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _fleet  # noqa: E402  (bench/_fleet.py: hosts, links, playbook runs)

FLOOR = "/opt/floor"


def ssh_argv(inventory: str) -> dict:
    """{host: (ssh options list, address)} from the test bed's inventory."""
    with open(inventory, encoding="utf-8") as handle:
        hosts = yaml.safe_load(handle)["all"]["hosts"]
    return {name: (["-i", h["ansible_ssh_private_key_file"], "-o", "BatchMode=yes", "-p", str(h["ansible_port"]),
                    *shlex.split(h["ansible_ssh_common_args"])], "%s@%s" % (h["ansible_user"], h["ansible_host"]))
            for name, h in hosts.items()}


def floor_one(options: list, login: str, src: str) -> tuple:
    """Copy SRC's content to FLOOR on the host with scp, then a bare uv venv + uv pip sync there."""
    start = time.perf_counter()
    subprocess.run(["ssh", *options, login, "rm -rf %s && mkdir -p %s" % (FLOOR, FLOOR)], check=True)
    scp = [a if a != "-p" else "-P" for a in options]
    subprocess.run(["scp", "-q", "-r", *scp, *[os.path.join(src, n) for n in sorted(os.listdir(src))],
                    "%s:%s/" % (login, FLOOR)], check=True)
    copied = time.perf_counter()
    sync = ("export UV_CACHE_DIR={f}/cache UV_NO_CONFIG=1 UV_PYTHON_DOWNLOADS=never && "
            "{f}/bin/uv venv --quiet --python /usr/bin/python3 {f}/venv && "
            "{f}/bin/uv pip sync --quiet --offline --no-index --find-links {f}/wheelhouse --require-hashes "
            "--no-build --python {f}/venv/bin/python {f}/requirements.txt").format(f=FLOOR)
    subprocess.run(["ssh", *options, login, sync], check=True)
    done = time.perf_counter()
    return copied - start, done - copied


def floor(inventory: str, names: list, src: dict, forks: int) -> dict:
    logins = ssh_argv(inventory)
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(forks) as pool:
        parts = dict(zip(names, pool.map(lambda n: floor_one(*logins[n], src[n]), names)))
    wall = time.perf_counter() - start
    _fleet.log("  %.2f s  floor (load %s)" % (wall, _fleet.load()))
    return {"wall": wall, "copy": [p[0] for p in parts.values()], "sync": [p[1] for p in parts.values()]}


def playbook(inventory: str, project: str, wheelhouse: str, options, work: str, home: str, index: int,
             ssh_args: t.Optional[str]) -> dict:
    timing = os.path.join(work, "timing-%d-%s.jsonl" % (index, "ssh-args" if ssh_args is not None else "default"))
    argv = _fleet.deploy_argv(inventory, project, wheelhouse, "-e", "uv_deploy_name=%s" % _fleet.PROJECT_70MB,
                              "-e", "uv_deploy_report_path=%s" % os.path.join(work, "fleet.json"), forks=options.forks)
    extra = {"HOME": home}
    if ssh_args is not None:
        extra["ANSIBLE_SSH_ARGS"] = ssh_args
    wall, dummy = _fleet.run(argv, "deploy_offline", environ=_fleet.env(timing, **extra))
    report = json.load(open(os.path.join(work, "fleet.json"), encoding="utf-8"))
    return {"wall": wall, "phases": _fleet.phases(timing), "report": report["summary"]}


def breakdown(result: dict) -> dict:
    """Wall-clock spans of the playbook's parts (linear strategy: a task ends on every host before the next)."""
    ph = result["phases"]

    def span(key: str) -> float:
        return sum(v["span"] for k, v in ph.items() if key in k)

    parts = {"wheelhouse build (controller)": span("Build the wheelhouse on the controller, once for all targets"),
             "target facts": span("Describe the host as a target"),
             "push": span("Send uv, this host's wheels"),
             "sync": span("Sync the virtual environment")}
    parts["everything else (Ansible, other tasks, start-up)"] = result["wall"] - sum(parts.values())
    return parts


def one_round(index: int, options, names: list, work: str, project: str, home: str, wheelhouse: str) -> dict:
    """Each case on fresh hosts, in an order that rotates with INDEX (the first round's playbook goes first:
    it builds the wheelhouse the floor copies)."""
    inventory = os.path.join(work, "inventory.yml")
    cases = ["playbook", "floor"] + (["playbook, ssh args"] if options.ssh_args is not None else [])
    order = cases[index % len(cases):] + cases[:index % len(cases)] if index else cases
    out = {"load_before": _fleet.load()}
    for what in order:
        _fleet.hosts_up(names, inventory)
        # Untimed: the floor leaves its ~3.7 GB unwritten (a bare uv pip sync flushes nothing), and the test
        # hosts share one file system, so the playbook's syncfs (its releases are made durable) would write
        # the previous case's data too.
        os.sync()
        links = _fleet.links(names)
        before = _fleet.counters(links)
        if what == "floor":
            src = pushed_dir(wheelhouse)
            out[what] = floor(inventory, names, {name: src for name in names}, options.forks or 5)
        else:
            out[what] = playbook(inventory, project, wheelhouse, options, work, home, index,
                                 options.ssh_args if what != "playbook" else None)
        out[what]["bytes"] = _fleet.delta(before, _fleet.counters(links))
    out["load_after"] = _fleet.load()
    return out


def pushed_dir(wheelhouse: str) -> str:
    """The directory the playbook pushed to each host: the wheelhouse's one target directory."""
    top = os.path.join(wheelhouse, "targets")
    targets = [os.path.join(top, d) for d in sorted(os.listdir(top))
               if os.path.isfile(os.path.join(top, d, "requirements.txt"))]
    if len(targets) != 1:
        sys.exit("expected one target directory under %s, found %s" % (wheelhouse, targets))
    return targets[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--forks", type=int, default=None, help="ansible-playbook -f (default: Ansible's, 5)")
    parser.add_argument("--prefix", default="bf")
    parser.add_argument("--ssh-args", default=None,
                        help="ANSIBLE_SSH_ARGS for the playbook (default: Ansible's, '-C -o ControlMaster=auto "
                             "-o ControlPersist=60s'); e.g. the same without -C")
    options = parser.parse_args()
    names = ["%s-%02d" % (options.prefix, i) for i in range(1, options.hosts + 1)]
    with _fleet.workdir("airgap-uv-fleet-push-", names) as work:
        project = _fleet.write_70mb_project(work)
        home = os.path.join(work, "home")
        os.makedirs(home)
        wheelhouse = os.path.join(work, "wheelhouse")
        rounds = []
        for index in range(options.rounds):
            rounds.append(one_round(index, options, names, work, project, home, wheelhouse))
        report(rounds, names)


def report(rounds: list, names: list) -> None:
    cases = [key for key in rounds[0] if key.startswith("playbook")]
    for index, result in enumerate(rounds):
        fl = result["floor"]
        print("round %d%s: load %s -> %s" % (index + 1, " (new user: cold caches)" if index == 0 else "",
                                            result["load_before"], result["load_after"]))
        print("  floor %.2f s; per host: copy median %.2f s, sync median %.2f s; bytes to each host median %s"
              % (fl["wall"], statistics.median(fl["copy"]), statistics.median(fl["sync"]),
                 _fleet.human(statistics.median(fl["bytes"][n][0] for n in names))))
        for case in cases:
            pb = result[case]
            print("  %s %.2f s, ratio to the floor %.2fx; bytes to each host median %s"
                  % (case, pb["wall"], pb["wall"] / fl["wall"],
                     _fleet.human(statistics.median(pb["bytes"][n][0] for n in names))))
            for part, secs in breakdown(pb).items():
                print("    %-50s %6.2f s" % (part, secs))
            for key in ("Send uv, this host's wheels", "Sync the virtual environment"):
                row = [v for k, v in pb["phases"].items() if key in k][0]
                print("    per host: %-37s mean %.2f s" % (key, row["sum"] / row["hosts"]))
            slow = sorted(pb["phases"].items(), key=lambda kv: -kv[1]["span"])[:6]
            print("    slowest tasks (span/sum over hosts, s): " + "; ".join(
                "%s %.2f/%.2f" % (k.split(" : ")[-1][:40], v["span"], v["sum"]) for k, v in slow))
    for label, some in (("all rounds", rounds), ("rounds 2..", rounds[1:])):
        if not some:
            continue
        for case in cases:
            print("%s, median: %s %.2f s, floor %.2f s, ratio %.2fx (median of the rounds' ratios; goal: at most 2x)"
                  % (label, case, statistics.median(r[case]["wall"] for r in some),
                     statistics.median(r["floor"]["wall"] for r in some),
                     statistics.median(r[case]["wall"] / r["floor"]["wall"] for r in some)))
    print(json.dumps(rounds, default=str), file=sys.stderr)


if __name__ == "__main__":
    main()
