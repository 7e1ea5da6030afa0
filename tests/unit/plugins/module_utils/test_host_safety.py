# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""What root does in trees another user owns: no link followed, only root-only directories, lock holders."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from ansible_collections.airgap.uv.plugins.module_utils import _host_safety as H
from ansible_collections.airgap.uv.plugins.module_utils import _sync_error as E
from ansible_collections.airgap.uv.plugins.module_utils import _sync_store as ST

ROOT = os.geteuid() == 0
NOBODY = 65534


@pytest.mark.skipif(not ROOT, reason="ownership checks need root")
def test_require_root_only(tmp_path):
    (tmp_path / "ok").mkdir(mode=0o755)
    H.require_root_only(str(tmp_path / "ok" / "missing" / "deeper"), "x")  # missing tails are fine
    (tmp_path / "group").mkdir()
    os.chmod(tmp_path / "group", 0o775)
    with pytest.raises(H.UnsafePath, match=r"group \(venv, or a directory above it\).*mode 0775"):
        H.require_root_only(str(tmp_path / "group" / "venv"), "venv")
    (tmp_path / "theirs").mkdir()
    os.chown(tmp_path / "theirs", NOBODY, NOBODY)
    with pytest.raises(H.UnsafePath, match="owned by"):
        H.require_root_only(str(tmp_path / "theirs" / "app"), "app")
    os.symlink(tmp_path / "ok", tmp_path / "link")
    with pytest.raises(H.UnsafePath, match="is a symlink"):
        H.require_root_only(str(tmp_path / "link"), "x")
    H.require_root_only(str(tmp_path / "link" / "below"), "x")  # a link above is judged by its target
    # A root-owned entry of a sticky, world-writable directory (/tmp) is safe; the directory itself is not.
    (tmp_path / "sticky").mkdir()
    os.chmod(tmp_path / "sticky", 0o1777)
    (tmp_path / "sticky" / "mine").mkdir(mode=0o755)
    H.require_root_only(str(tmp_path / "sticky" / "mine"), "x")
    with pytest.raises(H.UnsafePath):
        H.require_root_only(str(tmp_path / "sticky"), "x")
    os.chown(tmp_path / "sticky" / "mine", NOBODY, NOBODY)
    with pytest.raises(H.UnsafePath):
        H.require_root_only(str(tmp_path / "sticky" / "mine" / "x"), "x")


def test_write_file_replaces_a_planted_link_and_temporary_name(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    release = tmp_path / "release"
    release.mkdir()
    os.symlink(victim, release / "meta.json")
    os.symlink(victim, release / (".meta.json.tmp-%d" % os.getpid()))  # the temporary name, guessed
    H.write_file(str(release), "meta.json", b"{}", 0o644, durable=True)
    assert victim.read_text() == "precious"
    assert not os.path.islink(release / "meta.json") and (release / "meta.json").read_bytes() == b"{}"
    assert sorted(os.listdir(release)) == ["meta.json"]
    os.rename(release, tmp_path / "moved")
    os.symlink(tmp_path / "moved", release)  # the directory itself swapped for a link
    with pytest.raises(OSError):
        H.write_file(str(release), "meta.json", b"x")


def test_read_text_refuses_links_and_fifos(tmp_path):
    (tmp_path / "real").write_text("data")
    os.symlink(tmp_path / "real", tmp_path / "link")
    os.mkfifo(tmp_path / "fifo")
    assert H.read_text(str(tmp_path / "real")) == "data"
    for name in ("link", "fifo"):
        with pytest.raises(OSError):
            H.read_text(str(tmp_path / name))  # never blocks on a FIFO either


@pytest.mark.skipif(not ROOT, reason="chown needs root")
def test_chown_tree_follows_no_link(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f").write_text("x")
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "file").write_text("y")
    os.symlink(outside, tree / "dirlink")
    os.symlink(outside / "f", tree / "sub" / "filelink")
    H.chown_tree(str(tree), NOBODY, NOBODY)
    owners = {os.path.relpath(os.path.join(r, n), tree): os.lstat(os.path.join(r, n)).st_uid
              for r, ds, fs in os.walk(tree) for n in ds + fs}
    assert set(owners.values()) == {NOBODY} and os.lstat(tree).st_uid == NOBODY
    assert os.lstat(outside).st_uid == 0 and os.lstat(outside / "f").st_uid == 0
    H.chown_tree(str(tree / "dirlink"), 0, 0)  # a link at the top: only the link itself
    assert os.lstat(outside).st_uid == 0 and os.lstat(tree / "dirlink").st_uid == 0


def test_lock_timeout_names_the_holder_and_files_are_private(tmp_path):
    lock_path = str(tmp_path / "store.lock")
    open(lock_path, "w").close()
    os.chmod(lock_path, 0o644)  # as releases before 0.5 left it
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1]); "
                               "fcntl.flock(f, fcntl.LOCK_SH); print('held', flush=True); time.sleep(30)", lock_path],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(E.SyncError, match=r"held by pid %d \(read lock: .*python.*flock" % holder.pid):
            with ST.FileLock(lock_path, timeout=0.2):
                pass
    finally:
        holder.kill()
        holder.wait()
    assert stat.S_IMODE(os.stat(lock_path).st_mode) == 0o600  # no other user can open it any more
    with ST.FileLock(lock_path, timeout=1) as lock:
        assert lock.fd is not None
    state = ST.StateFile(str(tmp_path / "state.json"))
    state.set("x", 1)
    state.save()
    assert stat.S_IMODE(os.stat(state.path).st_mode) == 0o600
    assert ST.StateFile.load(state.path).data["x"] == 1


@pytest.mark.skipif(not ROOT, reason="needs root to hand the file to another user")
def test_a_state_file_another_user_owns_is_not_trusted(tmp_path):
    state = ST.StateFile(str(tmp_path / "state.json"))
    state.set("noop_result", {"key": "forged", "result": {"changed": False}})
    state.save()
    os.chown(state.path, NOBODY, NOBODY)
    loaded = ST.StateFile.load(state.path)
    assert "noop_result" not in loaded.data and loaded.dirty  # replaced by a file of root's at the end
    loaded.save()
    assert os.stat(state.path).st_uid == 0
