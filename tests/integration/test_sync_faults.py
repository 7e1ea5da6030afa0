# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fault injection, end to end: controller wheelhouse -> real SSH -> offline test hosts -> uv sync.

Every test works on its own offline host (``fault-N``); one module fixture brings them all up
and deploys the same first release to all of them in a single play (one wheelhouse on the
controller, shared by every test). Each test then injects one fault on its host (a corrupt
wheel, a killed sync, an unreachable or half-working index, another owner, a concurrent run,
a missing interpreter, an unwritable path) and checks the outcome, the message, and that the
release in service is untouched and still runs.

Indexes used here are pypiserver instances bound to the controller's end of a host's test-bed
link (10.203.X.1): no traffic goes anywhere but loopback and the test-bed links.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import tomllib

import pytest

from ansible_collections.airgap.uv.plugins.plugin_utils._selection import SelectionOptions
from ansible_collections.airgap.uv.plugins.plugin_utils._wheelhouse import WheelhouseBuilder, WheelhouseOptions

from testbed_env import EXAMPLE, REPO, TESTBED, VENV_BIN, ansible_env  # same directory, on sys.path

RECORD_PLAYBOOK = os.path.join(REPO, "tests", "integration", "deploy_and_record.yml")
DEPLOY_AS_PLAYBOOK = os.path.join(REPO, "tests", "integration", "faults", "deploy_as.yml")

NAME = "hello-airgap"
ROOT = "/opt/airgap-uv/%s" % NAME
VENV = ROOT + "/venv"
RELEASES = ROOT + "/.venv.releases"
APP = VENV + "/bin/hello-airgap"

HOSTS = {
    "corrupt": "fault-1",
    "kill": "fault-2",
    "network": "fault-3",
    "owner": "fault-4",
    "concurrent": "fault-5",
    "check": "fault-6",
    "rollback": "fault-7",
    "input": "fault-8",
    "tamper": "fault-9",
}

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the offline test bed needs root")


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _env(**extra) -> dict:
    return ansible_env(ANSIBLE_FORKS=str(len(HOSTS) + 2), **extra)


