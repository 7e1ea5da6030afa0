"""Checks of the offline test bed: brings up real hosts with offline-hosts.

Needs root on Linux.  The first run builds the cached base (debootstrap, about
a minute, needs the Debian mirror); later runs reuse it.  The hosts live in
their own state dir, so `down --all` here never touches hosts that someone
else brought up with the default state dir.
"""

import errno
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
TOOL = HERE / "offline-hosts"
STATE = "/run/airgap-uv-testbed-pytest"
HOSTS = ("tb-a", "tb-b")
ENV = dict(os.environ, AIRGAP_TESTBED_STATE=STATE)
# Must match Config.tag in offline-hosts: names kernel objects of this state dir.
TAG = hashlib.sha256(os.path.realpath(STATE).encode()).hexdigest()[:6]

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.geteuid() != 0,
    reason="the test bed needs root on Linux (network and mount namespaces)",
)


def tool(*args, check=True, timeout=120):
    proc = subprocess.run(
        [str(TOOL), *args],
        check=False,
        env=ENV,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        pytest.fail(f"offline-hosts {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def status():
    return {h["name"]: h for h in json.loads(tool("status", "--json").stdout)}


def host_exec(name, *cmd, check=False):
    return tool("exec", name, "--", *cmd, check=check)


def host_python(name, code):
    """Runs code with the host's python3 and returns what it prints as JSON."""
    proc = host_exec(name, "python3", "-c", code)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def inventory_value(text, key):
    m = re.search(rf"^\s+{key}: \"([^\"]+)\"$", text, re.M)
    assert m, f"{key} missing from inventory:\n{text}"
    return m.group(1)


def ssh(info, addr, *cmd, known_hosts=None):
    return subprocess.run(
        [
            "ssh", "-i", info["key"],
            "-o", f"UserKnownHostsFile={known_hosts or info['known_hosts']}",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes",
            "-o", "IdentitiesOnly=yes",
            "-o", "ConnectTimeout=10",
            f"root@{addr}", *cmd,
        ],
        check=False,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def leftovers(name):
    """Whatever a host of this state dir may leave behind on the controller."""
    found = []
    if os.path.lexists(f"{STATE}/hosts/{name}"):
        found.append("state dir")
    if os.path.lexists(f"/run/netns/agu-{TAG}-{name}"):
        found.append("netns")
    links = json.loads(subprocess.run(["ip", "-j", "link", "show"], check=True, capture_output=True, text=True).stdout)
    if any(l.get("ifalias") == f"airgap-uv-testbed {TAG} {name}" for l in links):
        found.append("veth")
    needle = f"{STATE}/hosts/{name}".encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if needle in f.read():
                    found.append(f"process {pid}")
        except OSError:
            pass
    return found


def ansible_bin():
    for cand in (Path(sys.executable).parent / "ansible", shutil.which("ansible"), "/tmp/devvenv/bin/ansible"):
        if cand and os.access(str(cand), os.X_OK):
            return str(cand)
    return None


@pytest.fixture(scope="module")
def testbed(request):
    tool("prepare", timeout=1800)
    # An earlier interrupted run may have left hosts or half-made hosts.
    tool("down", "--all")
    request.addfinalizer(lambda: tool("down", "--all"))
    return True


@pytest.fixture
def hosts(testbed, tmp_path):
    """The two standard hosts, up (a no-op when a previous test left them up)."""
    tool("up", *HOSTS)
    inv = tmp_path / "inventory.yml"
    tool("inventory", "--write", str(inv))
    text = inv.read_text()
    st = status()
    return {
        "inventory": str(inv),
        "key": inventory_value(text, "ansible_ssh_private_key_file"),
        "known_hosts": re.search(r"UserKnownHostsFile=(\S+)", text).group(1),
        "addr": {n: st[n]["addr"] for n in HOSTS},
        "status": st,
    }


def test_ssh_and_python3(hosts):
    for name in HOSTS:
        proc = ssh(hosts, hosts["addr"][name], "python3 --version; hostname; cat /proc/1/comm")
        assert proc.returncode == 0, proc.stderr
        version, hostname, init = proc.stdout.split("\n")[:3]
        assert version.startswith("Python 3.")
        assert hostname == name
        assert init == "sshd"


def test_host_key_is_pinned(hosts, tmp_path):
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    proc = ssh(hosts, hosts["addr"][HOSTS[0]], "true", known_hosts=str(empty))
    assert proc.returncode != 0
    assert "Host key verification failed" in proc.stderr


def test_ansible_ping(hosts, tmp_path):
    ansible = ansible_bin()
    if not ansible:
        pytest.skip("ansible not found")
    env = dict(
        ENV,
        ANSIBLE_SSH_CONTROL_PATH_DIR=str(tmp_path / "cp"),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"),
        ANSIBLE_DEPRECATION_WARNINGS="False",
        ANSIBLE_HOST_KEY_CHECKING="True",
    )
    proc = subprocess.run(
        [ansible, "-i", hosts["inventory"], "all", "-m", "ansible.builtin.ping"],
        check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in HOSTS:
        assert re.search(rf"^{name} \| SUCCESS", proc.stdout, re.M), proc.stdout
    assert proc.stdout.count('"pong"') == len(HOSTS)


def _controller_address():
    """The controller's own outside address (connecting UDP sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))
            return s.getsockname()[0]
        except OSError:
            return None


def test_host_is_offline(hosts):
    name = HOSTS[0]
    targets = [("1.1.1.1", 443)]
    ctl = _controller_address()
    if ctl:
        targets.append((ctl, 22))
    code = f"""
import json, socket
out = {{}}
for addr, port in {targets!r} + [("2606:4700:4700::1111", 443)]:
    try:
        socket.create_connection((addr, port), timeout=3).close()
        out[addr] = "connected"
    except OSError as exc:
        out[addr] = exc.errno
try:
    socket.getaddrinfo("example.org", 443)
    out["dns"] = "resolved"
except OSError as exc:
    out["dns"] = "failed"
print(json.dumps(out))
"""
    out = host_python(name, code)
    assert out.pop("dns") == "failed"
    for addr, result in out.items():
        assert result == errno.ENETUNREACH, (addr, result)
    routes = host_exec(name, "ip", "-4", "route").stdout
    assert "default" not in routes
    assert routes.strip().count("\n") == 0, routes  # only the /30 link
    assert host_exec(name, "ip", "-6", "route").stdout.strip() == ""


def test_controller_files_unreachable(hosts):
    name = HOSTS[0]
    paths = [p for p in ("/root/.pyenv", "/root/.cache/uv", STATE, "/var/cache/airgap-uv-testbed", str(HERE))
             if os.path.exists(p)]
    assert paths, "nothing to compare with on the controller"
    proc = host_exec(name, "ls", "-d", *paths)
    assert proc.returncode != 0
    assert proc.stdout.strip() == "", proc.stdout
    mounts = host_exec(name, "cat", "/proc/self/mountinfo").stdout.splitlines()
    points = sorted(line.split()[4] for line in mounts)
    assert points == ["/", "/dev", "/dev/pts", "/dev/shm", "/proc", "/run", "/sys", "/tmp"], points


def test_no_pip_no_venv(hosts):
    name = HOSTS[0]
    assert host_exec(name, "python3", "-m", "pip", "--version").returncode != 0
    assert host_exec(name, "python3", "-c", "import ensurepip").returncode != 0
    proc = host_exec(name, "python3", "-m", "venv", "/tmp/v")
    assert proc.returncode != 0
    assert "ensurepip" in proc.stdout + proc.stderr


def test_up_is_idempotent(hosts):
    before = status()
    t0 = time.monotonic()
    tool("up", *HOSTS)
    assert time.monotonic() - t0 < 5
    after = status()
    for name in HOSTS:
        assert after[name]["state"] == "up"
        assert after[name]["pid1"] == before[name]["pid1"]


def test_down_all_then_up_again(hosts):
    t0 = time.monotonic()
    tool("down", "--all")
    down_s = time.monotonic() - t0
    assert status() == {}
    for name in HOSTS:
        assert leftovers(name) == []
    tool("down", "--all")  # re-runnable
    t0 = time.monotonic()
    tool("up", *HOSTS)
    up_s = time.monotonic() - t0
    print(f"down --all: {down_s:.2f}s, up of {len(HOSTS)} hosts: {up_s:.2f}s")
    inv = tool("inventory").stdout
    for name in HOSTS:
        addr = status()[name]["addr"]
        assert f'ansible_host: "{addr}"' in inv
        proc = ssh(hosts, addr, "true")
        assert proc.returncode == 0, proc.stderr


def _kill_up_midway(name, delay, sig):
    """Signals `up` delay seconds after it starts making the host (its state
    file appears first), so each delay hits a different step whatever the
    interpreter's start-up time on this machine."""
    meta = Path(STATE, "hosts", name, "meta.json")
    proc = subprocess.Popen([str(TOOL), "up", name], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not meta.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    time.sleep(delay)
    proc.send_signal(sig)
    proc.wait(timeout=60)


@pytest.mark.parametrize("delay", [0.0, 0.005, 0.01, 0.02, 0.04, 0.08, 0.15])
def test_recovers_from_killed_up(testbed, delay):
    name = "tb-k"
    _kill_up_midway(name, delay, signal.SIGKILL)
    # Whatever state it is in now, down clears it, twice over.
    tool("down", name)
    assert leftovers(name) == []
    tool("down", name)
    tool("up", name)
    assert status()[name]["state"] == "up"
    tool("down", name)
    assert leftovers(name) == []


@pytest.mark.parametrize("delay", [0.0, 0.02, 0.06])
def test_up_over_leftovers_of_killed_up(testbed, delay):
    name = "tb-l"
    _kill_up_midway(name, delay, signal.SIGKILL)
    tool("up", name)
    assert status()[name]["state"] == "up"
    assert host_exec(name, "hostname").stdout.strip() == name
    tool("down", name)
    assert leftovers(name) == []


@pytest.mark.parametrize("delay", [0.0, 0.01, 0.03, 0.06])
def test_terminated_up_cleans_up(testbed, delay):
    name = "tb-t"
    _kill_up_midway(name, delay, signal.SIGTERM)
    st = status()
    # Either it finished before the signal, or it removed what it had made.
    if name in st:
        assert st[name]["state"] == "up"
        tool("down", name)
    assert leftovers(name) == []


def test_down_while_up_is_half_made(testbed):
    name = "tb-d"
    up = subprocess.Popen([str(TOOL), "up", name], env=ENV,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    meta = Path(STATE, "hosts", name, "meta.json")
    deadline = time.monotonic() + 30
    while not meta.exists() and up.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    tool("down", name)  # waits for up's lock, then removes the host
    up.wait(timeout=60)
    assert leftovers(name) == []


def test_recovers_from_crashed_host(testbed):
    name = "tb-c"
    tool("up", name)
    pid1 = int(status()[name]["pid1"])
    os.kill(pid1, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while status()[name]["state"] == "up" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert status()[name]["state"].startswith("broken")
    tool("up", name)
    st = status()[name]
    assert st["state"] == "up" and int(st["pid1"]) != pid1
    tool("down", name)
    assert leftovers(name) == []


def test_down_of_unknown_host_is_fine(testbed):
    tool("down", "tb-never-made")


def test_extra_python(testbed):
    pyenv = Path("/root/.pyenv/versions")
    prefixes = sorted(pyenv.glob("3.9.*")) if pyenv.is_dir() else []
    if not prefixes:
        pytest.skip("no pyenv Python 3.9 on this machine")
    prefix = str(prefixes[0])
    name = "tb-py"
    try:
        tool("up", name, "--python", prefix)
        proc = host_exec(name, f"{prefix}/bin/python3", "-c", "import sys, ssl; print(sys.version_info[:2])")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == "(3, 9)"
        # Only that prefix, read-only; nothing else of the controller's pyenv.
        assert host_exec(name, "ls", "/root/.pyenv").stdout.split() == ["versions"]
        assert host_exec(name, "touch", f"{prefix}/x").returncode != 0
    finally:
        tool("down", name)


def test_restart_keeps_the_disk_and_network_and_loses_tmp(testbed):
    name = "tb-r"
    tool("up", name)
    pid1 = int(status()[name]["pid1"])
    assert host_exec(name, "sh", "-c", "echo kept > /root/kept; echo gone > /tmp/gone").returncode == 0
    tool("restart", name)
    st = status()[name]
    assert st["state"] == "up" and int(st["pid1"]) != pid1
    assert host_exec(name, "cat", "/root/kept").stdout == "kept\n"
    assert host_exec(name, "test", "-e", "/tmp/gone").returncode == 1
    assert host_exec(name, "hostname").stdout.strip() == name
    tool("down", name)
    assert leftovers(name) == []
    # A host that is not up cannot be restarted, and the error says what to do.
    proc = tool("restart", name, check=False)
    assert proc.returncode == 1 and f"offline-hosts up {name}" in proc.stderr
