# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""airgap.uv.push: the host-side plan/apply halves and the controller's tree description."""

from __future__ import annotations

import os
import tarfile

import pytest

from ansible_collections.airgap.uv.plugins.action.push import describe_tree
from ansible_collections.airgap.uv.plugins.module_utils._push_files import apply, landing_order, plan, stage, land


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
    assert sorted(apply(str(dest), files, bundle(src, wanted, tmp_path / "all.tar"))) == wanted
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


def test_a_push_lands_as_a_set_files_first_manifest_last():
    assert landing_order(["manifest.json", "requirements.txt", "bin/uv", "wheelhouse/b.whl", "a.txt"]) == [
        "bin/uv", "wheelhouse/b.whl", "a.txt", "requirements.txt", "manifest.json"]


def test_a_push_that_fails_half_way_replaces_nothing(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "dest"
    files = make_tree(src)
    apply(str(dest), files, bundle(src, sorted(files), tmp_path / "all.tar"))
    # A new set: new install file and a new wheel; the wheel arrives broken (as a full disk would
    # stop it): the old install file must stay, naming the wheels that are there.
    (src / "requirements.txt").write_text("a==2\n")
    (src / "wheelhouse" / "a-2-py3-none-any.whl").write_bytes(b"2" * 10)
    os.chmod(src / "wheelhouse" / "a-2-py3-none-any.whl", 0o644)
    new = describe_tree(str(src))
    archive = bundle(src, ["requirements.txt", "wheelhouse/a-2-py3-none-any.whl"], tmp_path / "new.tar")
    (src / "wheelhouse" / "a-2-py3-none-any.whl").write_bytes(b"X" * 10)
    broken = bundle(src, ["requirements.txt", "wheelhouse/a-2-py3-none-any.whl"], tmp_path / "broken.tar")
    with pytest.raises(ValueError, match="arrived with sha256"):
        apply(str(dest), new, broken)
    assert (dest / "requirements.txt").read_text() == "a==1\n"
    assert not (dest / "wheelhouse" / "a-2-py3-none-any.whl").exists()
    leftovers = [name for walked in os.walk(dest) for name in walked[2] if name.startswith(".push-")]
    assert leftovers == []
    assert apply(str(dest), new, archive) == ["wheelhouse/a-2-py3-none-any.whl", "requirements.txt"]


def test_a_staged_push_changes_nothing_until_it_lands(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "dest"
    files = make_tree(src)
    staged = stage(str(dest), files, bundle(src, sorted(files), tmp_path / "all.tar"))
    assert os.path.dirname(staged) == str(dest / ".incoming")
    assert sorted(os.listdir(dest)) == [".incoming"]
    assert plan(str(dest), files) == sorted(files)
    assert land(staged) == ["bin/uv", "wheelhouse/a-1-py3-none-any.whl", "requirements.txt"]
    assert plan(str(dest), files) == [] and os.listdir(dest / ".incoming") == []
    with pytest.raises(Exception, match="cannot be opened"):
        land(staged)


def test_stale_staged_pushes_go_when_another_lands(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "dest"
    files = make_tree(src)
    old = stage(str(dest), files, bundle(src, sorted(files), tmp_path / "all.tar"))
    young = stage(str(dest), files, bundle(src, sorted(files), tmp_path / "all.tar"))
    os.utime(old, (0, 0))
    land(stage(str(dest), files, bundle(src, sorted(files), tmp_path / "all.tar")))
    assert not os.path.exists(old) and os.path.isdir(young)


def test_landing_refuses_what_is_not_a_staged_push(tmp_path):
    with pytest.raises(Exception, match="is not a staged push"):
        land(str(tmp_path / "somewhere"))
    with pytest.raises(ValueError, match="staged pushes wait"):
        plan(str(tmp_path), {".incoming/x": {"sha256": "0", "size": 1, "mode": 0o644}})


def test_unknown_sizes_or_hashes_count_as_to_send(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "dest"
    files = make_tree(src)
    apply(str(dest), files, bundle(src, sorted(files), tmp_path / "all.tar"))
    files["bin/uv"] = dict(files["bin/uv"], sha256=None, size=None)
    assert plan(str(dest), files) == ["bin/uv"]


def test_a_missing_deployment_root_is_made_0755_whatever_the_umask(tmp_path):
    """The push makes the deployment root (the role has no task of its own for it): a service user
    must be able to traverse it, so a tight umask on the host does not decide its mode."""
    src, dest = tmp_path / "src", tmp_path / "opt" / "airgap-uv" / "app"
    files = make_tree(src)
    old = os.umask(0o077)
    try:
        staged = stage(str(dest), files, bundle(src, sorted(files), tmp_path / "all.tar"))
    finally:
        os.umask(old)
    for directory in (tmp_path / "opt", tmp_path / "opt" / "airgap-uv", dest):
        assert os.stat(directory).st_mode & 0o7777 == 0o755, directory
    assert os.stat(staged).st_mode & 0o777 == 0o700
    # An existing root keeps its mode.
    os.chmod(dest, 0o750)
    stage(str(dest), files, bundle(src, sorted(files), tmp_path / "all.tar"))
    assert os.stat(dest).st_mode & 0o7777 == 0o750
