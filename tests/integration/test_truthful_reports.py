# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every report tells the truth, end to end on offline test hosts (issue 11).

- Check mode: for a first deploy, an upgrade, a downgrade with a removal and a forked lock,
  the check run's recap and each task's changed equal those of the real run that follows.
- Two deployments at once (lock A and lock B) to one host, several times: each run reports
  exactly the release it left in service, or fails saying another deployment came between.
"""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from test_sync_faults import Fleet, _make_project, host_packages, lock_versions, release_state, sh
from testbed_env import TESTBED, VENV_BIN, ansible_env

HOSTS = {"check": "truth-1", "concurrent": "truth-2"}
ROOT = "/opt/airgap-uv/hello-airgap"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the offline test bed needs root")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("truth")
    names = sorted(HOSTS.values())
    try:
        subprocess.run([TESTBED, "down", *names], check=True, stdout=subprocess.DEVNULL)
        up = subprocess.run([TESTBED, "up", *names], stdout=subprocess.PIPE, text=True, check=True)
        addresses = dict(line.split("\t")[:2] for line in up.stdout.splitlines() if "\t" in line)
        inventory = str(tmp / "inventory.yml")
        subprocess.run([TESTBED, "inventory", "--write", inventory, *names], check=True, stdout=subprocess.DEVNULL)
        projects = {
            # A and B differ in every way a sync can differ: up, down, installed, removed.
            "a": _make_project(tmp, "a", lambda text: text.replace(
                '"markupsafe>=2.1",', '"markupsafe>=2.1",\n    "six==1.16.0",\n    "attrs==24.2.0",')),
            "b": _make_project(tmp, "b", lambda text: text.replace('"click>=8.1"', '"click==8.1.7"').replace(
                '"markupsafe>=2.1",', '"markupsafe>=2.1",\n    "six==1.17.0",\n    "idna==3.7",')),
            # A forked lock: one package resolved twice, by Python version (resolution-markers).
            "fork": _make_project(tmp, "fork", lambda text: text.replace(
                '"markupsafe>=2.1",', '"markupsafe>=2.1",\n    "six==1.16.0; python_version < \'3.11\'",\n'
                '    "six==1.17.0; python_version >= \'3.11\'",')),
        }
        with open(os.path.join(projects["fork"], "uv.lock"), encoding="utf-8") as handle:
            assert "resolution-markers" in handle.read(), "the fork project's lock did not fork"
        yield Fleet(tmp, inventory, addresses, projects)
    finally:
        subprocess.run([TESTBED, "down", *names], check=False, stdout=subprocess.DEVNULL)


_TASK = re.compile(r"^TASK \[(?P<task>[^\]]+)\]", re.M)
_STATUS = re.compile(r"^(?P<status>ok|changed|skipping|fatal|failed): \[(?P<host>[^\]]+)", re.M)


def task_statuses(output: str, host: str) -> list[tuple[str, str]]:
    """[(task name, ok/changed/skipping/fatal)] for HOST, in the order the play ran them."""
    statuses = []
    tasks = list(_TASK.finditer(output))
    for index, task in enumerate(tasks):
        end = tasks[index + 1].start() if index + 1 < len(tasks) else len(output)
        for status in _STATUS.finditer(output, task.end(), end):
            if status.group("host") == host:
                statuses.append((task.group("task"), status.group("status")))
    return statuses


def recap(output: str, host: str) -> dict[str, int]:
    match = re.search(r"^%s\s*: (.*)$" % re.escape(host), output, re.M)
    assert match, output[-3000:]
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(1))}


def check_then_real(fleet, host: str, project: str, *extra: str):
    predicted = fleet.deploy(host, project, "--check", *extra)
    assert predicted.ok, predicted.tail()
    real = fleet.deploy(host, project, *extra)
    assert real.ok, real.tail()
    return predicted, real


@pytest.mark.parametrize("step", ["first deploy", "upgrade", "downgrade and removal", "forked lock", "no change"])
def test_check_mode_reports_what_the_real_run_does(fleet, step):
    host = HOSTS["check"]
    project = {"first deploy": "a", "upgrade": "b", "downgrade and removal": "a", "forked lock": "fork",
               "no change": "fork"}[step]
    predicted, real = check_then_real(fleet, host, fleet.projects[project])
    assert task_statuses(predicted.output, host) == task_statuses(real.output, host), (
        predicted.output[-5000:], real.output[-5000:])
    assert recap(predicted.output, host) == recap(real.output, host)
    for key in ("installed", "removed", "upgraded", "downgraded", "reinstalled", "changed", "version"):
        assert predicted.sync[key] == real.sync[key], key
    assert not real.sync.get("unreported_switch"), real.sync
    # The push sent in the real run exactly what check mode said it would.
    assert "placeholder" not in predicted.output and "0" * 64 not in predicted.output
    if step == "no change":
        assert real.sync["changed"] is False and recap(real.output, host)["changed"] == 0


def test_two_deployments_at_once_each_report_what_they_left_in_service(fleet):
    host = HOSTS["concurrent"]
    click = {name: lock_versions(fleet.projects[name])["click"] for name in ("a", "b")}
    assert click["a"] != click["b"]
    first = fleet.deploy(host, fleet.projects["a"], "-e", "uv_deploy_wheelhouse_dir=%s" % (fleet.tmp / "wheelhouse-a"))
    assert first.ok, first.tail()
    outcomes = []
    for attempt in range(3):
        order = ("b", "a") if attempt % 2 else ("a", "b")
        # Each with its own controller wheelhouse, as the push's refusal advises (one shared directory
        # rebuilt by both is refused on the controller: test_push_refuses_a_directory_rebuilt_since).
        waits = {name: fleet.start_deploy(host, fleet.projects[name], "-e",
                                          "uv_deploy_wheelhouse_dir=%s" % (fleet.tmp / ("wheelhouse-" + name)))
                 for name in order}
        runs = {name: wait() for name, wait in waits.items()}
        in_service = release_state(host)[0]
        have = host_packages(host)
        for name, run in runs.items():
            if run.ok:
                # What a run reports is what it put (or found) in service: its own lock's set.
                assert "click==%s" % click[name] in run.sync["packages"], (name, run.sync)
                assert run.sync["release"].split("/")[-1] in sh(host, "ls -1 %s/.venv.releases" % ROOT)
            else:
                assert "not the ones this run pushed" in run.output and "This run changed nothing" in run.output, \
                    run.tail()
        succeeded = [name for name, run in runs.items() if run.ok]
        assert succeeded, [run.tail() for run in runs.values()]
        # The host ends on the set of a run that succeeded, and that run reported this very release.
        last = [name for name in succeeded if runs[name].sync["release"].split("/")[-1] == in_service.split("/")[-1]]
        assert last and have["click"] == click[last[0]], (in_service, {n: r.sync for n, r in runs.items() if r.ok})
        outcomes.append(sorted(succeeded))
    # A later run on its own is a no-op that reports the release in service: nothing unreported is left.
    final = fleet.deploy(host, fleet.projects[outcomes[-1][-1]])
    assert final.ok and not final.sync.get("unreported_switch"), final.tail()


def test_a_run_killed_after_its_switch_is_reported_by_the_next_run(fleet):
    host = HOSTS["concurrent"]
    before = fleet.deploy(host, fleet.projects["a"])
    assert before.ok, before.tail()
    # What a killed ansible-playbook leaves: the switch made, its acknowledgement never sent.
    sh(host, "python3 - <<'EOF'\nimport json\np = '%s/.venv.releases.state.json'\nd = json.load(open(p))\n"
             "d['unreported_switch'] = {'id': 'x', 'release': %r, 'version': '0.1.0', 'previous_release': None, "
             "'at': '2026-01-01T00:00:00Z'}\njson.dump(d, open(p, 'w'))\nEOF" % (ROOT, before.sync["release"]))
    after = fleet.deploy(host, fleet.projects["a"])
    assert after.ok and after.sync["changed"], after.tail()
    assert after.sync["unreported_switch"]["release"] == before.sync["release"]
    assert "had not reported it" in after.output
    again = fleet.deploy(host, fleet.projects["a"])
    assert again.ok and again.sync["changed"] is False and "unreported_switch" not in again.sync


def test_push_refuses_a_directory_rebuilt_since(fleet, tmp_path):
    """The controller's directory changed between this run's wheelhouse task and its push."""
    from ansible_collections.airgap.uv.plugins.action.push import describe_tree

    src = tmp_path / "target"
    (src / "wheelhouse").mkdir(parents=True)
    (src / "wheelhouse" / "a-1-py3-none-any.whl").write_bytes(b"a")
    (src / "requirements.txt").write_text("a==1\n")
    expected = describe_tree(str(src))
    (src / "requirements.txt").write_text("b==2\n")  # another run's build
    argv = [os.path.join(VENV_BIN, "ansible"), "-i", fleet.inventory, HOSTS["concurrent"], "-m", "airgap.uv.push",
            "-a", json.dumps({"src": str(src), "dest": "/opt/refused", "expected": expected})]
    proc = subprocess.run(argv, env=ansible_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          check=False)
    assert proc.returncode != 0 and "is no longer what this run's wheelhouse task built" in proc.stdout, proc.stdout
    assert "requirements.txt" in proc.stdout and "uv_deploy_wheelhouse_dir" in proc.stdout
    assert sh(HOSTS["concurrent"], "ls /opt/refused 2>/dev/null || echo absent").strip() == "absent"
