# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to the airgap.uv collection
"""The fleet report (issue 14): each host's row from what its tasks registered, batches, the stop rule, the table."""

from __future__ import annotations

import json
import typing as t
from unittest import mock

import pytest

from ansible_collections.airgap.uv.plugins.action.fleet_report import ActionModule
from ansible_collections.airgap.uv.plugins.plugin_utils._fleet_report import (
    FleetReportError,
    HostFacts,
    batch_numbers,
    host_outcome,
    rollout_stopped,
)

OLD = "/opt/app/.venv.releases/20260101T000000.000000Z-aaaaaa"
NEW = "/opt/app/.venv.releases/20260202T000000.000000Z-bbbbbb"
BEFORE = {"venv": "/opt/app/venv", "release": OLD, "version": "1.0"}


def sync(changed: bool = True, rc: t.Optional[int] = 0, failed: bool = False) -> dict:
    result = {"changed": changed, "release": NEW if changed else OLD, "previous_release": OLD,
              "version": "2.0" if changed else "1.0", "network_used": "offline",
              "installed": [{"name": "six", "version": "1.17.0"}] if changed else [], "removed": [],
              "upgraded": [{"name": "app", "from": "1.0", "to": "2.0"}] if changed else [], "downgraded": []}
    if rc is not None:
        result["check"] = {"rc": rc, "cmd": ["app", "--health"]}
    if failed:
        result.update(failed=True, msg="check command app --health exited %s in /opt/app/venv\nThe new release is" % rc)
    return result


def test_a_changed_host():
    row = host_outcome("web1", HostFacts(before=BEFORE, sync=sync(), started=10.0, ended=12.5), False, 1)
    assert (row.status, row.release, row.version, row.release_before, row.version_before) == \
        ("changed", "20260202T000000.000000Z-bbbbbb", "2.0", "20260101T000000.000000Z-aaaaaa", "1.0")
    assert (row.installed, row.removed, row.upgraded, row.network, row.check, row.duration) == \
        (1, 0, 1, "offline", "passed", 2.5)


def test_a_rolled_back_host_reports_the_release_back_in_service_and_changes_nothing():
    facts = HostFacts(before=BEFORE, sync=sync(rc=3, failed=True), error="check command app --health exited 3",
                      rollback={"changed": True, "release": OLD, "version": "1.0"})
    row = host_outcome("web2", facts, False, 2)
    assert (row.status, row.release, row.version, row.release_attempted) == \
        ("rolled back", "20260101T000000.000000Z-aaaaaa", "1.0", "20260202T000000.000000Z-bbbbbb")
    assert (row.installed, row.upgraded, row.check) == (0, 0, "failed (rc 3)")
    assert row.changes_attempted["installed"] == [{"name": "six", "version": "1.17.0"}] and row.error.startswith("check")


def test_failed_without_rollback_unchanged_not_reached_and_check_mode():
    failed = host_outcome("a", HostFacts(before=BEFORE, sync=sync(changed=False, rc=1, failed=True), error="bad",
                                         rollback={"skipped": True}), False)
    assert failed.status == "failed" and failed.release == "20260101T000000.000000Z-aaaaaa"
    assert host_outcome("b", HostFacts(before=BEFORE, sync=sync(changed=False)), False).status == "unchanged"
    unreached = host_outcome("c", HostFacts(before=BEFORE), False, 3)
    assert (unreached.status, unreached.release, unreached.version, unreached.batch) == \
        ("not reached", "20260101T000000.000000Z-aaaaaa", "1.0", 3)
    never = host_outcome("d", HostFacts(), False)
    assert (never.status, never.release) == ("not reached", None)
    predicted = host_outcome("e", HostFacts(before=BEFORE, sync=sync(rc=None)), True)
    assert (predicted.status, predicted.check) == ("would change", "not run (check mode)")
    push_failed = host_outcome("f", HostFacts(before=BEFORE, error="push failed: disk full"), False)
    assert push_failed.status == "failed" and push_failed.error == "push failed: disk full"


