# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""A controller INSIDE the air gap (issue 12), for end-to-end tests on the offline test bed.

Issue 12's inside step runs "in a process whose network namespace reaches only the test hosts
and whose PATH has no uv", on a controller with only ansible-core and this collection installed
from its tarball. This module makes that controller once per session:

- a virtual environment outside the repository, made the way the README's "Bring Ansible and
  this collection inside" makes it: outside (with the index), a signed bundle of
  examples/inside-controller (ansible-core as a uv project) for the system ``python3`` (Debian
  12's, like a minimal controller); inside, with no network, the signature checked and the venv
  made by the bundled uv from the bundle's PEP 751 lock;
- the collection built from the checkout with ``ansible-galaxy collection build`` and installed
  from that tarball with ``ansible-galaxy collection install --offline``, inside the namespace;
- every inside command runs under ``unshare --net --pid --fork --kill-child --mount-proc``:
  its network namespace has only loopback, and when the command ends, whatever it left behind
  (ssh ControlPersist masters) ends with it. PATH is that venv's bin plus /usr/bin:/bin, the
  environment is built from nothing (no dev venv, no uv, no proxies), HOME is a temp dir;
- the test hosts' sshd is reached through :class:`UnixRelay`: one UNIX socket per host (the
  file system crosses network namespaces) served from the root namespace, forwarding to the
  host's ADDRESS:22 over its veth link; ssh gets there by ``ProxyCommand`` (inside_files/
  uds_connect.py, standard library only: a minimal Debian 12 has no nc or socat). The test
  bed's pinned known_hosts and key options stay as they are; ansible_host stays the address,
  so host key checking looks up the same known_hosts line as outside (no HostKeyAlias needed);
- optionally (``block_imports=True``) inside_files/sitecustomize.py makes ``packaging`` and
  ``tomli`` unimportable for modules under ``ansible_collections.airgap`` while ansible-core
  keeps them, and logs every import attempt of them (:meth:`InsideController.imports`).

Fixtures (root only; import them into the test module):
``from inside_controller import inside_controller, inside_inventory, inside_relay, run_inside``

* ``inside_controller`` (session) -> :class:`InsideController`;
* ``inside_relay`` (session) -> :class:`UnixRelay`, closed at the end of the session;
* ``inside_inventory`` (session) -> ``inventory(hosts) -> path``: an inventory for these test-bed
  hosts (already up) that the inside controller can use;
