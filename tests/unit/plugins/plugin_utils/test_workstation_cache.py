# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""A workstation's uv cache packed into chunks (controller) and unpacked into the user's cache (host)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile

import pytest

from ansible_collections.airgap.uv.plugins.modules import workstation_seed
from ansible_collections.airgap.uv.plugins.plugin_utils._workstation_cache import (
    WorkstationError,
    cache_entries,
    group_args,
    pack,
    python_platform,
)


def make_cache(root, archive_id="AbC123"):
    """A uv cache as uv 0.13 lays it out: a wheel's entry links to its unpacked archive."""
    archive = root / "archive-v0" / archive_id / "six-1.17.0.dist-info"
    archive.mkdir(parents=True)
    (archive / "RECORD").write_text("six.py,,\n")
    wheels = root / "wheels-v7" / "pypi" / "six"
    wheels.mkdir(parents=True)
    (wheels / "1.17.0-py2.py3-none-any.http").write_bytes(b"policy")
    (wheels / "1.17.0-py2.py3-none-any.lock").write_bytes(b"")
    os.symlink("../../../archive-v0/%s" % archive_id, wheels / "1.17.0-py2.py3-none-any")
    (root / "simple-v27" / "pypi").mkdir(parents=True)
    (root / "simple-v27" / "pypi" / "six.rkyv").write_bytes(b"page")
    objects = root / "git-v1" / "db" / "abc" / "objects"
    objects.mkdir(parents=True)
    (objects / "86").write_bytes(b"object")
    os.chmod(objects / "86", 0o444)  # git's objects are read-only
    # Not shipped: the scratch project's editable build, uv's build environments, an unreferenced archive.
    editable = root / "sdists-v10" / "editable" / "x"
    editable.mkdir(parents=True)
    os.symlink("../../../archive-v0/Unused", editable / "wsdemo-0.1.0-py3-none-any")
    (root / "archive-v0" / "Unused").mkdir()
    (root / "builds-v0" / "env").mkdir(parents=True)


def test_python_platform_names_the_exact_glibc_or_musl():
    assert python_platform("x86_64", "glibc", "2.36", "linux") == "x86_64-manylinux_2_36"
    assert python_platform("aarch64", "glibc", "2.41", "linux") == "aarch64-manylinux_2_40"
    assert python_platform("x86_64", "musl", "1.2", "linux") == "x86_64-unknown-linux-musl"
    for bad in (("x86_64", "glibc", "2.12", "linux"), ("arm64", None, None, "darwin"), ("x86_64", "glibc", "", "linux")):
        with pytest.raises(WorkstationError):
            python_platform(*bad)


def test_group_args():
    assert group_args([], True, [], True) == ["--all-groups", "--all-extras"]
    assert group_args(["dev"], False, ["fast"], False) == ["--group", "dev", "--extra", "fast"]


def test_only_what_serves_the_host_is_packed(tmp_path):
    make_cache(tmp_path / "c")
    meta, archives = cache_entries(str(tmp_path / "c"))
    assert archives == ["archive-v0/AbC123"]
    assert meta == ["git-v1/db/abc/objects/86", "simple-v27/pypi/six.rkyv", "wheels-v7/pypi/six/1.17.0-py2.py3-none-any",
                    "wheels-v7/pypi/six/1.17.0-py2.py3-none-any.http"]


def test_an_unchanged_cache_packs_to_the_same_bytes(tmp_path):
    make_cache(tmp_path / "c")
    first = pack(str(tmp_path / "c"), str(tmp_path / "ship"), "0.13.8")
    assert sorted(first["written"]) == ["archive-v0-AbC123.tar.gz", "meta.tar.gz", "seed.json"]
    seed = (tmp_path / "ship" / "seed.json").read_bytes()
    again = pack(str(tmp_path / "c"), str(tmp_path / "ship"), "0.13.8")
    assert again["written"] == [] and again["removed"] == []
    assert (tmp_path / "ship" / "seed.json").read_bytes() == seed


class FakeModule:
    def __init__(self, params, check_mode=False):
        self.params, self.check_mode = params, check_mode

    def fail_json(self, msg):
        raise RuntimeError(msg)


