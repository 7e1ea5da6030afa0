# -*- coding: utf-8 -*-
# Copyright (c) airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Bench-only callback: one JSON line per task and host with its start and end (time.time()).

Enabled by the fleet benches with ANSIBLE_CALLBACK_PLUGINS=bench/callback_plugins,
ANSIBLE_CALLBACKS_ENABLED=fleet_timing and FLEET_TIMING_FILE=PATH.
"""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: fleet_timing
type: aggregate
short_description: task and host start/end times as JSON lines (bench only)
description: Writes one JSON line per task and host to the file FLEET_TIMING_FILE names.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "fleet_timing"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._started = {}
        self._path = os.environ.get("FLEET_TIMING_FILE")

    def v2_runner_on_start(self, host, task):
        self._started[(host.get_name(), task._uuid)] = time.time()

    def _end(self, result, status):
        host, task = result._host.get_name(), result._task
        start = self._started.pop((host, task._uuid), None)
        if self._path and start is not None:
            with open(self._path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps({"task": task.get_name(), "uuid": task._uuid, "host": host, "start": start,
                                         "end": time.time(), "status": status}) + "\n")

    def v2_runner_on_ok(self, result):
        self._end(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._end(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._end(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._end(result, "unreachable")
