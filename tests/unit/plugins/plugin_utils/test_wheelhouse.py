# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""WheelhouseBuilder against artifacts served on loopback (and the real uv for the uv binary)."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import json
import os
import re
import shutil
import subprocess
import threading
import time

import pytest

from ansible_collections.airgap.uv.plugins.action.push import describe_tree
from ansible_collections.airgap.uv.plugins.plugin_utils._selection import SelectionOptions
from ansible_collections.airgap.uv.plugins.plugin_utils._wheelhouse import (
    WheelhouseBuilder,
    WheelhouseError,
    WheelhouseOptions,
    WheelhouseResult,
)
from ansible_collections.airgap.uv.plugins.plugin_utils._wheelhouse_inputs import ProjectInputs
from ansible_collections.airgap.uv.plugins.plugin_utils._wheelhouse_plan import TargetPlanner
from ansible_collections.airgap.uv.plugins.plugin_utils._wheelhouse_select import group_targets
from ansible_collections.airgap.uv.plugins.plugin_utils._wheelhouse_uv import UvRelease

from test_target import facts  # same directory: pytest puts it on sys.path

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.realpath(__file__)), "..", "..", "..", ".."))
UV = shutil.which("uv") or os.path.join(REPO, ".venv", "bin", "uv")
ALPHA = b"alpha wheel " * 1000
BETA = b"beta wheel " * 1000


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    (root / "alpha-1.0-py3-none-any.whl").write_bytes(ALPHA)
    (root / "beta-2.0-py3-none-any.whl").write_bytes(BETA)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield "http://127.0.0.1:%d" % httpd.server_address[1], root
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def uv_cache(tmp_path_factory):
    """One controller cache for the module, so the real uv wheel is fetched once."""
    return str(tmp_path_factory.mktemp("airgap-cache"))


def make_project(directory, base, beta_sha=None, beta_name="beta-2.0-py3-none-any.whl"):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "pyproject.toml").write_text(
        '[project]\nname = "demo"\nversion = "0.1.0"\nrequires-python = ">=3.9"\n'
        'dependencies = ["alpha", "beta"]\n[tool.uv]\npackage = false\n')
    (directory / "uv.lock").write_text(f'''version = 1
revision = 3
requires-python = ">=3.9"

[[package]]
name = "alpha"
version = "1.0"
source = {{ registry = "{base}/simple" }}
wheels = [
    {{ url = "{base}/alpha-1.0-py3-none-any.whl", hash = "sha256:{sha(ALPHA)}", size = {len(ALPHA)} }},
]

[[package]]
name = "beta"
version = "2.0"
source = {{ registry = "{base}/simple" }}
wheels = [
    {{ url = "{base}/{beta_name}", hash = "sha256:{beta_sha or sha(BETA)}", size = {len(BETA)} }},
]

[[package]]
name = "demo"
version = "0.1.0"
source = {{ virtual = "." }}
dependencies = [
    {{ name = "alpha" }},
    {{ name = "beta" }},
]
''')
    return directory


def build(project, dest, cache, check_mode=False):
    options = WheelhouseOptions(project=str(project), dest=str(dest), targets={"web1": facts(), "web2": facts()},
                                selection=SelectionOptions(), cache_dir=cache, check_lock=False, retries=0)
    return WheelhouseBuilder(options, uv=UV, check_mode=check_mode).run()


def snapshot(directory):
    result = {}
    for root, dummy, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                result[os.path.relpath(path, directory)] = sha(handle.read())
    return result


