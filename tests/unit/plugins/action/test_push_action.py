# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to the airgap.uv collection
"""airgap.uv.push's action plugin with its module's host code run in this process (a local "host").

What is asked of the host and what it is sent: with dest_absent the host is not asked what it lacks.
"""

from __future__ import annotations

import os
import shutil
import typing as t
from unittest import mock

from ansible import constants as C

from ansible_collections.airgap.uv.plugins.action.push import ActionModule, describe_tree
from ansible_collections.airgap.uv.plugins.module_utils._push_files import land, plan, stage


def make_src(root) -> dict:
    (root / "bin").mkdir(parents=True)
    (root / "wheelhouse").mkdir()
    (root / "bin" / "uv").write_bytes(b"\x7fELF uv")
    os.chmod(root / "bin" / "uv", 0o755)
    (root / "wheelhouse" / "a-1-py3-none-any.whl").write_bytes(b"a" * 100)
    (root / "requirements.txt").write_text("a==1\n")
    for path in (root / "wheelhouse" / "a-1-py3-none-any.whl", root / "requirements.txt"):
        os.chmod(path, 0o644)
    return describe_tree(str(root))


class LocalHost:
    """The module's side, run here: module calls are recorded; an upload is a copy."""

    def __init__(self, tmp) -> None:
        self.tmp = tmp
        self.calls: t.List[str] = []
        self.uploaded: t.List[str] = []  # the controller's archives, as the connection read them

    def execute_module(self, module_name: str, module_args: dict, task_vars: dict) -> dict:
        if module_args.get("archive") is None and not module_args.get("pull"):
            self.calls.append("plan")
            return {"changed": False, "wanted": plan(module_args["dest"], module_args["files"])}
        self.calls.append("stage")
        return {"changed": True, "staged": stage(module_args["dest"], module_args["files"], module_args["archive"])}

    def transfer_file(self, local: str, remote: str) -> str:
        self.calls.append("upload")
        self.uploaded.append(local)
        shutil.copyfile(local, remote)
        return remote


def run(host: LocalHost, **args: t.Any) -> dict:
    task = mock.MagicMock(check_mode=False, diff=False, async_val=0)
    task.args = dict(args, stage=True)
    connection = mock.MagicMock()
    connection._shell.tmpdir = str(host.tmp)
    connection._shell.join_path = os.path.join
    action = ActionModule(task, connection, mock.MagicMock(), loader=None, templar=None, shared_loader_obj=None)
    with mock.patch.object(action, "_execute_module", side_effect=host.execute_module), \
            mock.patch.object(action, "_transfer_file", side_effect=host.transfer_file), \
            mock.patch.object(action, "_fixup_perms2"), mock.patch.object(action, "_remove_tmp_path"):
        return action.run(task_vars={})


def test_a_host_without_dest_is_not_asked_what_it_lacks(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "host" / "opt" / "app"
    files = make_src(src)
    remote_tmp = tmp_path / "remote-tmp"
    remote_tmp.mkdir()
    host = LocalHost(remote_tmp)
    first = run(host, src=str(src), dest=str(dest), expected=files, dest_absent=True)
    assert host.calls == ["upload", "stage"]  # one module call, no question first
    assert first["changed"] and first["sent"] == sorted(files) and first["files"] == len(files)
    land(first["staged"])
    assert plan(str(dest), files) == []

    # Knowledge out of date (DEST made since): everything is sent again, and lands the same.
    host.calls.clear()
    stale = run(host, src=str(src), dest=str(dest), expected=files, dest_absent=True)
    assert host.calls == ["upload", "stage"] and stale["sent"] == sorted(files)
    land(stale["staged"])
    assert plan(str(dest), files) == [] and (dest / "bin" / "uv").read_bytes() == b"\x7fELF uv"

    # Without it the host is asked, and a host that has everything is sent nothing.
    host.calls.clear()
    again = run(host, src=str(src), dest=str(dest), expected=files)
    assert host.calls == ["plan"] and not again["changed"] and again["sent"] == []


def test_hosts_that_lack_everything_share_one_archive_per_run(tmp_path, monkeypatch):
    """A first deploy sends each host of a target the same files: the controller writes that tar once (in
    Ansible's per-run temporary directory, which ansible-playbook removes at its end), not once per host."""
    local = tmp_path / "ansible-local"
    local.mkdir()
    monkeypatch.setattr(C, "DEFAULT_LOCAL_TMP", str(local))
    src = tmp_path / "src"
    files = make_src(src)
    remote_tmp = tmp_path / "remote-tmp"
    remote_tmp.mkdir()
    host = LocalHost(remote_tmp)
    for name in ("web1", "web2"):
        dest = tmp_path / name / "app"
        land(run(host, src=str(src), dest=str(dest), expected=files, dest_absent=True)["staged"])
        assert plan(str(dest), files) == []
    assert len(host.uploaded) == 2 and host.uploaded[0] == host.uploaded[1] and os.path.isfile(host.uploaded[0])
    assert sorted(os.listdir(local)) == [os.path.basename(host.uploaded[0]), os.path.basename(host.uploaded[0]) + ".lock"]

    # A host that lacks only some files gets an archive of its own, removed once sent.
    dest = tmp_path / "web3" / "app"
    land(run(host, src=str(src), dest=str(dest), expected=files, dest_absent=True)["staged"])
    os.unlink(dest / "requirements.txt")
    partial = run(host, src=str(src), dest=str(dest), expected=files)
    assert partial["sent"] == ["requirements.txt"] and host.uploaded[-1] != host.uploaded[0]
    assert not os.path.exists(host.uploaded[-1]) and len(os.listdir(local)) == 2
    land(partial["staged"])
    assert plan(str(dest), files) == []
