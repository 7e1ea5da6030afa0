# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""airgap.uv.sync with shipped sources: sdists built on the host and editable installs.

The uv command lines are checked against a recording stand-in; the real chain (wheelhouse,
SSH, offline host, real uv building hatchling and setuptools projects) is in
tests/integration/test_deploy_e2e.py::test_editable_project_and_host_built_sdist.
"""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from ansible_collections.airgap.uv.plugins.module_utils import _sync_error as E
from ansible_collections.airgap.uv.plugins.module_utils import _sync as S
from ansible_collections.airgap.uv.plugins.module_utils import _sync_change as C
from ansible_collections.airgap.uv.tests.unit.plugins.module_utils.test_sync_uv import FakeUv

H1 = "sha256:" + "1" * 64
H2 = "2" * 64


def make_sdist(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            if data is None:
                info = tarfile.TarInfo(name)
                info.type = tarfile.SYMTYPE
                info.linkname = "/etc/passwd"
                tar.addfile(info)
                continue
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755 if name.endswith(".sh") else 0o644
            tar.addfile(info, io.BytesIO(data))


def test_extract_sdist_returns_the_project_directory(tmp_path):
    archive = tmp_path / "proj-1.0.tar.gz"
    make_sdist(str(archive), {"proj-1.0/pyproject.toml": b"[project]\n", "proj-1.0/src/proj/__init__.py": b"",
                              "proj-1.0/run.sh": b"#!/bin/sh\n"})
    top = C.extract_sdist(str(archive), str(tmp_path / "src"))
    assert top == str(tmp_path / "src" / "proj-1.0")
    assert (tmp_path / "src" / "proj-1.0" / "src" / "proj" / "__init__.py").is_file()
    assert os.access(str(tmp_path / "src" / "proj-1.0" / "run.sh"), os.X_OK)


@pytest.mark.parametrize("members, fragment", [
    ({"proj-1.0/../../evil": b"x"}, "unsafe member 'proj-1.0/../../evil'"),
    ({"/abs/evil": b"x"}, "unsafe member '/abs/evil'"),
    ({"proj-1.0/link": None}, "unsafe member 'proj-1.0/link'"),
    ({"a/x": b"", "b/y": b""}, "must hold one top-level directory"),
])
def test_extract_sdist_refuses_unsafe_archives(tmp_path, members, fragment):
    archive = tmp_path / "bad.tar.gz"
    make_sdist(str(archive), members)
    with pytest.raises(E.SyncError) as caught:
        C.extract_sdist(str(archive), str(tmp_path / "src"))
    assert fragment in caught.value.msg
    assert not (tmp_path / "src").exists() and not (tmp_path.parent / "evil").exists()


@pytest.fixture
def inputs(tmp_path):
    uv = tmp_path / "bin" / "uv"
    uv.parent.mkdir()
    uv.write_text("#!/bin/sh\nexit 1\n")
    uv.chmod(0o755)
    (tmp_path / "wheelhouse").mkdir()
    (tmp_path / "requirements.txt").write_text("six==1.16.0 --hash=%s\n" % H1)
    return {"uv": str(uv), "wheelhouse": str(tmp_path / "wheelhouse"), "requirements": str(tmp_path / "requirements.txt"),
            "venv": str(tmp_path / "app" / "venv"), "python": "/usr/bin/python3"}


def sync_argv(fake):
    return [argv for argv, env in fake.calls if argv[-3:-1] != ["pip", "list"] and "sync" in argv][-1]


def test_no_build_unless_the_bundle_ships_sources(inputs, tmp_path):
    (tmp_path / "build-constraints.txt").write_text("# nothing is built on the host\n")
    fake = FakeUv()
    S.SyncRunner(dict(inputs, build_constraints=str(tmp_path / "build-constraints.txt")), check_mode=True,
                 runner=fake).run()
    argv = sync_argv(fake)
    assert "--no-build" in argv and "--build-constraint" not in argv and "--require-hashes" in argv


def test_shipped_sdists_build_with_pinned_hash_checked_constraints(inputs, tmp_path):
    constraints = tmp_path / "build-constraints.txt"
    constraints.write_text("setuptools==80.9.0 \\\n    --hash=sha256:%s\n" % H2)
    fake = FakeUv()
    S.SyncRunner(dict(inputs, build_constraints=str(constraints)), check_mode=True, runner=fake).run()
    argv = sync_argv(fake)
    assert "--no-build" not in argv
    assert argv[argv.index("--build-constraint") + 1] == str(constraints)
    assert "--require-build-hashes" in argv and "--require-hashes" in argv


def test_missing_build_constraints_is_named(inputs, tmp_path):
    with pytest.raises(E.SyncError) as caught:
        S.SyncRunner(dict(inputs, build_constraints=str(tmp_path / "nope.txt")), runner=FakeUv()).run()
    assert "build constraints file %s does not exist" % (tmp_path / "nope.txt") in caught.value.msg


@pytest.mark.parametrize("entry, fragment", [
    ({"name": "proj", "version": "1.0", "filename": "../proj-1.0.tar.gz", "sha256": H2}, "not a plain file name"),
    ({"name": "proj", "version": "1.0", "filename": "proj-1.0.tar.gz"}, "malformed editable entry"),
])
def test_bad_editable_entries_are_refused(inputs, entry, fragment):
    pending = {"requirements": "six==1.16.0 --hash=%s\n" % H1, "wheels": [], "editable": [entry]}
    with pytest.raises(E.SyncError) as caught:
        S.SyncRunner(dict(inputs, pending=pending), check_mode=True, runner=FakeUv()).run()
    assert fragment in caught.value.msg


def test_check_mode_predicts_an_editable_install(inputs):
    """No release yet: the editable package is predicted as installed next to the install file's."""
    pending = {"requirements": "six==1.16.0 --hash=%s\n" % H1, "wheels": ["six-1.16.0-py2.py3-none-any.whl"],
               "editable": [{"name": "Proj", "version": "1.0", "filename": "proj-1.0.tar.gz", "sha256": H2}]}
    fake = FakeUv()
    result = S.SyncRunner(dict(inputs, pending=pending), check_mode=True, runner=fake).run()
    assert result["changed"] is True
    assert {"name": "proj", "version": "1.0"} in result["installed"]
    assert "proj==1.0" in result["packages"]
