# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Issue 11, controller side, with real uv, the real index and real build backends (hatchling).

The example project is copied and locked at test time. Each case runs the wheelhouse in check
mode first, then for real, and checks the prediction against what the real run did:
- no placeholder hash reaches a prediction (the project is built into the controller's cache);
- hosts.<host>.files is what the per-host directory holds, as airgap.uv.push describes it;
- a lock change that changes nothing a host installs, or another host of the same kind, changes
  no file that ships and reports changed=false; a real upgrade reports changed in both modes;
- editable installs with a package that is both a dependency and a build requirement (packaging
  and pluggy: pytest needs them, hatchling too);
- uv lock --check finds a Python inside requires-python without pyenv's shims, and names the role
  variable when none fits.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess

import pytest

from ansible_collections.airgap.uv.plugins.action.push import describe_tree
from ansible_collections.airgap.uv.plugins.plugin_utils._selection import SelectionOptions
from ansible_collections.airgap.uv.plugins.plugin_utils._wheelhouse import (
    WheelhouseBuilder,
    WheelhouseError,
    WheelhouseOptions,
)

from testbed_env import EXAMPLE, VENV_BIN  # same directory, on sys.path

UV = os.path.join(VENV_BIN, "uv")
TARGET = "cpython3.11.2-linux-x86_64-glibc2.36"


@pytest.fixture()
def project(tmp_path):
    directory = tmp_path / "hello-airgap"
    shutil.copytree(EXAMPLE, directory, ignore=shutil.ignore_patterns(".venv", "uv.lock", "__pycache__"))
    lock(directory)
    return directory


def lock(directory):
    subprocess.run([UV, "lock", "--quiet", "--directory", str(directory)], check=True)


def snapshot(directory):
    return describe_tree(str(directory)) if os.path.isdir(directory) else {}


def run(project, dest, cache, facts, check_mode=False, hosts=("web1",), **options):
    settings = dict(project=str(project), dest=str(dest), targets={host: facts for host in hosts},
                    selection=SelectionOptions(no_default_groups=True), cache_dir=cache, check_lock=False)
    settings.update(options)
    return WheelhouseBuilder(WheelhouseOptions(**settings), uv=UV, check_mode=check_mode).run()


def checked_then_real(project, dest, cache, facts, **options):
    """(check mode's result, the real run's result); check mode must leave dest as it was."""
    before = snapshot(dest)
    predicted = run(project, dest, cache, facts, check_mode=True, **options)
    assert snapshot(dest) == before
    assert "0" * 64 not in json.dumps(dataclasses.asdict(predicted))
    real = run(project, dest, cache, facts, **options)
    assert predicted.changed == real.changed
    assert predicted.targets == real.targets
    assert predicted.hosts == real.hosts
    for host in real.hosts.values():
        assert host["files"] == describe_tree(host["path"])
    return predicted, real


def shipped(dest):
    """The bytes of what a host gets (its target directory), by relative path."""
    return {name: meta["sha256"] for name, meta in snapshot(dest / "targets" / TARGET).items()}


def test_changed_and_check_mode_follow_what_ships(project, tmp_path, wheelhouse_cache, linux_x86_64_facts):
    dest = tmp_path / "wheelhouse"
    first, real = checked_then_real(project, dest, wheelhouse_cache, linux_x86_64_facts)
    assert real.changed and real.built == 1
    project_line = next(line for line in real.targets[TARGET]["install_file"]["requirements"].splitlines()
                        if line.startswith("hello-airgap=="))
    before = shipped(dest)

    # A lock change no host sees (a dev-group package, not deployed): the project is built anew
    # from a changed tree in check mode, into the cache, to the same wheel.
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('dev = ["pytest>=8"]', 'dev = ["pytest>=8", "iniconfig"]'))
    lock(project)
    predicted, real = checked_then_real(project, dest, wheelhouse_cache, linux_x86_64_facts)
    assert not real.changed and shipped(dest) == before
    assert project_line in predicted.targets[TARGET]["install_file"]["requirements"]

    # Another host of the same kind: nothing that ships changes.
    predicted, real = checked_then_real(project, dest, wheelhouse_cache, linux_x86_64_facts, hosts=("web1", "web2"))
    assert not real.changed and shipped(dest) == before

    # A change a host installs: changed in both modes, exactly the files the real run wrote.
    pyproject.write_text(pyproject.read_text().replace('"pyyaml>=6.0"', '"pyyaml>=6.0,<6.0.2"'))
    lock(project)
    predicted, real = checked_then_real(project, dest, wheelhouse_cache, linux_x86_64_facts, hosts=("web1", "web2"))
    assert real.changed and shipped(dest) != before


