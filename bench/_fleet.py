# -*- coding: utf-8 -*-
# Copyright (c) airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the fleet benches share: the test bed's hosts, their links' byte counters, the playbook runs.

Used by fleet_noop_vs_ping.py, deploy_noop_fleet.py, fleet_push_floor.py and fleet_mirror_bytes.py
(run as root, after scripts/bootstrap).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import typing as t

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTBED = os.path.join(REPO, "tests", "testbed", "offline-hosts")
VENV_BIN = os.path.join(REPO, ".venv", "bin")
EXAMPLE = os.path.join(REPO, "examples", "hello-airgap")
PLAYBOOK = os.path.join(VENV_BIN, "ansible-playbook")
UV = os.path.join(VENV_BIN, "uv")
SYS_NET = "/sys/class/net"


def tree() -> str:
    """The airgap.uv tree the benches run: this checkout, or AIRGAP_UV_BENCH_TREE."""
    return os.path.abspath(os.environ.get("AIRGAP_UV_BENCH_TREE") or REPO)


@functools.lru_cache(maxsize=None)
def collections_path() -> str:
    """A private ANSIBLE_COLLECTIONS_PATH where airgap.uv is this checkout, or AIRGAP_UV_BENCH_TREE.

    Not .venv/collections: scripts/bootstrap run from another worktree sharing the venv repoints that
    link, which once switched a bench's collection to another tree in the middle of a run. To measure a
    commit while the checkout is being edited: git archive COMMIT | tar -x -C DIR, AIRGAP_UV_BENCH_TREE=DIR.
    """
    where = tree()
    if not os.path.isfile(os.path.join(where, "galaxy.yml")):
        sys.exit("AIRGAP_UV_BENCH_TREE=%s is not a tree of this collection (no galaxy.yml)" % where)
    top = tempfile.mkdtemp(prefix="airgap-uv-bench-collections-")
    atexit.register(shutil.rmtree, top, True)
    os.makedirs(os.path.join(top, "ansible_collections", "airgap"))
    os.symlink(where, os.path.join(top, "ansible_collections", "airgap", "uv"))
    log("airgap.uv from %s" % where)
    return top


def env(timing: t.Optional[str] = None, **extra: str) -> dict:
    """The dev venv first, this checkout as airgap.uv, pipelining on (as scripts/env.sh), no colour.

    TIMING: a file that bench/callback_plugins/fleet_timing.py fills with each task's start and end per host.
    """
    out = dict(os.environ, PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""),
               ANSIBLE_COLLECTIONS_PATH=collections_path(), ANSIBLE_PIPELINING="true",
               ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1", **extra)
    out.pop("PYTHONPATH", None)
    if timing:
        out.update(ANSIBLE_CALLBACK_PLUGINS=os.path.join(REPO, "bench", "callback_plugins"),
                   ANSIBLE_CALLBACKS_ENABLED="fleet_timing", FLEET_TIMING_FILE=timing)
    return out


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load() -> str:
    """The 1-minute load average now (the machine is shared: every figure is noted with it)."""
    return "%.2f" % os.getloadavg()[0]


def hosts_down(names: t.Sequence[str]) -> None:
    subprocess.run([TESTBED, "down", *names], check=False, capture_output=True)


def hosts_up(names: t.Sequence[str], inventory: str, enclave: t.Optional[str] = None) -> dict:
    """NAMES fresh (down first), up (on ENCLAVE's link too), inventory written; returns status --json by name."""
    hosts_down(names)
    start = time.perf_counter()
    subprocess.run([TESTBED, "up", *(["--enclave", enclave] if enclave else []), *names], check=True,
                   capture_output=True)
    log("  %.2f s  up %d hosts" % (time.perf_counter() - start, len(names)))
    subprocess.run([TESTBED, "inventory", "--write", inventory, *names], check=True, capture_output=True)
    listed = subprocess.run([TESTBED, "status", "--json"], check=True, capture_output=True, text=True).stdout
    return {host["name"]: host for host in json.loads(listed) if host["name"] in names}


@contextlib.contextmanager
def workdir(prefix: str, names: t.Sequence[str]) -> t.Iterator[str]:
    """A temporary directory; NAMES are brought down and the directory removed at the end, whatever happens."""
    work = tempfile.mkdtemp(prefix=prefix)
    try:
        yield work
    finally:
        hosts_down(names)
        shutil.rmtree(work, ignore_errors=True)


# numpy, pandas, scipy and sympy for the test hosts' CPython 3.11: 70.5 MB of Linux x86_64 wheels (8 files).
PROJECT_70MB = "fleet-70mb"
PYPROJECT_70MB = """\
[project]
name = "fleet-70mb"
version = "0.1.0"
requires-python = "==3.11.*"
dependencies = ["numpy", "pandas", "scipy", "sympy"]

[tool.uv]
package = false
exclude-newer = "2026-10-01T00:00:00Z"
environments = ["sys_platform == 'linux'"]
"""


