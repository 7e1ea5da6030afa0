# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The index inside the air gap (issue 14): airgap.uv.mirror on an enclave of the test bed.

``mirror-1`` and ``fleet-m1`` share an enclave (one link, nothing else). The playbook
``airgap.uv.mirror`` deploys pypiserver to ``mirror-1`` offline, as a uv project, with this
collection's own role, feeds it real wheels, and starts it on its enclave address (no systemd
on the test hosts). Then:

- ``fleet-m1`` reads the simple index over the enclave, and each file it downloads has the
  sha256 the index links name, which is the wheel's own;
- after the mirror host restarts (``offline-hosts restart``: its processes die, its disk stays),
  the next run starts the server again, which changes nothing else;
- ``uv_deploy_source: mirror``: with the mirror down the host fails naming its URL and keeps the
  release in service; the mirror is fed a first wheelhouse (one feed), then in check mode a second
  (what pruning would remove, nothing removed), then a signed bundle of the second release, as a
  controller inside the air gap would (the server not redeployed): the first feed's own files go,
  the current ones stay. The host deployed from that bundle fetches its new wheels and uv from the
  mirror (hash-pinned) and the controller sends only the install files; a uv zip on the mirror
  that is not what the controller pinned is refused, the release in service untouched.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import time

import pytest

from test_sync_faults import _make_project, host_packages, sh
from testbed_env import TESTBED, VENV_BIN, ansible_env

MIRROR, CLIENT = "mirror-1", "fleet-m1"
ROOT = "/opt/airgap-uv/airgap-uv-mirror"
APP_ROOT = "/opt/airgap-uv/hello-airgap"
FETCH = ("import sys, urllib.request\nwith urllib.request.urlopen(sys.argv[1], timeout=10) as r:\n"
         " sys.stdout.buffer.write(r.read())")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the offline test bed needs root")


@pytest.fixture(scope="module")
def enclave(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mirror")
    try:
        subprocess.run([TESTBED, "down", MIRROR, CLIENT], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([TESTBED, "up", "--enclave", "fleet-mirror", MIRROR, CLIENT], check=True,
                       stdout=subprocess.DEVNULL)
        listed = subprocess.run([TESTBED, "status", "--json"], check=True, stdout=subprocess.PIPE, text=True).stdout
        status = {h["name"]: h for h in json.loads(listed)}
        inventory = str(tmp / "inventory.yml")
        subprocess.run([TESTBED, "inventory", "--write", inventory, MIRROR, CLIENT], check=True,
                       stdout=subprocess.DEVNULL)
        yield tmp, inventory, status[MIRROR]["enclave_addr"]
    finally:
        subprocess.run([TESTBED, "down", MIRROR, CLIENT], check=False, stdout=subprocess.DEVNULL)


def mirror_playbook(tmp, inventory: str, feed: str | None, *extra: str) -> subprocess.CompletedProcess:
    argv = [os.path.join(VENV_BIN, "ansible-playbook"), "-i", inventory, "airgap.uv.mirror",
            "-e", "airgap_uv_mirror_hosts=%s" % MIRROR, "-e", json.dumps({"uv_mirror_feed": [feed + "/"] if feed else []}),
            "-e", "uv_mirror_project_dir=%s" % (tmp / "project"),
            "-e", "uv_deploy_wheelhouse_dir=%s" % (tmp / "wheelhouse"), *extra]
    start = time.monotonic()
    proc = subprocess.run(argv, env=ansible_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          check=False, timeout=600)
    print("airgap.uv.mirror: %.1f s" % (time.monotonic() - start))
    return proc


def status_addr(host: str) -> str:
    listed = subprocess.run([TESTBED, "status", "--json"], check=True, stdout=subprocess.PIPE, text=True).stdout
    return {h["name"]: h for h in json.loads(listed)}[host]["addr"]


def recap(output: str, host: str) -> dict:
    match = re.search(r"^%s\s*: (.*)$" % re.escape(host), output, re.M)
    assert match, output[-3000:]
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(1))}