def test_build_noop_and_check_mode(served, uv_cache, tmp_path):
    base, dummy = served
    project = make_project(tmp_path / "project", base)
    dest = tmp_path / "wheelhouse"
    first = build(project, dest, uv_cache)
    assert first.changed
    target = "cpython3.11.2-linux-x86_64-glibc2.36"
    path = str(dest / "targets" / target)
    # files: exactly what the push would describe of the per-host directory.
    assert first.hosts == {"web1": {"target": target, "path": path, "files": describe_tree(path)},
                           "web2": {"target": target, "path": path, "files": describe_tree(path)}}
    requirements = (dest / "targets" / target / "requirements.txt").read_text()
    assert "alpha==1.0 \\\n    --hash=sha256:%s" % sha(ALPHA) in requirements
    assert os.access(dest / "targets" / target / "bin" / "uv", os.X_OK)
    manifest = json.loads((dest / "manifest.json").read_text())
    expected = {"sha256": sha(BETA), "size": len(BETA), "targets": [target]}
    assert manifest["files"]["beta-2.0-py3-none-any.whl"] == expected
    before = snapshot(dest)
    again = build(project, dest, uv_cache)
    assert not again.changed and again.requests == 0 and again.downloaded == 0
    assert snapshot(dest) == before
    # Check mode on a changed lock: reports the change, writes nothing.
    changed_project = make_project(tmp_path / "project2", base, beta_name="beta-2.0-py3-none-any.whl")
    (changed_project / "uv.lock").write_text((changed_project / "uv.lock").read_text().replace(
        '{ name = "beta" },\n]', ']'))
    predicted = build(changed_project, dest, uv_cache, check_mode=True)
    assert predicted.changed
    assert snapshot(dest) == before


def test_hash_mismatch_keeps_previous_wheelhouse(served, uv_cache, tmp_path):
    base, dummy = served
    dest = tmp_path / "wheelhouse"
    build(make_project(tmp_path / "good", base), dest, uv_cache)
    before = snapshot(dest)
    bad = make_project(tmp_path / "bad", base, beta_sha=sha(b"something else"))
    with pytest.raises(WheelhouseError, match=r"beta 2\.0: .*uv\.lock records .*discarded"):
        build(bad, dest, uv_cache)
    assert snapshot(dest) == before


@pytest.mark.parametrize("evil", ["..%2F..%2Fbeta-2.0-py3-none-any.whl", "..", "%2E%2E"])
def test_path_traversal_in_lock_is_refused(served, uv_cache, tmp_path, evil):
    base, dummy = served
    project = make_project(tmp_path / "evil", base, beta_name=evil)
    dest = tmp_path / "wheelhouse"
    with pytest.raises(WheelhouseError, match="beta"):
        build(project, dest, uv_cache)
    assert not os.path.exists(dest / "files")


def test_disk_full_midway_leaves_no_partial_files(served, uv_cache, tmp_path):
    if os.geteuid() != 0:
        pytest.fail("mounting the small file system for this test needs root")
    base, dummy = served
    project = make_project(tmp_path / "project", base)
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], check=True)
    try:
        dest = small / "wheelhouse"
        # The uv binary (tens of MB) cannot fit: publishing fails part way.
        with pytest.raises(WheelhouseError, match=r"No space left on device in %s[^:]*: free space on its file "
                           r"system.*previous wheelhouse is unchanged" % re.escape(str(dest))):
            build(project, dest, uv_cache)
        leftovers = [name for name in snapshot(dest) if ".incoming-" in name or "/." in "/" + name]
        assert leftovers == []
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_disk_full_in_the_controller_cache_is_reported_as_such(served, uv_cache, tmp_path):
    """The store on a full file system: the download fails naming the full disk and its directory."""
    if os.geteuid() != 0:
        pytest.fail("mounting the small file system for this test needs root")
    base, dummy = served
    project = make_project(tmp_path / "project", base)
    build(project, tmp_path / "warm", uv_cache)  # the module's cache holds uv's release lock and wheel
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(small)], check=True)
    try:
        cache = small / "cache"
        shutil.copytree(os.path.join(uv_cache, "uv-releases"), cache / "uv-releases")
        uv_sha = _uv_wheel_sha(uv_cache)
        relative = os.path.join("store", "sha256", uv_sha[:2], uv_sha)
        os.makedirs(os.path.dirname(cache / relative))
        shutil.copy(os.path.join(uv_cache, relative), cache / relative)
        with open(small / "filler", "wb") as handle:  # leaves the file system full
            try:
                while True:
                    handle.write(b"\0" * (1 << 20))
                    handle.flush()
            except OSError:
                pass
        dest = tmp_path / "wheelhouse"
        with pytest.raises(WheelhouseError, match=r"No space left on device in %s: free space"
                           % re.escape(str(cache / "store"))):
            build(project, dest, str(cache))
        assert not os.path.exists(dest)
    finally:
        subprocess.run(["umount", str(small)], check=True)