def on_host(host: str, *argv: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([TESTBED, "exec", host, "--", *argv], input=stdin, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, check=False)


def sh(host: str, script: str) -> str:
    proc = on_host(host, "sh", "-ec", script)
    assert proc.returncode == 0, "%s: %r failed:\n%s%s" % (host, script, proc.stdout, proc.stderr)
    return proc.stdout


class Deployment:
    """One run of a playbook (the role, recorded) against one host."""

    def __init__(self, proc: subprocess.CompletedProcess, result: dict | None, host: str) -> None:
        self.proc = proc
        self.output = proc.stdout
        self.result = result
        self.host = host

    @property
    def ok(self) -> bool:
        return self.proc.returncode == 0

    @property
    def sync(self) -> dict:
        assert self.result is not None, self.output[-4000:]
        return self.result["sync"]

    def changes(self) -> dict:
        return {key: self.sync[key] for key in ("installed", "removed", "upgraded", "downgraded", "reinstalled")}

    def tail(self, n: int = 4000) -> str:
        return self.output[-n:]


def app_output(host: str) -> str:
    proc = on_host(host, APP, "--name", "fault")
    assert proc.returncode == 0, "the app in service does not run on %s:\n%s%s" % (host, proc.stdout, proc.stderr)
    assert "Hello fault from hello-airgap" in proc.stdout, proc.stdout
    return proc.stdout


_PACKAGES_SCRIPT = (
    "import importlib.metadata as m, json; "
    "print(json.dumps({d.metadata['Name'].lower().replace('_', '-'): d.version for d in m.distributions()}))"
)


def host_packages(host: str, venv: str = VENV) -> dict[str, str]:
    proc = on_host(host, venv + "/bin/python", "-c", _PACKAGES_SCRIPT)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def release_state(host: str, venv: str = VENV) -> tuple[str, list[str]]:
    """(what the venv symlink points at, the release directories)."""
    parent, name = os.path.split(venv)
    releases = "%s/.%s.releases" % (parent, name)
    out = sh(host, "readlink %s; ls -1 %s" % (venv, releases)).splitlines()
    return out[0], sorted(out[1:])


def drop_kept_releases(host: str, venv: str = VENV) -> None:
    """Remove every release but the one in service, so that the next change builds (no roll forward)."""
    link, releases = release_state(host, venv)
    parent, name = os.path.split(venv)
    for release in releases:
        if release != link.split("/")[-1]:
            sh(host, "rm -rf %s/.%s.releases/%s" % (parent, name, release))


def lock_versions(project) -> dict[str, str]:
    """{package: version} of every package in PROJECT/uv.lock (a single version per name here)."""
    with open(os.path.join(str(project), "uv.lock"), "rb") as handle:
        lock = tomllib.load(handle)
    return {package["name"]: package["version"] for package in lock["package"]}


def assert_in(pattern: str, text: str) -> None:
    assert re.search(pattern, text), "%r not found in:\n%s" % (pattern, text[-4000:])


def free_port_on(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------------------
# fixtures: hosts, projects, the first deployment
# ---------------------------------------------------------------------------


class Fleet:
    def __init__(self, tmp, inventory: str, addresses: dict[str, str], projects: dict) -> None:
        self.tmp = tmp
        self.inventory = inventory
        self.addresses = addresses
        self.projects = projects
        self.wheelhouse = str(tmp / "wheelhouse")  # one controller wheelhouse for every run
        self.baseline: dict[str, dict] = {}  # host -> sync result of the first deployment
        self._records = 0

    def controller_address(self, host: str) -> str:
        return self.addresses[host].rsplit(".", 1)[0] + ".1"

    def _record_dir(self):
        self._records += 1
        path = self.tmp / ("record-%d" % self._records)
        path.mkdir()
        return path

    def playbook_argv(self, host: str, project: str, *extra: str, playbook: str = RECORD_PLAYBOOK):
        record = self._record_dir()
        argv = [os.path.join(VENV_BIN, "ansible-playbook"), "-i", self.inventory, "-l", host, playbook,
                "-e", "uv_deploy_project=%s" % project, "-e", "e2e_record_dir=%s" % record,
                "-e", "uv_deploy_wheelhouse_dir=%s" % self.wheelhouse, *extra]
        return argv, record

    @staticmethod
    def _collect(proc, record, host) -> Deployment:
        result = None
        path = record / ("%s.json" % host)
        if path.exists():
            result = json.loads(path.read_text())
        return Deployment(proc, result, host)

    def deploy(self, host: str, project: str, *extra: str, playbook: str = RECORD_PLAYBOOK) -> Deployment:
        argv, record = self.playbook_argv(host, project, *extra, playbook=playbook)
        proc = subprocess.run(argv, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              check=False)
        return self._collect(proc, record, host)

    def start_deploy(self, host: str, project: str, *extra: str):
        """Start a deployment in the background; returns a callable that waits for it."""
        argv, record = self.playbook_argv(host, project, *extra)
        proc = subprocess.Popen(argv, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

        def wait(timeout: float = 300) -> Deployment:
            out, dummy = proc.communicate(timeout=timeout)
            return self._collect(subprocess.CompletedProcess(argv, proc.returncode, out, ""), record, host)

        return wait

    def playbook(self, host: str, playbook: str, *extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([os.path.join(VENV_BIN, "ansible-playbook"), "-i", self.inventory, "-l", host,
                               playbook, *extra], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, check=False)

    def sync(self, host: str, become_user: str | None = None, check: bool = False, **params) -> tuple[bool, dict]:
        """Run only airgap.uv.sync, ad hoc, with the role's parameters (overridable)."""
        args = {"uv": ROOT + "/bin/uv", "wheelhouse": ROOT + "/wheelhouse", "requirements": ROOT + "/requirements.txt",
                "manifest": ROOT + "/manifest.json", "venv": VENV, "network": "offline", "keep_releases": 2}
        args.update(params)
        args = {key: value for key, value in args.items() if value is not None}
        argv = [os.path.join(VENV_BIN, "ansible"), "-i", self.inventory, host, "-m", "airgap.uv.sync",
                "-a", json.dumps(args)]
        if become_user:
            argv += ["--become", "--become-user", become_user]
        if check:
            argv.append("--check")
        proc = subprocess.run(argv, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              check=False)
        # "HOST | CHANGED => {...}": the module's result; warnings go to stderr.
        match = re.search(r"^%s \| ([A-Z]+)!? => " % re.escape(host), proc.stdout, re.M)
        assert match, "no result from ansible:\n%s\n%s" % (proc.stdout, proc.stderr)
        result = json.loads(proc.stdout[match.end():])
        result["stderr_of_ansible"] = proc.stderr
        return match.group(1) in ("SUCCESS", "CHANGED"), result


def _make_project(base, name: str, edit) -> str:
    directory = base / name / NAME
    shutil.copytree(EXAMPLE, directory, ignore=shutil.ignore_patterns(".venv", "uv.lock", "__pycache__"))
    pyproject = directory / "pyproject.toml"
    text = pyproject.read_text()
    edited = edit(text)
    assert edited != text
    pyproject.write_text(edited)
    subprocess.run([os.path.join(VENV_BIN, "uv"), "lock", "--quiet", "--directory", str(directory)], check=True,
                   env=_env())
    return str(directory)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """All fault hosts up, both project versions locked, the first one deployed to every host."""
    tmp = tmp_path_factory.mktemp("faults")
    names = sorted(HOSTS.values())
    try:
        # Hosts left over by an interrupted run would carry its state: start from fresh ones.
        subprocess.run([TESTBED, "down", *names], check=True, stdout=subprocess.DEVNULL)
        up = subprocess.run([TESTBED, "up", *names], stdout=subprocess.PIPE, text=True, check=True)
        addresses = dict(line.split("\t")[:2] for line in up.stdout.splitlines() if "\t" in line)
        assert sorted(addresses) == names, up.stdout
        inventory = str(tmp / "inventory.yml")
        subprocess.run([TESTBED, "inventory", "--write", inventory, *names], check=True, stdout=subprocess.DEVNULL)
        # v1: the example plus six 1.16.0 and attrs; v2 changes all four ways at once:
        # click down (8.1.7), six up (1.17.0), attrs removed, idna installed.
        v1 = _make_project(tmp, "v1", lambda text: text.replace(
            '"markupsafe>=2.1",', '"markupsafe>=2.1",\n    "six==1.16.0",\n    "attrs==24.2.0",'))
        v2 = _make_project(tmp, "v2", lambda text: text.replace('"click>=8.1"', '"click==8.1.7"').replace(
            '"markupsafe>=2.1",', '"markupsafe>=2.1",\n    "six==1.17.0",\n    "idna==3.7",'))
        fleet = Fleet(tmp, inventory, addresses, {"v1": v1, "v2": v2})
        argv, record = fleet.playbook_argv("all", v1)
        proc = subprocess.run(argv, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              check=False)
        assert proc.returncode == 0, "first deployment to the fleet failed:\n%s" % proc.stdout[-6000:]
        for host in names:
            result = json.loads((record / ("%s.json" % host)).read_text())["sync"]
            assert result["changed"] and result["reason"] == "venv created", result
            fleet.baseline[host] = result
        yield fleet
    finally:
        subprocess.run([TESTBED, "down", *names], check=False, stdout=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def versions(fleet) -> dict:
    """{"v1"/"v2": {name: version}} of the packages the two projects differ in (and the app shows)."""
    v1, v2 = lock_versions(fleet.projects["v1"]), lock_versions(fleet.projects["v2"])
    assert v2["click"] == "8.1.7" and v1["click"] != v2["click"]
    assert (v1["six"], v2["six"]) == ("1.16.0", "1.17.0")
    names = ("click", "six", "attrs", "idna", "markupsafe", "pyyaml")
    return {"v1": {n: v1[n] for n in names if n in v1}, "v2": {n: v2[n] for n in names if n in v2}}


def assert_host_has(host: str, packages: list[str], venv: str = VENV) -> None:
    """The environment in service holds exactly PACKAGES (["name==version", ...], as the module reports)."""
    have = host_packages(host, venv)
    assert sorted("%s==%s" % item for item in have.items()) == sorted(packages)


def _wheel_of(host: str, prefix: str) -> str:
    names = [n for n in sh(host, "ls -1 %s/wheelhouse" % ROOT).split() if n.startswith(prefix)]
    assert len(names) == 1, names
    return "%s/wheelhouse/%s" % (ROOT, names[0])


# ---------------------------------------------------------------------------
# 1. a corrupt wheel on the host
# ---------------------------------------------------------------------------


def test_corrupt_wheel_on_host(fleet, versions):
    host = HOSTS["corrupt"]
    link, releases = release_state(host)
    markupsafe = _wheel_of(host, "markupsafe-")
    pyyaml = _wheel_of(host, "pyyaml-")
    # Same size, other bytes (only the sha256 can tell) and a truncated file (the size tells).
    sh(host, "size=$(stat -c %%s %s); head -c $size /dev/urandom > %s; truncate -s 1000 %s"
       % (markupsafe, markupsafe, pyyaml))

    # The sync step alone, as the role runs it, forced to build a new release (another python path).
    ok, result = fleet.sync(host, python="/usr/bin/python3")
    assert not ok, result
    assert_in(r"Files on this host do not match manifest %s/manifest\.json" % re.escape(ROOT), result["msg"])
    assert_in(r"Run the deployment again: the push replaces these files", result["msg"])
    assert_in(r"%s is corrupt: sha256 [0-9a-f]{64}, manifest says" % re.escape(markupsafe), result["msg"])
    assert_in(r"%s is corrupt: size 1000, manifest says" % re.escape(pyyaml), result["msg"])
    assert release_state(host) == (link, releases)
    app_output(host)

    # Without the manifest check and with a cold uv cache, uv's own hash/zip check must stop it.
    sh(host, "rm -rf %s/cache" % ROOT)
    ok, result = fleet.sync(host, python="/usr/bin/python3", manifest=None)
    assert not ok, result
    assert_in(r"uv pip sync failed", result["msg"])
    assert_in(r"(markupsafe|pyyaml)-\S+\.whl", result["msg"])
    assert release_state(host) == (link, releases), "a failed build must leave no release behind"
    app_output(host)

    # The full deployment copies the good files back and installs the new set.
    deployment = fleet.deploy(host, fleet.projects["v2"])
    assert deployment.ok, deployment.tail()
    assert deployment.sync["changed"] and deployment.sync["previous_release"].endswith(link.split("/")[-1])
    output = app_output(host)
    assert "click: 8.1.7" in output and "markupsafe: %s" % versions["v2"]["markupsafe"] in output
    assert_host_has(host, deployment.sync["packages"])
    assert "six==1.17.0" in deployment.sync["packages"]


# ---------------------------------------------------------------------------
# 2. the sync killed midway
# ---------------------------------------------------------------------------

# Runs on the host. Waits for a new release directory, finds the module process (the holder of
# the releases lock) and busy-polls its children for the real `uv pip sync` (not the dry run),
# which runs for some 30 ms with a warm cache; freezes it and the module with SIGSTOP, records
# what it caught, then SIGKILLs: MODE "module" kills the module process and its children, "uv"
# kills only uv and lets the module go on.
WATCHER = r'''
import json, os, signal, sys, time
releases, lock, venv, mode, timeout = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
try:
    os.nice(-15)
except OSError:
    pass
before = set(os.listdir(releases))
old = os.readlink(venv)
print("ready", flush=True)

def new_dirs():
    return sorted(n for n in set(os.listdir(releases)) - before if not n.startswith("."))

def read(path, mode="r"):
    try:
        with open(path, mode) as f:
            return f.read()
    except OSError:
        return b"" if "b" in mode else ""

def cmdline(pid):
    return [c.decode(errors="replace") for c in read("/proc/%d/cmdline" % pid, "rb").split(b"\0") if c]

def children(pid):
    return [int(x) for x in read("/proc/%d/task/%d/children" % (pid, pid)).split()]

def lock_holder():
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                for fd in os.listdir("/proc/%s/fd" % pid):
                    if os.readlink("/proc/%s/fd/%s" % (pid, fd)) == lock:
                        return int(pid)
            except OSError:
                pass
    return None

def is_sync(cmd):
    return len(cmd) > 3 and cmd[0].endswith("/bin/uv") and "sync" in cmd and "--dry-run" not in cmd

deadline = time.monotonic() + timeout
while not new_dirs():
    if time.monotonic() > deadline:
        print(json.dumps({"caught": False, "why": "no new release directory"}), flush=True)
        sys.exit(1)
    time.sleep(0.0005)
t_new = time.monotonic()
holder = lock_holder()
sync_pid = None
while holder and sync_pid is None and time.monotonic() < t_new + 10:
    sync_pid = next((p for p in children(holder) if is_sync(cmdline(p))), None)
    if sync_pid is None and os.readlink(venv) != old:
        break  # too late: the new release is in service
stopped = []
for pid in ([sync_pid] if sync_pid else []) + ([holder] if holder else []):
    os.kill(pid, signal.SIGSTOP)
    stopped.append(pid)
kids = children(holder) if holder else []
report = {
    "caught": bool(sync_pid) and os.readlink(venv) == old,
    "holder": holder, "holder_cmd": cmdline(holder) if holder else [],
    "children": [cmdline(p) for p in kids],
    "new_releases": new_dirs(), "link_before": old, "link_at_kill": os.readlink(venv),
    "ms_after_new_release": round((time.monotonic() - t_new) * 1000, 1),
}
victims = [sync_pid] if mode == "uv" else kids + [holder]
for pid in victims:
    if pid:
        os.kill(pid, signal.SIGKILL)
for pid in stopped:
    if pid not in victims:
        os.kill(pid, signal.SIGCONT)
print(json.dumps(report), flush=True)
'''


def start_watcher(host: str, mode: str, timeout: float = 120):
    proc = subprocess.Popen([TESTBED, "exec", host, "--", "python3", "-c", WATCHER, RELEASES, RELEASES + ".lock",
                             VENV, mode, str(timeout)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()

    def report() -> dict:
        out, err = proc.communicate(timeout=timeout + 10)
        assert out.strip(), err
        return json.loads(out.strip().splitlines()[-1])

    return report


def test_sync_killed_midway(fleet, versions):
    host = HOSTS["kill"]
    link, releases = release_state(host)

    # The module process (and its uv) SIGKILLed while uv pip sync fills the new release.
    watcher = start_watcher(host, "module")
    deployment = fleet.deploy(host, fleet.projects["v2"])
    caught = watcher()
    print("kill of the module process:", json.dumps(caught))
    assert caught["caught"], caught
    assert not deployment.ok, deployment.tail()
    assert_in(r"fatal: \[%s\]" % host, deployment.output)
    assert_in(r"(rc.: 137|Killed|MODULE FAILURE|deserialization failed)", deployment.output)
    new_link, new_releases = release_state(host)
    assert new_link == link, "the release in service changed after a killed sync"
    half_built = caught["new_releases"]
    assert len(half_built) == 1 and half_built[0] in new_releases  # nobody could clean up
    assert "click: %s" % versions["v1"]["click"] in app_output(host)

    # Only uv killed: the module sees it, says so, and removes its half-built release itself.
    watcher = start_watcher(host, "uv")
    ok, result = fleet.sync(host)
    caught_uv = watcher()
    print("kill of uv only:", json.dumps(caught_uv))
    assert caught_uv["caught"], caught_uv
    assert not ok, result
    assert_in(r"uv pip sync was killed by signal 9", result["msg"])
    assert release_state(host) == (link, new_releases)
    app_output(host)

    # The next deployment succeeds, reports the change and prunes the leftover of the kill.
    deployment = fleet.deploy(host, fleet.projects["v2"])
    assert deployment.ok, deployment.tail()
    sync = deployment.sync
    # hello-airgap 0.1.0 is rebuilt with other dependencies: same version, other wheel.
    assert sync["changed"] and sync["reason"] == "packages changed; package content changed: hello-airgap"
    assert sync["reinstalled"] == [{"name": "hello-airgap", "version": "0.1.0"}]
    assert sync["downgraded"] == [{"name": "click", "from": versions["v1"]["click"], "to": "8.1.7"}]
    assert "%s/%s" % (RELEASES, half_built[0]) in sync["pruned_releases"]
    final_link, final_releases = release_state(host)
    assert half_built[0] not in final_releases and final_link != link
    assert "click: 8.1.7" in app_output(host)


# ---------------------------------------------------------------------------
# 3. network=fallback / online against real and broken indexes on the test-bed link
# ---------------------------------------------------------------------------


class Index:
    def __init__(self, process, url: str, log: str) -> None:
        self.process, self.url, self.log = process, url, log

    def requests_from(self, address: str) -> list[str]:
        with open(self.log, encoding="utf-8", errors="replace") as handle:
            return [line for line in handle if line.startswith(address + " ") and '"GET ' in line]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_index(address: str, packages: str, log: str, *auth: str) -> Index:
    """A real pypiserver on ADDRESS (a test-bed link) serving PACKAGES; never redirects anywhere."""
    port = free_port_on(address)
    with open(log, "ab") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "pypiserver", "run", "-v", "--host", address, "--port", str(port),
             "--disable-fallback", "--hash-algo", "sha256", "--backend", "simple-dir", *auth, packages],
            stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert process.poll() is None, open(log, encoding="utf-8").read()[-2000:]
        try:
            socket.create_connection((address, port), timeout=1).close()
            return Index(process, "http://%s:%d/simple/" % (address, port), log)
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("pypiserver did not start on %s" % address)


def test_network_fallback_and_online(fleet, versions, tmp_path, linux_x86_64_facts):
    host = HOSTS["network"]
    pytest.importorskip("pypiserver")
    apache = pytest.importorskip("passlib.apache")
    controller, address = fleet.controller_address(host), fleet.addresses[host]
    packages = tmp_path / "packages"
    packages.mkdir()
    # Every wheel either project needs on this host, from wheelhouses built like the role's.
    for project in ("v1", "v2"):
        built = WheelhouseBuilder(WheelhouseOptions(project=fleet.projects[project], dest=str(tmp_path / project),
                                                    targets={host: linux_x86_64_facts},
                                                    selection=SelectionOptions(no_default_groups=True)),
                                  uv=os.path.join(VENV_BIN, "uv")).run()
        assert built.targets, built
        for name in os.listdir(tmp_path / project / "files"):
            shutil.copyfile(tmp_path / project / "files" / name, packages / name)
    good = start_index(controller, str(packages), str(tmp_path / "good.log"), "-a", ".", "-P", ".")
    # Lists packages but answers 401 to every file download: the metadata works, installs do not.
    htpasswd = apache.HtpasswdFile(str(tmp_path / "htpasswd"), new=True)
    htpasswd.set_password("nobody", "secret")
    htpasswd.save()
    pages_only = start_index(controller, str(packages), str(tmp_path / "pages-only.log"),
                             "-a", "download", "-P", str(tmp_path / "htpasswd"))
    # A port on the link address that is bound but not listening: connections are refused.
    closed = socket.socket()
    closed.bind((controller, 0))
    closed_url = "http://%s:%d/simple/" % (controller, closed.getsockname()[1])
    try:
        # (a) fallback with a reachable index that has everything: the index is used.
        deployment = fleet.deploy(host, fleet.projects["v2"], "-e", "uv_deploy_network=fallback",
                                  "-e", "uv_deploy_index_url=%s" % good.url)
        assert deployment.ok, deployment.tail()
        assert deployment.sync["changed"] and deployment.sync["network_used"] == "online", deployment.sync
        assert good.requests_from(address), "the host never asked the index"
        assert "click: 8.1.7" in app_output(host)
        link, releases = release_state(host)

        # (b) online with an unreachable index: fails clearly, the release in service is untouched.
        deployment = fleet.deploy(host, fleet.projects["v1"], "-e", "uv_deploy_network=online",
                                  "-e", "uv_deploy_index_url=%s" % closed_url)
        assert not deployment.ok, deployment.tail()
        assert_in(r"uv pip sync --dry-run failed \(exit code \d+\)", deployment.output)
        assert_in(re.escape(closed_url.rstrip("/")), deployment.output)
        assert_in(r"Connection refused", deployment.output)
        assert release_state(host) == (link, releases)
        assert "click: 8.1.7" in app_output(host)

        # (c) fallback with an unreachable index: warns, installs offline, succeeds. (Without the
        # kept releases: the one holding v1 would be switched back to, with nothing to install.)
        drop_kept_releases(host)
        deployment = fleet.deploy(host, fleet.projects["v1"], "-e", "uv_deploy_network=fallback",
                                  "-e", "uv_deploy_index_url=%s" % closed_url)
        assert deployment.ok, deployment.tail()
        assert deployment.sync["changed"] and deployment.sync["network_used"] == "offline", deployment.sync
        assert_in(r"uv pip sync( --dry-run)? with the index failed, falling back to offline", deployment.output)
        assert "click: %s" % versions["v1"]["click"] in app_output(host)

        # (d) fallback with an index that lists packages but refuses every download (401): the
        # install falls back to the wheelhouse, and the result must say so.
        drop_kept_releases(host)
        deployment = fleet.deploy(host, fleet.projects["v2"], "-e", "uv_deploy_network=fallback",
                                  "-e", "uv_deploy_index_url=%s" % pages_only.url)
        assert deployment.ok, deployment.tail()
        assert pages_only.requests_from(address), "the host never asked the pages-only index"
        assert_in(r"uv pip sync( --dry-run)? with the index failed, falling back to offline", deployment.output)
        assert_in(r"401 Unauthorized", deployment.output)
        assert deployment.sync["changed"] and "click: 8.1.7" in app_output(host)
        assert deployment.sync["network_used"] == "offline", deployment.sync
    finally:
        closed.close()
        good.stop()
        pages_only.stop()


# ---------------------------------------------------------------------------
# 4. a non-root owner
# ---------------------------------------------------------------------------

USER = "airgapapp"


def not_owned(host: str, path: str, user: str) -> list[str]:
    return sh(host, "find %s ! -user %s" % (path, user)).split()


def test_non_root_owner(fleet, versions):
    """Root deploys for an owner and never runs what that owner can change (issue 10, item 1)."""
    host = HOSTS["owner"]
    sh(host, "id %s >/dev/null 2>&1 || useradd --create-home --shell /bin/sh %s" % (USER, USER))
    link, dummy = release_state(host)
    check = ["-e", '{"uv_deploy_check_command": ["hello-airgap", "--name", "fault"]}']

    # Root deploys a lock change owned by the user.
    deployment = fleet.deploy(host, fleet.projects["v2"], "-e", "uv_deploy_owner=%s" % USER, *check)
    assert deployment.ok, deployment.tail()
    release = deployment.sync["release"]
    assert deployment.sync["changed"] and release != link
    assert deployment.sync["check"]["user"] == USER and "click: 8.1.7" in deployment.sync["check"]["stdout"]
    assert not_owned(host, release, USER) == []
    assert not_owned(host, ROOT + "/cache", USER) == []
    # Root keeps what root acts on; lock and state are private to it.
    owners = sh(host, "stat -c '%%U %%a %%n' %s %s.lock %s.state.json" % (RELEASES, RELEASES, RELEASES))
    assert [line.split()[:2] for line in owners.splitlines()] == [["root", "755"], ["root", "600"], ["root", "600"]]
    denied = on_host(host, "runuser", "-u", "nobody", "--", "python3", "-c",
                     "import fcntl; fcntl.flock(open('%s.lock'), fcntl.LOCK_SH)" % RELEASES)
    assert denied.returncode != 0 and "Permission denied" in denied.stderr  # nobody can stall a deploy
    run = on_host(host, "runuser", "-u", USER, "--", APP, "--name", "fault")
    assert run.returncode == 0 and "click: 8.1.7" in run.stdout, run.stdout + run.stderr

    # The user plants code that runs whenever the environment's interpreter or check command
    # starts: a .pth file, its own interpreter binary, and a replaced console script.
    sh(host, "mkdir -p /tmp/markers && chmod 1777 /tmp/markers")
    record = "import os; open('/tmp/markers/uid-%d' % os.getuid(), 'w').close()"
    plant = ("set -e; cd %(venv)s; site=$(echo lib/python3*/site-packages); echo \"$1\" > $site/zz_marker.pth; "
             "rm bin/python; cp /usr/bin/python3 bin/python; "
             "printf '#!/bin/sh\\nid -u > /tmp/markers/check-$(id -u)\\nexec %(venv)s/bin/python -c \"from hello_airgap.cli import main; main()\" \"$@\"\\n' "
             "> bin/hello-airgap" % {"venv": VENV})
    planted = on_host(host, "runuser", "-u", USER, "--", "sh", "-c", plant, "plant", record)
    assert planted.returncode == 0, planted.stderr
    for args in (["--check"], [], ["-e", "uv_deploy_keep_releases=3"]):  # check mode, a no-op, a changed option
        again = fleet.deploy(host, fleet.projects["v2"], "-e", "uv_deploy_owner=%s" % USER, *check, *args)
        assert again.ok, again.tail()
    markers = sh(host, "ls /tmp/markers").split()
    assert "uid-0" not in markers and "check-0" not in markers, markers
    uid = sh(host, "id -u %s" % USER).strip()
    assert "uid-%s" % uid in markers and "check-%s" % uid in markers, markers  # it did run, as the user


def test_role_with_become_user(fleet, versions):
    host = HOSTS["owner"]
    sh(host, "id %s >/dev/null 2>&1 || useradd --create-home --shell /bin/sh %s" % (USER, USER))
    home = sh(host, "getent passwd %s | cut -d: -f6" % USER).strip()
    root = home + "/airgap-uv/" + NAME
    deployment = fleet.deploy(host, fleet.projects["v1"], "-e", "faults_become_user=%s" % USER,
                              "-e", "uv_deploy_root=%s" % root, playbook=DEPLOY_AS_PLAYBOOK)
    assert deployment.ok, deployment.tail()
    assert deployment.sync["changed"] and deployment.sync["venv"] == root + "/venv"
    assert not_owned(host, root, USER) == []
    run = on_host(host, "runuser", "-u", USER, "--", root + "/venv/bin/hello-airgap", "--name", "fault")
    assert run.returncode == 0 and "click: %s" % versions["v1"]["click"] in run.stdout, run.stdout + run.stderr


# ---------------------------------------------------------------------------
# 5. two deployments of the same change at once
# ---------------------------------------------------------------------------


def test_concurrent_deployments_serialize(fleet, versions):
    host = HOSTS["concurrent"]
    link, releases = release_state(host)
    first = fleet.start_deploy(host, fleet.projects["v2"])
    second = fleet.start_deploy(host, fleet.projects["v2"])
    runs = [first(), second()]
    for run in runs:
        assert run.ok, run.tail()
    # One run built the release. The other changed nothing; when it started before the first run's
    # result was acknowledged, it reports that switch too (unreported_switch, changed).
    changed = [run.sync for run in runs if run.sync["changed"] and "unreported_switch" not in run.sync]
    unchanged = [run.sync for run in runs if not run.sync["changed"] or "unreported_switch" in run.sync]
    assert len(changed) == 1 and len(unchanged) == 1, [run.sync for run in runs]
    assert unchanged[0]["installed"] == unchanged[0]["removed"] == unchanged[0]["downgraded"] == []
    assert changed[0]["downgraded"] == [{"name": "click", "from": versions["v1"]["click"], "to": "8.1.7"}]
    assert unchanged[0]["release"] == changed[0]["release"]
    new_link, new_releases = release_state(host)
    assert len(new_releases) == len(releases) + 1 and new_link.endswith(changed[0]["release"].split("/")[-1])
    assert "click: 8.1.7" in app_output(host)
    assert_host_has(host, changed[0]["packages"])


# ---------------------------------------------------------------------------
# 6. check mode predicts the real run
# ---------------------------------------------------------------------------


def test_check_mode_predicts_every_kind_of_change(fleet, versions):
    host = HOSTS["check"]
    state = release_state(host)
    v1, v2 = versions["v1"], versions["v2"]
    expected = {
        "installed": [{"name": "idna", "version": v2["idna"]}],
        "removed": [{"name": "attrs", "version": v1["attrs"]}],
        "upgraded": [{"name": "six", "from": "1.16.0", "to": "1.17.0"}],
        "downgraded": [{"name": "click", "from": v1["click"], "to": "8.1.7"}],
        # the project's own wheel: same version, built from another pyproject.toml
        "reinstalled": [{"name": "hello-airgap", "version": "0.1.0"}],
    }
    predicted = fleet.deploy(host, fleet.projects["v2"], "--check", "--diff")
    assert predicted.ok, predicted.tail()
    assert predicted.sync["changed"] and predicted.changes() == expected
    for line in ("-click==%s" % v1["click"], "+click==8.1.7", "-attrs==%s" % v1["attrs"],
                 "+idna==%s" % v2["idna"], "-six==1.16.0", "+six==1.17.0"):
        assert re.search(r"^%s$" % re.escape(line), predicted.output, re.M), line
    assert release_state(host) == state, "check mode changed the host"
    assert "click: %s" % v1["click"] in app_output(host)

    real = fleet.deploy(host, fleet.projects["v2"])
    assert real.ok, real.tail()
    assert real.changes() == predicted.changes() == expected
    assert "click: 8.1.7" in app_output(host)


# ---------------------------------------------------------------------------
# 7. rollback
# ---------------------------------------------------------------------------


def test_rollback_playbook(fleet, versions):
    host = HOSTS["rollback"]
    first_link, dummy = release_state(host)
    deployment = fleet.deploy(host, fleet.projects["v2"])
    assert deployment.ok, deployment.tail()
    second_link, releases = release_state(host)
    assert second_link != first_link and "click: 8.1.7" in app_output(host)

    project = "uv_deploy_project=%s" % fleet.projects["v2"]
    check = fleet.playbook(host, "airgap.uv.rollback", "-e", project, "--check")
    assert check.returncode == 0, check.stdout[-4000:]
    assert_in(r"%s\s*:.*changed=1" % host, check.stdout)
    assert release_state(host)[0] == second_link, "check mode switched the release"

    rollback = fleet.playbook(host, "airgap.uv.rollback", "-e", project)
    assert rollback.returncode == 0, rollback.stdout[-4000:]
    assert_in(r"%s\s*:.*changed=1" % host, rollback.stdout)
    assert release_state(host)[0] == first_link
    assert "click: %s" % versions["v1"]["click"] in app_output(host)
    assert_host_has(host, fleet.baseline[host]["packages"])

    # Roll forward: deploying v2 again puts the release rolled back from back in service, no build.
    forward = fleet.deploy(host, fleet.projects["v2"])
    assert forward.ok, forward.tail()
    assert forward.sync["changed"], forward.sync
    assert forward.sync["reason"].endswith("switched to existing release %s" % second_link.split("/")[-1]), forward.sync
    assert forward.sync["downgraded"] == [{"name": "click", "from": versions["v1"]["click"], "to": "8.1.7"}]
    assert release_state(host) == (second_link, releases)
    assert "click: 8.1.7" in app_output(host)


# ---------------------------------------------------------------------------
# 8. bad input on the host side
# ---------------------------------------------------------------------------


def test_bad_host_input(fleet, versions):
    host = HOSTS["input"]
    state = release_state(host)

    # A missing interpreter, through the role: stopped before anything is copied or built.
    deployment = fleet.deploy(host, fleet.projects["v2"], "-e", "uv_deploy_python=/usr/bin/python3.99")
    assert not deployment.ok
    assert_in(r"Python interpreter '/usr/bin/python3\.99' was not found on the host", deployment.output)
    assert release_state(host) == state

    # The same to the sync step alone: as a path, and as a version request uv cannot satisfy.
    ok, result = fleet.sync(host, python="/usr/bin/python3.99")
    assert not ok and "Python interpreter /usr/bin/python3.99 not found" in result["msg"], result
    ok, result = fleet.sync(host, python="3.99")
    assert not ok, result
    assert_in(r"Python interpreter '3\.99' not found: uv venv failed", result["msg"])
    assert release_state(host) == state, "a failed build must leave no release behind"
    app_output(host)

    # A venv whose parent is a file.
    ok, result = fleet.sync(host, venv=ROOT + "/requirements.txt/venv")
    assert not ok, result
    assert_in(r"Cannot create directory %s/requirements\.txt" % re.escape(ROOT), result["msg"])

    # A venv on a read-only bind mount, through the role.
    sh(host, "mkdir -p /srv/ro && mount --bind /srv/ro /srv/ro && mount -o remount,bind,ro /srv/ro")
    try:
        deployment = fleet.deploy(host, fleet.projects["v1"], "-e", "uv_deploy_venv=/srv/ro/venv")
        assert not deployment.ok, deployment.tail()
        assert_in(r"(Directory /srv/ro is not writable by root|Cannot create directory /srv/ro/\.venv\.releases: "
                  r"Read-only file system)", deployment.output)
    finally:
        on_host(host, "umount", "/srv/ro")
    assert release_state(host) == state
    app_output(host)

    # Rolling back with a single release.
    ok, result = fleet.sync(host, state="rollback")
    assert not ok, result
    assert_in(r"Cannot roll back %s: there is no previous release" % re.escape(VENV), result["msg"])
    assert release_state(host) == state


# ---------------------------------------------------------------------------
# 9. tampered files on the host: nothing unverified runs, no link is written through
# ---------------------------------------------------------------------------


def _facts(fleet, host: str) -> dict:
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible"), "-i", fleet.inventory, host, "-m", "airgap.uv.target_facts",
                           "-a", json.dumps({"uv": ROOT + "/bin/uv"})], env=_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, check=False)
    match = re.search(r"^%s \| SUCCESS => " % re.escape(host), proc.stdout, re.M)
    assert match, proc.stdout + proc.stderr
    return json.loads(proc.stdout[match.end():])["ansible_facts"]["airgap_uv_target"]


def test_tampered_uv_is_never_run_and_linked_directories_are_refused(fleet, versions):
    host = HOSTS["tamper"]
    state = release_state(host)
    assert _facts(fleet, host)["uv"] == {"path": ROOT + "/bin/uv", "version": fleet.baseline[host]["uv_version"],
                                         "verified": True}
    # A uv replaced on the host (as by a tampered controller cache): facts neither run nor believe it.
    sh(host, "cp %s/bin/uv /tmp/uv.good && printf '#!/bin/sh\\ntouch /tmp/uv-ran\\necho uv 6.6.6\\n' > %s/bin/uv"
       % (ROOT, ROOT))
    assert _facts(fleet, host)["uv"] == {"path": ROOT + "/bin/uv", "version": None, "verified": False}
    # Check mode does not run it either; it predicts without it and says why.
    check = fleet.deploy(host, fleet.projects["v2"], "--check")
    assert check.ok, check.tail()
    assert_in(r"bin/uv does not match manifest .* so check mode did not run it", check.output)
    assert on_host(host, "test", "-e", "/tmp/uv-ran").returncode != 0, "the tampered uv ran"
    assert release_state(host) == state

    # The wheelhouse directory replaced by a link to a world-writable directory: refused, nothing written there.
    sh(host, "mv %s/wheelhouse %s/wheelhouse.real && ln -s /tmp %s/wheelhouse" % (ROOT, ROOT, ROOT))
    deployment = fleet.deploy(host, fleet.projects["v2"])
    assert not deployment.ok
    assert_in(r"%s/wheelhouse is not a directory but a symlink to /tmp; airgap.uv writes through no symlink"
              % re.escape(ROOT), deployment.output)
    assert not [n for n in sh(host, "ls /tmp").split() if n.endswith(".whl")]
    assert on_host(host, "test", "-e", "/tmp/uv-ran").returncode != 0
    assert release_state(host) == state

    # Once the link is gone, the next run repairs uv and deploys; facts trust the pushed uv again.
    sh(host, "rm %s/wheelhouse && mv %s/wheelhouse.real %s/wheelhouse" % (ROOT, ROOT, ROOT))
    deployment = fleet.deploy(host, fleet.projects["v2"])
    assert deployment.ok and deployment.sync["changed"], deployment.tail()
    assert "click: 8.1.7" in app_output(host)
    assert _facts(fleet, host)["uv"]["verified"] is True
    assert on_host(host, "test", "-e", "/tmp/uv-ran").returncode != 0
