# -*- coding: utf-8 -*-
# Copyright (c) airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The ``check_command`` of ``airgap.uv.sync``: a command of the environment, run once it is in service.

Runs on the TARGET: standard library only (Python 3.9+).
"""

from __future__ import annotations

import os
import typing as t

from ansible_collections.airgap.uv.plugins.module_utils._host_safety import run, run_as_for, user_ids

_TAIL = 4000


def run_check_command(argv: t.Sequence[str], venv: str, owner: t.Optional[str],
                      group: t.Optional[str]) -> t.Dict[str, t.Any]:
    """Run ARGV with VENV's ``bin`` first on PATH, as OWNER when root deploys for one.

    A bare ARGV[0] names a script of the environment (``VENV/bin/ARGV[0]``). The command is
    code from the environment, which the owner can change: root never runs it as root.
    Returns ``cmd``, ``rc``, ``stdout``, ``stderr`` (their ends) and ``user``.
    """
    cmd = list(argv)
    if "/" not in cmd[0]:
        cmd[0] = os.path.join(venv, "bin", cmd[0])
    run_as = run_as_for(*user_ids(owner, group))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_", "PYTHON"))}
    env["PATH"] = os.path.join(venv, "bin") + os.pathsep + env.get("PATH", "/usr/bin:/bin")
    env["VIRTUAL_ENV"] = venv
    try:
        proc = run(cmd, env, run_as)
        rc, out, err = proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")
    except OSError as exc:
        rc, out, err = 127, "", "cannot run %s: %s" % (cmd[0], exc.strerror or exc)
    user = run_as.name if run_as is not None else None
    return {"cmd": cmd, "rc": rc, "stdout": out[-_TAIL:], "stderr": err[-_TAIL:], "user": user,
            "stdout_lines": out[-_TAIL:].splitlines()}


def check_failure_message(check: t.Mapping[str, t.Any], result: t.Mapping[str, t.Any]) -> str:
    tail = "\n".join(str(check.get("stderr") or check.get("stdout") or "").strip().splitlines()[-10:])
    msg = "check command %s exited %d in %s (release %s)" % (
        " ".join(check["cmd"]), check["rc"], result.get("venv"), result.get("release"))
    if tail:
        msg += ":\n" + tail
    if result.get("changed") and result.get("previous_release"):
        msg += ("\nThe new release is in service; the one before it is kept (%s): roll back with "
                "state=rollback (playbook airgap.uv.rollback) or fix the project and deploy again."
                % result["previous_release"])
    return msg
