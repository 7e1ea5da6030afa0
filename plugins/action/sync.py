# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Controller side of airgap.uv.sync: run the module, then acknowledge a switch it reported.

The host records every switch until the controller has the result that reports it. Only
here is that known, so after a result with ``switch_id`` the module runs once more, briefly,
to forget the record. A run killed before that leaves the record, and the next run reports
the switch (``unreported_switch``).
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        result.update(self._execute_module(module_name="airgap.uv.sync", module_args=args, task_vars=task_vars))
        switch_id = result.pop("switch_id", None)
        if switch_id and not self._task.check_mode:
            answer = self._execute_module(module_name="airgap.uv.sync",
                                          module_args=dict(args, acknowledge=switch_id), task_vars=task_vars)
            if answer.get("failed"):
                # The switch is reported here all the same; the next run reports it once more.
                result.setdefault("warnings", []).append(
                    "The switch was reported, but the host could not record that: %s" % answer.get("msg"))
        return result