* ``run_inside`` (session) -> :meth:`InsideController.run`.
"""

from __future__ import annotations

import asyncio
import functools
import dataclasses
import json
import os
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping, Optional, Sequence
from urllib.parse import urlsplit

import pytest
import yaml

from testbed_env import REPO, TESTBED, VENV_BIN  # same directory, on sys.path

FILES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "inside_files")
# The interpreter a minimal Debian 12 controller has; override to try another.
CONTROLLER_PYTHON = os.environ.get("AIRGAP_INSIDE_PYTHON", "/usr/bin/python3")
SYSTEM_PATH = "/usr/bin:/bin"
UNSHARE = "/usr/bin/unshare"
NAMESPACE = ("--net", "--pid", "--fork", "--kill-child", "--mount-proc")
IMPORT_LOG_VARIABLE = "AIRGAP_INSIDE_IMPORT_LOG"
# sun_path holds 108 bytes, the terminating NUL included.
MAX_SOCKET_PATH = 107
SETUP_TIMEOUT = 600


@dataclass(frozen=True)
class InsideController:
    """Where the inside controller lives, and how to run a command on it."""

    root: str  # everything below is under it (outside the repository)
    venv: str  # ansible-core and its dependencies, nothing else
    collections: str  # ANSIBLE_COLLECTIONS_PATH: the copy installed from the tarball
    home: str
    blocker: str  # the directory holding sitecustomize.py (put on PYTHONPATH by block_imports)
    connector: str  # uds_connect.py, the ssh ProxyCommand
    tarball: str
    ansible_core: str  # its version, as the bundle of examples/inside-controller installed it
    ip: str  # ip(8), to bring loopback up in the new namespace
    timings: dict = field(default_factory=dict, compare=False)  # setup step -> seconds

    @property
    def bin(self) -> str:
        return os.path.join(self.venv, "bin")

    @property
    def python(self) -> str:
        return os.path.join(self.bin, "python3")

    @property
    def path(self) -> str:
        """PATH inside: the venv's bin and the system's, nothing of the developer's."""
        return self.bin + os.pathsep + SYSTEM_PATH

    @property
    def installed(self) -> str:
        """The installed collection's directory."""
        return os.path.join(self.collections, "ansible_collections", "airgap", "uv")

    @property
    def import_log(self) -> str:
        return os.path.join(self.root, "imports.jsonl")

    def env(self, env_extra: Optional[Mapping[str, str]] = None, block_imports: bool = False) -> dict[str, str]:
        """The whole environment of an inside command (nothing inherited), ENV_EXTRA applied last."""
        env = {
            "PATH": self.path,
            "HOME": self.home,
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "ANSIBLE_CONFIG": os.path.join(self.root, "ansible.cfg"),
            "ANSIBLE_COLLECTIONS_PATH": self.collections,
            "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
            "ANSIBLE_HOST_KEY_CHECKING": "true",
            "ANSIBLE_PIPELINING": "true",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_NOCOLOR": "1",
            IMPORT_LOG_VARIABLE: self.import_log,
        }
        env.update(env_extra or {})
        if block_imports:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [self.blocker, env.get("PYTHONPATH")]))
        return env

    def command(self, args: Sequence[str]) -> list[str]:
        """ARGS wrapped to run in a fresh network (loopback only), pid and mount namespace."""
        script = '%s link set lo up && exec "$@"' % shlex.quote(self.ip)
        return [UNSHARE, *NAMESPACE, "--", "/bin/sh", "-c", script, "inside-controller", *args]

    def run(self, args: Sequence[str], cwd: Optional[str] = None, env_extra: Optional[Mapping[str, str]] = None,
            *, block_imports: bool = False, timeout: float = 300,
            input: Optional[str] = None) -> subprocess.CompletedProcess:  # noqa: A002 - subprocess's name
        """Run ARGS (looked up on the inside PATH) on the inside controller; stdout and stderr as text.

        Never raises for a failing command: the caller asserts on returncode and output.
        """
        return subprocess.run(self.command(args), cwd=cwd or self.root, env=self.env(env_extra, block_imports),
                              input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              check=False, timeout=timeout)

    def imports(self) -> list[dict]:
        """Attempts to import packaging or tomli so far: {module, importer, refused, pid} each."""
        if not os.path.exists(self.import_log):
            return []
        with open(self.import_log, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]

    def clear_imports(self) -> None:
        if os.path.exists(self.import_log):
            os.unlink(self.import_log)


# ---------------------------------------------------------------------------
# setup (outside, with network)
# ---------------------------------------------------------------------------