def _uv_wheel_sha(cache):
    """sha256 of the uv wheel in CACHE's store (the largest file there)."""
    store = os.path.join(cache, "store")
    files = [os.path.join(root, name) for root, dummy, names in os.walk(store) for name in names]
    return os.path.basename(max(files, key=os.path.getsize))


@pytest.mark.parametrize("required, ok", [("==0.13.8", True), ("0.13.8", True), (">=0.14", False),
                                          ("<0.13", False)])
def test_required_version_is_honoured(served, uv_cache, tmp_path, required, ok):
    base, dummy = served
    project = make_project(tmp_path / "project", base)
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + 'required-version = "%s"\n' % required)
    options = WheelhouseOptions(project=str(project), dest=str(tmp_path / "wh"), targets={"web1": facts()},
                                cache_dir=uv_cache, check_lock=False, uv_version="0.13.8")
    builder = WheelhouseBuilder(options, uv=UV)
    if ok:
        assert builder.run().uv_version == "0.13.8"
    else:
        with pytest.raises(WheelhouseError, match=r"required-version '%s', so uv 0\.13\.8 would refuse" % re.escape(required)):
            builder.run()


@pytest.mark.uv_lock
def test_lock_made_with_exclude_newer_on_the_command_line_is_current(uv_cache, tmp_path):
    """uv lock --check must use the cut-off the lock records, or a current lock looks stale."""
    project = tmp_path / "cutoff"
    project.mkdir()
    (project / "pyproject.toml").write_text('[project]\nname = "cutoff"\nversion = "0"\nrequires-python = ">=3.9"\n'
                                            'dependencies = ["six"]\n[tool.uv]\npackage = false\n')
    subprocess.run([UV, "lock", "--quiet", "--exclude-newer", "2024-01-01T00:00:00Z", "--directory", str(project)],
                   check=True)
    options = WheelhouseOptions(project=str(project), dest=str(tmp_path / "wh"), targets={"web1": facts()},
                                cache_dir=uv_cache, check_lock=True, uv_version="0.13.8")
    result = WheelhouseBuilder(options, uv=UV).run()
    assert result.targets["cpython3.11.2-linux-x86_64-glibc2.36"]["packages"] == ["six==1.16.0"]
    # A pyproject change the lock does not reflect is still caught.
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('["six"]', '["six", "idna"]'))
    with pytest.raises(WheelhouseError, match=r"does not match pyproject\.toml"):
        WheelhouseBuilder(options, uv=UV).run()


# -- the "nothing changed" short cut and the work run beside the downloads ------------------

TARGET = "cpython3.11.2-linux-x86_64-glibc2.36"

# A PEP 517 backend inside the project (no build requirements, so no index): uv builds the
# project's wheel with it, the way a real project's local tree is built.
BACKEND = '''
import base64, hashlib, os, zipfile

def _digest(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()

def get_requires_for_build_wheel(config_settings=None):
    return []

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    with open(os.path.join("src", "demo", "__init__.py"), "rb") as handle:
        code = handle.read()
    files = {"demo/__init__.py": code,
             "demo-0.1.0.dist-info/METADATA": b"Metadata-Version: 2.1\\nName: demo\\nVersion: 0.1.0\\n",
             "demo-0.1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"}
    record = "".join("%s,%s,%d\\n" % (n, _digest(d), len(d)) for n, d in files.items())
    files["demo-0.1.0.dist-info/RECORD"] = (record + "demo-0.1.0.dist-info/RECORD,,\\n").encode()
    name = "demo-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as archive:
        for member, data in files.items():
            archive.writestr(zipfile.ZipInfo(member, (2020, 1, 1, 0, 0, 0)), data)
    return name
'''


