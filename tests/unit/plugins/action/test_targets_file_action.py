# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to the airgap.uv collection
"""airgap.uv.targets_file: written only when the content differs, by one rename; check and diff mode."""

from __future__ import annotations

import os
import stat
import typing as t
from unittest import mock

import pytest
from ansible.errors import AnsibleActionFail

from ansible_collections.airgap.uv.plugins.action.targets_file import ActionModule

FACTS = {"web1": {"python": "3.11.2", "os": "linux", "arch": "x86_64", "libc": "glibc", "libc_version": "2.36"},
         "web2": {"python": "3.12.1", "os": "linux", "arch": "x86_64", "libc": "glibc", "libc_version": "2.36"}}


def run(path: str, check: bool = False, diff: bool = False, **args: t.Any) -> dict:
    """One task run of the action, as ansible-playbook would make it."""
    task = mock.MagicMock(check_mode=check, diff=diff, async_val=0)
    task.args = dict({"path": path, "facts": FACTS}, **args)
    action = ActionModule(task, mock.MagicMock(), mock.MagicMock(), loader=None, templar=None, shared_loader_obj=None)
    return action.run(task_vars={})


def test_writes_then_leaves_an_equal_file_alone(tmp_path):
    path = str(tmp_path / "targets.yml")
    first = run(path)
    assert first["changed"] and first["path"] == path and len(first["targets"]) == 2
    inode, text = os.stat(path).st_ino, open(path, encoding="utf-8").read()
    again = run(path)
    assert not again["changed"] and os.stat(path).st_ino == inode and open(path, encoding="utf-8").read() == text
    assert sorted(os.listdir(tmp_path)) == ["targets.yml"]


def test_check_mode_writes_nothing_and_diff_shows_the_change(tmp_path):
    path = str(tmp_path / "targets.yml")
    predicted = run(path, check=True, diff=True)
    assert predicted["changed"] and not os.path.exists(path)
    assert predicted["diff"]["before"] == "" and "hosts: [web1]" in predicted["diff"]["after"]
    run(path)
    anonymous = run(path, diff=True, anonymous=True)
    assert anonymous["changed"] and "web1" in anonymous["diff"]["before"] and "web1" not in anonymous["diff"]["after"]


def test_a_replaced_file_keeps_its_mode_and_a_link_stays_a_link(tmp_path):
    real = tmp_path / "real.yml"
    real.write_text("old\n", encoding="utf-8")
    os.chmod(real, 0o640)
    link = tmp_path / "targets.yml"
    link.symlink_to(real)
    assert run(str(link))["changed"]
    assert os.path.islink(link) and stat.S_IMODE(os.stat(real).st_mode) == 0o640
    assert real.read_text(encoding="utf-8").startswith("# Written by")


@pytest.mark.parametrize("where, message", [
    ("missing/targets.yml", r"The directory .*missing of the targets file .* does not exist"),
    (".", r"is a directory: give a file name"),
])
def test_where_it_cannot_write_it_says_why(tmp_path, where, message):
    with pytest.raises(AnsibleActionFail, match=message):
        run(str(tmp_path / where))


def test_no_facts_fails_saying_what_to_run(tmp_path):
    with pytest.raises(AnsibleActionFail, match="run airgap.uv.target_facts"):
        run(str(tmp_path / "targets.yml"), facts={})


def test_without_facts_it_reads_and_checks_the_file(tmp_path):
    path = str(tmp_path / "targets.yml")
    written = run(path)
    read = run(path, facts=None)
    assert not read["changed"] and read["targets"] == written["targets"]
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("  cpython3.13.0-linux-x86_64-glibc2.36:\n    python: \"3.12.1\"\n    os: linux\n    arch: x86_64\n"
                     "    libc: glibc\n    libc_version: \"2.36\"\n")
    with pytest.raises(AnsibleActionFail, match="cpython3.13.0-linux-x86_64-glibc2.36"):
        run(path, facts=None)
