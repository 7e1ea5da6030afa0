"""The test bed's enclave network (issue 14): `up --enclave NAME HOST...`.

Hosts of an enclave share one link where they reach each other and the controller, and nothing
else: a host outside it, the other hosts' own links and the outside world stay unreachable. The
enclave address is in `status --json` and in the inventory (`airgap_uv_enclave_address`);
`down` of the last member removes the enclave's bridge.
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

TOOL = str(Path(__file__).resolve().parent / "offline-hosts")
HOSTS = ("fleet-e1", "fleet-e2")
OUTSIDE = "fleet-e3"

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.geteuid() != 0,
    reason="the test bed needs root on Linux (network and mount namespaces)",
)

# Serves one connection on ADDRESS:8000 (for 20 s at most), answering b"hi".
SERVE = ("import socket, sys; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
         "s.settimeout(20); s.bind((sys.argv[1], 8000)); s.listen()\n"
         "while True:\n c, _ = s.accept(); c.sendall(b'hi'); c.close()")
CONNECT = ("import socket, sys\ntry:\n print(socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)"
           ".recv(2).decode())\nexcept OSError as e:\n print('error', e.errno)")


def tool(*args):
    proc = subprocess.run([TOOL, *args], capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc.stdout


def connect(host, address, port=8000):
    return tool("exec", host, "--", "python3", "-c", CONNECT, address, str(port)).strip()


@pytest.fixture()
def enclave():
    names = (*HOSTS, OUTSIDE)
    tool("down", *names)
    try:
        tool("up", OUTSIDE)
        tool("up", "--enclave", "fleet-lab", HOSTS[0])
        # A host already up joins; running `up --enclave` again changes nothing.
        tool("up", HOSTS[1])
        tool("up", "--enclave", "fleet-lab", *HOSTS)
        yield {h["name"]: h for h in json.loads(tool("status", "--json")) if h["name"] in names}
    finally:
        tool("down", *names)


def test_enclave_hosts_reach_each_other_and_the_controller_only(enclave):
    one, two, outside = enclave[HOSTS[0]], enclave[HOSTS[1]], enclave[OUTSIDE]
    assert (one["enclave"], two["enclave"], outside["enclave"], outside["enclave_addr"]) == \
        ("fleet-lab", "fleet-lab", None, None)
    prefix = one["enclave_addr"].rsplit(".", 1)[0]
    assert two["enclave_addr"].rsplit(".", 1)[0] == prefix and one["enclave_addr"] != two["enclave_addr"]
    inventory = tool("inventory", *HOSTS, OUTSIDE)
    assert 'airgap_uv_enclave_address: "%s"' % one["enclave_addr"] in inventory
    assert inventory.count("airgap_uv_enclave_address") == 2
    # Each host has exactly its own link and the enclave's.
    links = tool("exec", HOSTS[0], "--", "ip", "-4", "-o", "addr", "show").split()
    assert one["enclave_addr"] + "/24" in links and one["addr"] + "/30" in links
    server = subprocess.Popen([TOOL, "exec", HOSTS[1], "--", "python3", "-c", SERVE, two["enclave_addr"]],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while connect(HOSTS[0], two["enclave_addr"]) != "hi":
            assert time.monotonic() < deadline, "host 1 never reached host 2 over the enclave"
            time.sleep(0.2)
        # The controller reaches it too.
        with socket.create_connection((two["enclave_addr"], 8000), timeout=3) as sock:
            assert sock.recv(2) == b"hi"
        # Nothing else: a host outside the enclave, and from inside, another host's own link and the world.
        assert connect(OUTSIDE, two["enclave_addr"]).startswith("error")
        assert connect(HOSTS[0], outside["addr"], 22).startswith("error")
        assert connect(HOSTS[0], "1.1.1.1", 443).startswith("error")
        # The controller's end of the enclave answers (its sshd is not needed: the address is on its bridge).
        controller = prefix + ".254"
        routes = tool("exec", HOSTS[0], "--", "ip", "-4", "route")
        assert "default" not in routes and prefix + ".0/24" in routes
        assert controller in subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    finally:
        server.kill()
        server.wait()


def test_restart_keeps_the_enclave(enclave):
    two = enclave[HOSTS[1]]
    tool("restart", HOSTS[1])
    after = {h["name"]: h for h in json.loads(tool("status", "--json"))}[HOSTS[1]]
    assert (after["state"], after["enclave_addr"]) == ("up", two["enclave_addr"])
    assert after["pid1"] != two["pid1"]
    links = tool("exec", HOSTS[1], "--", "ip", "-4", "-o", "addr", "show").split()
    assert two["enclave_addr"] + "/24" in links


def test_down_removes_the_enclave(enclave):
    tool("down", HOSTS[0])
    state = Path(os.environ.get("AIRGAP_TESTBED_STATE") or "/run/airgap-uv-testbed")
    assert (state / "enclaves" / "fleet-lab.json").exists()
    bridges = subprocess.run(["ip", "-d", "link"], capture_output=True, text=True, check=True).stdout
    assert " fleet-lab" in bridges
    tool("down", HOSTS[1])
    assert not (state / "enclaves" / "fleet-lab.json").exists()
    bridges = subprocess.run(["ip", "-d", "link"], capture_output=True, text=True, check=True).stdout
    assert not [line for line in bridges.splitlines() if "airgap-uv-testbed-enclave" in line and "fleet-lab" in line]
