# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""End to end: controller wheelhouse -> real SSH -> offline test host -> uv sync, with real uv
and the real package index. Lock files are made at test time."""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess

import pytest

from testbed_env import EXAMPLE, REPO, TESTBED, VENV_BIN, ansible_env  # same directory, on sys.path

HOST = "e2e-1"
APP = "/opt/airgap-uv/hello-airgap/venv/bin/hello-airgap"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the offline test bed needs root")


@pytest.fixture(scope="module")
def inventory(tmp_path_factory):
    subprocess.run([TESTBED, "up", HOST], check=True)
    path = tmp_path_factory.mktemp("inv") / "inventory.yml"
    subprocess.run([TESTBED, "inventory", "--write", str(path), HOST], check=True)
    yield str(path)
    subprocess.run([TESTBED, "down", HOST], check=False)


@pytest.fixture()
def project(tmp_path):
    """A fresh copy of the example project, locked here (uv.lock is never committed)."""
    directory = tmp_path / "hello-airgap"
    shutil.copytree(EXAMPLE, directory, ignore=shutil.ignore_patterns(".venv", "uv.lock", "__pycache__"))
    subprocess.run([os.path.join(VENV_BIN, "uv"), "lock", "--quiet", "--directory", str(directory)], check=True)
    return directory


def deploy(inventory, project, tmp_path, *extra, env=None):
    record = tmp_path / "record"
    record.mkdir(exist_ok=True)
    playbook = os.path.join(REPO, "tests", "integration", "deploy_and_record.yml")
    proc = subprocess.run(
        [os.path.join(VENV_BIN, "ansible-playbook"), "-i", inventory, playbook,
         "-e", "uv_deploy_project=%s" % project, "-e", "e2e_record_dir=%s" % record,
         "-e", "uv_deploy_wheelhouse_dir=%s" % (tmp_path / "wheelhouse"), *extra],
        env=ansible_env(**(env or {})), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    result = None
    if (record / ("%s.json" % HOST)).exists():
        result = json.loads((record / ("%s.json" % HOST)).read_text())
    return proc, result


def recap_changed(output: str) -> int:
    match = re.search(r"^%s\s*:.*changed=(\d+)" % re.escape(HOST), output, re.M)
    assert match, output[-3000:]
    return int(match.group(1))


def on_host(*argv) -> subprocess.CompletedProcess:
    return subprocess.run([TESTBED, "exec", HOST, "--", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, check=False)


def test_deploy_run_noop_and_lock_change(inventory, project, tmp_path):
    first, result = deploy(inventory, project, tmp_path)
    assert first.returncode == 0, first.stdout[-4000:]
    installed = {item["name"] for item in result["sync"]["installed"]}
    assert installed == {"click", "hello-airgap", "markupsafe", "pyyaml"}
    # Windows-only colorama is in the universal lock but not for this host.
    assert "colorama" not in json.dumps(result["wheelhouse"]["targets"])
    app = on_host(APP, "--name", "e2e")
    assert app.returncode == 0, app.stderr
    assert "Hello e2e from hello-airgap 0.1.0" in app.stdout

    second, result = deploy(inventory, project, tmp_path)
    assert second.returncode == 0, second.stdout[-4000:]
    assert recap_changed(second.stdout) == 0
    assert result["wheelhouse"]["requests"] == 0

    # Downgrade one package through the lock: exactly that change is reported, in check mode first.
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"click>=8.1"', '"click==8.1.7"'))
    subprocess.run([os.path.join(VENV_BIN, "uv"), "lock", "--quiet", "--directory", str(project)], check=True)
    predicted_proc, predicted = deploy(inventory, project, tmp_path, "--check")
    assert predicted_proc.returncode == 0, predicted_proc.stdout[-4000:]
    third, result = deploy(inventory, project, tmp_path)
    assert third.returncode == 0, third.stdout[-4000:]
    changes = {key: result["sync"][key] for key in ("installed", "removed", "upgraded", "downgraded")}
    assert changes["downgraded"] == [{"name": "click", "from": "8.5.0", "to": "8.1.7"}], changes
    assert changes["installed"] == [] and changes["removed"] == [] and changes["upgraded"] == []
    assert {key: predicted["sync"][key] for key in changes} == changes
    assert "click: 8.1.7" in on_host(APP).stdout


def _fails_with(inventory, project, tmp_path, *patterns, env=None):
    proc, dummy = deploy(inventory, project, tmp_path, env=env)
    assert proc.returncode != 0, proc.stdout[-3000:]
    for pattern in patterns:
        assert re.search(pattern, proc.stdout), "%r not in:\n%s" % (pattern, proc.stdout[-3000:])
    return proc


def test_missing_lock(inventory, project, tmp_path):
    (project / "uv.lock").unlink()
    _fails_with(inventory, project, tmp_path, r"uv\.lock is missing; run 'uv lock' in")


def test_unparsable_lock(inventory, project, tmp_path):
    (project / "uv.lock").write_text("version = 1\n[[package]\nname = ")
    _fails_with(inventory, project, tmp_path, r"uv\.lock", r"(TOML|parse)")


def test_lock_out_of_date(inventory, project, tmp_path):
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"markupsafe>=2.1",', '"markupsafe>=2.1",\n    "six",'))
    _fails_with(inventory, project, tmp_path, r"does not match pyproject\.toml", r"run 'uv lock'")


def test_host_python_outside_requires_python(inventory, project, tmp_path):
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('requires-python = ">=3.9"', 'requires-python = ">=3.12"'))
    # uv lock wants an interpreter inside requires-python; the machines have pyenv builds.
    newer = sorted(glob.glob("/root/.pyenv/versions/3.1[2-9].*/bin/python3.1[2-9]"))
    assert newer, "this test needs a Python >= 3.12 on the controller (the machines have pyenv builds)"
    subprocess.run([os.path.join(VENV_BIN, "uv"), "lock", "--quiet", "--python", newer[0], "--directory", str(project)],
                   check=True, env=dict(os.environ, UV_PYTHON_DOWNLOADS="never"))
    # The controller can check the lock (it has a 3.12); the host's 3.11.2 is what is refused.
    _fails_with(inventory, project, tmp_path, r"3\.11\.2", r">=3\.12", HOST, env={"UV_PYTHON": newer[0]})


def test_package_without_wheel_for_host(inventory, project, tmp_path):
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"markupsafe>=2.1",', '"markupsafe>=2.1",\n    "pywin32>=306",'))
    subprocess.run([os.path.join(VENV_BIN, "uv"), "lock", "--quiet", "--directory", str(project)], check=True)
    _fails_with(inventory, project, tmp_path, r"pywin32 \S+ has no wheel for target cpython3\.11\.2-linux-x86_64",
                r"hosts %s" % HOST)


PY39 = sorted(glob.glob("/root/.pyenv/versions/3.9.*"))


@pytest.fixture(scope="module")
def mixed_inventory(tmp_path_factory):
    """Two offline hosts: Debian's Python 3.11 and a CPython 3.9 build mounted into the second."""
    assert PY39, "this test needs a CPython 3.9 build on the controller (the machines have pyenv builds)"
    names = ["e2e-py311", "e2e-py39"]
    subprocess.run([TESTBED, "up", names[0]], check=True)
    subprocess.run([TESTBED, "up", names[1], "--python", PY39[0]], check=True)
    directory = tmp_path_factory.mktemp("mixed")
    subprocess.run([TESTBED, "inventory", "--write", str(directory / "hosts.yml"), *names], check=True)
    (directory / "python.yml").write_text(
        "all:\n  hosts:\n    e2e-py39:\n      uv_deploy_python: %s/bin/python3.9\n" % PY39[0])
    yield [str(directory / "hosts.yml"), str(directory / "python.yml")], names
    subprocess.run([TESTBED, "down", *names], check=False)


