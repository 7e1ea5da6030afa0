# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The role refuses bad variables on entry, in one short line, before any host is contacted.

Runs the collection's own playbook (airgap.uv.deploy_offline) against localhost with the
local connection: a refused value must stop the play at the role's checks, before the
target facts (the first task that runs on a host) and before the wheelhouse is built, and the
output must not carry the argument spec that a failed spec validation prints.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from testbed_env import EXAMPLE, VENV_BIN, ansible_env  # same directory, on sys.path

# Printed by a failed argument spec validation (the whole spec, descriptions included).
SPEC_DUMP_MARKS = ("argument_spec_data", "Validation of arguments failed", "Parallel downloads on the controller",
                   "validate_argument_spec")
# The role's argument spec validation, then its own checks: all a refused value may run.
# (The playbook's first play runs the role's wheelhouse entry point for every host, then its second
# the install entry point batch by batch.)
# One task checks them all (a task per variable cost each host a worker fork per variable).
CHECKS = ["Validating arguments against arg spec 'wheelhouse' - Gather target facts and build the wheelhouse on the"
          " controller", "Check the role variables"]


def deploy_offline(tmp_path, project, *extra):
    wheelhouse = tmp_path / "wheelhouse"
    proc = subprocess.run(
        [os.path.join(VENV_BIN, "ansible-playbook"), "-i", "localhost,", "-c", "local", "airgap.uv.deploy_offline",
         "-e", "uv_deploy_project=%s" % project, "-e", "uv_deploy_wheelhouse_dir=%s" % wheelhouse,
         "-e", "uv_deploy_root=%s" % (tmp_path / "root"), *extra],
        env=ansible_env(), cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        check=False, timeout=120)
    assert not wheelhouse.exists() and not (tmp_path / "root").exists(), proc.stdout[-3000:]
    return proc


def tasks_run(output: str) -> list:
    """Names of the role's tasks that started, in order."""
    return re.findall(r"^TASK \[airgap\.uv\.uv_deploy : (.*?)\] \**$", output, re.M)


@pytest.mark.parametrize("variable, value, message", [
    ("uv_deploy_network", "bogus", 'uv_deploy_network is "bogus"; accepted values: offline, fallback, online.'),
    ("uv_deploy_network", "Offline", 'uv_deploy_network is "Offline"; accepted values: offline, fallback, online.'),
    ("uv_deploy_keep_releases", "0", 'uv_deploy_keep_releases is "0"; it must be an integer of 1 or more'),
    ("uv_deploy_keep_releases", "-1", 'uv_deploy_keep_releases is "-1"; it must be an integer of 1 or more'),
    ("uv_deploy_serial", "many", 'uv_deploy_serial is "many"; give a number of hosts, a percentage such as "25%"'),
    ("uv_deploy_max_fail_percentage", "150", 'uv_deploy_max_fail_percentage is "150"; give a percentage from 0 to 100'),
    ("uv_deploy_source", "mirror", 'uv_deploy_source is "mirror" with uv_deploy_mirror_url ""; accepted: push, or mirror'),
])
def test_bad_value_refused_in_one_line(tmp_path, variable, value, message):
    proc = deploy_offline(tmp_path, EXAMPLE, "-e", "%s=%s" % (variable, value))
    out = proc.stdout
    assert proc.returncode == 2, out[-3000:]
    # Nothing ran after the failed check: no target facts on the host, no wheelhouse build.
    ran = tasks_run(out)
    assert ran == CHECKS, (ran, out[-3000:])
    # The error line says it; the task result repeats it (JSON-quoted) and nothing long.
    errors = [line for line in out.splitlines() if line.startswith("[ERROR]:")]
    assert len(errors) == 1 and message in errors[0], out[-3000:]
    fatal = [line for line in out.splitlines() if line.startswith("fatal: [localhost]")]
    assert len(fatal) == 1 and message.replace('"', '\\"') in fatal[0] and len(fatal[0]) < 400, out[-3000:]
    for mark in SPEC_DUMP_MARKS:
        assert mark not in out, (mark, out[-3000:])
    assert re.search(r"^localhost\s*: ok=\d+\s+changed=0\s+unreachable=0\s+failed=1\b", out, re.M), out[-3000:]


def test_every_bad_value_named_at_once(tmp_path):
    proc = deploy_offline(tmp_path, EXAMPLE, "-e", "uv_deploy_network=bogus", "-e", "uv_deploy_serial=many")
    out = proc.stdout
    assert proc.returncode == 2 and tasks_run(out) == CHECKS, out[-3000:]
    errors = [line for line in out.splitlines() if line.startswith("[ERROR]:")]
    assert len(errors) == 1, out[-3000:]
    assert 'uv_deploy_network is "bogus"' in errors[0] and 'uv_deploy_serial is "many"' in errors[0], errors
    assert "keep_releases" not in errors[0] and "uv_deploy_source" not in errors[0], errors


def test_good_values_pass_the_checks(tmp_path):
    # Accepted values go through the checks; an empty project then stops the play at the
    # wheelhouse's own check, still before the host is contacted.
    proc = deploy_offline(tmp_path, "", "-e", "uv_deploy_network=fallback", "-e", "uv_deploy_keep_releases=1",
                          "-e", "uv_deploy_serial=25%", "-e", "uv_deploy_max_fail_percentage=10")
    out = proc.stdout
    assert proc.returncode == 2, out[-3000:]
    ran = tasks_run(out)
    assert ran == CHECKS + ["Check the project directory or bundle is set"], \
        (ran, out[-3000:])
    assert "Set uv_deploy_project to the directory" in out, out[-3000:]
    for mark in SPEC_DUMP_MARKS:
        assert mark not in out, (mark, out[-3000:])


@pytest.mark.parametrize("ssh_args, compression, expected", [
    ("-C -o ControlMaster=auto -o ControlPersist=60s", None, "-o ControlMaster=auto -o ControlPersist=60s"),
    ("-o Compression=yes -C", None, "-o Compression=yes"),
    ("-C -o ControlMaster=auto", "true", None),  # asked for: the play leaves ssh_args alone
    ("-C -o ControlMaster=auto", "mirror", None),  # hosts fetch from the mirror: only module code on SSH
    ("-C -o ControlMaster=auto", "mirror,false", "-o ControlMaster=auto"),
])
def test_files_travel_uncompressed_unless_asked(tmp_path, ssh_args, compression, expected):
    """The playbook's first task drops `-C` from the configured ssh_args (wheels are compressed already;
    bench/README.md measured push 17 s -> 6 s per host), unless airgap_uv_ssh_compression is true or,
    by default, the hosts fetch their files from the mirror."""
    extra = ["-v", "-e", "uv_deploy_network=bogus"]  # stop at the role's first check
    if compression and compression.startswith("mirror"):
        extra += ["-e", "uv_deploy_source=mirror"]
        compression = compression.partition(",")[2]
    if compression:
        extra += ["-e", "airgap_uv_ssh_compression=" + compression]
    env = dict(ansible_env(), ANSIBLE_SSH_ARGS=ssh_args)
    proc = subprocess.run(
        [os.path.join(VENV_BIN, "ansible-playbook"), "-i", "localhost,", "-c", "local", "airgap.uv.deploy_offline", *extra],
        env=env, cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False, timeout=120)
    set_to = re.findall(r'"ansible_ssh_args": "([^"]*)"', proc.stdout)
    assert set_to == ([expected] if expected else []), proc.stdout[-3000:]