def write_70mb_project(work: str) -> str:
    """The ~70 MB project written under WORK and locked (uv picks the index); its directory."""
    project = os.path.join(work, PROJECT_70MB)
    os.makedirs(project)
    with open(os.path.join(project, "pyproject.toml"), "w", encoding="utf-8") as handle:
        handle.write(PYPROJECT_70MB)
    subprocess.run([UV, "lock", "--quiet", "--directory", project], check=True, env=env())
    return project


def copy_example(work: str) -> str:
    """The example project copied into WORK and locked (uv picks the index)."""
    project = os.path.join(work, "hello-airgap")
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".venv", "__pycache__"))
    subprocess.run([UV, "lock", "--quiet", "--directory", project], check=True, env=env())
    return project


# -- the links' byte counters -----------------------------------------------------------------------

def _aliases() -> dict:
    out = {}
    for name in os.listdir(SYS_NET):
        try:
            with open(os.path.join(SYS_NET, name, "ifalias"), encoding="utf-8") as handle:
                alias = handle.read().strip()
        except OSError:
            continue
        if alias:
            out[name] = alias.split()
    return out


def links(names: t.Sequence[str], enclave: t.Optional[str] = None) -> dict:
    """The controller's ends: {host: its link's veth (aguXc)}, plus {"<enclave>": the enclave's bridge}.

    The test bed names them (tests/testbed/README.md): the controller-side veth of a host's own link is
    ``agu<X>c`` with alias ``airgap-uv-testbed TAG NAME``; the enclave's bridge ``agb<E>`` has alias
    ``airgap-uv-testbed-enclave TAG NAME``. The bridge's own tx counts what the controller itself sends
    on the enclave link, not what hosts send each other through it.
    """
    out = {}
    for dev, alias in _aliases().items():
        if alias[0] == "airgap-uv-testbed" and len(alias) == 3 and alias[2] in names and dev.endswith("c"):
            out[alias[2]] = dev
        elif enclave and alias[0] == "airgap-uv-testbed-enclave" and alias[2:] == [enclave]:
            out["<%s>" % enclave] = dev
    missing = [name for name in names if name not in out]
    if missing or (enclave and "<%s>" % enclave not in out):
        sys.exit("cannot find the test bed links of %s (enclave %s): %s" % (missing, enclave, out))
    return out


def counters(devs: dict) -> dict:
    """{key: (tx_bytes, rx_bytes)} of each controller-side device: tx is what the controller sent."""
    out = {}
    for key, dev in devs.items():
        stats = os.path.join(SYS_NET, dev, "statistics")
        with open(os.path.join(stats, "tx_bytes"), encoding="ascii") as tx, \
                open(os.path.join(stats, "rx_bytes"), encoding="ascii") as rx:
            out[key] = (int(tx.read()), int(rx.read()))
    return out


def delta(before: dict, after: dict) -> dict:
    return {key: (after[key][0] - before[key][0], after[key][1] - before[key][1]) for key in before}


# -- running things ---------------------------------------------------------------------------------

def run(argv: t.Sequence[str], what: str = "", check: bool = True,
        environ: t.Optional[dict] = None) -> t.Tuple[float, subprocess.CompletedProcess]:
    """ARGV with ENVIRON (env()); its wall time in seconds and the finished process (exits on failure with CHECK)."""
    start = time.perf_counter()
    proc = subprocess.run(list(argv), env=environ or env(), capture_output=True, text=True, check=False)
    took = time.perf_counter() - start
    log("  %.2f s  %s (load %s)" % (took, what or " ".join(os.path.basename(a) for a in argv[3:5]), load()))
    if check and proc.returncode != 0:
        sys.exit("failed: %s\n%s\n%s" % (" ".join(argv), proc.stdout[-4000:], proc.stderr[-2000:]))
    return took, proc


def deploy_argv(inventory: str, project: str, wheelhouse: str, *extra: str, forks: t.Optional[int] = None) -> list:
    """ansible-playbook airgap.uv.deploy_offline for PROJECT with its wheelhouse in WHEELHOUSE."""
    return [PLAYBOOK, "-i", inventory, "airgap.uv.deploy_offline", *(["-f", str(forks)] if forks else []),
            "-e", "uv_deploy_project=%s" % project, "-e", "uv_deploy_wheelhouse_dir=%s" % wheelhouse, *extra]


def human(size: float) -> str:
    return "%.1f MB" % (size / 1e6)


def phases(timing: str) -> dict:
    """{task name: {"span", "sum", "hosts"}} from TIMING (bench/callback_plugins/fleet_timing.py's lines).

    span: from the task's first start to its last end on any host (a name that runs as several tasks, the
    checks of both plays, adds their spans); sum: every host's time in it added up.
    """
    tasks: dict = {}
    with open(timing, encoding="utf-8") as handle:
        for line in handle:
            entry = json.loads(line)
            tasks.setdefault((entry["task"], entry.get("uuid")), []).append(entry)
    out: dict = {}
    for (name, dummy), entries in tasks.items():
        row = out.setdefault(name, {"span": 0.0, "sum": 0.0, "hosts": 0})
        row["span"] += max(e["end"] for e in entries) - min(e["start"] for e in entries)
        row["sum"] += sum(e["end"] - e["start"] for e in entries)
        row["hosts"] += len(entries)
    return out
