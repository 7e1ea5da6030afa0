# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Rolling deploys and the fleet report (issue 14), on four offline test hosts.

``airgap.uv.deploy_offline`` with ``uv_deploy_serial: 25%`` (batches of one host) and a health
check (``uv_deploy_check_command``) that fails on the second host only:

- check mode first: every batch is predicted, nothing changes, and the report (table and JSON)
  says what would change where;
- then for real: the first batch passes and keeps the new release; the second fails its check,
  is rolled back to the release it had before, and the rollout stops; the last two hosts are
  never touched. The JSON report and the table say exactly that, and the hosts agree.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from test_sync_faults import _make_project, host_packages, release_state, sh
from testbed_env import TESTBED, VENV_BIN, ansible_env

HOSTS = ("fleet-1", "fleet-2", "fleet-3", "fleet-4")
BAD = "fleet-2"
# The health check: fails (exit 3) on a host holding /etc/fleet-bad, whatever the release.
CHECK = ["python", "-c", "import os, sys; sys.exit(3 if os.path.exists('/etc/fleet-bad') else 0)"]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the offline test bed needs root")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rollout")
    try:
        subprocess.run([TESTBED, "down", *HOSTS], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([TESTBED, "up", *HOSTS], check=True, stdout=subprocess.DEVNULL)
        inventory = str(tmp / "inventory.yml")
        subprocess.run([TESTBED, "inventory", "--write", inventory, *HOSTS], check=True, stdout=subprocess.DEVNULL)
        projects = {
            "v1": _make_project(tmp, "v1", lambda text: text.replace('"markupsafe>=2.1",',
                                                                     '"markupsafe>=2.1",\n    "six==1.16.0",')),
            "v2": _make_project(tmp, "v2", lambda text: text.replace('version = "0.1.0"', 'version = "0.2.0"').replace(
                '"markupsafe>=2.1",', '"markupsafe>=2.1",\n    "six==1.17.0",\n    "idna==3.7",')),
        }
        yield tmp, inventory, projects
    finally:
        subprocess.run([TESTBED, "down", *HOSTS], check=False, stdout=subprocess.DEVNULL)


def deploy(tmp, inventory: str, project: str, *extra: str) -> subprocess.CompletedProcess:
    argv = [os.path.join(VENV_BIN, "ansible-playbook"), "-i", inventory, "airgap.uv.deploy_offline",
            "-e", "uv_deploy_project=%s" % project, "-e", "uv_deploy_wheelhouse_dir=%s" % (tmp / "wheelhouse"), *extra]
    return subprocess.run(argv, env=ansible_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          check=False, timeout=600)


def table(output: str) -> list[str]:
    """The last fleet table the play showed."""
    start = output.rindex("TASK [airgap.uv.uv_deploy : Show the fleet report]")
    body = output[start:output.index("\n}\n", start)]
    return json.loads(body[body.index("{"):] + "\n}")["msg"]


def test_a_bad_batch_stops_the_rollout_and_rolls_back(fleet):
    tmp, inventory, projects = fleet
    first = deploy(tmp, inventory, projects["v1"])
    assert first.returncode == 0, first.stdout[-4000:]
    before = {host: os.path.basename(release_state(host)[0]) for host in HOSTS}
    sh(BAD, "touch /etc/fleet-bad")
    rolling = ["-e", "uv_deploy_serial=25%", "-e", json.dumps({"uv_deploy_check_command": CHECK})]

    # Check mode: every batch predicted (the check command does not run), nothing changed.
    predicted = deploy(tmp, inventory, projects["v2"], "--check", *rolling, "-e",
                       "uv_deploy_report_path=%s" % (tmp / "check.json"))
    assert predicted.returncode == 0, predicted.stdout[-4000:]
    report = json.loads((tmp / "check.json").read_text())
    assert report["check_mode"] and not report["rollout_stopped"], report
    assert {h: (r["status"], r["batch"], r["version"], r["installed"], r["upgraded"])
            for h, r in report["hosts"].items()} == {h: ("would change", i, "0.2.0", 1, 2)
                                                     for i, h in enumerate(HOSTS, 1)}
    assert table(predicted.stdout)[0] == "hello-airgap (check mode): 4 hosts: 4 would change"
    assert {host: os.path.basename(release_state(host)[0]) for host in HOSTS} == before

    real = deploy(tmp, inventory, projects["v2"], *rolling, "-e", "uv_deploy_report_path=%s" % (tmp / "fleet.json"))
    out = real.stdout
    assert real.returncode == 2, out[-4000:]
    assert "ROLLED BACK: the release in service before this deployment, /opt/airgap-uv/hello-airgap/.venv.releases/%s " \
        "(version 0.1.0), is back in service" % before[BAD] in out, out[-4000:]
    # The hosts: the first batch on the new release, the bad one back on its old release, the rest untouched.
    after = {host: os.path.basename(release_state(host)[0]) for host in HOSTS}
    assert after[BAD] == before[BAD] and after["fleet-3"] == before["fleet-3"] and after["fleet-4"] == before["fleet-4"]
    assert after["fleet-1"] != before["fleet-1"]
    assert host_packages("fleet-1")["hello-airgap"] == "0.2.0" and host_packages("fleet-1")["six"] == "1.17.0"
    for host in (BAD, "fleet-3", "fleet-4"):
        packages = host_packages(host)
        assert (packages["hello-airgap"], packages["six"], "idna" in packages) == ("0.1.0", "1.16.0", False), host
    # The hosts of later batches were never contacted after the first play.
    second_play = out[out.index("PLAY [Deploy a uv project"):out.index("PLAY RECAP")]
    assert "[fleet-3]" not in second_play and "[fleet-4]" not in second_play, out[-4000:]

    report = json.loads((tmp / "fleet.json").read_text())
    assert report["rollout_stopped"] and not report["check_mode"] and report["serial"] == "25%"
    assert report["summary"] == {"changed": 1, "rolled back": 1, "not reached": 2}
    rows = report["hosts"]
    assert (rows["fleet-1"]["status"], rows["fleet-1"]["version"], rows["fleet-1"]["check"]) == \
        ("changed", "0.2.0", "passed")
    assert rows["fleet-1"]["release"] == after["fleet-1"]
    bad = rows[BAD]
    assert (bad["status"], bad["release"], bad["version"], bad["check"]) == \
        ("rolled back", before[BAD], "0.1.0", "failed (rc 3)")
    assert bad["release_attempted"] and bad["release_attempted"] != bad["release"]
    assert bad["changes_attempted"]["installed"] and bad["installed"] == 0
    for host in ("fleet-3", "fleet-4"):
        assert (rows[host]["status"], rows[host]["release"], rows[host]["version"]) == \
            ("not reached", before[host], "0.1.0")
    lines = table(out)
    assert lines[0] == "hello-airgap: 4 hosts: 1 changed, 1 rolled back, 2 not reached; the rollout stopped " \
        "(uv_deploy_max_fail_percentage 0)"
    assert [line.split()[:3] for line in lines[2:]] == [["fleet-1", "1", "changed"], [BAD, "2", "rolled"],
                                                        ["fleet-3", "3", "not"], ["fleet-4", "4", "not"]]


def test_a_check_that_passes_when_retried_keeps_the_new_release(fleet):
    """A service that needs a moment after the deployment: its check fails on the first run and passes on
    the second; with uv_deploy_check_retries the host keeps its new release (not rolled back)."""
    tmp, inventory, projects = fleet
    host = "fleet-3"
    before = os.path.basename(release_state(host)[0])
    # Each run appends a line; only the second and later pass.
    warming = ["python", "-c", "import sys; f = open('/tmp/check-runs', 'a+'); f.write('x\\n'); f.seek(0); "
               "sys.exit(0 if len(f.readlines()) >= 2 else 3)"]
    sh(host, "rm -f /tmp/check-runs")
    run = deploy(tmp, inventory, projects["v2"], "-e", "airgap_uv_hosts=%s" % host,
                 "-e", json.dumps({"uv_deploy_check_command": warming, "uv_deploy_check_retries": 2,
                                   "uv_deploy_check_delay": 0.5}),
                 "-e", "uv_deploy_report_path=%s" % (tmp / "retried.json"))
    assert run.returncode == 0, run.stdout[-4000:]
    assert sh(host, "wc -l < /tmp/check-runs").strip() == "2"
    row = json.loads((tmp / "retried.json").read_text())["hosts"][host]
    assert (row["status"], row["version"], row["check"]) == ("changed", "0.2.0", "passed"), row
    assert os.path.basename(release_state(host)[0]) != before and host_packages(host)["hello-airgap"] == "0.2.0"