def fetch(host: str, url: str) -> bytes:
    proc = subprocess.run([TESTBED, "exec", host, "--", "python3", "-c", FETCH, url], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout


def test_mirror_serves_the_enclave_and_comes_back(enclave, public_wheels):
    tmp, inventory, address = enclave
    feed = tmp / "feed"
    feed.mkdir()
    for path in public_wheels.values():
        shutil.copy(path, feed)
    first = mirror_playbook(tmp, inventory, str(feed))
    assert first.returncode == 0, first.stdout[-4000:]
    # pypiserver came from this collection's own deployment: a release of the uv_deploy role.
    assert sh(MIRROR, "readlink %s/venv" % ROOT).startswith(".venv.releases/")
    assert "pypiserver" in sh(MIRROR, "%s/venv/bin/pypi-server --version || true; ls %s/wheelhouse" % (ROOT, ROOT))

    # The client reads the index over the enclave; every link carries the file's own sha256.
    base = "http://%s:8080" % address
    page = fetch(CLIENT, base + "/simple/six/").decode()
    links = re.findall(r'href="([^"#]+)#sha256=([0-9a-f]{64})"', page)
    assert [os.path.basename(href) for href, dummy in links] == [os.path.basename(public_wheels["six"])], page
    href, digest = links[0]
    wheel = fetch(CLIENT, href if href.startswith("http") else base + href if href.startswith("/")
                  else base + "/simple/six/" + href)
    with open(public_wheels["six"], "rb") as handle:
        assert hashlib.sha256(wheel).hexdigest() == digest == hashlib.sha256(handle.read()).hexdigest()

    # The mirror host is restarted (every process dies, its disk stays): the next run starts the
    # server again, and that is all it changes (the deployment, the lock and the feed are as they were).
    subprocess.run([TESTBED, "restart", MIRROR], check=True, stdout=subprocess.DEVNULL)
    down = subprocess.run([TESTBED, "exec", CLIENT, "--", "python3", "-c", FETCH, base + "/health"],
                          capture_output=True, check=False)
    assert down.returncode != 0
    back = mirror_playbook(tmp, inventory, str(feed))
    assert back.returncode == 0 and recap(back.stdout, MIRROR)["changed"] == 1, back.stdout[-4000:]
    assert "Start the server" in back.stdout and fetch(CLIENT, base + "/simple/idna/").count(b"sha256=") == 1


def deploy(tmp, inventory: str, project: str, *extra: str) -> subprocess.CompletedProcess:
    argv = [os.path.join(VENV_BIN, "ansible-playbook"), "-i", inventory, "airgap.uv.deploy_offline",
            "-e", "airgap_uv_hosts=%s" % CLIENT, "-e", "uv_deploy_project=%s" % project,
            "-e", "uv_deploy_wheelhouse_dir=%s" % (tmp / "app-wheelhouse"),
            "-e", "uv_deploy_report_path=%s" % (tmp / "fleet.json"), *extra]
    return subprocess.run(argv, env=ansible_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          check=False, timeout=600)


def outside(*args: str) -> subprocess.CompletedProcess:
    """ansible-playbook with no inventory (the connected side's bundle and targets playbooks)."""
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible-playbook"), *args],
                          env=ansible_env(ANSIBLE_LOCALHOST_WARNING="false"), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, check=False, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:]
    return proc


def fed(output: str) -> list:
    """The feeds airgap.uv.mirror_feed reported (-v prints the task's result)."""
    task = output.find("Feed the mirror what the hosts")
    start = output.find("=> {", task)
    assert task >= 0 and start >= 0, output[-4000:]
    return json.JSONDecoder().raw_decode(output, start + 3)[0]["feeds"]


