# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Controller side of airgap.uv.workstation_cache: one uv cache per target (_workstation_cache)."""

from __future__ import annotations

import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.airgap.uv.plugins.plugin_utils._build import InterpreterFinder
from ansible_collections.airgap.uv.plugins.plugin_utils._target import Target, TargetError
from ansible_collections.airgap.uv.plugins.plugin_utils._uv_tool import UvError, find_uv, uv_version
from ansible_collections.airgap.uv.plugins.plugin_utils._workstation_cache import (
    FillRequest,
    WorkstationError,
    fill,
    group_args,
    link_binaries,
    python_platform,
)
from ansible_collections.airgap.uv.plugins.plugin_utils._workstation_select import (
    SELECTION_FILE,
    pack_serving,
    simulate,
)

ARGUMENT_SPEC = {
    "project": {"type": "path", "required": True},
    "dest": {"type": "path", "required": True},
    "wheelhouse_hosts": {"type": "dict", "required": True},
    "facts": {"type": "dict", "required": True},
    "groups": {"type": "list", "elements": "str", "default": []},
    "all_groups": {"type": "bool", "default": True},
    "extras": {"type": "list", "elements": "str", "default": []},
    "all_extras": {"type": "bool", "default": True},
    "tools": {"type": "list", "elements": "str", "default": []},
    "uv_version": {"type": "str", "required": True},
    "uv_executable": {"type": "path"},
    "prune": {"type": "bool", "default": True},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        dummy, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        try:
            uv = _controller_uv(args["uv_executable"], args["uv_version"])
            hosts, targets = _plan(args)
            if not self._task.check_mode:
                for entry in hosts.values():
                    entry["ready"] = True
            finder = InterpreterFinder(uv)
            changed = False
            for target_id, (facts, source_dir, wheel_bytes) in sorted(targets.items()):
                report = self._one_target(args, uv, finder, target_id, facts, source_dir)
                report["wheel_bytes"] = wheel_bytes
                # In check mode a step that would need the index would bring something new.
                report["changed"] = bool(report.get("written") or report.get("removed")
                                         or (self._task.check_mode and report.get("online")))
                changed = changed or report["changed"]
                targets[target_id] = report
            for entry in hosts.values():
                # In check mode, a host whose target would ship something new is reported by the role.
                entry["pending"] = self._task.check_mode and entry["ready"] and targets[entry["target"]]["changed"]
        except (WorkstationError, UvError, TargetError, OSError) as exc:
            raise AnsibleActionFail(str(exc)) from None
        result.update(changed=changed, hosts=hosts, targets=targets)
        return result

    def _one_target(self, args: dict, uv: str, finder: InterpreterFinder, target_id: str, facts: dict,
                    source_dir: str) -> dict:
        target = Target.from_facts(facts)
        work = os.path.join(args["dest"], target_id)
        ship = os.path.join(work, "ship")
        if self._task.check_mode and not os.path.exists(os.path.join(ship, "seed.json")):
            # Nothing was ever filled: everything is to do.
            return {"path": ship, "written": ["seed.json"]}
        interpreter, why = finder.for_target(target, platform_specific=False)
        if interpreter is None:
            raise WorkstationError("Cannot fill the uv cache of target %s: %s." % (target_id, why))
        request = FillRequest(
            uv=uv, project=args["project"], python=interpreter.path,
            platform=python_platform(target.arch, target.libc_family, target.libc_version, target.os), work=work,
            sync_args=group_args(args["groups"], args["all_groups"], args["extras"], args["all_extras"]),
            tools=args["tools"], environ=dict(os.environ))
        record = os.path.join(work, SELECTION_FILE)
        if self._task.check_mode:
            # What a real run would change, found in a throwaway copy of the cache: nothing here is written.
            report = simulate(request, ship, args["uv_version"], args["prune"], record)
            report.update(path=ship, platform=request.platform, controller_python=interpreter.describe())
            return report
        os.makedirs(work, exist_ok=True)
        online = fill(request)
        report = pack_serving(request, ship, args["uv_version"], args["prune"], record)
        report["written"] += link_binaries(source_dir, ship)
        report.update(path=ship, online=online, platform=request.platform, controller_python=interpreter.describe())
        return report


def _controller_uv(explicit, version: str) -> str:
    """The controller's uv, which must be the version the hosts get: the cache format is uv's own."""
    uv = find_uv(explicit)
    found = uv_version(uv)
    if found != version:
        raise WorkstationError("The controller's uv %s is %s, the workstations get uv %s: a uv cache serves only the "
                               "uv version that made it. Install uv==%s beside ansible-playbook or give its path "
                               "(uv_executable)." % (uv, found, version, version))
    return uv


def _plan(args: dict) -> tuple:
    """(hosts -> their target's ship dir, target id -> (facts, wheelhouse target dir, wheel bytes))."""
    hosts, targets = {}, {}
    for host, entry in sorted(args["wheelhouse_hosts"].items()):
        if host not in args["facts"]:
            continue
        target_id = entry["target"]
        files = entry.get("files") or {}
        wheel_bytes = sum(int(f.get("size") or 0) for name, f in files.items() if name.startswith("wheelhouse/"))
        targets.setdefault(target_id, (args["facts"][host], entry["path"], wheel_bytes))
        ship = os.path.join(args["dest"], target_id, "ship")
        hosts[host] = {"target": target_id, "path": ship, "ready": os.path.isfile(os.path.join(ship, "seed.json"))}
    return hosts, targets
