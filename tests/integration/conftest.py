# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures for end-to-end tests against real servers on loopback.

* ``pypi_server`` (session): a real pypiserver on 127.0.0.1 (free port) that requires
  HTTP Basic auth for listing and downloading; random username and password.
* ``public_wheels`` (session): real wheels fetched with pip from the package index: six and
  idna (pure) and markupsafe (cp311, manylinux x86_64).
* ``build_wheel`` (session): builds a tiny pure wheel with ``uv build`` from a generated project.
* ``private_index`` (session): the server holding the public wheels plus
  ``airgap-private-demo`` 1.0.0 (depends on six), which exists only there.
* ``isolated_index_env``: the test sees no index settings, credentials, netrc or user uv.toml
  of the developer's machine.
* ``uv_executable`` (session), ``linux_x86_64_facts`` (target facts of a glibc x86_64
  CPython 3.11 host) and ``wheelhouse_cache`` (a fresh cache dir that already holds the uv
  release lock and uv's linux x86_64 wheel, so a test downloads only its own artifacts).
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional, Sequence

import pytest

# tests/conftest.py makes the collection importable as ansible_collections.airgap.uv.

# Index selection and credentials a test must not inherit from the developer's shell.
INDEX_ENV_VARS = ("UV_INDEX", "UV_DEFAULT_INDEX", "UV_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_CONFIG_FILE",
                  "UV_NO_CONFIG", "NETRC")


def clean_index_env(environ: Optional[dict] = None) -> dict:
    """A copy of ENVIRON (default os.environ) without index or credential settings."""
    env = dict(os.environ if environ is None else environ)
    for key in list(env):
        if key in INDEX_ENV_VARS or (key.startswith("UV_INDEX_") and key.endswith(("_USERNAME", "_PASSWORD"))):
            del env[key]
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class PyPIServer:
    """A running pypiserver; ``add`` puts a file into the directory it serves."""

    url: str
    port: int
    username: str = field(repr=False)
    password: str = field(repr=False)
    packages_dir: str
    process: subprocess.Popen = field(repr=False)

    @property
    def simple_url(self) -> str:
        return self.url + "simple/"

    def add(self, path: str) -> str:
        target = os.path.join(self.packages_dir, os.path.basename(path))
        shutil.copyfile(path, target)
        return target

    def uv_env(self, index_name: str = "private") -> dict:
        """os.environ without index settings, plus UV_INDEX_<NAME>_USERNAME/_PASSWORD for this server."""
        env = clean_index_env()
        prefix = "UV_INDEX_" + "".join(c if c.isalnum() else "_" for c in index_name.upper())
        env.update({prefix + "_USERNAME": self.username, prefix + "_PASSWORD": self.password})
        return env

    def netrc_entry(self) -> str:
        return "machine 127.0.0.1\n  login %s\n  password %s\n" % (self.username, self.password)

    def get(self, path: str, auth: bool = True) -> int:
        """HTTP status of GET PATH, with or without the server's credentials."""
        request = urllib.request.Request(self.url + path.lstrip("/"))
        if auth:
            token = base64.b64encode(("%s:%s" % (self.username, self.password)).encode()).decode()
            request.add_header("Authorization", "Basic " + token)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code


def _start_pypiserver(packages_dir: str, htpasswd: str, log_path: str) -> tuple[subprocess.Popen, int]:
    last = ""
    for dummy in range(3):
        port = free_port()
        log = open(log_path, "ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "pypiserver", "run", "--host", "127.0.0.1", "--port", str(port),
             "--passwords", htpasswd, "--authenticate", "download,list,update", "--disable-fallback",
             "--hash-algo", "sha256", "--backend", "simple-dir", packages_dir],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/health" % port, timeout=1) as response:
                    if response.status == 200:
                        return process, port
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        if process.poll() is None:
            process.kill()
        process.wait()
        with open(log_path, encoding="utf-8", errors="replace") as handle:
            last = handle.read()[-2000:]
    raise RuntimeError("pypiserver did not start on loopback:\n%s" % last)


@pytest.fixture(scope="session")
def pypi_server(tmp_path_factory) -> Iterator[PyPIServer]:
    """A real pypiserver on 127.0.0.1 requiring basic auth for list and download."""
    pytest.importorskip("pypiserver")
    apache = pytest.importorskip("passlib.apache")
    base = tmp_path_factory.mktemp("pypiserver")
    packages = base / "packages"
    packages.mkdir()
    username = "airgap-user-" + secrets.token_hex(6)
    password = "pw-" + secrets.token_urlsafe(18)
    htpasswd = apache.HtpasswdFile(str(base / "htpasswd"), new=True)
    htpasswd.set_password(username, password)
    htpasswd.save()
    process, port = _start_pypiserver(str(packages), str(base / "htpasswd"), str(base / "server.log"))
    server = PyPIServer(url="http://127.0.0.1:%d/" % port, port=port, username=username, password=password,
                        packages_dir=str(packages), process=process)
    try:
        assert server.get("simple/", auth=False) == 401, "pypiserver must require authentication"
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture()
def isolated_index_env(monkeypatch, tmp_path) -> None:
    """No index settings, credentials, netrc or user uv.toml from the developer's machine."""
    keep = clean_index_env()
    for key in list(os.environ):
        if key not in keep:
            monkeypatch.delenv(key)
    empty = tmp_path / "empty-netrc"
    empty.write_text("")
    monkeypatch.setenv("NETRC", str(empty))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))


