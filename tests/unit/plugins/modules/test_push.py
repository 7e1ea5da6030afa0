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


def test_a_linked_directory_on_the_host_is_refused_not_written_through(tmp_path):
    src, dest, elsewhere = tmp_path / "src", tmp_path / "dest", tmp_path / "elsewhere"
    files = make_tree(src)
    apply(str(dest), files, bundle(src, sorted(files), tmp_path / "all.tar"))
    elsewhere.mkdir()
    os.rename(dest / "wheelhouse", tmp_path / "old-wheelhouse")
    os.symlink(elsewhere, dest / "wheelhouse")  # e.g. a world-writable /tmp
    from ansible_collections.airgap.uv.plugins.module_utils._host_safety import UnsafePath

    for step in (lambda: plan(str(dest), files),
                 lambda: apply(str(dest), files, bundle(src, ["wheelhouse/a-1-py3-none-any.whl"], tmp_path / "w.tar"))):
        with pytest.raises(UnsafePath, match=r"wheelhouse is not a directory but a symlink to .*elsewhere.*remove it"):
            step()
    assert os.listdir(elsewhere) == []


def test_a_linked_file_on_the_host_is_replaced_not_written_through(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "dest"
    files = make_tree(src)
    apply(str(dest), files, bundle(src, sorted(files), tmp_path / "all.tar"))
    victim = tmp_path / "victim"
    victim.write_text("a==1\n")  # same bytes: only the link gives it away
    os.unlink(dest / "requirements.txt")
    os.symlink(victim, dest / "requirements.txt")
    assert plan(str(dest), files) == ["requirements.txt"]
    apply(str(dest), files, bundle(src, ["requirements.txt"], tmp_path / "r.tar"))
    assert not os.path.islink(dest / "requirements.txt") and victim.read_text() == "a==1\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="the root-only rule applies to root")
def test_root_refuses_a_destination_others_can_write(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "dest"
    files = make_tree(src)
    dest.mkdir()
    os.chmod(dest, 0o777)
    from ansible_collections.airgap.uv.plugins.module_utils._host_safety import UnsafePath

    with pytest.raises(UnsafePath, match=r"dest \(the push destination.*mode 0777.*chmod go-w"):
        plan(str(dest), files)