def test_hosts_with_different_pythons_share_one_wheelhouse(mixed_inventory, project, tmp_path):
    inventories, names = mixed_inventory
    record = tmp_path / "record"
    record.mkdir()
    proc = subprocess.run(
        [os.path.join(VENV_BIN, "ansible-playbook"), "-i", inventories[0], "-i", inventories[1],
         os.path.join(REPO, "tests", "integration", "deploy_and_record.yml"),
         "-e", "uv_deploy_project=%s" % project, "-e", "e2e_record_dir=%s" % record,
         "-e", "uv_deploy_wheelhouse_dir=%s" % (tmp_path / "wheelhouse")],
        env=ansible_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:]
    wheelhouse = json.loads((record / "e2e-py39.json").read_text())["wheelhouse"]
    targets = {host: wheelhouse["hosts"][host]["target"] for host in names}
    assert targets["e2e-py311"].startswith("cpython3.11.") and targets["e2e-py39"].startswith("cpython3.9.")
    # One wheelhouse, two install files: click is forked by Python version in this lock.
    packages = {host: wheelhouse["targets"][targets[host]]["packages"] for host in names}
    assert "click==8.1.8" in packages["e2e-py39"] and "click==8.5.0" in packages["e2e-py311"]
    for host, python in (("e2e-py311", "3.11"), ("e2e-py39", "3.9")):
        app = subprocess.run([TESTBED, "exec", host, "--", APP], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, check=False)
        assert app.returncode == 0, app.stderr
        assert "python: %s." % python in app.stdout
        assert "pyyaml_c_loader: true" in app.stdout