def test_the_seed_unpacks_once_and_prunes_what_no_longer_ships(tmp_path):
    make_cache(tmp_path / "c")
    pack(str(tmp_path / "c"), str(tmp_path / "ship"), "0.13.8")
    params = {"src": str(tmp_path / "ship"), "cache_dir": str(tmp_path / "user"), "prune": True}
    assert workstation_seed.seed(FakeModule(params, check_mode=True))["changed"]
    assert not (tmp_path / "user").exists()
    first = workstation_seed.seed(FakeModule(params))
    assert first["changed"] and len(first["unpacked"]) == 2
    link = tmp_path / "user" / "wheels-v7" / "pypi" / "six" / "1.17.0-py2.py3-none-any"
    assert (link / "six-1.17.0.dist-info" / "RECORD").read_text() == "six.py,,\n"
    assert workstation_seed.seed(FakeModule(params)) == {"changed": False, "unpacked": [], "pruned": [],
                                                         "pruned_files": []}
    # The lock moved on: another archive replaces the old one.
    os.rename(tmp_path / "c" / "archive-v0" / "AbC123", tmp_path / "c" / "archive-v0" / "New456")
    os.unlink(tmp_path / "c" / "wheels-v7" / "pypi" / "six" / "1.17.0-py2.py3-none-any")
    os.symlink("../../../archive-v0/New456", tmp_path / "c" / "wheels-v7" / "pypi" / "six" / "1.17.0-py2.py3-none-any")
    (tmp_path / "c" / "simple-v27" / "pypi" / "six.rkyv").write_bytes(b"new page")
    packed = pack(str(tmp_path / "c"), str(tmp_path / "ship"), "0.13.8")
    assert packed["removed"] == ["archive-v0-AbC123.tar.gz"]
    second = workstation_seed.seed(FakeModule(params))
    assert second["pruned"] == ["archive-v0/AbC123"] and not (tmp_path / "user" / "archive-v0" / "AbC123").exists()
    assert (link / "six-1.17.0.dist-info" / "RECORD").exists()
    assert (tmp_path / "user" / "simple-v27" / "pypi" / "six.rkyv").read_bytes() == b"new page"
    assert (tmp_path / "user" / "git-v1" / "db" / "abc" / "objects" / "86").read_bytes() == b"object"
    # The lock dropped six: its link and HTTP entry leave the user's cache with its archive; so does what
    # else the new metadata chunk lacks (the git object); uv's own entries stay.
    (tmp_path / "user" / "simple-v27" / "pypi" / "uv-own.rkyv").write_bytes(b"uv's")
    pack(str(tmp_path / "c"), str(tmp_path / "ship"), "0.13.8", entries=(["simple-v27/pypi/six.rkyv"], []))
    third = workstation_seed.seed(FakeModule(params))
    assert third["pruned"] == ["archive-v0/New456"] and third["pruned_files"] == [
        "git-v1/db/abc/objects/86", "wheels-v7/pypi/six/1.17.0-py2.py3-none-any",
        "wheels-v7/pypi/six/1.17.0-py2.py3-none-any.http"]
    assert not os.path.lexists(link) and not (tmp_path / "user" / "archive-v0" / "New456").exists()
    assert (tmp_path / "user" / "simple-v27" / "pypi" / "six.rkyv").exists()
    assert (tmp_path / "user" / "simple-v27" / "pypi" / "uv-own.rkyv").exists()
    # Without prune nothing goes.
    pack(str(tmp_path / "c"), str(tmp_path / "ship"), "0.13.8", entries=([], []))
    kept = workstation_seed.seed(FakeModule(dict(params, prune=False)))
    assert kept["pruned_files"] == [] and (tmp_path / "user" / "simple-v27" / "pypi" / "six.rkyv").exists()


@pytest.mark.parametrize("name, link", [("../evil", None), ("/etc/evil", None), ("wheels-v7/x", "../../../etc")])
def test_a_chunk_reaching_out_of_the_cache_is_refused(tmp_path, name, link):
    ship = tmp_path / "ship"
    (ship / "cache").mkdir(parents=True)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo(name)
        if link:
            info.type, info.linkname = tarfile.SYMTYPE, link
            tar.addfile(info)
        else:
            tar.addfile(info, io.BytesIO(b""))
    (ship / "cache" / "meta.tar.gz").write_bytes(buffer.getvalue())
    (ship / "seed.json").write_text(json.dumps({"format": 1, "chunks": {"meta.tar.gz": {
        "sha256": hashlib.sha256(buffer.getvalue()).hexdigest(), "size": 1, "kind": "meta", "root": ""}}}))
    params = {"src": str(ship), "cache_dir": str(tmp_path / "user"), "prune": True}
    with pytest.raises(RuntimeError, match="outside the cache|out of the cache"):
        workstation_seed.seed(FakeModule(params))
    assert not (tmp_path / "evil").exists()
