# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The inside-controller harness (inside_controller.py) is what issue 12 asks for: a real air gap.

From a command run by ``run_inside``:

- no address outside is reachable (a public address, and the package index pip used for
  setup, by name and by address); the network namespace has loopback only;
- the test hosts are (ansible ping and ``airgap.uv.target_facts`` on ``gap-1`` and ``gap-2``,
  every ssh connection through the relay), with host keys still checked against the pins;
- there is no uv, no dev venv and only ansible-core with its dependencies, plus the collection
  from its tarball;
- with the import blocker, airgap.uv code cannot import ``packaging`` while ansible-core can.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from inside_controller import inside_controller, inside_inventory, inside_relay, run_inside  # noqa: F401  (fixtures)  # pylint: disable=unused-import
from inside_controller import pip_index_host, read_testbed_inventory
from testbed_env import REPO, TESTBED, VENV_BIN

HOSTS = ("gap-1", "gap-2")
PUBLIC_ADDRESS = "1.1.1.1"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the offline test bed needs root")

# Resolves and connects to each argument (host or address, port 443); prints {target: outcome}.
_REACH = r"""
import json, socket, sys
out = {}
for host in sys.argv[1:]:
    try:
        socket.getaddrinfo(host, 443, proto=socket.IPPROTO_TCP)
        out["resolve " + host] = "ok"
    except OSError as exc:
        out["resolve " + host] = "%s: %s" % (type(exc).__name__, exc)
    try:
        socket.create_connection((host, 443), timeout=3).close()
        out["connect " + host] = "ok"
    except OSError as exc:
        out["connect " + host] = "%s: %s" % (type(exc).__name__, exc)
print(json.dumps(out))
"""

_TARGET_FACTS_PLAY = """\
- name: Target facts from inside the air gap
  hosts: all
  gather_facts: false
  tasks:
    - name: Read the target's facts
      airgap.uv.target_facts:
      register: facts
    - name: Show them
      ansible.builtin.debug:
        msg: "FACTS {{ inventory_hostname }} {{ facts | to_json }}"
"""

# ansible-core's own use of packaging first, then this collection's.
_IMPORTS = r"""
import json, sys
import ansible, packaging.version
from ansible_collections.airgap.uv.plugins.plugin_utils import _lock
print(json.dumps({"ansible": ansible.__file__, "cached": "packaging.version" in sys.modules,
                  "has_packaging": _lock.HAS_PACKAGING}))
"""