@pytest.fixture(scope="session")
def uv_executable() -> str:
    """The uv to test with: $AIRGAP_UV_TEST_UV, the one beside this Python, or uv on PATH."""
    candidates = [os.environ.get("AIRGAP_UV_TEST_UV"), os.path.join(os.path.dirname(sys.executable), "uv"),
                  shutil.which("uv")]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail("uv not found (set AIRGAP_UV_TEST_UV)")


PUBLIC_WHEELS = ("six", "idna", "markupsafe")
PRIVATE_PACKAGE = "airgap-private-demo"


@pytest.fixture(scope="session")
def public_wheels(tmp_path_factory) -> dict[str, str]:
    """{name: wheel path} of real wheels for CPython 3.11 on manylinux x86_64, fetched by pip."""
    directory = tmp_path_factory.mktemp("public-wheels")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
         "--only-binary", ":all:", "--platform", "manylinux2014_x86_64", "--python-version", "3.11",
         "--implementation", "cp", "--abi", "cp311", "--dest", str(directory), *PUBLIC_WHEELS],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    assert proc.returncode == 0, "pip download %s failed:\n%s" % (" ".join(PUBLIC_WHEELS), proc.stdout)
    found = {}
    for name in os.listdir(directory):
        if name.endswith(".whl"):
            found[name.split("-", 1)[0].lower()] = str(directory / name)
    assert sorted(found) == sorted(PUBLIC_WHEELS), found
    return found


