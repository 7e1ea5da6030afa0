# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The index inside the air gap (issue 14): airgap.uv.mirror on an enclave of the test bed.

``mirror-1`` and ``fleet-m1`` share an enclave (one link, nothing else). The playbook
``airgap.uv.mirror`` deploys pypiserver to ``mirror-1`` offline, as a uv project, with this
collection's own role, feeds it real wheels, and starts it on its enclave address (no systemd
on the test hosts). Then:

- ``fleet-m1`` reads the simple index over the enclave, and each file it downloads has the
  sha256 the index links name, which is the wheel's own;
- a server that died is started again by the next run, which changes nothing else;
- ``uv_deploy_source: mirror``: with the mirror down the host fails naming its URL and keeps the
  release in service; once the mirror is fed the wheelhouse, the host fetches its new wheels from
  it (hash-pinned) and the controller sends only the install files.
"""

from __future__ import annotations

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


def mirror_playbook(tmp, inventory: str, feed: str) -> subprocess.CompletedProcess:
    argv = [os.path.join(VENV_BIN, "ansible-playbook"), "-i", inventory, "airgap.uv.mirror",
            "-e", "airgap_uv_mirror_hosts=%s" % MIRROR, "-e", json.dumps({"uv_mirror_feed": [feed + "/"]}),
            "-e", "uv_mirror_project_dir=%s" % (tmp / "project"),
            "-e", "uv_deploy_wheelhouse_dir=%s" % (tmp / "wheelhouse")]
    start = time.monotonic()
    proc = subprocess.run(argv, env=ansible_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          check=False, timeout=600)
    print("airgap.uv.mirror: %.1f s" % (time.monotonic() - start))
    return proc


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

    # The server dies (a crash, a restart of the host's processes): the next run starts it again, and
    # that is all it changes (the deployment, the lock and the feed are as they were).
    sh(MIRROR, "kill $(cat %s/server.pid); sleep 0.5" % ROOT)
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


def test_hosts_pull_their_wheels_from_the_mirror(enclave):
    tmp, inventory, address = enclave
    base = "http://%s:8080" % address
    v1 = _make_project(tmp, "v1", lambda text: text.replace('"markupsafe>=2.1",', '"markupsafe>=2.1",\n    "six==1.16.0",'))
    v2 = _make_project(tmp, "v2", lambda text: text.replace('version = "0.1.0"', 'version = "0.2.0"').replace(
        '"markupsafe>=2.1",', '"markupsafe>=2.1",\n    "six==1.17.0",\n    "idna==3.7",'))
    first = deploy(tmp, inventory, v1)
    assert first.returncode == 0, first.stdout[-4000:]
    in_service = sh(CLIENT, "readlink %s/venv" % APP_ROOT)

    # The mirror is down: the host fails naming the URL, and what is in service stays.
    sh(MIRROR, "kill $(cat %s/server.pid) 2>/dev/null || true; sleep 0.5" % ROOT)
    mirror = ["-e", "uv_deploy_source=mirror", "-e", "uv_deploy_mirror_url=%s" % base]
    down = deploy(tmp, inventory, v2, *mirror)
    assert down.returncode != 0, down.stdout[-4000:]
    assert "cannot reach the mirror %s" % base in down.stdout and "changed nothing on this host" in down.stdout
    assert sh(CLIENT, "readlink %s/venv" % APP_ROOT) == in_service
    assert sh(CLIENT, "ls -A %s/.incoming 2>/dev/null || true" % APP_ROOT).strip() == ""
    assert json.loads((tmp / "fleet.json").read_text())["hosts"][CLIENT]["status"] == "failed"

    # Fed with the wheelhouse the failed run built, the mirror serves the host its wheels.
    fed = mirror_playbook(tmp, inventory, str(tmp / "app-wheelhouse" / "files"))
    assert fed.returncode == 0, fed.stdout[-4000:]
    pulled = deploy(tmp, inventory, v2, *mirror)
    assert pulled.returncode == 0, pulled.stdout[-4000:]
    packages = host_packages(CLIENT, APP_ROOT + "/venv")
    assert (packages["hello-airgap"], packages["six"], packages["idna"]) == ("0.2.0", "1.17.0", "3.7")
    row = json.loads((tmp / "fleet.json").read_text())["hosts"][CLIENT]
    assert row["status"] == "changed" and row["bytes_pulled"] > 0, row
    # The controller sent only the install files: the new wheels came from the mirror.
    assert row["bytes_sent"] < 20000, row
    assert row["bytes_pulled"] > row["bytes_sent"], row