def signed_bundle(tmp, inventory: str, project: str) -> tuple[str, str]:
    """A bundle of PROJECT for CLIENT's target, signed; (bundle, allowed signers file)."""
    targets = str(tmp / "targets.yml")
    outside("-i", inventory, "airgap.uv.targets", "-e", "airgap_uv_hosts=%s" % CLIENT, "-e",
            "uv_deploy_targets_file=" + targets)
    key = str(tmp / "release")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "release", "-f", key], check=True)
    with open(key + ".pub", encoding="utf-8") as handle:
        kind, public = handle.read().split()[:2]
    signers = tmp / "allowed_signers"
    signers.write_text("release@example.invalid %s %s\n" % (kind, public))
    bundle = str(tmp / "v2.tar")
    outside("airgap.uv.bundle", "-e", "uv_deploy_project=" + project, "-e", "uv_deploy_targets_file=" + targets,
            "-e", "uv_deploy_bundle=" + bundle, "-e", "uv_deploy_wheelhouse_dir=%s" % (tmp / "bundle-wheelhouse"),
            "-e", "uv_deploy_bundle_signing_key=" + key)
    return bundle, str(signers)


def controller_sent(address: str) -> int:
    """Bytes the controller has sent on its link to the host at ADDRESS (its veth's tx counter)."""
    route = subprocess.run(["ip", "-o", "route", "get", address], check=True, stdout=subprocess.PIPE, text=True).stdout
    device = route.split(" dev ", 1)[1].split()[0]
    with open("/sys/class/net/%s/statistics/tx_bytes" % device, encoding="ascii") as handle:
        return int(handle.read())


