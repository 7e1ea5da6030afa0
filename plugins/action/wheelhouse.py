# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Controller side of airgap.uv.wheelhouse: its arguments (_wheelhouse_args) into WheelhouseBuilder."""

from __future__ import annotations

import re
import traceback

from ansible.errors import AnsibleActionFail
from ansible.module_utils.basic import missing_required_lib
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.airgap.uv.plugins.plugin_utils._wheelhouse_args import ARGUMENT_SPEC

try:
    from ansible_collections.airgap.uv.plugins.plugin_utils._uv_tool import UvError, find_uv
    from ansible_collections.airgap.uv.plugins.plugin_utils._wheelhouse import (
        WheelhouseBuilder,
        WheelhouseError,
        WheelhouseOptions,
    )
    IMPORT_ERROR = None
except ImportError:
    IMPORT_ERROR = traceback.format_exc()

display = Display()


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        dummy, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        if IMPORT_ERROR:
            missing = re.search(r"No module named '([^']+)'", IMPORT_ERROR)
            raise AnsibleActionFail(missing_required_lib(missing.group(1) if missing else "packaging"),
                                    result={"exception": IMPORT_ERROR})
        try:
            uv = find_uv(args["uv_executable"])
            builder = WheelhouseBuilder(WheelhouseOptions.from_args(args), uv=uv, check_mode=self._task.check_mode,
                                        progress=self._progress)
            outcome = builder.run()
        except (WheelhouseError, UvError) as exc:
            raise AnsibleActionFail(str(exc)) from None
        result.update(changed=outcome.changed, dest=outcome.dest, hosts=outcome.hosts, targets=outcome.targets,
                      files=outcome.files, bytes=outcome.bytes, downloaded=outcome.downloaded, reused=outcome.reused,
                      built=outcome.built, requests=outcome.requests, uv_version=outcome.uv_version,
                      lock_sha256=outcome.lock_sha256, repaired=outcome.repaired)
        if outcome.repaired:
            # Repaired already, but someone or something changes files in the controller's cache.
            result["warnings"] = ["airgap.uv.wheelhouse: %s." % message for message in outcome.repaired]
        return result

    def _progress(self, message):
        # Counters like "[7/150] name": print about ten lines per run by default, all with -v.
        match = re.match(r"\[(\d+)/(\d+)\]", message)
        if match and display.verbosity < 1:
            done, total = int(match.group(1)), int(match.group(2))
            if done != total and done % max(1, total // 10):
                return
        display.display("airgap.uv.wheelhouse: %s" % message)