@pytest.mark.parametrize("serial, expected", [
    (0, [1, 1, 1, 1, 1]), ("", [1, 1, 1, 1, 1]), (2, [1, 1, 2, 2, 3]), ("40%", [1, 1, 2, 2, 3]),
    ("10%", [1, 2, 3, 4, 5]), ([1, "50%"], [1, 2, 2, 3, 3]), ("100%", [1, 1, 1, 1, 1]),
])
def test_batches_as_ansible_makes_them(serial, expected):
    hosts = ["h%d" % i for i in range(5)]
    assert [batch_numbers(hosts, serial)[h] for h in hosts] == expected


def test_a_bad_serial_is_named():
    with pytest.raises(FleetReportError, match='uv_deploy_serial is "many"'):
        batch_numbers(["a"], "many")


def test_the_rollout_stops_as_ansible_stops_it():
    rows = [host_outcome("a", HostFacts(sync=sync()), False), host_outcome("b", HostFacts(error="x"), False),
            host_outcome("c", HostFacts(), False)]
    assert rollout_stopped(rows, ["b"], None)  # the whole batch failed
    assert rollout_stopped(rows, ["a", "b"], 0)
    assert not rollout_stopped(rows, ["a", "b"], 50)  # 1 of 2 is not more than 50 %
    assert not rollout_stopped(rows, ["a", "c"], 100)


def run_action(tmp_path, hostvars: dict, batch: list, check: bool = False, **args: t.Any) -> dict:
    task = mock.MagicMock(check_mode=check, diff=False, async_val=0)
    task.args = dict({"name": "app", "path": str(tmp_path / "fleet.json"), "serial": 1, "max_fail_percentage": 0},
                     **args)
    action = ActionModule(task, mock.MagicMock(), mock.MagicMock(), loader=None, templar=None, shared_loader_obj=None)
    return action.run(task_vars={"hostvars": hostvars, "ansible_play_hosts_all": list(hostvars),
                                 "ansible_play_batch": batch})


def test_the_action_writes_the_json_and_the_table(tmp_path):
    hostvars = {
        "web1": {"airgap_uv_release": BEFORE, "uv_deploy_sync": sync(), "uv_deploy__started": "1.0",
                 "uv_deploy__ended": "3.0"},
        "web2": {"airgap_uv_release": BEFORE, "uv_deploy_sync": sync(rc=3, failed=True), "uv_deploy__error": "bad",
                 "uv_deploy_rollback": {"changed": True, "release": OLD, "version": "1.0"}},
        "web3": {"airgap_uv_release": BEFORE},
    }
    result = run_action(tmp_path, hostvars, ["web2"])
    assert result["changed"] is False and result["final"] is True
    written = json.loads((tmp_path / "fleet.json").read_text())
    assert written == json.loads(json.dumps(result["report"]))
    assert written["rollout_stopped"] and written["summary"] == {"changed": 1, "rolled back": 1, "not reached": 1}
    assert [written["hosts"][h]["status"] for h in ("web1", "web2", "web3")] == ["changed", "rolled back", "not reached"]
    assert written["hosts"]["web3"]["release"] == "20260101T000000.000000Z-aaaaaa"
    table = result["table"]
    assert table[0] == "app: 3 hosts: 1 changed, 1 rolled back, 1 not reached; the rollout stopped " \
        "(uv_deploy_max_fail_percentage 0)"
    assert table[1].split() == ["host", "batch", "status", "release", "version", "+inst", "-rem", "^upg", "network",
                                "check", "secs"]
    assert table[3].split()[:4] == ["web2", "2", "rolled", "back"] and "failed (rc 3)" in table[3]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fleet.json"]


def test_the_action_reports_in_check_mode_and_waits_for_the_last_batch(tmp_path):
    hostvars = {"web1": {"airgap_uv_release": BEFORE, "uv_deploy_sync": sync(rc=None)}, "web2": {}}
    result = run_action(tmp_path, hostvars, ["web1"], check=True)
    assert result["report"]["check_mode"] and result["final"] is False
    assert result["report"]["summary"] == {"would change": 1, "not reached": 1}
    assert "(check mode)" in result["table"][0]


def test_an_unwritable_path_is_named(tmp_path):
    from ansible.errors import AnsibleActionFail

    with pytest.raises(AnsibleActionFail, match="cannot write the fleet report to .*missing"):
        run_action(tmp_path, {"web1": {}}, ["web1"], path=str(tmp_path / "missing" / "fleet.json"))
