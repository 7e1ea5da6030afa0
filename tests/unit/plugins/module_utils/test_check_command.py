# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to the airgap.uv collection
"""airgap.uv.sync's check_command: retried after a failure, killed (with its children) after its timeout."""

from __future__ import annotations

import os
import time

from ansible_collections.airgap.uv.plugins.module_utils._check_command import check_failure_message, run_check_command


def script(venv, name: str, body: str) -> str:
    """An executable VENV/bin/NAME running BODY with sh."""
    (venv / "bin").mkdir(parents=True, exist_ok=True)
    path = venv / "bin" / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return name


def test_a_check_that_passes_on_its_third_run_passes_with_two_retries(tmp_path):
    counter = tmp_path / "runs"
    name = script(tmp_path / "venv", "health", 'echo x >> "%s"\n[ "$(wc -l < "%s")" -ge 3 ] || '
                  '{ echo "not up yet" >&2; exit 3; }\necho ok\n' % (counter, counter))
    started = time.monotonic()
    check = run_check_command([name], str(tmp_path / "venv"), None, None, retries=2, delay=0.2)
    assert check["rc"] == 0 and check["attempts"] == 3 and check["stdout_lines"] == ["ok"]
    assert time.monotonic() - started >= 0.4  # two pauses between three runs


def test_retries_exhausted_fail_with_the_last_run_and_say_how_many(tmp_path):
    name = script(tmp_path / "venv", "health", 'echo "refused" >&2; exit 7\n')
    check = run_check_command([name], str(tmp_path / "venv"), None, None, retries=1, delay=0)
    assert check["rc"] == 7 and check["attempts"] == 2 and "refused" in check["stderr"]
    message = check_failure_message(check, {"venv": "/opt/v", "release": "/opt/r"})
    assert "exited 7" in message and "after 2 attempts" in message and "refused" in message
    # Without retries: one run, and the message does not count attempts.
    once = run_check_command([name], str(tmp_path / "venv"), None, None)
    assert once["attempts"] == 1 and "attempts" not in check_failure_message(once, {})


def test_a_check_that_hangs_is_killed_with_its_children(tmp_path):
    pidfile = tmp_path / "child.pid"
    name = script(tmp_path / "venv", "hang", 'sleep 60 &\necho $! > "%s"\necho started\nwait\n' % pidfile)
    started = time.monotonic()
    check = run_check_command([name], str(tmp_path / "venv"), None, None, timeout=1)
    assert time.monotonic() - started < 30
    assert check["rc"] == 124 and "timed out after 1 s" in check["stderr"] and check["stdout_lines"] == ["started"]
    child = int(pidfile.read_text())
    for dummy in range(50):  # the killed child is reaped by init: give it a moment
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the check's child %d outlived the timeout" % child)