def _setup_env() -> dict[str, str]:
    """The caller's environment (its pip configuration: index, certificates) without the dev venv."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME") and not key.startswith("ANSIBLE_")}
    env["PATH"] = SYSTEM_PATH
    return env


def _run_setup(argv: Sequence[str], env: Mapping[str, str], cwd: str) -> str:
    proc = subprocess.run(list(argv), env=dict(env), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, check=False, timeout=SETUP_TIMEOUT)
    assert proc.returncode == 0, "%s failed:\n%s" % (" ".join(argv), proc.stdout[-5000:])
    return proc.stdout


def installed_ansible_core(venv: str) -> str:
    """The ansible-core version the inside venv holds."""
    return _run_setup([os.path.join(venv, "bin", "python3"), "-c",
                       "import importlib.metadata as m; print(m.version('ansible-core'))"], _setup_env(), venv).strip()


_TARGET_OF_PYTHON = (
    "import json, platform; family, version = platform.libc_ver(); print(json.dumps({'python': "
    "platform.python_version(), 'implementation': 'cpython', 'abiflags': '', 'os': 'linux', "
    "'arch': platform.machine(), 'libc': 'glibc' if family == 'glibc' else 'musl', 'libc_version': version}))"
)
_BOOTSTRAP = """
ssh-keygen -Y verify -f allowed_signers -I release@example.invalid -n airgap.uv-bundle -s controller.tar.sig < controller.tar
sha256sum -c controller.tar.sha256
mkdir bundle && tar -xf controller.tar -C bundle
uv=$(echo bundle/uv/*/uv)
"$uv" venv -q --offline --python "$1" "$2"
"$uv" pip sync -q --offline --no-index --preview-features pylock --python "$2/bin/python" bundle/pylock.*.toml
"""


def bundle_controller(root: str) -> None:
    """Outside: a signed bundle of examples/inside-controller (ansible-core as a uv project) for
    CONTROLLER_PYTHON, as the README's "Bring Ansible and this collection inside" makes it."""
    project = os.path.join(root, "inside-controller")
    shutil.copytree(os.path.join(REPO, "examples", "inside-controller"), project,
                    ignore=shutil.ignore_patterns("uv.lock", ".venv"))
    dev_env = dict(os.environ, PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""),
                   ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, ".venv", "collections"),
                   ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
    _run_setup([os.path.join(VENV_BIN, "uv"), "lock", "-q"], dev_env, project)
    spec = json.loads(_run_setup([CONTROLLER_PYTHON, "-c", _TARGET_OF_PYTHON], _setup_env(), root))
    target = "cpython%s-linux-%s-%s%s" % (spec["python"], spec["arch"], spec["libc"], spec["libc_version"])
    with open(os.path.join(root, "controller-target.yml"), "w", encoding="utf-8") as handle:
        yaml.safe_dump({"format": 1, "targets": {target: spec}}, handle)
    key = os.path.join(root, "release")
    _run_setup(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "release", "-f", key], _setup_env(), root)
    with open(key + ".pub", encoding="utf-8") as handle:
        kind, public = handle.read().split()[:2]
    with open(os.path.join(root, "allowed_signers"), "w", encoding="utf-8") as handle:
        handle.write("release@example.invalid %s %s\n" % (kind, public))
    _run_setup([os.path.join(VENV_BIN, "ansible-playbook"), "airgap.uv.bundle", "-e", "uv_deploy_project=" + project,
                "-e", "uv_deploy_targets_file=controller-target.yml", "-e", "uv_deploy_bundle=controller.tar",
                "-e", "uv_deploy_wheelhouse_dir=" + os.path.join(root, "controller-wheelhouse"),
                "-e", "uv_deploy_bundle_signing_key=" + key], dev_env, root)


def make_venv(controller: "InsideController") -> None:
    """Inside, with no network: the venv made from the bundle with the bundled uv and its PEP 751 lock."""
    proc = controller.run(["/bin/sh", "-ec", _BOOTSTRAP, "bootstrap", CONTROLLER_PYTHON, controller.venv])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def build_collection(venv: str, output: str, cwd: str) -> str:
    """The collection's tarball, built from the checkout by the inside venv's ansible-galaxy."""
    env = _setup_env()
    env["ANSIBLE_CONFIG"] = os.path.join(cwd, "ansible.cfg")
    _run_setup([os.path.join(venv, "bin", "ansible-galaxy"), "collection", "build", "--output-path", output, REPO],
               env, cwd)
    tarballs = [name for name in os.listdir(output) if name.endswith(".tar.gz")]
    assert len(tarballs) == 1, tarballs
    return os.path.join(output, tarballs[0])


def _find_ip() -> str:
    found = shutil.which("ip", path="/usr/sbin:/sbin:" + SYSTEM_PATH)
    assert found, "ip(8) (iproute2) is needed to bring loopback up in the inside namespace"
    return found


def _timed(timings: dict, step: str, action: Callable[[], object]) -> object:
    start = time.monotonic()
    result = action()
    timings[step] = round(time.monotonic() - start, 2)
    return result


def make_inside_controller(root: str) -> InsideController:
    """Build the inside controller under ROOT: venv, tarball, installed collection, helper files."""
    timings: dict = {}
    venv, home, blocker = (os.path.join(root, name) for name in ("venv", "home", "blocker"))
    for directory in (home, blocker, os.path.join(root, "dist")):
        os.makedirs(directory)
    with open(os.path.join(root, "ansible.cfg"), "w", encoding="utf-8") as handle:
        handle.write("[defaults]\n")
    shutil.copy(os.path.join(FILES, "sitecustomize.py"), blocker)
    connector = shutil.copy(os.path.join(FILES, "uds_connect.py"), root)
    _timed(timings, "bundle of examples/inside-controller (outside)", lambda: bundle_controller(root))
    controller = InsideController(root=root, venv=venv, collections=os.path.join(root, "collections"), home=home,
                                  blocker=blocker, connector=connector, tarball="", ansible_core="",
                                  ip=_find_ip(), timings=timings)
    _timed(timings, "venv from the bundle (inside)", lambda: make_venv(controller))
    tarball = _timed(timings, "collection build", lambda: build_collection(venv, os.path.join(root, "dist"), root))
    controller = dataclasses.replace(controller, tarball=str(tarball), ansible_core=installed_ansible_core(venv))
    install = _timed(timings, "collection install (inside)", lambda: controller.run(
        ["ansible-galaxy", "collection", "install", "--offline", "-p", controller.collections, controller.tarball]))
    assert install.returncode == 0, install.stdout + install.stderr
    check_isolation(controller)
    return controller


def check_isolation(controller: InsideController) -> None:
    """What every inside test relies on: no uv, no dev venv, the collection from its tarball only."""
    entries = controller.path.split(os.pathsep)
    assert shutil.which("uv", path=controller.path) is None, controller.path
    assert VENV_BIN not in entries and not any(entry.startswith(REPO) for entry in entries), controller.path
    assert os.path.isfile(os.path.join(controller.installed, "MANIFEST.json")), controller.installed
    assert not os.path.islink(controller.installed), "the collection must be a copy, not a link to the checkout"


# ---------------------------------------------------------------------------
# the relay (root namespace) and the inventory that uses it
# ---------------------------------------------------------------------------


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then pass the EOF on (half-close): ssh and sshd each see the other hang up."""
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (OSError, RuntimeError):
        pass


class UnixRelay:
    """One UNIX socket per test host, forwarding each connection to that host's sshd.

    Runs an asyncio loop in a thread of the test process (root network namespace), so sockets
    can be added while hosts come up and all of it ends with :meth:`close`. Socket files live
    in a short directory under /tmp: a UNIX socket path must fit in 107 bytes.
    """

    def __init__(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="gap-relay-")
        self.connections: dict[str, int] = {}  # host name -> connections relayed so far
        self._targets: dict[str, tuple[str, int]] = {}
        self._servers: dict[str, asyncio.AbstractServer] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="inside-relay", daemon=True)
        self._thread.start()

    def socket_path(self, name: str) -> str:
        return os.path.join(self.directory, name + ".sock")

    def add(self, name: str, address: str, port: int = 22) -> str:
        """Forward NAME's socket to ADDRESS:PORT (again after a host came back elsewhere); its path."""
        self._targets[name] = (address, port)
        path = self.socket_path(name)
        if name not in self._servers:
            assert len(path.encode()) <= MAX_SOCKET_PATH, path
            start = asyncio.start_unix_server(functools.partial(self._serve, name), path=path)
            self._servers[name] = asyncio.run_coroutine_threadsafe(start, self._loop).result(10)
            self.connections.setdefault(name, 0)
        return path

    async def _serve(self, name: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections[name] += 1
        address, port = self._targets[name]
        try:
            upstream_reader, upstream_writer = await asyncio.wait_for(asyncio.open_connection(address, port), 10)
        except (OSError, asyncio.TimeoutError):
            writer.close()
            return
        try:
            await asyncio.gather(_pump(reader, upstream_writer), _pump(upstream_reader, writer))
        finally:
            upstream_writer.close()
            writer.close()

    async def _shutdown(self) -> None:
        for server in self._servers.values():
            server.close()
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def close(self) -> None:
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop.close()
        shutil.rmtree(self.directory, ignore_errors=True)


def read_testbed_inventory(hosts: Sequence[str]) -> dict:
    """The test bed's own inventory of HOSTS (up already), parsed."""
    proc = subprocess.run([TESTBED, "inventory", *hosts], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return yaml.safe_load(proc.stdout)


def write_inside_inventory(controller: InsideController, relay: UnixRelay, hosts: Sequence[str],
                           path: Optional[str] = None) -> str:
    """An inventory of HOSTS whose ssh goes through RELAY, written to PATH (default: under the controller).

    Everything the test bed pins stays (key, known_hosts, StrictHostKeyChecking=yes, the address as
    ansible_host, so known_hosts is looked up as outside); only a ProxyCommand is added.
    """
    inventory = read_testbed_inventory(hosts)
    for name, hostvars in inventory["all"]["hosts"].items():
        socket_path = relay.add(name, hostvars["ansible_host"], int(hostvars.get("ansible_port", 22)))
        proxy = " ".join([controller.python, controller.connector, socket_path])
        hostvars["ansible_ssh_common_args"] += " -o ProxyCommand=%s" % shlex.quote(proxy)
    if path is None:
        path = os.path.join(controller.root, "inventory-%s.yml" % "-".join(sorted(hosts)))
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(inventory, handle, default_flow_style=False, sort_keys=False)
    return path


def pip_index_host(python: str) -> str:
    """The host of the package index PYTHON's pip uses: its configuration, else pip's built-in default.

    Read at run time, so no registry host name is written in this repository.
    """
    env = _setup_env()
    listed = subprocess.run([python, "-m", "pip", "config", "list"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, check=False).stdout
    pairs = (line.split("=", 1) for line in listed.splitlines() if "=" in line)
    configured = [value.strip().strip("'\"") for key, value in pairs if key.rpartition(".")[2] == "index-url"]
    url = os.environ.get("PIP_INDEX_URL") or (configured[0] if configured else "")
    if not url:
        url = subprocess.run([python, "-c", "from pip._internal.models.index import PyPI; print(PyPI.url)"],
                             env=env, stdout=subprocess.PIPE, text=True, check=True).stdout.strip()
    host = urlsplit(url).hostname
    assert host, "pip's index %r has no host" % url
    return host


# ---------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def inside_controller(tmp_path_factory) -> InsideController:
    """The inside controller, built once per session (a few seconds: the bundle of ansible-core is most of it)."""
    if os.geteuid() != 0:
        pytest.skip("the inside controller's network namespace needs root")
    return make_inside_controller(str(tmp_path_factory.mktemp("inside-controller")))


@pytest.fixture(scope="session")
def inside_relay(inside_controller) -> Iterator[UnixRelay]:
    relay = UnixRelay()
    try:
        yield relay
    finally:
        relay.close()


@pytest.fixture(scope="session")
def inside_inventory(inside_controller, inside_relay) -> Callable[..., str]:
    """inventory(hosts, path=None) -> path: for test-bed HOSTS that are up; call again after an up."""
    return functools.partial(write_inside_inventory, inside_controller, inside_relay)


@pytest.fixture(scope="session")
def run_inside(inside_controller) -> Callable[..., subprocess.CompletedProcess]:
    """run(args, cwd=None, env_extra=None, *, block_imports=False, timeout=300, input=None)."""
    return inside_controller.run
