# -*- coding: utf-8 -*-
# Copyright (c) airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of plugins/module_utils/_sync_store.py: lock, state file, releases, fingerprint."""

from __future__ import annotations

import time
import fcntl
import json
import os

import pytest

from ansible_collections.airgap.uv.plugins.module_utils import _sync_error as E
from ansible_collections.airgap.uv.plugins.module_utils import _sync_store as ST
from ansible_collections.airgap.uv.plugins.module_utils import _sync_change as C


def test_lock_times_out_with_clear_message(tmp_path):
    path = str(tmp_path / "x.lock")
    with ST.FileLock(path, 5):
        t0 = time.monotonic()
        with pytest.raises(E.SyncError) as exc:
            with ST.FileLock(path, 0.3):
                pass
        assert time.monotonic() - t0 < 3
        assert "Timed out after 0.3s" in exc.value.msg and path in exc.value.msg and str(os.getpid()) in exc.value.msg
    with ST.FileLock(path, 0):  # released
        pass


def test_shared_lock_without_file_creates_nothing(tmp_path):
    with ST.FileLock(str(tmp_path / "none.lock"), 1, shared=True, create=False):
        pass
    assert os.listdir(tmp_path) == []


def test_shared_lock_waits_for_writer(tmp_path):
    path = str(tmp_path / "x.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(E.SyncError, match="Timed out"):
            with ST.FileLock(path, 0.2, shared=True, create=False):
                pass
    finally:
        os.close(fd)


def test_state_file_corrupt_is_ignored(tmp_path):
    p = tmp_path / "state.json"
    p.write_text("{garbage")
    st = ST.StateFile.load(str(p))
    assert st.data == {"format": ST.STATE_FORMAT}
    st.set("k", 1)
    st.save()
    assert json.loads(p.read_text())["k"] == 1


# ---------------------------------------------------------------------------
# releases
# ---------------------------------------------------------------------------


def _complete(store, rel_id, previous=None):
    rel = ST.Release(os.path.join(store.releases_dir, rel_id))
    os.makedirs(os.path.join(rel.path, "bin"))
    C.ReleaseWriter(store).write_meta(rel, {"format": 1, "id": rel_id, "previous": previous, "packages": {"six": {"version": "1", "hashes": []}}})
    return rel


def test_store_inspect_kinds(tmp_path):
    store = ST.ReleaseStore(str(tmp_path / "venv"))
    assert store.releases_dir == str(tmp_path / ".venv.releases")
    assert store.lock_path == str(tmp_path / ".venv.releases.lock")
    assert store.inspect().kind == "absent"
    (tmp_path / "venv").mkdir()
    assert store.inspect().kind == "directory"
    (tmp_path / "venv").rmdir()
    (tmp_path / "venv").symlink_to("/usr")
    assert store.inspect().kind == "foreign"
    (tmp_path / "venv").unlink()
    (tmp_path / "venv").symlink_to(".venv.releases/gone")
    assert store.inspect().kind == "dangling"
    rel = _complete(store, "20250101T000000.000000Z-aaaaaa")
    C.ReleaseWriter(store).activate(rel)
    view = store.inspect()
    assert view.kind == "release" and view.current.id == rel.id
    assert os.readlink(tmp_path / "venv") == ".venv.releases/" + rel.id  # relative: the tree can move


def test_store_activate_absolute_when_elsewhere(tmp_path):
    store = ST.ReleaseStore(str(tmp_path / "a" / "venv"), str(tmp_path / "r"))
    os.makedirs(tmp_path / "a")
    rel = _complete(store, "20250101T000000.000000Z-aaaaaa")
    C.ReleaseWriter(store).activate(rel)
    assert os.readlink(tmp_path / "a" / "venv") == rel.path
    assert store.inspect().current.id == rel.id


def test_store_cleanup_and_previous(tmp_path):
    store = ST.ReleaseStore(str(tmp_path / "venv"))
    r1 = _complete(store, "20250101T000000.000000Z-000001")
    r2 = _complete(store, "20250102T000000.000000Z-000002", previous=r1.id)
    r3 = _complete(store, "20250103T000000.000000Z-000003", previous=r2.id)
    half = ST.Release(os.path.join(store.releases_dir, "20250104T000000.000000Z-000004"))
    os.makedirs(half.path)
    C.ReleaseWriter(store).activate(r2)  # after a rollback to r2, r1 is r2's previous
    (tmp_path / ".venv.tmp-1-abc").symlink_to("x")
    assert store.previous_of(r2).id == r1.id
    removed = store.cleanup(2, [r2, store.previous_of(r2)])
    assert sorted(os.listdir(store.releases_dir)) == [r1.id, r2.id]
    assert sorted(removed) == sorted([r3.path, half.path])
    assert not os.path.lexists(tmp_path / ".venv.tmp-1-abc")


def test_previous_falls_back_to_newest_older(tmp_path):
    store = ST.ReleaseStore(str(tmp_path / "venv"))
    r1 = _complete(store, "20250101T000000.000000Z-000001")
    r2 = _complete(store, "20250102T000000.000000Z-000002", previous="20240101T000000.000000Z-pruned")
    assert store.previous_of(r2).id == r1.id
    assert store.previous_of(r1) is None


# ---------------------------------------------------------------------------
# runner without uv (validation happens before any uv call)
# ---------------------------------------------------------------------------


def test_environment_fingerprint_sees_entries_and_metadata(tmp_path):
    site = tmp_path / "lib" / "python3.11" / "site-packages"
    (site / "pkg-1.0.dist-info").mkdir(parents=True)
    (site / "pkg-1.0.dist-info" / "METADATA").write_text("Name: pkg\nVersion: 1.0\n")
    (site / "pkg").mkdir()
    first = ST.environment_fingerprint(str(tmp_path))
    assert first == ST.environment_fingerprint(str(tmp_path))
    (site / "pkg" / "module.py").write_text("")  # inside a package, not metadata: uv does not look
    assert ST.environment_fingerprint(str(tmp_path))[2:] == first[2:]
    (site / "other.pth").write_text("")
    assert ST.environment_fingerprint(str(tmp_path)) != first
    assert ST.environment_fingerprint(str(tmp_path / "absent")) == []
