# -*- coding: utf-8 -*-
# Copyright (c) airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The ``check_command`` of ``airgap.uv.sync``: a command of the environment, run once it is in service.

Runs on the TARGET: standard library only (Python 3.9+).
"""

from __future__ import annotations

import os
import subprocess
import time
import typing as t

from ansible_collections.airgap.uv.plugins.module_utils._host_safety import RunAs, run, run_as_for, user_ids

_TAIL = 4000


def run_check_command(argv: t.Sequence[str], venv: str, owner: t.Optional[str], group: t.Optional[str],
                      retries: int = 0, delay: float = 2.0, timeout: t.Optional[float] = None) -> t.Dict[str, t.Any]:
    """Run ARGV with VENV's ``bin`` first on PATH, as OWNER when root deploys for one.

    A bare ARGV[0] names a script of the environment (``VENV/bin/ARGV[0]``). The command is
    code from the environment, which the owner can change: root never runs it as root. A
    failed run is tried again up to RETRIES times, DELAY seconds apart (a service restarted by
    the deployment may need a moment); a run that outlasts TIMEOUT seconds is killed, with its
    children, and fails with rc 124. Returns ``cmd``, ``rc``, ``stdout``, ``stderr`` (their ends,
    of the last run), ``user`` and ``attempts``.
    """
    cmd = list(argv)
    if "/" not in cmd[0]:
        cmd[0] = os.path.join(venv, "bin", cmd[0])
    run_as = run_as_for(*user_ids(owner, group))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_", "PYTHON"))}
    env["PATH"] = os.path.join(venv, "bin") + os.pathsep + env.get("PATH", "/usr/bin:/bin")
    env["VIRTUAL_ENV"] = venv
    attempts = 0
    while True:
        attempts += 1
        rc, out, err = _attempt(cmd, env, run_as, timeout)
        if rc == 0 or attempts > retries:
            break
        time.sleep(delay)
    user = run_as.name if run_as is not None else None
    return {"cmd": cmd, "rc": rc, "stdout": out[-_TAIL:], "stderr": err[-_TAIL:], "user": user,
            "stdout_lines": out[-_TAIL:].splitlines(), "attempts": attempts}


def _attempt(cmd: t.List[str], env: t.Dict[str, str], run_as: t.Optional[RunAs],
             timeout: t.Optional[float]) -> t.Tuple[int, str, str]:
    try:
        proc = run(cmd, env, run_as, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        err = _text(exc.stderr)
        return 124, _text(exc.stdout), (err + "\n" if err else "") + "timed out after %g s: killed with its children" % timeout
    except OSError as exc:
        return 127, "", "cannot run %s: %s" % (cmd[0], exc.strerror or exc)
    return proc.returncode, _text(proc.stdout), _text(proc.stderr)


def _text(data: t.Optional[bytes]) -> str:
    return (data or b"").decode("utf-8", "replace")


def check_failure_message(check: t.Mapping[str, t.Any], result: t.Mapping[str, t.Any]) -> str:
    tail = "\n".join(str(check.get("stderr") or check.get("stdout") or "").strip().splitlines()[-10:])
    msg = "check command %s exited %d in %s (release %s)%s" % (
        " ".join(check["cmd"]), check["rc"], result.get("venv"), result.get("release"),
        ", after %d attempts" % check["attempts"] if check.get("attempts", 1) > 1 else "")
    if tail:
        msg += ":\n" + tail
    if result.get("changed") and result.get("previous_release"):
        msg += ("\nThe new release is in service; the one before it is kept (%s): roll back with "
                "state=rollback (playbook airgap.uv.rollback) or fix the project and deploy again."
                % result["previous_release"])
    return msg
