# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""A real air gap, end to end (issue 12): targets out, bundle out, bundle in.

- Inside (``run_inside``: a network namespace with loopback only, ssh to the test hosts through
  a relay, no uv, ansible-core and the collection from its tarball, and ``packaging``/``tomli``
  refused to this collection's code): ``airgap.uv.targets`` describes two hosts of different
  Pythons (two targets).
- Outside (this process, with the index): ``airgap.uv.bundle`` builds a signed bundle for both,
  and a delta of it after a one-package upgrade.
- Inside: ``deploy_offline -e uv_deploy_bundle=...`` in check mode, for real, again (no change),
  then the delta; and the refusals, each before a host is touched: a flipped byte, a wrong
  signer, a delta whose base the store lacks, a truncated bundle, a host whose target the bundle
  lacks.
"""

from __future__ import annotations

import glob
import json
import os
import pathlib
import re
import shutil
import subprocess
import tarfile
import time

import pytest
import yaml

from inside_controller import inside_controller, inside_inventory, inside_relay, run_inside  # noqa: F401  (fixtures)  # pylint: disable=unused-import
from test_sync_faults import _make_project, host_packages
from testbed_env import TESTBED, VENV_BIN, ansible_env

HOSTS = ("bund-1", "bund-2")
PYTHON312 = sorted(glob.glob("/root/.pyenv/versions/3.12.*"))
RECAP = re.compile(r"^(?P<host>\S+)\s+: ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)\s+"
                   r"failed=(?P<failed>\d+)", re.M)

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the offline test bed needs root"),
    pytest.mark.skipif(not PYTHON312, reason="needs a pyenv CPython 3.12 under /root/.pyenv/versions"),
]


def recap(output: str) -> dict:
    return {m.group("host"): {key: int(m.group(key)) for key in ("ok", "changed", "unreachable", "failed")}
            for m in RECAP.finditer(output)}


def outside(*args: str) -> subprocess.CompletedProcess:
    """ansible-playbook on the connected side (the dev venv, the index), no inventory."""
    env = ansible_env(ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible-playbook"), *args], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, check=False, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:]
    return proc


def keypair(directory: str, name: str) -> str:
    key = os.path.join(directory, name)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", key], check=True)
    return key


class Gap:
    """What the module's tests share: paths on the shared file system, and the timings."""

    def __init__(self, tmp, run, inventory) -> None:
        self.tmp = str(tmp)
        self.run = run
        self.inventory = inventory
        self.timings: dict = {}

    def path(self, name: str) -> str:
        return os.path.join(self.tmp, name)

    def deploy(self, bundle: str, *extra: str, signers: str = "allowed_signers", store: str = "store",
               check: bool = False) -> subprocess.CompletedProcess:
        args = ["ansible-playbook", "-i", self.inventory, "airgap.uv.deploy_offline", "-e", "uv_deploy_bundle=" + bundle,
                "-e", "uv_deploy_bundle_store=" + self.path(store), *extra]
        if signers:
            args += ["-e", "uv_deploy_bundle_allowed_signers=" + self.path(signers)]
        if check:
            args.append("--check")
        start = time.monotonic()
        proc = self.run(args, cwd=self.tmp, block_imports=True, timeout=600)
        self.timings.setdefault(" ".join(["deploy", os.path.basename(bundle), *extra, "check" if check else ""]).strip(),
                                round(time.monotonic() - start, 2))
        return proc


@pytest.fixture(scope="module")
def gap(tmp_path_factory, inside_controller, inside_inventory, run_inside):  # noqa: F811
    tmp = tmp_path_factory.mktemp("gap")
    prefix = PYTHON312[-1]
    try:
        subprocess.run([TESTBED, "down", *HOSTS], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([TESTBED, "up", HOSTS[0]], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([TESTBED, "up", HOSTS[1], "--python", prefix], check=True, stdout=subprocess.DEVNULL)
        inventory = inside_inventory(HOSTS, str(tmp / "inventory.yml"))
        with open(inventory, encoding="utf-8") as handle:
            document = yaml.safe_load(handle)
        document["all"]["hosts"][HOSTS[1]]["uv_deploy_python"] = os.path.join(prefix, "bin", "python3")
        with open(inventory, "w", encoding="utf-8") as handle:
            yaml.safe_dump(document, handle)
        yield Gap(tmp, run_inside, inventory)
    finally:
        subprocess.run([TESTBED, "down", *HOSTS], check=False, stdout=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def bundles(gap):
    """Targets written inside; v1 (signed, and signed by another key), v2 as a delta of v1, one-target v1."""
    targets = gap.run(["ansible-playbook", "-i", gap.inventory, "airgap.uv.targets",
                       "-e", "uv_deploy_targets_file=targets.yml"], cwd=gap.tmp, block_imports=True)
    assert targets.returncode == 0, targets.stdout + targets.stderr
    with open(gap.path("targets.yml"), encoding="utf-8") as handle:
        described = yaml.safe_load(handle)["targets"]
    assert len(described) == 2, described
    release, intruder = keypair(gap.tmp, "release"), keypair(gap.tmp, "intruder")
    with open(release + ".pub", encoding="utf-8") as handle:
        kind, key = handle.read().split()[:2]
    with open(gap.path("allowed_signers"), "w", encoding="utf-8") as handle:
        handle.write("release@example.invalid %s %s\n" % (kind, key))
    base = pathlib.Path(gap.tmp) / "projects"
    v1 = _make_project(base, "v1", lambda text: text.replace('"markupsafe>=2.1",', '"markupsafe>=2.1",\n    "six==1.16.0",'))
    v2 = _make_project(base, "v2", lambda text: text.replace('"markupsafe>=2.1",', '"markupsafe>=2.1",\n    "six==1.17.0",'))

    def build(project: str, out: str, *extra: str) -> None:
        start = time.monotonic()
        outside("airgap.uv.bundle", "-e", "uv_deploy_project=" + project, "-e", "uv_deploy_targets_file=" + gap.path("targets.yml"),
                "-e", "uv_deploy_bundle=" + gap.path(out), "-e", "uv_deploy_wheelhouse_dir=" + gap.path("wh-" + out), *extra)
        gap.timings["bundle " + out] = round(time.monotonic() - start, 2)

    build(v1, "v1.tar", "-e", "uv_deploy_bundle_signing_key=" + release)
    build(v1, "v1-intruder.tar", "-e", "uv_deploy_bundle_signing_key=" + intruder)
    build(v2, "v2-delta.tar", "-e", "uv_deploy_bundle_signing_key=" + release, "-e", "uv_deploy_bundle_base=" + gap.path("v1.tar"))
    one = {key: value for key, value in described.items() if HOSTS[0] in value.get("hosts", [])}
    with open(gap.path("one-target.yml"), "w", encoding="utf-8") as handle:
        yaml.safe_dump({"format": 1, "targets": one}, handle)
    outside("airgap.uv.bundle", "-e", "uv_deploy_project=" + v1, "-e", "uv_deploy_targets_file=" + gap.path("one-target.yml"),
            "-e", "uv_deploy_bundle=" + gap.path("one-target.tar"), "-e", "uv_deploy_wheelhouse_dir=" + gap.path("wh-one"),
            "-e", "uv_deploy_bundle_signing_key=" + release)
    return {"v1": v1, "v2": v2, "release": release}


def test_check_then_deploy_then_nothing_to_do(gap, bundles, inside_controller):  # noqa: F811
    inside_controller.clear_imports()
    check = gap.deploy("v1.tar", check=True)
    assert check.returncode == 0, check.stdout[-4000:] + check.stderr
    predicted = recap(check.stdout)
    assert all(predicted[host]["changed"] > 0 for host in HOSTS), predicted
    for host in HOSTS:
        assert subprocess.run([TESTBED, "exec", host, "--", "test", "-e", "/opt/airgap-uv/hello-airgap/venv"],
                              check=False).returncode == 1, "check mode deployed to %s" % host
    real = gap.deploy("v1.tar")
    assert real.returncode == 0, real.stdout[-4000:] + real.stderr
    assert recap(real.stdout) == predicted
    for host in HOSTS:
        assert host_packages(host)["six"] == "1.16.0"
    again = gap.deploy("v1.tar")
    assert again.returncode == 0 and all(c["changed"] == 0 for c in recap(again.stdout).values()), again.stdout[-3000:]
    refused = [entry for entry in inside_controller.imports() if entry.get("refused")]
    assert refused == [], refused


def test_delta_upgrades_one_package(gap, bundles):
    real = gap.deploy("v2-delta.tar")
    assert real.returncode == 0, real.stdout[-4000:] + real.stderr
    for host in HOSTS:
        assert host_packages(host)["six"] == "1.17.0"
    with tarfile.open(gap.path("v2-delta.tar")) as archive:
        carried = [name for name in archive.getnames() if name.startswith(("files/", "uv/"))]
    # six and the project's own wheel (its metadata names the new pin); no uv, no other package.
    assert sorted(name.split("-")[0] for name in carried) == ["files/hello_airgap", "files/six"], carried


def test_developer_machine_from_a_workstation_bundle(gap, bundles):
    """Issue 13 through the gap: the bundle also carries the target's uv cache (uv_deploy_bundle_workstation);
    inside, airgap.uv.workstation prepares a developer machine from it, and the user's own `uv sync` and
    `uv run` work offline in a checkout they brought, which stays byte-identical."""
    host = HOSTS[0]
    outside("airgap.uv.bundle", "-e", "uv_deploy_project=" + bundles["v1"], "-e", "uv_deploy_targets_file=" + gap.path("one-target.yml"),
            "-e", "uv_deploy_bundle=" + gap.path("ws.tar"), "-e", "uv_deploy_wheelhouse_dir=" + gap.path("wh-ws"),
            "-e", "uv_deploy_bundle_signing_key=" + bundles["release"], "-e", "uv_deploy_bundle_workstation=true",
            "-e", "uv_workstation_wheelhouse_dir=" + gap.path("ws-caches"))
    with tarfile.open(gap.path("ws.tar")) as archive:
        assert any(name.startswith("cache/") for name in archive.getnames())
    checkout = gap.path("checkout.tar")
    with tarfile.open(checkout, "w") as archive:
        for name in ("pyproject.toml", "uv.lock", "src", "README.md"):
            if os.path.exists(os.path.join(bundles["v1"], name)):
                archive.add(os.path.join(bundles["v1"], name), arcname=name)
    with open(checkout, "rb") as handle:
        made = subprocess.run([TESTBED, "exec", host, "--", "sh", "-ec",
                               "id dev >/dev/null 2>&1 || useradd -m -s /bin/sh dev; mkdir -p /home/dev/app; "
                               "tar -xf - -C /home/dev/app; chown -R dev: /home/dev/app; sha256sum /home/dev/app/uv.lock"],
                              stdin=handle, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    assert made.returncode == 0, made.stdout
    args = ["ansible-playbook", "-i", gap.inventory, "airgap.uv.workstation", "-e", "airgap_uv_hosts=" + host,
            "-e", "uv_workstation_bundle=" + gap.path("ws.tar"), "-e", "uv_workstation_bundle_allowed_signers=" + gap.path("allowed_signers"),
            "-e", "uv_workstation_bundle_store=" + gap.path("store"), "-e", "uv_workstation_user=dev",
            "-e", "uv_workstation_checkout=/home/dev/app"]
    # A bundle built without the caches is refused before the host is touched, naming the option.
    plain = gap.run([arg.replace(gap.path("ws.tar"), gap.path("one-target.tar")).replace(gap.path("store"), gap.path("plain-store"))
                     for arg in args], cwd=gap.tmp, block_imports=True, timeout=600)
    assert plain.returncode != 0 and "uv_deploy_bundle_workstation=true" in plain.stdout, plain.stdout[-3000:]
    assert subprocess.run([TESTBED, "exec", host, "--", "test", "-e", "/opt/airgap-uv/workstation"],
                          check=False).returncode == 1
    first = gap.run(args, cwd=gap.tmp, block_imports=True, timeout=600)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr
    again = gap.run(args, cwd=gap.tmp, block_imports=True, timeout=600)
    assert again.returncode == 0 and recap(again.stdout)[host]["changed"] == 0, again.stdout[-3000:]
    used = subprocess.run([TESTBED, "exec", host, "--", "su", "-", "dev", "-c",
                           "cd app && uv sync && uv run hello-airgap --help && sha256sum uv.lock"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    assert used.returncode == 0 and "Usage" in used.stdout, used.stdout[-3000:]
    assert made.stdout.split()[0] in used.stdout  # uv.lock untouched


def _copy(gap, source: str, name: str) -> str:
    shutil.copy(gap.path(source), gap.path(name))
    if os.path.exists(gap.path(source) + ".sig"):
        shutil.copy(gap.path(source) + ".sig", gap.path(name) + ".sig")
    return name


@pytest.mark.parametrize("case, message", [
    ("flipped byte", "signature does not verify"),
    ("wrong signer", "not signed by a key listed"),
    ("missing base", "delta of v1.tar .* not in the bundle store"),
    ("truncated", "truncated or damaged|incomplete"),
    ("unknown target", "Host bund-2 is target cpython3\\.12.* which this bundle was not built for"),
])
def test_refusals_touch_no_host(gap, bundles, case, message):
    before = {host: host_packages(host) for host in HOSTS} if case != "missing base" else None
    extra: list = []
    signers = "allowed_signers"
    store = "store"
    if case == "flipped byte":
        bundle = _copy(gap, "v1.tar", "flipped.tar")
        with tarfile.open(gap.path(bundle)) as archive:
            offset = archive.getmember("sbom.cdx.json").offset_data
        with open(gap.path(bundle), "r+b") as handle:
            handle.seek(offset + 20)
            handle.write(b"#")
    elif case == "wrong signer":
        bundle = "v1-intruder.tar"
    elif case == "missing base":
        bundle, store = "v2-delta.tar", "empty-store"
    elif case == "truncated":
        bundle = _copy(gap, "v1.tar", "truncated.tar")
        with open(gap.path(bundle), "r+b") as handle:
            handle.truncate(os.path.getsize(gap.path(bundle)) // 3)
        signers, extra = "", ["-e", "uv_deploy_bundle_allow_unsigned=true"]
    else:
        bundle = "one-target.tar"
    proc = gap.deploy(bundle, *extra, signers=signers, store=store)
    assert proc.returncode != 0
    assert re.search(message, proc.stdout + proc.stderr), (proc.stdout + proc.stderr)[-3000:]
    if before is not None:
        assert {host: host_packages(host) for host in HOSTS} == before


def test_rebuilt_bundle_is_byte_identical_and_its_sbom_valid(gap, bundles):
    """The real chain twice (a fresh wheelhouse directory): the same bytes; the SBOM passes CycloneDX's schema."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    outside("airgap.uv.bundle", "-e", "uv_deploy_project=" + bundles["v1"], "-e", "uv_deploy_targets_file=" + gap.path("targets.yml"),
            "-e", "uv_deploy_bundle=" + gap.path("v1-again.tar"), "-e", "uv_deploy_wheelhouse_dir=" + gap.path("wh-again"),
            "-e", "uv_deploy_bundle_signing_key=" + bundles["release"])
    for suffix in ("", ".sig", ".sha256"):
        with open(gap.path("v1.tar" + suffix), "rb") as first, open(gap.path("v1-again.tar" + suffix), "rb") as again:
            assert first.read() == again.read().replace(b"v1-again.tar", b"v1.tar"), suffix
    with tarfile.open(gap.path("v1.tar")) as archive:
        sbom = archive.extractfile("sbom.cdx.json").read().decode()
        members = json.loads(archive.extractfile("bundle.json").read())["members"]
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(sbom) is None
    hashes = {c["hashes"][0]["content"] for c in json.loads(sbom)["components"]}
    assert {m["sha256"] for name, m in members.items() if name.startswith("files/")} <= hashes


def test_bundle_check_mode_writes_nothing(gap, bundles):
    """--check: a new wheelhouse directory and bundle are reported as changed and nothing is written;
    for the bundle in place the digest is worked out and nothing changes."""
    args = ["-e", "uv_deploy_project=" + bundles["v1"], "-e", "uv_deploy_targets_file=" + gap.path("targets.yml")]
    fresh = outside("airgap.uv.bundle", "--check", *args, "-e", "uv_deploy_bundle=" + gap.path("never.tar"),
                    "-e", "uv_deploy_wheelhouse_dir=" + gap.path("wh-never"))
    assert recap(fresh.stdout)["localhost"]["changed"] == 2, fresh.stdout[-2000:]
    assert not os.path.exists(gap.path("never.tar")) and not os.path.exists(gap.path("wh-never"))
    same = outside("airgap.uv.bundle", "--check", *args, "-e", "uv_deploy_bundle=" + gap.path("v1.tar"),
                   "-e", "uv_deploy_wheelhouse_dir=" + gap.path("wh-v1.tar"),
                   "-e", "uv_deploy_bundle_signing_key=" + bundles["release"])
    assert recap(same.stdout)["localhost"]["changed"] == 0, same.stdout[-2000:]


def test_pip_installs_a_target_from_the_unpacked_bundle_offline(gap, bundles):
    """PEP 751 without this collection: tar -xf, then pip --no-index -r pylock.<id>.toml, no network."""
    unpacked = gap.path("unpacked")
    os.makedirs(unpacked)
    subprocess.run(["tar", "-xf", gap.path("v1.tar"), "-C", unpacked], check=True)
    with open(gap.path("targets.yml"), encoding="utf-8") as handle:
        target = next(key for key, value in yaml.safe_load(handle)["targets"].items() if HOSTS[0] in value["hosts"])
    pylock = os.path.join(unpacked, "pylock.%s.toml" % target.replace(".", "_"))
    venv = gap.path("pylock-venv")
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", venv], check=True)
    proc = subprocess.run(["unshare", "--net", os.path.join(VENV_BIN, "python"), "-m", "pip", "--python",
                           os.path.join(venv, "bin", "python"), "install", "--no-index", "-r", pylock],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:]
    run = subprocess.run([os.path.join(venv, "bin", "hello-airgap"), "--help"], stdout=subprocess.PIPE, text=True,
                         check=False)
    assert run.returncode == 0 and "Usage" in run.stdout, run.stdout


def test_report_figures(gap, bundles):
    """The figures the issue note quotes, printed with -s: bundle against the wheelhouse it carries, the
    inside deploy against a deploy_offline from the connected controller to the same hosts (a fresh root,
    the controller's cache warm from building the bundle)."""
    start = time.monotonic()
    inventory = gap.path("connected-inventory.yml")
    subprocess.run([TESTBED, "inventory", "--write", inventory, *HOSTS], check=True, stdout=subprocess.DEVNULL)
    with open(inventory, encoding="utf-8") as handle:
        document = yaml.safe_load(handle)
    document["all"]["hosts"][HOSTS[1]]["uv_deploy_python"] = os.path.join(PYTHON312[-1], "bin", "python3")
    with open(inventory, "w", encoding="utf-8") as handle:
        yaml.safe_dump(document, handle)
    connected = subprocess.run([os.path.join(VENV_BIN, "ansible-playbook"), "-i", inventory, "airgap.uv.deploy_offline",
                                "-e", "uv_deploy_project=" + bundles["v1"], "-e", "uv_deploy_name=connected",
                                "-e", "uv_deploy_wheelhouse_dir=" + gap.path("wh-connected")],
                               env=ansible_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    assert connected.returncode == 0, connected.stdout[-3000:]
    gap.timings["connected deploy_offline (first, warm controller cache)"] = round(time.monotonic() - start, 2)
    sizes = {name: os.path.getsize(gap.path(name)) for name in ("v1.tar", "v2-delta.tar")}
    with tarfile.open(gap.path("v1.tar")) as archive:
        carried = {info.name: info.size for info in archive.getmembers()}
    print(json.dumps({"sizes": sizes, "members_bytes": {
        "files": sum(size for name, size in carried.items() if name.startswith("files/")),
        "uv": sum(size for name, size in carried.items() if name.startswith("uv/")),
        "metadata": sum(size for name, size in carried.items() if not name.startswith(("files/", "uv/")))},
        "timings": gap.timings}, indent=2))
    assert sizes["v2-delta.tar"] < sizes["v1.tar"] / 10