def make_packaged_project(directory, base):
    """make_project, but the project itself is built (by the in-tree backend above)."""
    make_project(directory, base)
    (directory / "pyproject.toml").write_text(
        '[project]\nname = "demo"\nversion = "0.1.0"\nrequires-python = ">=3.9"\n'
        'dependencies = ["alpha", "beta"]\n'
        '[build-system]\nrequires = []\nbuild-backend = "_backend"\nbackend-path = ["."]\n')
    (directory / "_backend.py").write_text(BACKEND)
    (directory / "src" / "demo").mkdir(parents=True)
    (directory / "src" / "demo" / "__init__.py").write_text("VALUE = 1\n")
    lock = directory / "uv.lock"
    lock.write_text(lock.read_text().replace('source = { virtual = "." }', 'source = { editable = "." }'))
    return directory


def counting_full_runs(monkeypatch):
    """Count the runs that read the lock (the short cut never does)."""
    calls = []
    original = ProjectInputs.load_lock

    def spy(self):
        calls.append(1)
        return original(self)

    monkeypatch.setattr(ProjectInputs, "load_lock", spy)
    return calls


def run_with(project, dest, cache, check_mode=False, full=False, monkeypatch=None, **overrides):
    options = dict(project=str(project), dest=str(dest), targets={"web1": facts(), "web2": facts()},
                   selection=SelectionOptions(), cache_dir=cache, check_lock=False, retries=0)
    options.update(overrides)
    builder = WheelhouseBuilder(WheelhouseOptions(**options), uv=UV, check_mode=check_mode)
    if full:
        # The inputs are still digested (and recorded), the recorded result is just not used.
        shortcut = builder.unchanged.result
        monkeypatch.setattr(builder.unchanged, "result", lambda: shortcut() and None)
    return builder.run(), builder


@pytest.mark.parametrize("packaged", [False, True], ids=["virtual", "packaged"])
def test_unchanged_result_is_the_full_runs_result(served, uv_cache, tmp_path, monkeypatch, packaged):
    base, dummy = served
    project = (make_packaged_project if packaged else make_project)(tmp_path / "project", base)
    dest = tmp_path / "wheelhouse"
    first, dummy = run_with(project, dest, uv_cache)
    assert first.changed and first.built == (1 if packaged else 0)
    before = snapshot(dest)
    full_runs = counting_full_runs(monkeypatch)

    short, dummy = run_with(project, dest, uv_cache)
    assert full_runs == []  # the lock was not read
    full, dummy = run_with(project, dest, uv_cache, full=True, monkeypatch=monkeypatch)
    assert full_runs == [1]
    for name in WheelhouseResult.__dataclass_fields__:
        assert getattr(short, name) == getattr(full, name), name
    assert not short.changed and short.downloaded == 0 and short.requests == 0 and short.reused == 3
    assert short.targets[TARGET]["install_file"]["requirements"] == \
        (dest / "targets" / TARGET / "requirements.txt").read_text()
    # The record keeps each target's files once, however many hosts share it.
    record = json.loads((dest / "manifest.json").read_text())["inputs"]
    assert list(record["target_files"]) == [TARGET] and "files" not in record["result"]["hosts"]["web1"]
    assert short.hosts["web1"]["files"] == short.hosts["web2"]["files"] == describe_tree(short.hosts["web1"]["path"])

    # Check mode takes it as well, and writes nothing.
    checked, dummy = run_with(project, dest, uv_cache, check_mode=True)
    assert full_runs == [1]
    assert dataclasses.asdict(checked) == dataclasses.asdict(full)
    assert snapshot(dest) == before