def test_hosts_pull_their_wheels_and_uv_from_the_mirror(enclave):
    tmp, inventory, address = enclave
    base = "http://%s:8080" % address
    v1 = _make_project(tmp, "v1", lambda text: text.replace('"markupsafe>=2.1",', '"markupsafe>=2.1",\n    "six==1.16.0",'))
    v2 = _make_project(tmp, "v2", lambda text: text.replace('version = "0.1.0"', 'version = "0.2.0"').replace(
        '"markupsafe>=2.1",', '"markupsafe>=2.1",\n    "six==1.17.0",\n    "idna==3.7",'))
    first = deploy(tmp, inventory, v1)
    assert first.returncode == 0, first.stdout[-4000:]
    in_service = sh(CLIENT, "readlink %s/venv" % APP_ROOT)
    subprocess.run(["cp", "-al", str(tmp / "app-wheelhouse"), str(tmp / "wheelhouse-v1")], check=True)

    # The mirror is down: the host fails naming the URL, and what is in service stays. The host has no
    # uv either now: from here on it comes from the mirror too.
    sh(MIRROR, "kill $(cat %s/server.pid) 2>/dev/null || true; sleep 0.5" % ROOT)
    sh(CLIENT, "rm %s/bin/uv %s/bin/uvx" % (APP_ROOT, APP_ROOT))
    mirror = ["-e", "uv_deploy_source=mirror", "-e", "uv_deploy_mirror_url=%s" % base]
    down = deploy(tmp, inventory, v2, *mirror)
    assert down.returncode != 0, down.stdout[-4000:]
    assert "cannot reach the mirror %s" % base in down.stdout and "changed nothing on this host" in down.stdout
    assert sh(CLIENT, "readlink %s/venv" % APP_ROOT) == in_service
    assert sh(CLIENT, "ls -A %s/.incoming 2>/dev/null || true" % APP_ROOT).strip() == ""
    assert json.loads((tmp / "fleet.json").read_text())["hosts"][CLIENT]["status"] == "failed"

    # A first feed: the first release's wheelhouse (its wheels, and uv in its zip); keep one feed.
    # The server was deployed by the test above: these runs feed and prune only (and start it again).
    keep = ["-e", json.dumps({"uv_mirror_keep": 1, "uv_mirror_deploy_server": False}), "-v"]
    one = mirror_playbook(tmp, inventory, None, "-e", json.dumps({"uv_mirror_wheelhouses": [str(tmp / "wheelhouse-v1")]}),
                          *keep)
    assert one.returncode == 0, one.stdout[-4000:]
    feed_v1 = fed(one.stdout)[0]
    uv_zip = [name for name in feed_v1["sent"] if name.startswith("airgap_uv_binaries-")]
    assert len(uv_zip) == 1 and "six-1.16.0-py2.py3-none-any.whl" in feed_v1["sent"], feed_v1
    served = "/srv/airgap-uv/mirror/packages/"
    # Check mode, the second release's wheelhouse: what would go, and nothing goes.
    check = mirror_playbook(tmp, inventory, None, "--check", "-e",
                            json.dumps({"uv_mirror_wheelhouses": [str(tmp / "app-wheelhouse")]}), *keep)
    assert check.returncode == 0, check.stdout[-4000:]
    predicted = fed(check.stdout)[0]
    assert "six-1.16.0-py2.py3-none-any.whl" in predicted["removed"] and predicted["record"] == "new", predicted
    assert not set(predicted["removed"]) & set(predicted["sent"]), predicted
    assert "six-1.16.0-py2.py3-none-any.whl" in sh(MIRROR, "ls " + served)

    # Inside the air gap: a signed bundle of the second release feeds the mirror (checked by
    # airgap.uv.bundle_import; no lock, so no server deployment): the first feed's own files go.
    bundle, signers = signed_bundle(tmp, inventory, v2)
    keep.extend(["-e", "uv_mirror_bundle_store=%s" % (tmp / "store")])
    two = mirror_playbook(tmp, inventory, None, "-e", "uv_mirror_bundle=" + bundle, "-e",
                          "uv_mirror_bundle_allowed_signers=" + signers, *keep)
    assert two.returncode == 0 and "Lock the server" not in two.stdout, two.stdout[-4000:]
    feed_v2 = fed(two.stdout)[0]
    assert "six-1.16.0-py2.py3-none-any.whl" in feed_v2["removed"] and feed_v2["record"] == "new", feed_v2
    # Only what the mirror lacks: the bundle's uv makes the same zip, already there (as is six 1.17.0,
    # fed by hand by the test above).
    assert uv_zip[0] not in feed_v2["sent"] and "idna-3.7-py3-none-any.whl" in feed_v2["sent"], feed_v2
    listing = sh(MIRROR, "ls " + served).split()
    assert "six-1.16.0-py2.py3-none-any.whl" not in listing and {uv_zip[0], "six-1.17.0-py2.py3-none-any.whl"} <= set(listing)
    again = mirror_playbook(tmp, inventory, None, "-e", "uv_mirror_bundle=" + bundle, "-e",
                            "uv_mirror_bundle_allowed_signers=" + signers, *keep)
    assert again.returncode == 0 and recap(again.stdout, MIRROR)["changed"] == 0, again.stdout[-4000:]

    # The host, deployed from that bundle, fetches its wheels and uv from the mirror: the controller
    # sends it only the install files.
    from_bundle = ["-e", "uv_deploy_bundle=" + bundle, "-e", "uv_deploy_bundle_allowed_signers=" + signers,
                   "-e", "uv_deploy_bundle_store=%s" % (tmp / "store")]
    link_before = controller_sent(status_addr(CLIENT))
    pulled = deploy(tmp, inventory, "", *mirror, *from_bundle)
    link_bytes = controller_sent(status_addr(CLIENT)) - link_before
    assert pulled.returncode == 0, pulled.stdout[-4000:]
    packages = host_packages(CLIENT, APP_ROOT + "/venv")
    assert (packages["hello-airgap"], packages["six"], packages["idna"]) == ("0.2.0", "1.17.0", "3.7")
    row = json.loads((tmp / "fleet.json").read_text())["hosts"][CLIENT]
    print("through the mirror, uv included: bytes_sent %d, bytes_pulled %d, controller link tx %d"
          % (row["bytes_sent"], row["bytes_pulled"], link_bytes))
    assert row["status"] == "changed" and row["bytes_pulled"] > 10_000_000, row
    # What push sent (the install files), and everything the controller sent the host over its link
    # in that run: about 1 MB, nearly all of it Ansible's modules and SSH (uv alone is 38 MB).
    assert row["bytes_sent"] < 20_000 and link_bytes < 1_500_000, (row, link_bytes)
    uv = hashlib.sha256(open(glob.glob(str(tmp / "store" / "*" / "hosts" / "*" / "bin" / "uv"))[0], "rb").read())
    assert sh(CLIENT, "sha256sum %s/bin/uv" % APP_ROOT).split()[0] == uv.hexdigest()
    assert sh(CLIENT, "%s/bin/uv --version" % APP_ROOT).startswith("uv ")

    # A uv zip on the mirror that is not the one the controller named is refused; nothing changes.
    in_service = sh(CLIENT, "readlink %s/venv" % APP_ROOT)
    sh(MIRROR, "cd %s && printf 'PK not uv' > %s" % (served, uv_zip[0]))
    sh(CLIENT, "rm %s/bin/uv" % APP_ROOT)
    refused = deploy(tmp, inventory, "", *mirror, *from_bundle)
    assert refused.returncode != 0 and "not the zip of uv binaries" in refused.stdout, refused.stdout[-4000:]
    assert "%s/packages/%s" % (base, uv_zip[0]) in refused.stdout
    assert sh(CLIENT, "readlink %s/venv" % APP_ROOT) == in_service
    assert sh(CLIENT, "ls -A %s/.incoming 2>/dev/null || true" % APP_ROOT).strip() == ""