def test_editable_with_a_dependency_that_is_a_build_requirement(project, tmp_path, wheelhouse_cache,
                                                                linux_x86_64_facts):
    """pytest (dev group) needs packaging and pluggy; hatchling's build of the editable project too."""
    dest = tmp_path / "wheelhouse"
    predicted, real = checked_then_real(project, dest, wheelhouse_cache, linux_x86_64_facts, editable=True,
                                        selection=SelectionOptions(groups=("dev",)))
    install = real.targets[TARGET]["install_file"]
    both = [name for name in ("packaging", "pluggy")
            if "\n%s==" % name in install["requirements"] and "\n%s==" % name in install["build_constraints"]]
    assert both == ["packaging", "pluggy"], install
    # The same files: before, placing the second one was a SameFileError ("free space or fix permissions").
    for name in both:
        pinned = [line for line in (install["requirements"] + install["build_constraints"]).splitlines()
                  if line.startswith(name + "==")]
        assert len(pinned) == 2 and pinned[0] == pinned[1], pinned
    wheels = os.listdir(dest / "targets" / TARGET / "wheelhouse")
    assert len([w for w in wheels if w.startswith("packaging-")]) == 1, wheels
    manifest = json.loads((dest / "targets" / TARGET / "manifest.json").read_text())
    names = [entry["filename"] for entry in manifest["files"]]
    assert len(names) == len(set(names)), names
    assert install["wheels"] == sorted(set(install["wheels"]))
    again = run(project, dest, wheelhouse_cache, linux_x86_64_facts, editable=True,
                selection=SelectionOptions(groups=("dev",)))
    assert not again.changed


def _requires(project, spec):
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('requires-python = ">=3.9"', 'requires-python = "%s"' % spec))


def _pyenv_python(minor):
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    found = sorted(p for p in (os.path.join(root, "versions", v, "bin", "python3")
                               for v in os.listdir(os.path.join(root, "versions")) if v.startswith(minor + "."))
                   if os.path.exists(p)) if os.path.isdir(os.path.join(root, "versions")) else []
    if not found:
        pytest.fail("this test needs a pyenv build of Python %s (see the design notes: 3.9-3.13 exist here)" % minor)
    return found[-1]


def test_lock_check_finds_a_python_past_pyenv_shims(project, tmp_path, wheelhouse_cache, linux_x86_64_facts,
                                                    monkeypatch):
    """The controller runs 3.11 and the project wants 3.12+: uv's own search stops at pyenv's shim of
    python3.12 (or downloads a Python); the check runs with a pyenv build found by its path."""
    monkeypatch.delenv("UV_PYTHON", raising=False)
    monkeypatch.setenv("UV_PYTHON_DOWNLOADS", "never")
    _requires(project, ">=3.12")
    subprocess.run([UV, "lock", "--quiet", "--directory", str(project), "--python", _pyenv_python("3.12")],
                   check=True)
    shims = tmp_path / "shims"
    shims.mkdir()
    for name in ("python3.12", "python3.13", "python3"):
        (shims / name).write_text("#!/bin/sh\necho 'pyenv: %s: command not found' >&2\nexit 127\n" % name)
        (shims / name).chmod(0o755)
    monkeypatch.setenv("PATH", "%s:%s" % (shims, os.environ["PATH"]))
    facts = json.loads(json.dumps(linux_x86_64_facts).replace("3.11.2", "3.12.3").replace('"3.11"', '"3.12"'))
    result = run(project, tmp_path / "wheelhouse", wheelhouse_cache, facts, check_mode=True, check_lock=True)
    assert any(name.startswith("hello-airgap==") for name in result.targets[next(iter(result.targets))]["packages"])

    # None fits: the message names what the role offers, not an option it does not have.
    _requires(project, ">=3.99")
    (project / "uv.lock").write_text((project / "uv.lock").read_text().replace(
        'requires-python = ">=3.12"', 'requires-python = ">=3.99"'))
    future = json.loads(json.dumps(facts).replace("3.12.3", "3.99.0").replace('"3.12"', '"3.99"'))
    for explicit in (None, "/nonexistent/bin/python3"):
        with pytest.raises(WheelhouseError) as raised:
            run(project, tmp_path / "wheelhouse", wheelhouse_cache, future, check_mode=True, check_lock=True,
                lock_check_python=explicit)
        message = str(raised.value)
        assert "uv_deploy_lock_check_python" in message and "check_lock" not in message, message
