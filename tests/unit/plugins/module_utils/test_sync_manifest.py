# -*- coding: utf-8 -*-
# Copyright (c) airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of plugins/module_utils/_sync_manifest.py: the bundle manifest's check."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from ansible_collections.airgap.uv.plugins.module_utils import _sync_error as E
from ansible_collections.airgap.uv.plugins.module_utils import _sync_manifest as M
from ansible_collections.airgap.uv.plugins.module_utils import _sync_store as ST


def _manifest(tmp_path, files):
    wh = tmp_path / "wheelhouse"
    wh.mkdir(exist_ok=True)
    entries = []
    for name, data in files.items():
        (wh / name).write_bytes(data)
        entries.append({"filename": name, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)})
    m = tmp_path / "manifest.json"
    m.write_text(json.dumps({"format": 1, "files": entries, "uv_version": "0.13.8"}))
    return m, wh


def test_manifest_ok_and_cached(tmp_path, monkeypatch):
    m, wh = _manifest(tmp_path, {"a-1-py3-none-any.whl": b"aaa", "b-1-py3-none-any.whl": b"bbbb"})
    state = ST.StateFile(str(tmp_path / "state.json"))
    M.ManifestVerifier(str(m), str(wh), state).verify()
    assert len(state.data["sha256"]) == 2 and state.dirty
    state.save()
    hashed = []
    monkeypatch.setattr(M, "sha256_file", lambda p: hashed.append(p) or "x")
    state2 = ST.StateFile.load(state.path)
    M.ManifestVerifier(str(m), str(wh), state2).verify()
    assert hashed == [] and not state2.dirty


def test_manifest_missing_and_corrupt_named(tmp_path):
    m, wh = _manifest(tmp_path, {"a-1.whl": b"aaa", "b-1.whl": b"bbbb", "c-1.whl": b"cc"})
    (wh / "a-1.whl").unlink()
    (wh / "b-1.whl").write_bytes(b"bbbX")  # same size
    (wh / "c-1.whl").write_bytes(b"ccc")  # other size
    with pytest.raises(E.SyncError) as exc:
        M.ManifestVerifier(str(m), str(wh), ST.StateFile(str(tmp_path / "s"))).verify()
    msg = exc.value.msg
    assert "%s is missing" % (wh / "a-1.whl") in msg
    assert "%s is corrupt: sha256" % (wh / "b-1.whl") in msg
    assert "%s is corrupt: size 3" % (wh / "c-1.whl") in msg


def test_manifest_detects_change_with_same_mtime(tmp_path):
    m, wh = _manifest(tmp_path, {"a-1.whl": b"aaa"})
    state = ST.StateFile(str(tmp_path / "s"))
    M.ManifestVerifier(str(m), str(wh), state).verify()
    st = os.stat(wh / "a-1.whl")
    (wh / "a-1.whl").write_bytes(b"aaX")
    os.utime(wh / "a-1.whl", ns=(st.st_atime_ns, st.st_mtime_ns))  # ctime still moves
    with pytest.raises(E.SyncError, match="corrupt"):
        M.ManifestVerifier(str(m), str(wh), state).verify()


@pytest.mark.parametrize("content, fragment", [("{", "not valid JSON"), ('{"format": 2, "files": []}', "unsupported format")])
def test_manifest_bad_document(tmp_path, content, fragment):
    (tmp_path / "m.json").write_text(content)
    with pytest.raises(E.SyncError, match=fragment):
        M.ManifestVerifier(str(tmp_path / "m.json"), str(tmp_path), ST.StateFile(str(tmp_path / "s"))).verify()


def test_manifest_paths(tmp_path):
    v = M.ManifestVerifier(str(tmp_path / "manifest.json"), str(tmp_path / "wh"), ST.StateFile("x"))
    assert v.resolve("a.whl") == str(tmp_path / "wh" / "a.whl")
    assert v.resolve("bin/uv") == str(tmp_path / "bin" / "uv")


# ---------------------------------------------------------------------------
# lock and state
# ---------------------------------------------------------------------------
