# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""`ansible-playbook airgap.uv.targets` on offline test hosts (issue 12, "Targets out").

Two hosts, one on the system Python 3.11 and one on a pyenv 3.12 shown inside it, give two
targets; a rerun leaves the file byte for byte and reports no change; the anonymous file names
no host; the file reads back into the targets the hosts were.
"""

from __future__ import annotations

import glob
import os
import re
import subprocess

import pytest
import yaml

from ansible_collections.airgap.uv.plugins.plugin_utils._targets_file import read_targets_file
from testbed_env import REPO, TESTBED, ansible_env

HOSTS = ("tgt-a", "tgt-b")
PYTHON312 = sorted(glob.glob("/root/.pyenv/versions/3.12.*"))

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the offline test bed needs root"),
    pytest.mark.skipif(not PYTHON312, reason="needs a pyenv CPython 3.12 under /root/.pyenv/versions"),
]


@pytest.fixture(scope="module")
def inventory(tmp_path_factory):
    """tgt-a on the host's Python 3.11, tgt-b told to use the pyenv 3.12 it can see."""
    tmp = tmp_path_factory.mktemp("targets")
    prefix = PYTHON312[-1]
    try:
        subprocess.run([TESTBED, "down", *HOSTS], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([TESTBED, "up", "tgt-a"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([TESTBED, "up", "tgt-b", "--python", prefix], check=True, stdout=subprocess.DEVNULL)
        path = tmp / "inventory.yml"
        subprocess.run([TESTBED, "inventory", "--write", str(path), *HOSTS], check=True, stdout=subprocess.DEVNULL)
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        document["all"]["hosts"]["tgt-b"]["uv_deploy_python"] = os.path.join(prefix, "bin", "python3")
        path.write_text(yaml.safe_dump(document), encoding="utf-8")
        yield str(path)
    finally:
        subprocess.run([TESTBED, "down", *HOSTS], check=False, stdout=subprocess.DEVNULL)


def targets_playbook(inventory: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ansible-playbook", "-i", inventory, "airgap.uv.targets", *extra], cwd=REPO,
                          env=ansible_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)


def changed(output: str) -> int:
    """Tasks changed over all hosts, from the play recap."""
    return sum(int(count) for count in re.findall(r"^\S+\s*: ok=\d+\s+changed=(\d+)", output, re.M))


def test_two_pythons_give_two_targets_and_a_rerun_changes_nothing(inventory, tmp_path):
    path = tmp_path / "targets.yml"
    first = targets_playbook(inventory, "-e", "uv_deploy_targets_file=%s" % path)
    assert first.returncode == 0 and changed(first.stdout) == 1, first.stdout[-3000:]
    text, inode = path.read_bytes(), os.stat(path).st_ino
    assert text.startswith(b"# Written by `ansible-playbook airgap.uv.targets`")
    targets = read_targets_file(str(path))
    assert len(targets) == 2, text
    python312 = os.path.basename(PYTHON312[-1])
    hosts = {spec["python"]: spec["hosts"] for spec in targets.values()}
    assert hosts.pop(python312) == ["tgt-b"] and list(hosts.values()) == [["tgt-a"]], targets
    assert list(hosts)[0].startswith("3.11."), targets  # Debian 12's python3
    assert all(spec["libc"] == "glibc" and spec["os"] == "linux" for spec in targets.values())
    # Nothing a host reported beyond the description: no interpreter path, kernel string or uv.
    assert b"/root/.pyenv" not in text and b"/usr/bin" not in text and b"Debian" not in text

    again = targets_playbook(inventory, "-e", "uv_deploy_targets_file=%s" % path)
    assert again.returncode == 0 and changed(again.stdout) == 0, again.stdout[-3000:]
    assert path.read_bytes() == text and os.stat(path).st_ino == inode


def test_the_anonymous_file_names_no_host(inventory, tmp_path):
    path = tmp_path / "anonymous.yml"
    predicted = targets_playbook(inventory, "--check", "-e", "uv_deploy_targets_file=%s" % path,
                                 "-e", "uv_deploy_targets_anonymous=true")
    assert predicted.returncode == 0 and changed(predicted.stdout) == 1 and not path.exists(), predicted.stdout[-3000:]
    run = targets_playbook(inventory, "-e", "uv_deploy_targets_file=%s" % path, "-e", "uv_deploy_targets_anonymous=true")
    assert run.returncode == 0, run.stdout[-3000:]
    text = path.read_text(encoding="utf-8")
    assert "tgt-" not in text and "hosts" not in text.split("format: 1", 1)[1]
    assert len(read_targets_file(str(path))) == 2


def test_without_a_file_name_it_fails_before_asking_the_hosts(inventory):
    result = targets_playbook(inventory)
    assert result.returncode != 0 and "Set uv_deploy_targets_file" in result.stdout, result.stdout[-3000:]
    assert "Describe the host as a target" not in result.stdout