def _edit_pyproject(project, dest, cache):
    with open(project / "pyproject.toml", "a") as handle:
        handle.write("# a comment changes no package\n")


def _add_uv_toml(project, dest, cache):
    (project / "uv.toml").write_text("# empty\n")


def _edit_lock(project, dest, cache):
    with open(project / "uv.lock", "a") as handle:
        handle.write("\n")


def _remove_target_link(project, dest, cache):
    os.unlink(dest / "targets" / TARGET / "wheelhouse" / "alpha-1.0-py3-none-any.whl")


def _replace_install_file(project, dest, cache):
    path = dest / "targets" / TARGET / "requirements.txt"
    text = path.read_text()
    os.unlink(path)
    path.write_text(text.replace("alpha", "alphb"))


def _remove_from_store(project, dest, cache):
    os.unlink(os.path.join(cache, "store", "sha256", sha(ALPHA)[:2], sha(ALPHA)))


def _chmod_store_file(project, dest, cache):
    os.chmod(dest / "files" / "alpha-1.0-py3-none-any.whl", 0o600)  # as older caches left them


def _extra_file(project, dest, cache):
    (dest / "files" / "stray-1.0-py3-none-any.whl").write_bytes(b"stray")


@pytest.mark.parametrize("change, overrides, expect_changed", [
    (_edit_pyproject, {}, False),
    (_add_uv_toml, {}, False),
    (_edit_lock, {}, False),  # what ships names no lock: nothing a host installs changed
    (None, {"targets": {"web1": facts(), "web2": facts(libc={"family": "glibc", "version": "2.39"})}}, True),
    (None, {"targets": {"web1": facts(), "web2": facts(), "web3": facts()}}, False),  # hosts are not files
    (None, {"selection": SelectionOptions(no_dev=True)}, False),
    (None, {"uv_version": "0.13.8"}, False),
    (None, {"prune": False}, False),
    (_remove_target_link, {}, True),
    (_replace_install_file, {}, True),
    (_remove_from_store, {}, False),
    (_extra_file, {}, True),
    (_chmod_store_file, {}, True),
], ids=["pyproject", "uv.toml", "uv.lock", "target", "another-host", "selection", "uv_version", "prune",
        "target-link", "install-file", "store", "stray-file", "file-mode"])
def test_a_change_defeats_the_short_cut(served, uv_cache, tmp_path, monkeypatch, change, overrides, expect_changed):
    base, dummy = served
    project = make_project(tmp_path / "project", base)
    dest = tmp_path / "wheelhouse"
    run_with(project, dest, uv_cache)
    if change:
        change(project, dest, uv_cache)
    full_runs = counting_full_runs(monkeypatch)
    # Check mode first (it writes nothing): it predicts the real run's changed and files.
    before = snapshot(dest)
    predicted, dummy = run_with(project, dest, uv_cache, check_mode=True, **overrides)
    assert snapshot(dest) == before
    result, dummy = run_with(project, dest, uv_cache, **overrides)
    assert full_runs == [1, 1]
    assert result.changed == expect_changed
    assert predicted.changed == expect_changed
    assert predicted.hosts == result.hosts
    for host in result.hosts.values():
        assert host["files"] == describe_tree(host["path"])
    if change is _remove_from_store:
        assert result.downloaded == 1
    # ... and the full run recorded the new state: the next run takes the short cut again.
    again, dummy = run_with(project, dest, uv_cache, **overrides)
    assert full_runs == [1, 1] and not again.changed
    assert dataclasses.asdict(again) == dict(dataclasses.asdict(result), changed=False, downloaded=0, requests=0,
                                             reused=result.downloaded + result.reused)