@pytest.fixture(scope="session")
def build_wheel(tmp_path_factory, uv_executable) -> Callable[..., str]:
    """build_wheel(name, version="1.0.0", dependencies=()) -> path of a pure wheel built by uv."""
    counter = [0]

    def _build(name: str, version: str = "1.0.0", dependencies: Sequence[str] = ()) -> str:
        counter[0] += 1
        project = tmp_path_factory.mktemp("wheel-src-%d" % counter[0])
        module = name.replace("-", "_").lower()
        (project / "src" / module).mkdir(parents=True)
        (project / "src" / module / "__init__.py").write_text("VERSION = %r\n" % version, encoding="utf-8")
        deps = ", ".join('"%s"' % dep for dep in dependencies)
        (project / "pyproject.toml").write_text(
            '[project]\nname = "%s"\nversion = "%s"\nrequires-python = ">=3.8"\ndependencies = [%s]\n\n'
            '[build-system]\nrequires = ["uv_build>=0.8,<0.14"]\nbuild-backend = "uv_build"\n'
            % (name, version, deps), encoding="utf-8")
        out = project / "dist"
        # uv builds with its own backend here: no index is needed.
        proc = subprocess.run([uv_executable, "build", "--wheel", "--offline", "--no-config", "--quiet",
                               "--out-dir", str(out), str(project)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False,
                              env=clean_index_env())
        assert proc.returncode == 0, "uv build of %s failed:\n%s" % (name, proc.stdout)
        wheels = [w for w in os.listdir(out) if w.endswith(".whl")]
        assert len(wheels) == 1, wheels
        return str(out / wheels[0])

    return _build


@dataclass
class PrivateIndex:
    server: PyPIServer
    # name -> path of the file the server holds
    wheels: dict
    # the package that exists only on this index
    package: str = PRIVATE_PACKAGE


@pytest.fixture(scope="session")
def private_index(pypi_server, public_wheels, build_wheel) -> PrivateIndex:
    """pypi_server holding six, idna, markupsafe and airgap-private-demo 1.0.0 (only there)."""
    wheels = {name: pypi_server.add(path) for name, path in public_wheels.items()}
    wheels[PRIVATE_PACKAGE] = pypi_server.add(build_wheel(PRIVATE_PACKAGE, "1.0.0", ["six"]))
    return PrivateIndex(server=pypi_server, wheels=wheels)


@pytest.fixture(scope="session")
def linux_x86_64_facts() -> dict:
    """airgap_uv_target facts of a Debian 12 like host: glibc 2.36, x86_64, CPython 3.11."""
    env = {
        "implementation_name": "cpython", "implementation_version": "3.11.2", "os_name": "posix",
        "platform_machine": "x86_64", "platform_release": "6.1.0", "platform_system": "Linux",
        "platform_version": "#1 SMP", "python_full_version": "3.11.2",
        "platform_python_implementation": "CPython", "python_version": "3.11", "sys_platform": "linux",
    }
    return {"marker_environment": env, "os": "linux", "arch": "x86_64",
            "libc": {"family": "glibc", "version": "2.36"},
            "python": {"version": "3.11.2", "implementation": "cpython", "abiflags": ""}}


@pytest.fixture(scope="session")
def _wheelhouse_seed(tmp_path_factory, uv_executable, linux_x86_64_facts) -> str:
    """A cache dir after one wheelhouse run of an empty project: uv's release lock and wheel."""
    from ansible_collections.airgap.uv.plugins.plugin_utils._selection import SelectionOptions
    from ansible_collections.airgap.uv.plugins.plugin_utils._wheelhouse import WheelhouseBuilder, WheelhouseOptions

    base = tmp_path_factory.mktemp("wheelhouse-seed")
    project = base / "empty"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "airgap-empty"\nversion = "0"\nrequires-python = ">=3.8"\ndependencies = []\n\n'
        '[tool.uv]\npackage = false\n', encoding="utf-8")
    env = clean_index_env()
    proc = subprocess.run([uv_executable, "lock", "--quiet", "--directory", str(project)], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    assert proc.returncode == 0, proc.stdout
    cache = base / "cache"
    WheelhouseBuilder(WheelhouseOptions(project=str(project), dest=str(base / "dest"),
                                        targets={"seed": linux_x86_64_facts}, cache_dir=str(cache),
                                        selection=SelectionOptions(no_default_groups=True), check_lock=False),
                      uv=uv_executable).run()
    return str(cache)


@pytest.fixture()
def wheelhouse_cache(tmp_path, _wheelhouse_seed) -> str:
    """A fresh wheelhouse cache_dir that already holds the uv release lock and uv's wheel."""
    cache = tmp_path / "cache"
    os.makedirs(cache)
    shutil.copytree(os.path.join(_wheelhouse_seed, "uv-releases"), str(cache / "uv-releases"))
    shutil.copytree(os.path.join(_wheelhouse_seed, "store"), str(cache / "store"), copy_function=os.link)
    return str(cache)