@pytest.fixture(scope="module")
def gap_hosts():
    try:
        subprocess.run([TESTBED, "down", *HOSTS], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([TESTBED, "up", *HOSTS], check=True, stdout=subprocess.DEVNULL)
        yield HOSTS
    finally:
        subprocess.run([TESTBED, "down", *HOSTS], check=False, stdout=subprocess.DEVNULL)


def _output(proc: subprocess.CompletedProcess) -> str:
    return "rc=%d\n%s\n%s" % (proc.returncode, proc.stdout[-4000:], proc.stderr[-4000:])


def _reach(run, *targets: str) -> dict:
    proc = run(["python3", "-c", _REACH, *targets], timeout=60)
    assert proc.returncode == 0, _output(proc)
    return json.loads(proc.stdout)


def test_inside_reaches_nothing_outside(inside_controller, run_inside):
    index = pip_index_host(os.path.join(VENV_BIN, "python"))  # the inside venv has no pip: ask the dev venv's
    inside = _reach(run_inside, PUBLIC_ADDRESS, index)
    for target in (PUBLIC_ADDRESS, index):
        assert inside["connect " + target] != "ok", inside
    # The name does not even resolve (no route to any name server); an address has no route.
    assert inside["resolve " + index] != "ok", inside
    assert "unreachable" in inside["connect " + PUBLIC_ADDRESS].lower(), inside
    # Loopback is the namespace's only interface.
    proc = run_inside(["cat", "/proc/net/dev"])
    interfaces = sorted(line.split(":")[0].strip() for line in proc.stdout.splitlines()[2:])
    assert interfaces == ["lo"], proc.stdout
    # The same attempt outside reaches the index, so the failure inside is the namespace's doing
    # (unless this machine reaches it only through a proxy).
    if not any(key.lower().endswith("_proxy") for key in os.environ):
        outside = json.loads(subprocess.run([sys.executable, "-c", _REACH, index], stdout=subprocess.PIPE,
                                            text=True, check=True, timeout=60).stdout)
        assert outside["connect " + index] == "ok", outside


def test_inside_has_only_ansible_core_and_the_collection(inside_controller, run_inside):
    controller = inside_controller
    entries = controller.path.split(os.pathsep)
    assert entries == [controller.bin, "/usr/bin", "/bin"]
    assert shutil.which("uv", path=controller.path) is None
    assert VENV_BIN not in entries and not controller.venv.startswith(REPO)
    found = run_inside(["sh", "-c", "command -v uv; command -v uvx; command -v ansible-playbook"])
    assert found.stdout.split() == [os.path.join(controller.bin, "ansible-playbook")], _output(found)
    env = run_inside(["python3", "-c", "import json, os; print(json.dumps(dict(os.environ)))"])
    seen = json.loads(env.stdout)
    assert seen["HOME"] == controller.home and seen["ANSIBLE_COLLECTIONS_PATH"] == controller.collections, seen
    assert not [key for key in seen if key.startswith(("UV_", "PIP_", "VIRTUAL_ENV")) or key.endswith("_proxy")], seen
    # The venv holds ansible-core and its dependencies: no uv, no tomli, no ansible package.
    dists = run_inside(["python3", "-c", "import importlib.metadata as m, json; "
                        "print(json.dumps(sorted(d.metadata['Name'].lower() for d in m.distributions())))"])
    names = json.loads(dists.stdout)
    assert "ansible-core" in names and not {"uv", "tomli", "ansible", "pytest"} & set(names), names
    # The collection is the copy installed from the tarball, not the checkout.
    listed = run_inside(["ansible-galaxy", "collection", "list", "airgap.uv", "--format", "json"])
    assert listed.returncode == 0, _output(listed)
    assert list(json.loads(listed.stdout)) == [os.path.join(controller.collections, "ansible_collections")], \
        listed.stdout
    assert not os.path.islink(controller.installed) and os.path.isfile(os.path.join(controller.installed,
                                                                                    "MANIFEST.json"))


def test_inside_reaches_the_test_hosts(gap_hosts, inside_controller, inside_inventory, inside_relay, run_inside):
    inventory = inside_inventory(gap_hosts)
    before = dict(inside_relay.connections)
    ping = run_inside(["ansible", "-i", inventory, "all", "-m", "ansible.builtin.ping"], block_imports=True)
    assert ping.returncode == 0, _output(ping)
    assert all('%s | SUCCESS' % host in ping.stdout for host in gap_hosts), ping.stdout
    inside_controller.clear_imports()
    playbook = os.path.join(inside_controller.root, "target_facts.yml")
    with open(playbook, "w", encoding="utf-8") as handle:
        handle.write(_TARGET_FACTS_PLAY)
    play = run_inside(["ansible-playbook", "-i", inventory, playbook], block_imports=True)
    assert play.returncode == 0, _output(play)
    for host in gap_hosts:
        assert "%s" % host in play.stdout and "FACTS %s {" % host in play.stdout, play.stdout
    assert "failed=0" in play.stdout and "unreachable=0" in play.stdout, play.stdout
    # Each ssh connection went through the relay (one per host and run, or more).
    assert all(inside_relay.connections[host] >= before.get(host, 0) + 2 for host in gap_hosts), \
        inside_relay.connections
    # Nothing of this collection asked for packaging or tomli on the way.
    assert not [entry for entry in inside_controller.imports() if entry["refused"]], inside_controller.imports()


def test_host_keys_are_still_checked_through_the_relay(gap_hosts, inside_controller, inside_inventory, run_inside):
    """gap-1 pinned with gap-2's key: ssh must refuse, the relay changes nothing about host key checking."""
    pins = read_testbed_inventory(gap_hosts)["all"]["hosts"]
    known_hosts = pins[gap_hosts[0]]["ansible_ssh_common_args"].split("UserKnownHostsFile=")[1].split()[0]
    with open(known_hosts, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    first, second = (pins[host]["ansible_host"] for host in gap_hosts)
    key = next(line.split(None, 1)[1] for line in lines if line.split(None, 1)[0] == second)
    wrong = os.path.join(inside_controller.root, "known_hosts.wrong")
    with open(wrong, "w", encoding="utf-8") as handle:
        handle.write("%s %s\n" % (first, key))
    inventory = inside_inventory(gap_hosts[:1], os.path.join(inside_controller.root, "inventory-wrong-key.yml"))
    with open(inventory, encoding="utf-8") as handle:
        text = handle.read()
    with open(inventory, "w", encoding="utf-8") as handle:
        handle.write(text.replace(known_hosts, wrong))
    # Without pipelining: with it, ansible may write the module to an ssh that already gave up and
    # report only "Broken pipe", hiding ssh's reason.
    ping = run_inside(["ansible", "-i", inventory, "all", "-m", "ansible.builtin.ping"],
                      env_extra={"ANSIBLE_PIPELINING": "false"})
    assert ping.returncode != 0 and "UNREACHABLE" in ping.stdout, _output(ping)
    assert "Host key verification failed" in ping.stdout + ping.stderr, _output(ping)


def test_import_blocker_hides_packaging_from_this_collection_only(inside_controller, run_inside):
    env = {"PYTHONPATH": inside_controller.collections}
    free = run_inside(["python3", "-c", _IMPORTS], env_extra=env)
    assert free.returncode == 0, _output(free)
    assert json.loads(free.stdout)["has_packaging"] is True, free.stdout
    inside_controller.clear_imports()
    blocked = run_inside(["python3", "-c", _IMPORTS], env_extra=env, block_imports=True)
    assert blocked.returncode == 0, _output(blocked)
    result = json.loads(blocked.stdout)
    assert result["ansible"].startswith(inside_controller.venv), result
    # packaging was loaded (by __main__, standing in for ansible-core), yet _lock could not have it.
    assert result["cached"] is True and result["has_packaging"] is False, result
    refused = {(entry["module"], entry["importer"]) for entry in inside_controller.imports() if entry["refused"]}
    assert ("packaging.specifiers", "ansible_collections.airgap.uv.plugins.plugin_utils._lock") in refused, refused
    # A plain import of _lock succeeds (its imports are guarded); using it needs packaging.
    strict = run_inside(["python3", "-c", "from ansible_collections.airgap.uv.plugins.plugin_utils import _lock; "
                         "assert _lock.HAS_PACKAGING"], env_extra=env, block_imports=True)
    assert strict.returncode != 0 and "AssertionError" in strict.stderr, _output(strict)
    assert run_inside(["python3", "-c", "import ansible, packaging"], block_imports=True).returncode == 0