def test_a_changed_source_file_is_rebuilt(served, uv_cache, tmp_path, monkeypatch):
    base, dummy = served
    project = make_packaged_project(tmp_path / "project", base)
    source = project / "src" / "demo" / "__init__.py"
    source.write_text("VALUE = %r\n" % str(tmp_path))  # not in the module's shared build cache yet
    dest = tmp_path / "wheelhouse"
    first, builder = run_with(project, dest, uv_cache)
    assert builder.builds_run == 1
    full_runs = counting_full_runs(monkeypatch)
    source.write_text("VALUE = 2\n")
    second, builder = run_with(project, dest, uv_cache)
    assert full_runs == [1] and builder.builds_run == 1 and second.changed
    wheel = (dest / "targets" / TARGET / "wheelhouse" / "demo-0.1.0-py3-none-any.whl")
    import zipfile
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read("demo/__init__.py") == b"VALUE = 2\n"
    third, builder = run_with(project, dest, uv_cache)
    assert full_runs == [1] and builder.builds_run == 0 and not third.changed


def test_uv_binaries_carry_their_sums(served, uv_cache, tmp_path):
    base, dummy = served
    dest = tmp_path / "wheelhouse"
    result, dummy = run_with(make_project(tmp_path / "project", base), dest, uv_cache)
    manifest = json.loads((dest / "targets" / TARGET / "manifest.json").read_text())
    binaries = {e["filename"]: e["sha256"] for e in manifest["files"] if e["filename"].startswith("bin/")}
    assert set(binaries) == {"bin/uv", "bin/uvx"}
    for name, digest in binaries.items():
        with open(dest / "targets" / TARGET / name, "rb") as handle:
            assert sha(handle.read()) == digest
    uv_dir = dest / "uv" / result.uv_version / result.targets[TARGET]["uv_wheel"][:-4]
    assert (uv_dir / "SHA256SUMS").read_text() == "".join(
        "%s  %s\n" % (binaries["bin/" + n], n) for n in ("uv", "uvx"))
    assert sorted(os.listdir(dest / "targets" / TARGET / "bin")) == ["uv", "uvx"]


def test_a_stale_lock_stops_the_run_before_dest_is_touched(served, uv_cache, tmp_path, monkeypatch):
    base, dummy = served
    project = make_project(tmp_path / "project", base)
    dest = tmp_path / "wheelhouse"
    started = threading.Event()

    def stale(self, *args):
        started.set()
        time.sleep(0.3)  # downloads are under way meanwhile
        raise WheelhouseError("uv.lock is stale")

    monkeypatch.setattr(ProjectInputs, "check_lock_current", stale)
    with pytest.raises(WheelhouseError, match="uv.lock is stale"):
        run_with(project, dest, uv_cache, check_lock=True)
    assert started.is_set() and not os.path.exists(dest)
    # The lock check's error comes before what a sequential run would have met after it.
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + 'required-version = ">=99"\n')
    with pytest.raises(WheelhouseError, match="uv.lock is stale"):
        run_with(project, dest, uv_cache, check_lock=True)
    # ... and a selection error before the lock check's.
    with pytest.raises(WheelhouseError, match="Target .*web1"):
        run_with(project, dest, uv_cache, check_lock=True, selection=SelectionOptions(groups=("nosuchgroup",)))


@pytest.mark.parametrize("uv_fails, plan_fails, expected", [(0, 1, "uv of target 0"), (1, 0, "plan of target 0"),
                                                            (1, 1, "plan of target 1"), (0, 0, "plan of target 0")])
