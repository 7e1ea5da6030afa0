# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Issue 11, controller side, pure logic: one file per name in a target's wheelhouse, errors
named by what they are (a full disk as one), the lock check's Python and its advice."""

from __future__ import annotations

import errno
import os
import shutil

import pytest
from packaging.specifiers import SpecifierSet

from ansible_collections.airgap.uv.plugins.plugin_utils import _lock_check
from ansible_collections.airgap.uv.plugins.plugin_utils._build import Interpreter
from ansible_collections.airgap.uv.plugins.plugin_utils._os_errors import describe
from ansible_collections.airgap.uv.plugins.plugin_utils._target import Target
from ansible_collections.airgap.uv.plugins.plugin_utils._target_files import PackageFile, TargetPlan, pinned_file
from ansible_collections.airgap.uv.plugins.plugin_utils._wheelhouse_publish import link_or_copy as _link_or_copy

from test_target import facts  # same directory: pytest puts it on sys.path

PACKAGING = PackageFile("packaging", "25.0", "packaging-25.0-py3-none-any.whl", "a" * 64)


def plan():
    return TargetPlan(target=Target.from_facts(facts()), hosts=["web1"])


def test_a_dependency_that_is_also_a_build_requirement_is_one_file():
    target = plan()
    target.entries.append(PACKAGING)
    target.build_entries += [PACKAGING, PackageFile("hatchling", "1.27.0", "hatchling-1.27.0-py3-none-any.whl", "b" * 64)]
    assert [entry.filename for entry in target.files] == [PACKAGING.filename, "hatchling-1.27.0-py3-none-any.whl"]
    assert target.conflicting_file(PACKAGING) is None
    assert target.conflicting_file(PACKAGING._replace(sha256="c" * 64)) == PACKAGING


def test_pinned_file_names_the_target_only():
    text = pinned_file("cpython3.11.2-linux-x86_64-glibc2.36", "purpose", [PACKAGING, PACKAGING])
    assert text == ("# Written by airgap.uv for target cpython3.11.2-linux-x86_64-glibc2.36.\n# purpose\n"
                    "packaging==25.0 \\\n    --hash=sha256:%s\n" % ("a" * 64))


def test_link_or_copy_never_copies_onto_an_existing_file(tmp_path):
    source = tmp_path / "source.whl"
    source.write_bytes(b"wheel")
    _link_or_copy(str(source), str(tmp_path / "link.whl"))
    # Placing the same file twice was a SameFileError (shutil.copy2 onto its own hard link),
    # reported as "free space or fix permissions".
    with pytest.raises(FileExistsError):
        _link_or_copy(str(source), str(tmp_path / "link.whl"))


@pytest.mark.parametrize("exc, expected", [
    (OSError(errno.ENOSPC, "No space left on device", "/wh/files/x.whl"),
     "No space left on device in /wh/files: free space on its file system"),
    (OSError(errno.ENOSPC, "No space left on device"), "No space left on device in /fallback: free space"),
    (OSError(errno.EDQUOT, "Disk quota exceeded", "/wh/a"), "Disk quota exceeded in /wh: free space"),
    (OSError(errno.EACCES, "Permission denied", "/wh/targets/t"), "Permission denied: /wh/targets/t: fix the "
                                                                  "permissions of /wh/targets"),
    (shutil.SameFileError("'/a/x.whl' and '/b/x.whl' are the same file"), "'/a/x.whl' and '/b/x.whl' are the same file"),
])
def test_os_errors_get_the_remedy_that_fits(exc, expected):
    message = describe(exc, "/fallback")
    assert message.startswith(expected), message
    if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
        assert "free space" not in message


def interpreter(version, path=None, implementation="cpython", abiflags=""):
    return Interpreter(path=path or "/py/%s/bin/python3" % version, implementation=implementation, version=version,
                       abiflags=abiflags, os="linux", arch="x86_64", libc_family="glibc", libc_version="2.36")


FOUND = [interpreter("3.9.18"), interpreter("3.12.1"), interpreter("3.13.0"), interpreter("3.13.0", abiflags="t"),
         interpreter("3.11.7")]


def test_lock_check_python_choice(monkeypatch):
    monkeypatch.delenv("UV_PYTHON", raising=False)
    asked = []

    def found():
        asked.append(1)
        return FOUND

    # Named by the user: taken as it is, nothing searched.
    assert _lock_check.python_args(SpecifierSet(">=3.14"), "/opt/py/bin/python3", found) == [
        "--python", "/opt/py/bin/python3"]
    # The controller's own Python fits (this test runs on 3.9+).
    own = _lock_check.python_args(SpecifierSet(">=3.8"), None, found)
    assert own[0] == "--python" and asked == []
    # It does not: the newest CPython that fits, found without shims (no free-threaded build).
    assert _lock_check.python_args(SpecifierSet(">=3.12,<3.14"), None, found) == ["--python", "/py/3.13.0/bin/python3"]
    assert _lock_check.python_args(SpecifierSet("==3.12.*"), None, found) == ["--python", "/py/3.12.1/bin/python3"]
    # None fits: uv's own search, whose failure names the role variable (below).
    assert _lock_check.python_args(SpecifierSet(">=3.14"), None, found) == []
    # UV_PYTHON is the user's choice for uv: left to uv.
    monkeypatch.setenv("UV_PYTHON", "3.12")
    assert _lock_check.python_args(SpecifierSet(">=3.99"), None, found) == []


@pytest.mark.parametrize("explicit", [None, "/opt/py/bin/python3"])
def test_lock_check_advice_names_what_the_role_offers(explicit):
    error = ("uv lock --check failed (uv lock --check, rc=2):\nerror: No interpreter found for Python >=3.14 in "
             "managed installations or search path")
    message = _lock_check._failure(error, "/p", offline=False, explicit=explicit, requires_python=">=3.14",
                                   found=lambda: FOUND)
    assert "uv_deploy_lock_check_python" in message and "option lock_check_python" in message
    assert "check_lock" not in message and ">=3.14" in message
    if explicit:
        assert repr(explicit) in message
    else:
        assert "cpython 3.12.1" in message
    offline = _lock_check._failure("error: Failed to fetch: `six`", "/p", offline=True, explicit=None,
                                   requires_python=">=3.9", found=lambda: FOUND)
    assert "UV_OFFLINE" in offline and "check_lock" not in offline
    stale = _lock_check._failure("The lockfile at `uv.lock` needs to be updated", "/p", offline=False, explicit=None,
                                 requires_python=None, found=lambda: FOUND)
    assert stale.startswith("uv.lock in /p does not match pyproject.toml")


def test_interpreter_candidates_skip_pyenv_shims(tmp_path):
    """The search behind the choice above: pyenv builds by path, never the shims on PATH."""
    from ansible_collections.airgap.uv.plugins.plugin_utils._build import interpreter_candidates

    root = tmp_path / "pyenv"
    for version in ("3.12.1", "3.13.0"):
        binary = root / "versions" / version / "bin" / "python3"
        binary.parent.mkdir(parents=True)
        binary.write_text("#!/bin/sh\n")
        binary.chmod(0o755)
    shims = root / "shims"
    shims.mkdir()
    (shims / "python3.12").write_text("#!/bin/sh\nexit 127\n")
    (shims / "python3.12").chmod(0o755)
    found = interpreter_candidates(None, {"PYENV_ROOT": str(root), "PATH": str(shims)})
    assert str(root / "versions" / "3.12.1" / "bin" / "python3") in found
    assert not any(os.path.dirname(path) == str(shims) for path in found)