FAKEEXT_SETUP = """\
from setuptools import setup
from setuptools.dist import Distribution


class BinaryDistribution(Distribution):
    # A platform-specific wheel without a compiler, so the minimal test host can build it.
    def has_ext_modules(self):
        return True


setup(distclass=BinaryDistribution, packages=["fakeext"])
"""


def test_editable_project_and_host_built_sdist(inventory, project, tmp_path):
    """uv_deploy_editable and uv_deploy_host_builds: the host builds from shipped sources, offline,
    with the shipped and pinned build requirements (hatchling + editables, setuptools)."""
    fakeext = project.parent / "fakeext"
    (fakeext / "fakeext").mkdir(parents=True)
    (fakeext / "fakeext" / "__init__.py").write_text("ANSWER = 42\n")
    (fakeext / "setup.py").write_text(FAKEEXT_SETUP)
    (fakeext / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n\n'
        '[project]\nname = "fakeext"\nversion = "1.0"\n')
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"markupsafe>=2.1",', '"markupsafe>=2.1",\n    "fakeext",')
                         + '\n[tool.uv.sources]\nfakeext = { path = "../fakeext" }\n')
    subprocess.run([os.path.join(VENV_BIN, "uv"), "lock", "--quiet", "--directory", str(project)], check=True)
    extra = ("-e", json.dumps({"uv_deploy_editable": True, "uv_deploy_host_builds": ["fakeext"]}))

    first, result = deploy(inventory, project, tmp_path, *extra)
    assert first.returncode == 0, first.stdout[-4000:]
    # The host may hold the example from an earlier test of this module: check the whole set.
    assert {line.split("==")[0] for line in result["sync"]["packages"]} == {
        "click", "hello-airgap", "markupsafe", "pyyaml", "fakeext"}
    assert "fakeext" in {item["name"] for item in result["sync"]["installed"]}
    target = result["wheelhouse"]["targets"][result["wheelhouse"]["hosts"][HOST]["target"]]
    assert target["host_built"] == 2  # fakeext, and hello-airgap (editable)
    constraints = target["install_file"]["build_constraints"]
    for name in ("hatchling==", "editables==", "setuptools=="):
        assert name in constraints, constraints
    python = "/opt/airgap-uv/hello-airgap/venv/bin/python"
    probe = on_host(python, "-c", "import hello_airgap, fakeext, importlib.metadata as m; "
                    "print(hello_airgap.__file__); print(fakeext.ANSWER); print(m.distribution('fakeext').read_text('WHEEL'))")
    assert probe.returncode == 0, probe.stderr
    # Editable: the package is imported from the sources unpacked inside the release.
    assert re.search(r"/\.venv\.releases/[^/]+/src/hello_airgap-0\.1\.0/src/hello_airgap/__init__\.py", probe.stdout), \
        probe.stdout
    # Built on the host, with the pinned setuptools, for the host's own Python.
    pinned = re.search(r"^setuptools==(\S+)", constraints, re.M).group(1)
    assert "42" in probe.stdout and "Generator: setuptools (%s)" % pinned in probe.stdout, probe.stdout
    assert "Tag: cp311-cp311-linux_x86_64" in probe.stdout, probe.stdout
    assert on_host(APP, "--name", "editable").returncode == 0

    second, result = deploy(inventory, project, tmp_path, *extra)
    assert second.returncode == 0, second.stdout[-4000:]
    assert recap_changed(second.stdout) == 0

    # A source change without a version change: check mode predicts the reinstall the real run does.
    cli = project / "src" / "hello_airgap" / "cli.py"
    cli.write_text(cli.read_text() + "\n# changed\n")
    predicted_proc, predicted = deploy(inventory, project, tmp_path, "--check", *extra)
    assert predicted_proc.returncode == 0, predicted_proc.stdout[-4000:]
    third, result = deploy(inventory, project, tmp_path, *extra)
    assert third.returncode == 0, third.stdout[-4000:]
    changes = {key: result["sync"][key] for key in ("installed", "removed", "upgraded", "downgraded", "reinstalled")}
    assert changes == {key: predicted["sync"][key] for key in changes}
    assert changes["reinstalled"] == [{"name": "hello-airgap", "version": "0.1.0"}], changes
    assert not any(changes[key] for key in ("installed", "removed", "upgraded", "downgraded")), changes
    changed_source = on_host("grep", "-c", "# changed", "/opt/airgap-uv/hello-airgap/venv/src/hello_airgap-0.1.0/src/"
                             "hello_airgap/cli.py")
    assert changed_source.stdout.strip() == "1", changed_source


