# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Issue 10, item 3: the controller ships a file only once its content matches the lock.

Real uv, the real package index, the example project locked at test time; the push case runs
the collection through ansible-playbook against an offline test bed host over real SSH.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from ansible_collections.airgap.uv.plugins.plugin_utils._wheelhouse import WheelhouseBuilder, WheelhouseOptions

from testbed_env import EXAMPLE, REPO, TESTBED, VENV_BIN, ansible_env  # same directory, on sys.path

HOST = "trust-1"
ROOT = "/opt/airgap-uv/hello-airgap"
UV = os.path.join(VENV_BIN, "uv")


def flip_byte(path, offset=100):
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0x01]))


def sha256(path):
    import hashlib

    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


@pytest.fixture()
def project(tmp_path):
    directory = tmp_path / "hello-airgap"
    shutil.copytree(EXAMPLE, directory, ignore=shutil.ignore_patterns(".venv", "uv.lock", "__pycache__"))
    subprocess.run([UV, "lock", "--quiet", "--directory", str(directory)], check=True)
    return directory


def linux_facts():
    """Target facts of a CPython 3.11 glibc 2.36 x86_64 host, as airgap.uv.target_facts reports them."""
    env = {"implementation_name": "cpython", "implementation_version": "3.11.2", "os_name": "posix",
           "platform_machine": "x86_64", "platform_release": "6.1.0", "platform_system": "Linux",
           "platform_version": "#1 SMP", "python_full_version": "3.11.2", "platform_python_implementation": "CPython",
           "python_version": "3.11", "sys_platform": "linux"}
    return {"marker_environment": env, "os": "linux", "arch": "x86_64", "libc": {"family": "glibc", "version": "2.36"},
            "python": {"version": "3.11.2", "implementation": "cpython", "abiflags": ""}}


def wheel_of(target_dir, name):
    manifest = json.loads((target_dir / "manifest.json").read_text())
    return next(entry for entry in manifest["files"] if entry["filename"].startswith(name + "-"))


def test_a_flipped_byte_in_the_store_is_fetched_again_from_the_index(project, tmp_path):
    options = WheelhouseOptions(project=str(project), dest=str(tmp_path / "wheelhouse"),
                                targets={"web1": linux_facts()}, cache_dir=str(tmp_path / "cache"))
    first = WheelhouseBuilder(options, uv=UV).run()
    target_dir = tmp_path / "wheelhouse" / "targets" / first.hosts["web1"]["target"]
    click = wheel_of(target_dir, "click")
    store_file = os.path.join(options.cache_dir, "store", "sha256", click["sha256"][:2], click["sha256"])
    published = target_dir / "wheelhouse" / click["filename"]
    assert os.path.samefile(store_file, published)
    flip_byte(store_file)
    assert sha256(published) != click["sha256"]

    again = WheelhouseBuilder(options, uv=UV).run()
    assert again.changed and again.downloaded == 1 and again.requests == 1
    assert len(again.repaired) == 1 and store_file in again.repaired[0]
    for entry in json.loads((target_dir / "manifest.json").read_text())["files"]:
        name = entry["filename"]
        assert sha256(target_dir / (name if "/" in name else "wheelhouse/" + name)) == entry["sha256"], name
    quiet = WheelhouseBuilder(options, uv=UV).run()
    assert not quiet.changed and quiet.requests == 0 and not quiet.repaired


@pytest.fixture(scope="module")
def inventory(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("the offline test bed needs root")
    subprocess.run([TESTBED, "up", HOST], check=True)
    path = tmp_path_factory.mktemp("inv") / "inventory.yml"
    subprocess.run([TESTBED, "inventory", "--write", str(path), HOST], check=True)
    yield str(path)
    subprocess.run([TESTBED, "down", HOST], check=False)


def playbook(inventory, path, *extra):
    return subprocess.run([os.path.join(VENV_BIN, "ansible-playbook"), "-i", inventory, str(path), *extra],
                          env=ansible_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)


def on_host(*argv):
    return subprocess.run([TESTBED, "exec", HOST, "--", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, check=False)


def test_push_never_sends_a_corrupt_controller_file(inventory, project, tmp_path):
    wheelhouse = tmp_path / "wheelhouse"
    deploy = [os.path.join(REPO, "playbooks", "deploy_offline.yml"), "-e", "uv_deploy_project=%s" % project,
              "-e", "uv_deploy_wheelhouse_dir=%s" % wheelhouse]
    first = playbook(inventory, *deploy)
    assert first.returncode == 0, first.stdout[-4000:]
    target_dir = next((wheelhouse / "targets").iterdir())
    click = wheel_of(target_dir, "click")
    on_host_path = "%s/wheelhouse/%s" % (ROOT, click["filename"])
    assert on_host("sha256sum", on_host_path).stdout.split()[0] == click["sha256"]

    # The controller's copy goes bad after the wheelhouse was built; push alone must refuse it.
    controller_path = target_dir / "wheelhouse" / click["filename"]
    flip_byte(controller_path)
    push = tmp_path / "push.yml"
    push.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n    - airgap.uv.push:\n"
                    "        src: %s\n        dest: %s\n" % (target_dir, ROOT))
    refused = playbook(inventory, push)
    assert refused.returncode != 0, refused.stdout[-3000:]
    output = " ".join(refused.stdout.split())
    assert "airgap.uv.push sent nothing" in output, refused.stdout[-3000:]
    assert "%s has sha256" % controller_path in output and "manifest.json records %s" % click["sha256"] in output
    assert "The host's files were not touched" in output and "run the wheelhouse step again" in output
    assert on_host("sha256sum", on_host_path).stdout.split()[0] == click["sha256"]

    # The whole deployment repairs the controller's copy (the wheelhouse re-fetches it) and says so.
    second = playbook(inventory, *deploy)
    assert second.returncode == 0, second.stdout[-4000:]
    assert "did not match its sha256" in second.stdout and "fetched again" in second.stdout
    assert sha256(controller_path) == click["sha256"]
    assert on_host("sha256sum", on_host_path).stdout.split()[0] == click["sha256"]
