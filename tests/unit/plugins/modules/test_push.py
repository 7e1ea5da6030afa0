# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""airgap.uv.push: the host-side plan/apply halves and the controller's tree description."""

from __future__ import annotations

import os
import tarfile

import pytest

from ansible_collections.airgap.uv.plugins.action.push import describe_tree
from ansible_collections.airgap.uv.plugins.modules.push import apply, plan


def make_tree(root):
    (root / "bin").mkdir(parents=True)
    (root / "wheelhouse").mkdir()
    (root / "bin" / "uv").write_bytes(b"\x7fELF uv")
    os.chmod(root / "bin" / "uv", 0o755)
    (root / "wheelhouse" / "a-1-py3-none-any.whl").write_bytes(b"a" * 100)
    (root / "requirements.txt").write_text("a==1\n")
    os.chmod(root / "requirements.txt", 0o644)
    os.chmod(root / "wheelhouse" / "a-1-py3-none-any.whl", 0o644)
    return describe_tree(str(root))


def bundle(src, names, path):
    with tarfile.open(path, "w") as archive:
        for name in names:
            archive.add(os.path.join(src, name), arcname=name, recursive=False)
    return str(path)


def test_push_sends_only_what_differs(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "dest"
    files = make_tree(src)
    assert files["bin/uv"]["mode"] == 0o755
    wanted = plan(str(dest), files)
    assert wanted == sorted(files)
    assert apply(str(dest), files, bundle(src, wanted, tmp_path / "all.tar")) == wanted
    assert (dest / "bin" / "uv").read_bytes() == b"\x7fELF uv" and os.access(dest / "bin" / "uv", os.X_OK)
    assert plan(str(dest), files) == []
    # Content or permission drift on the host is found; unrelated files are left alone.
    (dest / "wheelhouse" / "a-1-py3-none-any.whl").write_bytes(b"b" * 100)
    os.chmod(dest / "bin" / "uv", 0o644)
    (dest / "wheelhouse" / "stale.whl").write_bytes(b"old")
    assert plan(str(dest), files) == ["bin/uv", "wheelhouse/a-1-py3-none-any.whl"]
    assert (dest / "wheelhouse" / "stale.whl").exists()


def test_archive_must_match_the_announced_hashes(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "dest"
    files = make_tree(src)
    apply(str(dest), files, bundle(src, sorted(files), tmp_path / "all.tar"))
    (src / "requirements.txt").write_text("tampered\n")
    with pytest.raises(ValueError, match="arrived with sha256"):
        apply(str(dest), files, bundle(src, ["requirements.txt"], tmp_path / "one.tar"))
    assert (dest / "requirements.txt").read_text() == "a==1\n"
    assert [name for name in os.listdir(dest) if name.startswith(".push-")] == []


@pytest.mark.parametrize("evil", ["../escape", "/etc/passwd", "a/../../b", "", "a//b"])
def test_paths_outside_dest_are_refused(tmp_path, evil):
    with pytest.raises(ValueError, match="refusing path"):
        plan(str(tmp_path), {evil: {"sha256": "0", "size": 0, "mode": 0o644}})
