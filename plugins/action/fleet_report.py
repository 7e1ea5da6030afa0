# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Controller side of airgap.uv.fleet_report: every host's outcome, from its variables, into one report."""

from __future__ import annotations

import datetime
import os
from typing import Any, Mapping, Optional

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.airgap.uv.plugins.plugin_utils._fleet_report import (
    FleetReportError,
    HostFacts,
    batch_numbers,
    build_report,
    host_outcome,
    render_table,
    rollout_stopped,
    write_report,
)

ARGUMENT_SPEC = {
    "name": {"type": "str", "required": True},
    "path": {"type": "path"},
    "serial": {"type": "raw"},
    "max_fail_percentage": {"type": "float"},
    "hosts": {"type": "list", "elements": "str"},
    "batch": {"type": "list", "elements": "str"},
}

# The host variables the airgap.uv.uv_deploy role leaves for the report.
HOST_VARIABLES = {"before": "airgap_uv_release", "sync": "uv_deploy_sync", "rollback": "uv_deploy_rollback", "push": "uv_deploy_push",
                  "error": "uv_deploy__error", "started": "uv_deploy__started", "ended": "uv_deploy__ended"}


def _variable(hostvars: Any, host: str, name: str) -> Any:
    try:
        value = hostvars[host][name]
    except (KeyError, TypeError):
        return None
    return None if value is None or type(value).__name__.startswith("Undefined") else value


def host_facts(hostvars: Any, host: str) -> HostFacts:
    found = {key: _variable(hostvars, host, name) for key, name in HOST_VARIABLES.items()}
    for key in ("started", "ended"):
        found[key] = float(found[key]) if found[key] not in (None, "") else None
    found["error"] = str(found["error"]) if found["error"] else None
    return HostFacts(**found)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        dummy, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        hosts = list(args["hosts"] or task_vars.get("ansible_play_hosts_all") or [])
        batch = list(args["batch"] or task_vars.get("ansible_play_batch") or hosts)
        check_mode = bool(self._task.check_mode)
        try:
            numbers = batch_numbers(hosts, args["serial"])
            outcomes = [host_outcome(h, host_facts(task_vars.get("hostvars", {}), h), check_mode, numbers.get(h))
                        for h in hosts]
            stopped = rollout_stopped(outcomes, batch, args["max_fail_percentage"])
            report = build_report(outcomes, name=args["name"], check_mode=check_mode, serial=args["serial"],
                                  max_fail_percentage=args["max_fail_percentage"], stopped=stopped,
                                  generated_at=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
            path = _write(args["path"], report)
        except FleetReportError as exc:
            raise AnsibleActionFail(str(exc)) from None
        last = bool(hosts) and hosts[-1] in batch
        # The report is this run's output, in check mode too; it changes nothing that is deployed.
        result.update(changed=False, report=report, table=render_table(report), final=stopped or last, path=path)
        return result


def _write(path: Optional[str], report: Mapping[str, Any]) -> Optional[str]:
    if not path:
        return None
    # Relative to where ansible-playbook was started, like any controller path on its command line.
    path = os.path.abspath(path)
    write_report(path, report)
    return path