def test_editable_with_the_dev_group(inventory, project, tmp_path):
    """Issue 11: editable installs with packages that are both a dependency and a build requirement
    (pytest, in the dev group, needs packaging and pluggy; hatchling builds the project with them).
    This failed with "... are the same file ... free space or fix permissions"."""
    extra = ("-e", json.dumps({"uv_deploy_editable": True, "uv_deploy_groups": ["dev"]}))
    predicted_proc, predicted = deploy(inventory, project, tmp_path, "--check", *extra)
    assert predicted_proc.returncode == 0, predicted_proc.stdout[-4000:]
    first, result = deploy(inventory, project, tmp_path, *extra)
    assert first.returncode == 0, first.stdout[-4000:]
    keys = ("installed", "removed", "upgraded", "downgraded", "reinstalled")
    assert {key: predicted["sync"][key] for key in keys} == {key: result["sync"][key] for key in keys}
    assert recap_changed(predicted_proc.stdout) == recap_changed(first.stdout)
    assert {"hello-airgap", "pytest", "packaging", "pluggy"} <= {line.split("==")[0] for line in result["sync"]["packages"]}
    python = "/opt/airgap-uv/hello-airgap/venv/bin/python"
    probe = on_host(python, "-c", "import pytest, packaging, pluggy, hello_airgap; print(hello_airgap.__file__)")
    assert probe.returncode == 0, probe.stderr
    assert "/src/hello_airgap-0.1.0/src/hello_airgap/" in probe.stdout, probe.stdout
    second, result = deploy(inventory, project, tmp_path, *extra)
    assert second.returncode == 0, second.stdout[-4000:]
    assert recap_changed(second.stdout) == 0