def test_errors_come_in_the_order_of_a_sequential_run(served, uv_cache, tmp_path, monkeypatch, uv_fails, plan_fails,
                                                      expected):
    """Target by target, a sequential run met the target's package errors, then its uv wheel's."""
    base, dummy = served
    project = make_project(tmp_path / "project", base)
    targets = {"a": facts(), "b": facts(libc={"family": "glibc", "version": "2.39"})}
    order = sorted(group_targets(targets))
    original_uv, original_plan = UvRelease.wheel_for, TargetPlanner.artifact_for

    def uv_wheel_for(self, version, target, plan):
        if target.id == order[uv_fails]:
            raise WheelhouseError("uv of target %d" % uv_fails)
        return original_uv(self, version, target, plan)

    def artifact_for(self, package, is_root, target, tags, plan):
        if target.id == order[plan_fails]:
            time.sleep(0.2)  # the uv wheels are resolved by now
            raise WheelhouseError("plan of target %d" % plan_fails)
        return original_plan(self, package, is_root, target, tags, plan)

    monkeypatch.setattr(UvRelease, "wheel_for", uv_wheel_for)
    monkeypatch.setattr(TargetPlanner, "artifact_for", artifact_for)
    with pytest.raises(WheelhouseError, match="^%s$" % expected):
        run_with(project, tmp_path / "wheelhouse", uv_cache, targets=targets)
    assert not os.path.exists(tmp_path / "wheelhouse")


@pytest.mark.parametrize("wheel_kind", ["deflated", "deflated-descriptors", "stored-descriptors"])
def test_uv_binaries_streamed_while_downloading_equal_unzipped_ones(served, tmp_path, monkeypatch, wheel_kind):
    """uv/uvx inflated from the wheel's bytes as they arrive end up exactly as unzipping the stored wheel."""
    import zipfile

    from ansible_collections.airgap.uv.plugins.plugin_utils import _wheelhouse_uv
    from ansible_collections.airgap.uv.plugins.plugin_utils._lock import Artifact
    from ansible_collections.airgap.uv.plugins.plugin_utils._uv_tool import UvBinaryStream
    from test_zipstream import make_wheel  # same directory

    base, root = served
    wheel = make_wheel(compression=zipfile.ZIP_STORED if wheel_kind.startswith("stored") else zipfile.ZIP_DEFLATED,
                       seekable=not wheel_kind.endswith("descriptors"))
    name = "uv-0.13.8-py3-none-manylinux_2_17_x86_64.%s.whl" % wheel_kind
    (root / name).write_bytes(wheel)
    artifact = Artifact(filename=name, url="%s/%s" % (base, name), path=None, sha256=sha(wheel), size=len(wheel),
                        is_wheel=True)
    monkeypatch.setattr(UvRelease, "wheel_for", lambda self, version, target, plan: artifact)
    unzipped = []
    original = _wheelhouse_uv.extract_uv_binaries
    monkeypatch.setattr(_wheelhouse_uv, "extract_uv_binaries", lambda *args, **kwargs: (
        unzipped.append(args[0]), original(*args, **kwargs))[1])

    def run(directory, check_mode=False):
        return run_with(make_project(directory / "project", base), directory / "wheelhouse",
                        str(directory / "cache"), check_mode=check_mode)[0]

    predicted = run(tmp_path / "streamed", check_mode=True)
    assert predicted.changed and not os.path.exists(tmp_path / "streamed" / "cache" / "uv-binaries")
    # The uv wheel is not fetched in check mode: its binaries' sha256 and size are not known.
    files = predicted.hosts["web1"]["files"]
    assert files["bin/uv"] == files["bin/uvx"] == {"sha256": None, "size": None, "mode": 0o755}
    assert files["manifest.json"] == {"sha256": None, "size": None, "mode": 0o644}
    assert files["requirements.txt"]["sha256"] is not None
    streamed = run(tmp_path / "streamed")
    # Stored members with data descriptors cannot stream: the stored wheel is unzipped instead.
    assert len(unzipped) == (1 if wheel_kind == "stored-descriptors" else 0)
    del unzipped[:]
    monkeypatch.setattr(UvBinaryStream, "verified", lambda self, wheel_path, digests: self.abort())
    reference = run(tmp_path / "unzipped")
    assert len(unzipped) == 1
    for field in ("changed", "downloaded", "files", "uv_version", "targets"):
        got = json.dumps(getattr(streamed, field), sort_keys=True)
        assert got.replace(str(tmp_path / "streamed"), str(tmp_path / "unzipped")) == json.dumps(
            getattr(reference, field), sort_keys=True), field
    for part in ("wheelhouse", "cache/uv-binaries"):
        got, want = snapshot(tmp_path / "streamed" / part), snapshot(tmp_path / "unzipped" / part)
        got.pop("manifest.json", None), want.pop("manifest.json", None)  # records its own paths
        assert got == want, part
    assert os.listdir(tmp_path / "streamed" / "cache" / "uv-binaries") == [sha(wheel)]  # no staging left over
    uv_dir = tmp_path / "streamed" / "wheelhouse" / "targets" / TARGET / "bin"
    assert sorted(os.listdir(uv_dir)) == ["uv", "uvx"] and os.access(uv_dir / "uv", os.X_OK)
    with open(uv_dir / "uv", "rb") as handle:
        from test_zipstream import UV
        assert handle.read() == UV
    again = run(tmp_path / "streamed")
    assert not again.changed and again.requests == 0