def test_a_mirror_server_from_a_bundle_locks_nothing(enclave):
    """Inside the air gap the controller cannot lock pypiserver's project. The connected side writes and locks
    it (playbook airgap.uv.mirror_server_project) and bundles it for the mirror host's target; inside, the
    mirror role deploys the server from that bundle, never running the controller's uv."""
    tmp, inventory, dummy = enclave

    def play(*argv: str) -> subprocess.CompletedProcess:
        proc = subprocess.run([os.path.join(VENV_BIN, "ansible-playbook"), *argv], env=ansible_env(), cwd=str(tmp),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False, timeout=600)
        assert proc.returncode == 0, proc.stdout[-4000:]
        return proc

    # Outside: the project, and a bundle for the target the inside described (fleet-m1 becomes a second mirror).
    play("airgap.uv.mirror_server_project", "-e", "uv_mirror_project_dir=%s" % (tmp / "server-project"))
    play("-i", inventory, "airgap.uv.targets", "-e", "airgap_uv_hosts=%s" % CLIENT,
         "-e", "uv_deploy_targets_file=%s" % (tmp / "server-targets.yml"))
    play("airgap.uv.bundle", "-e", "uv_deploy_project=%s" % (tmp / "server-project" / "airgap-uv-mirror"),
         "-e", "uv_deploy_targets_file=%s" % (tmp / "server-targets.yml"), "-e", "uv_deploy_bundle=%s" % (tmp / "server.tar"))
    # Inside: no uv to lock with, no project directory; the server comes from the bundle.
    inside = play("-i", inventory, "airgap.uv.mirror", "-e", "airgap_uv_mirror_hosts=%s" % CLIENT,
                  "-e", "uv_mirror_server_bundle=%s" % (tmp / "server.tar"), "-e", "uv_mirror_bundle_allow_unsigned=true",
                  "-e", "uv_mirror_bundle_store=%s" % (tmp / "server-store"), "-e", "uv_mirror_uv=/nonexistent/uv",
                  "-e", "uv_mirror_project_dir=%s" % (tmp / "no-project"))
    assert "Lock the server's uv project" not in inside.stdout and not (tmp / "no-project").exists()
    assert sh(CLIENT, "readlink %s/venv" % ROOT).startswith(".venv.releases/")
    listed = subprocess.run([TESTBED, "status", "--json"], check=True, stdout=subprocess.PIPE, text=True).stdout
    address = {h["name"]: h for h in json.loads(listed)}[CLIENT]["enclave_addr"]
    assert "Simple Index" in fetch(MIRROR, "http://%s:8080/simple/" % address).decode()
