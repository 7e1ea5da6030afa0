# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""`uv_workstation_network: fallback` (issue 13): the enclave's index when it answers, the cache when not.

A real pypiserver on the controller's end of the host's link (10.203.X.1) serves an older ruff than
the one the role cached. As the user, with no flag typed: with the server stopped, `uvx ruff` runs
the cached ruff; started, the enclave's ruff (the server logs the download); stopped again, it
still works; `uv sync --locked` and `uv run pytest` work in both states and uv.lock is unchanged.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request

import pytest
import yaml

from test_workstation import CHECKOUT, USER, controller_digests, digests, make_project, on_host
from testbed_env import REPO, TESTBED, VENV_BIN, ansible_env

HOST = "ws-3"
ENCLAVE_RUFF = "0.17.5"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the offline test bed needs root")


class Enclave:
    """A pypiserver bound to ADDRESS, stopped and started at will."""

    def __init__(self, address: str, packages: str, log: str) -> None:
        self.address, self.packages, self.log = address, packages, log
        with __import__("socket").socket() as sock:
            sock.bind((address, 0))
            self.port = sock.getsockname()[1]
        self.process = None

    @property
    def url(self) -> str:
        return "http://%s:%d/simple/" % (self.address, self.port)

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pypiserver", "run", "--host", self.address, "--port", str(self.port),
                 "-a", ".", "-P", ".", "--disable-fallback", "--hash-algo", "sha256", "--backend", "simple-dir",
                 "-v", "--log-stream", "stderr", "--log-req-frmt", "request %(bottle.request)s",
                 self.packages], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url, timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("pypiserver did not answer on %s" % self.url)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def served(self, name: str) -> int:
        with open(self.log, encoding="utf-8", errors="replace") as handle:
            return handle.read().count(name)


@pytest.fixture(scope="module")
def enclave(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fallback")
    server = None
    try:
        subprocess.run([TESTBED, "down", HOST], check=True, stdout=subprocess.DEVNULL)
        up = subprocess.run([TESTBED, "up", HOST], check=True, stdout=subprocess.PIPE, text=True)
        address = up.stdout.strip().split("\t")[-1]
        made = on_host(HOST, "useradd -m -s /bin/bash %s; id %s" % (USER, USER))
        assert "uid=" in made.stdout, made.stdout
        inventory = tmp / "inventory.yml"
        subprocess.run([TESTBED, "inventory", "--write", str(inventory), HOST], check=True, stdout=subprocess.DEVNULL)
        assert yaml.safe_load(inventory.read_text(encoding="utf-8"))["all"]["hosts"][HOST]["ansible_host"] == address
        packages = tmp / "packages"
        subprocess.run([os.path.join(VENV_BIN, "python"), "-m", "pip", "download", "-q", "--no-deps", "--only-binary",
                        ":all:", "--platform", "manylinux_2_17_x86_64", "--python-version", "3.11",
                        "ruff==%s" % ENCLAVE_RUFF, "-d", str(packages)], check=True)
        server = Enclave(address.rsplit(".", 1)[0] + ".1", str(packages), str(tmp / "pypiserver.log"))
        yield {"tmp": tmp, "inventory": str(inventory), "project": make_project(tmp), "server": server}
    finally:
        if server is not None:
            server.stop()
        subprocess.run([TESTBED, "down", HOST], check=False, stdout=subprocess.DEVNULL)


def run(command: str) -> str:
    proc = on_host(HOST, "cd %s && %s" % (CHECKOUT, command), user=USER)
    assert proc.returncode == 0, "%s failed:\n%s" % (command, proc.stdout[-3000:])
    return proc.stdout


def test_fallback_uses_the_index_when_it_answers_and_the_cache_when_not(enclave):
    server = enclave["server"]
    proc = subprocess.run(
        ["ansible-playbook", "-i", enclave["inventory"], "airgap.uv.workstation",
         "-e", "uv_workstation_project=%s" % enclave["project"], "-e", "uv_workstation_user=%s" % USER,
         "-e", "uv_workstation_checkout=%s" % CHECKOUT, "-e", "uv_workstation_copy=true",
         "-e", "uv_workstation_wheelhouse_dir=%s" % (enclave["tmp"] / "controller"),
         "-e", "uv_workstation_network=fallback", "-e", "uv_workstation_index_url=%s" % server.url,
         "-e", '{"uv_workstation_tools": ["ruff"]}'],
        cwd=REPO, env=ansible_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:]
    config = run("cat ~/.config/uv/uv.toml")
    assert "offline = false" in config and server.url in config

    # Index down (never started): everything from the cache.
    cached = run("uvx ruff --version").splitlines()[-1]
    assert cached.startswith("ruff ") and cached != "ruff " + ENCLAVE_RUFF, cached
    run("uv sync --locked")
    assert "1 passed" in run("uv run pytest -q")

    # Index up: uvx resolves against it first and takes its ruff.
    server.start()
    assert run("uvx ruff --version").splitlines()[-1] == "ruff " + ENCLAVE_RUFF
    assert server.served("ruff-%s" % ENCLAVE_RUFF) > 0
    run("uv sync --locked")
    assert "1 passed" in run("uv run pytest -q")

    # Index gone again: the same commands still work.
    server.stop()
    assert run("uvx ruff --version").splitlines()[-1].startswith("ruff ")
    assert "Installed 1 executable: ruff" in run("uv tool install ruff")
    run("uv sync --locked")
    assert "wsdemo says from git" in run("uv run wsdemo")
    assert digests(HOST) == controller_digests({"project": enclave["project"]})