# -- check mode tells the truth (issue 11) --------------------------------------------------

def test_check_mode_builds_into_the_cache_and_predicts_real_hashes(served, uv_cache, tmp_path):
    """No placeholder hash: a project whose build is not cached yet is built into the controller's
    cache in check mode, so the install file it predicts is the real run's, byte for byte."""
    base, dummy = served
    project = make_packaged_project(tmp_path / "project", base)
    (project / "src" / "demo" / "__init__.py").write_text("VALUE = %r\n" % str(tmp_path))  # a build of its own
    dest = tmp_path / "wheelhouse"
    first, dummy = run_with(project, dest, uv_cache)
    # A file the wheel does not hold: another tree digest (no cached build), the same wheel.
    (project / "NOTES.txt").write_text("not packaged\n")
    before = snapshot(dest)
    predicted, builder = run_with(project, dest, uv_cache, check_mode=True)
    assert builder.builds_run == 1 and snapshot(dest) == before
    requirements = predicted.targets[TARGET]["install_file"]["requirements"]
    assert "0" * 64 not in json.dumps(dataclasses.asdict(predicted))
    assert requirements == first.targets[TARGET]["install_file"]["requirements"]
    real, builder = run_with(project, dest, uv_cache)
    assert builder.builds_run == 0  # check mode's build is reused
    assert not predicted.changed and not real.changed
    assert real.targets == predicted.targets and real.hosts == predicted.hosts


def test_check_mode_describes_the_directories_a_first_run_writes(served, uv_cache, tmp_path):
    """hosts[h].files in check mode, before anything was published, is what the real run then
    publishes (what airgap.uv.push will compare with the host)."""
    base, dummy = served
    project = make_packaged_project(tmp_path / "project", base)
    dest = tmp_path / "wheelhouse"
    predicted, dummy = run_with(project, dest, uv_cache, check_mode=True)
    assert predicted.changed and not os.path.exists(dest)
    files = predicted.hosts["web1"]["files"]
    assert set(files) == {"bin/uv", "bin/uvx", "build-constraints.txt", "manifest.json", "requirements.txt",
                          "wheelhouse/alpha-1.0-py3-none-any.whl", "wheelhouse/beta-2.0-py3-none-any.whl",
                          "wheelhouse/demo-0.1.0-py3-none-any.whl"}
    assert files["bin/uv"]["mode"] == 0o755 and files["requirements.txt"]["mode"] == 0o644
    real, dummy = run_with(project, dest, uv_cache)
    assert real.changed and real.hosts == predicted.hosts
    assert real.hosts["web2"]["files"] == describe_tree(real.hosts["web2"]["path"])
    # Nothing of what ships names the lock or the hosts.
    for name in ("requirements.txt", "build-constraints.txt", "manifest.json"):
        text = (dest / "targets" / TARGET / name).read_text()
        assert real.lock_sha256 not in text and "web1" not in text, name
