# -*- coding: utf-8 -*-
# Copyright (c) airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of plugins/module_utils/_sync.py (the runner) and _sync_change.py.

Most need no uv; the durability tests at the end run SyncRunner in-process with the real uv
(``uv_bin`` fixture) on synthetic wheels and record every fsync/syncfs and the switch.

uv outputs are real recordings of uv 0.13.8 (JSON + text), 0.8.22 and 0.5.31 (text only)
under fixtures/uv_output/<version>/ (see fixtures/uv_output/README.md).
"""

from __future__ import annotations

import sys
import errno
import json
import os
from pathlib import Path

import pytest

from ansible_collections.airgap.uv.plugins.module_utils import _sync_error as E
from ansible_collections.airgap.uv.plugins.module_utils import _sync_packages as P
from ansible_collections.airgap.uv.plugins.module_utils import _sync as S
from ansible_collections.airgap.uv.plugins.module_utils import _sync_store as ST
from ansible_collections.airgap.uv.plugins.module_utils import _sync_uv as U
from ansible_collections.airgap.uv.plugins.module_utils import _sync_change as C
from ansible_collections.airgap.uv.plugins.module_utils import _sync_durability as D

from ansible_collections.airgap.uv.tests.unit.plugins.module_utils.test_sync_packages import H1, H2
from ansible_collections.airgap.uv.tests.unit.plugins.module_utils.test_sync_store import _complete
from ansible_collections.airgap.uv.tests.unit.plugins.module_utils.test_sync_uv import FakeUv

FIXTURES = Path(__file__).absolute().parent / "fixtures" / "uv_output"
VERSIONS = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())
REQ1 = {"attrs": "23.2.0", "idna": "3.7", "markupsafe": "2.1.5", "six": "1.16.0"}
REQ2 = {"attrs": "23.2.0", "idna": "3.7", "pyyaml": "6.0.1", "six": "1.17.0"}


@pytest.fixture(autouse=True)
def controller_acknowledges(monkeypatch):
    """Runs here report to the controller: acknowledge each switch as the action plugin does."""
    original = S.SyncRunner.run

    def run(self):
        result = original(self)
        if result.get("switch_id"):
            original(S.SyncRunner(dict(self.params, acknowledge=result["switch_id"])))
        return result

    monkeypatch.setattr(S.SyncRunner, "run", run)


@pytest.fixture
def inputs(tmp_path):
    uv = tmp_path / "bin" / "uv"
    uv.parent.mkdir()
    uv.write_text("#!/bin/sh\nexit 1\n")
    uv.chmod(0o755)
    (tmp_path / "wheelhouse").mkdir()
    (tmp_path / "requirements.txt").write_text("six==1.16.0 --hash=%s\n" % H1)
    return {
        "uv": str(uv), "wheelhouse": str(tmp_path / "wheelhouse"), "requirements": str(tmp_path / "requirements.txt"),
        "venv": str(tmp_path / "app" / "venv"),
    }


@pytest.mark.parametrize(
    "override, fragment",
    [
        ({"refresh": True}, "refresh=true cannot be combined with network=offline"),
        ({"keep_releases": 0}, "keep_releases"),
        ({"wheelhouse": "/nonexistent"}, "wheelhouse /nonexistent is not a directory"),
        ({"requirements": "/nonexistent"}, "requirements file /nonexistent does not exist"),
        ({"manifest": "/nonexistent"}, "manifest /nonexistent does not exist"),
        ({"uv": "/nonexistent"}, "uv binary /nonexistent does not exist"),
        ({"python": "/nonexistent/python"}, "Python interpreter /nonexistent/python not found"),
        ({"owner": "no-such-user-xyz"}, "owner 'no-such-user-xyz' does not exist"),
    ],
)
def test_runner_validation_before_uv(inputs, tmp_path, override, fragment):
    fake = FakeUv()
    with pytest.raises(E.SyncError) as exc:
        S.SyncRunner(dict(inputs, **override), runner=fake).run()
    assert fragment in exc.value.msg
    assert fake.calls == []
    assert not (tmp_path / "app").exists()


def test_runner_refuses_real_directory(inputs, tmp_path):
    os.makedirs(tmp_path / "app" / "venv")
    with pytest.raises(E.SyncError, match="adopt=true"):
        S.SyncRunner(inputs, runner=FakeUv()).run()
    assert os.listdir(tmp_path / "app" / "venv") == []


def test_runner_rollback_without_release(inputs):
    with pytest.raises(E.SyncError, match="no release of this module is in service"):
        S.SyncRunner(dict(inputs, state="rollback"), runner=FakeUv()).run()


def test_runner_fallback_goes_offline(inputs, tmp_path):
    """network=fallback: an online failure repeats the step offline (fake uv)."""
    store = ST.ReleaseStore(inputs["venv"])
    os.makedirs(os.path.dirname(inputs["venv"]))
    rel = _complete(store, "20250101T000000.000000Z-000001")
    C.ReleaseWriter(store).write_meta(rel, {"format": 1, "python": "/usr/bin/python3", "packages": {"six": {"version": "1.16.0", "hashes": [H1]}}})
    C.ReleaseWriter(store).activate(rel)
    fake = FakeUv({"--index-url": (2, "", "error: Failed to fetch: http://idx/simple/six/\n  Caused by: dns error\n")})
    warnings = []
    result = S.SyncRunner(
        dict(inputs, network="fallback", index_url="http://idx/simple", python="/usr/bin/python3"),
        runner=fake, warn=warnings.append,
    ).run()
    assert result["changed"] is False and result["network_used"] == "offline"
    sync_calls = [argv for argv, env in fake.calls if "sync" in argv and "--help" not in argv]
    assert "--index-url" in sync_calls[0] and "--offline" in sync_calls[1]
    online_env = [env for argv, env in fake.calls if "--index-url" in argv][0]
    assert "UV_OFFLINE" not in online_env and fake.calls[-1][1]["UV_OFFLINE"] == "1"
    assert warnings and "falling back" in warnings[0]


def test_runner_content_change_detected(inputs, tmp_path):
    store = ST.ReleaseStore(inputs["venv"])
    os.makedirs(os.path.dirname(inputs["venv"]))
    rel = _complete(store, "20250101T000000.000000Z-000001")
    C.ReleaseWriter(store).write_meta(rel, {"format": 1, "python": "/usr/bin/python3", "packages": {"six": {"version": "1.16.0", "hashes": [H2]}}})
    C.ReleaseWriter(store).activate(rel)
    result = S.SyncRunner(dict(inputs, python="/usr/bin/python3"), check_mode=True, diff=True, runner=FakeUv()).run()
    assert result["changed"] and result["reinstalled"] == [{"name": "six", "version": "1.16.0"}]
    assert "content changed" in result["reason"] and result["diff"]["before"] == result["diff"]["after"]


def test_runner_refuses_bad_mode_before_uv(inputs, tmp_path):
    fake = FakeUv()
    for state in ("present", "rollback"):
        with pytest.raises(E.SyncError, match="must give the owner rwx"):
            S.SyncRunner(dict(inputs, mode="0644", state=state), runner=fake).run()
    assert fake.calls == [] and not (tmp_path / "app").exists()


# ---------------------------------------------------------------------------
# roll forward: which kept release may be switched to
# ---------------------------------------------------------------------------


def _reqs(**pins):
    return {name: P.Requirement(name, version, hashes) for name, (version, hashes) in pins.items()}


@pytest.mark.parametrize(
    "meta, matches",
    [
        ({}, True),
        ({"python": "/usr/bin/python3.12"}, False),  # python changed
        ({"adopted": True}, False),  # not built from a wheelhouse
        ({"packages": {"six": {"version": "1.16.0", "hashes": [H2]}}}, False),  # content changed, same version
        ({"packages": {"six": {"version": "1.16.0", "hashes": [H1, H2]}}}, False),  # other hash set
        ({"packages": {"six": {"version": "1.16.0", "hashes": []}}}, False),  # nothing to compare
        ({"packages": {"six": {"version": "1.17.0", "hashes": [H1]}}}, False),
        ({"packages": {"six": {"version": "1.16.0", "hashes": [H1]}, "idna": {"version": "3.7", "hashes": [H2]}}}, False),
        ({"packages": None}, False),
    ],
)
def test_recorded_match(inputs, meta, matches):
    base = {"format": 1, "python": "/usr/bin/python3", "packages": {"six": {"version": "1.16.0", "hashes": [H1]}}}
    changer = C.ReleaseChanger(S.SyncRunner(dict(inputs, python="/usr/bin/python3"), runner=FakeUv()))
    assert changer.recorded_match(dict(base, **meta), _reqs(six=("1.16.0", [H1]))) is matches
    assert changer.recorded_match(None, _reqs(six=("1.16.0", [H1]))) is False


# ---------------------------------------------------------------------------
# durability before the switch
# ---------------------------------------------------------------------------


def _fd_path(fd):
    return os.readlink("/proc/self/fd/%d" % fd)


@pytest.fixture
def fsync_log(monkeypatch):
    """Record every fsync and syncfs (by path) and every switch, in order; the real calls still happen."""
    events = []
    real_fsync = os.fsync

    def fsync(fd):
        events.append(("fsync", _fd_path(fd)))
        return real_fsync(fd)

    real_syncfs = D._libc_syncfs()
    assert real_syncfs is not None, "syncfs through ctypes should work on Linux"

    def syncfs(fd):
        events.append(("syncfs", _fd_path(fd)))
        return real_syncfs(fd)

    real_activate = C.ReleaseWriter.activate

    def activate(writer, release):
        events.append(("activate", release.path))
        return real_activate(writer, release)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(D, "_libc_syncfs", lambda: syncfs)
    monkeypatch.setattr(C.ReleaseWriter, "activate", activate)
    return events


def test_fsync_tree_covers_files_and_directories_not_symlinks(tmp_path, fsync_log):
    (tmp_path / "t" / "a" / "b").mkdir(parents=True)
    (tmp_path / "t" / "a" / "b" / "f.py").write_text("x")
    (tmp_path / "t" / "g.txt").write_text("y")
    (tmp_path / "outside").write_text("z")
    (tmp_path / "t" / "link").symlink_to(tmp_path / "outside")
    (tmp_path / "t" / "dirlink").symlink_to(tmp_path / "t" / "a")
    for workers in (1, 8):
        del fsync_log[:]
        assert D.fsync_tree(str(tmp_path / "t"), workers=workers) == 6  # 3 dirs, 2 files, 1 link skipped
        flushed = sorted(p for kind, p in fsync_log)
        assert flushed == sorted([str(tmp_path / "t")] + [str(tmp_path / "t" / p) for p in ("a", "a/b", "a/b/f.py", "g.txt")])


def test_make_durable_syncfs_fallback_and_errors(tmp_path, monkeypatch):
    (tmp_path / "rel" / "lib").mkdir(parents=True)
    (tmp_path / "rel" / "lib" / "m.py").write_text("x")
    assert D.make_durable(str(tmp_path / "rel")) == "syncfs"  # the real syscall

    flushed = []
    monkeypatch.setattr(D, "fsync_tree", lambda path, workers=1: flushed.append(path) or 1)
    monkeypatch.setattr(D, "_libc_syncfs", lambda: None)  # not Linux, no ctypes
    assert D.make_durable(str(tmp_path / "rel")) == "fsync" and flushed == [str(tmp_path / "rel")]
    monkeypatch.setattr(D, "_libc_syncfs", lambda: (lambda fd: errno.ENOSYS))  # refused by a seccomp filter
    assert D.make_durable(str(tmp_path / "rel")) == "fsync"
    monkeypatch.setattr(D, "_libc_syncfs", lambda: (lambda fd: errno.EIO))
    with pytest.raises(E.SyncError, match=r"Cannot flush .*/rel to disk: Input/output error"):
        D.make_durable(str(tmp_path / "rel"))


def _real_bundle(tmp_path, uv_bin, uv_cache):
    """Two synthetic pure wheels and a hash-pinned install file, for the real uv."""
    import base64
    import hashlib
    import zipfile

    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    lines = {}
    for name, version in (("alpha", "1.0"), ("alpha", "2.0"), ("beta", "1.0")):
        dist = "%s-%s" % (name, version)
        files = {
            "%s/__init__.py" % name: "VERSION = %r\n" % version,
            "%s.dist-info/METADATA" % dist: "Metadata-Version: 2.1\nName: %s\nVersion: %s\n" % (name, version),
            "%s.dist-info/WHEEL" % dist: "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        }
        path = wheelhouse / ("%s-py3-none-any.whl" % dist)
        record = []
        with zipfile.ZipFile(path, "w") as z:
            for arc, text in files.items():
                z.writestr(arc, text)
                digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
                record.append("%s,sha256=%s,%d" % (arc, digest, len(text)))
            record.append("%s.dist-info/RECORD,," % dist)
            z.writestr("%s.dist-info/RECORD" % dist, "\n".join(record) + "\n")
        lines[dist] = "%s==%s --hash=sha256:%s" % (name, version, hashlib.sha256(path.read_bytes()).hexdigest())
    requirements = tmp_path / "requirements.txt"

    def pins(*dists):
        requirements.write_text("\n".join(lines[d] for d in dists) + "\n")

    pins("alpha-1.0", "beta-1.0")
    params = {"uv": uv_bin, "wheelhouse": str(wheelhouse), "requirements": str(requirements),
              "venv": str(tmp_path / "app" / "venv"), "cache_dir": uv_cache,
              "python": os.path.realpath(sys.executable)}
    return params, pins


def test_build_is_durable_before_the_switch_and_noop_flushes_nothing(tmp_path, uv_bin, uv_cache, fsync_log):
    params, pins = _real_bundle(tmp_path, uv_bin, uv_cache)
    first = S.SyncRunner(params).run()
    store = ST.ReleaseStore(params["venv"])
    release = first["release"]
    order = list(fsync_log)

    def at(kind, path):
        assert (kind, path) in order, (kind, path, order)
        return order.index((kind, path))

    # the files uv wrote, then the metadata (the completion mark) and its entry, then the
    # release's entry in the releases directory, then the switch and the symlink's directory
    meta_tmp = os.path.join(release, ".%s.tmp-%d" % (ST.RELEASE_META, os.getpid()))
    assert at("syncfs", store.releases_dir) < at("fsync", meta_tmp)
    assert at("fsync", meta_tmp) < at("fsync", release)
    assert at("fsync", release) < at("fsync", store.releases_dir) < at("activate", release)
    assert at("activate", release) < at("fsync", str(tmp_path / "app"))

    del fsync_log[:]
    assert S.SyncRunner(params).run()["changed"] is False
    assert fsync_log == []  # a no-op run pays for no flush

    # an I/O error while flushing the new release: no switch, the half-built release is removed
    pins("alpha-2.0", "beta-1.0")
    real_fsync = os.fsync

    def failing(fd):
        if os.path.dirname(_fd_path(fd)) == store.releases_dir:
            raise OSError(errno.EIO, "Input/output error")
        return real_fsync(fd)

    os.fsync = failing  # restored by the fsync_log fixture's monkeypatch
    with pytest.raises(E.SyncError, match="Cannot flush .* to disk: Input/output error; the release in service was left alone"):
        S.SyncRunner(params).run()
    assert store.inspect().current.path == release
    assert os.listdir(store.releases_dir) == [os.path.basename(release)]


def test_build_falls_back_to_fsync_of_every_file(tmp_path, uv_bin, uv_cache, fsync_log, monkeypatch):
    params, _pins = _real_bundle(tmp_path, uv_bin, uv_cache)
    monkeypatch.setattr(D, "_libc_syncfs", lambda: None)
    release = S.SyncRunner(params).run()["release"]
    flushed = {path for kind, path in fsync_log if kind == "fsync"}
    assert not [kind for kind, _p in fsync_log if kind == "syncfs"]
    init = os.path.join(release, "lib", "python%d.%d" % sys.version_info[:2], "site-packages", "alpha", "__init__.py")
    assert init in flushed and os.path.join(release, "pyvenv.cfg") in flushed
    assert os.path.join(release, "bin") in flushed


class _CountingRunner:
    """run_command, counting the ``uv pip sync --dry-run`` calls."""

    def __init__(self):
        self.dry_runs = 0

    def __call__(self, argv, env):
        if "--dry-run" in argv:
            self.dry_runs += 1
        return U.run_command(argv, env)


def _site_packages(release):
    return os.path.join(release, "lib", "python%d.%d" % sys.version_info[:2], "site-packages")


def test_noop_dry_run_is_recorded_and_replayed_until_an_input_changes(tmp_path, uv_bin, uv_cache):
    params, pins = _real_bundle(tmp_path, uv_bin, uv_cache)
    release = S.SyncRunner(params).run()["release"]

    def run(**kwargs):
        counter = _CountingRunner()
        result = S.SyncRunner(params, runner=counter, **kwargs).run()
        return result, counter.dry_runs

    # the first no-op asks uv and records its answer; later ones replay it without uv
    assert [(r["changed"], n) for r, n in (run(), run(), run(check_mode=True))] == [(False, 1), (False, 0), (False, 0)]
    noop, _n = run(diff=True)
    assert noop["packages"] == ["alpha==1.0", "beta==1.0"] and noop["installed"] == [] and noop["network_used"] == "offline"
    assert noop["diff"]["before"] == noop["diff"]["after"] == "alpha==1.0\nbeta==1.0\n"

    # a package dropped into the environment by hand: uv is asked again and removes it
    site = _site_packages(release)
    extra = os.path.join(site, "stray-1.0.dist-info")
    os.mkdir(extra)
    with open(os.path.join(extra, "METADATA"), "w") as handle:
        handle.write("Metadata-Version: 2.1\nName: stray\nVersion: 1.0\n")
    with open(os.path.join(extra, "RECORD"), "w") as handle:
        handle.write("stray-1.0.dist-info/METADATA,,\nstray-1.0.dist-info/RECORD,,\n")
    predicted, asked = run(check_mode=True)
    assert asked == 1 and predicted["changed"] and predicted["removed"] == [{"name": "stray", "version": "1.0"}]
    repaired, asked = run()
    assert asked == 1 and repaired["changed"] and repaired["removed"] == [{"name": "stray", "version": "1.0"}]
    assert [(r["changed"], n) for r, n in (run(), run())] == [(False, 1), (False, 0)]

    # an installed package's metadata edited in place (same directory, same inode)
    metadata = os.path.join(_site_packages(repaired["release"]), "beta-1.0.dist-info", "METADATA")
    with open(metadata, "a") as handle:
        handle.write("Summary: edited\n")
    assert run()[1] == 1

    # a new install file: uv is asked and the change is made
    pins("alpha-2.0", "beta-1.0")
    upgraded, asked = run()
    assert asked == 1 and upgraded["upgraded"] == [{"name": "alpha", "from": "1.0", "to": "2.0"}]


_RUN_AND_REPORT_IMPORTS = """
import json, sys
from ansible_collections.airgap.uv.plugins.module_utils._sync import SyncRunner
params, check_mode = json.loads(sys.argv[1]), sys.argv[2] == "check"
result = SyncRunner(params, check_mode=check_mode).run()
if result.get("switch_id"):  # as the action plugin does
    SyncRunner(dict(params, acknowledge=result["switch_id"])).run()
print(json.dumps([result["changed"], "ansible_collections.airgap.uv.plugins.module_utils._sync_change" in sys.modules]))
"""


def _run_and_report_imports(params, check_mode=False):
    """(changed, whether _sync_change was imported) of one run in a fresh interpreter."""
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-c", _RUN_AND_REPORT_IMPORTS, json.dumps(params), "check" if check_mode else "apply"],
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p)),
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return tuple(json.loads(proc.stdout.splitlines()[-1]))


def test_noop_run_never_imports_the_change_code(tmp_path, uv_bin, uv_cache):
    """The host compiles every module_util a run imports (Ansible ships them as source): a no-op
    run must not load _sync_change, or it pays for compiling the build and switch code."""
    params, pins = _real_bundle(tmp_path, uv_bin, uv_cache)
    assert S.SyncRunner(params).run()["changed"]
    # uv's dry run, then its recorded answer, then check mode: nothing changes, nothing imported
    assert [_run_and_report_imports(params) for _n in range(2)] == [(False, False)] * 2
    assert _run_and_report_imports(params, check_mode=True) == (False, False)
    # a change (predicted or made) and a rollback need it
    pins("alpha-2.0", "beta-1.0")
    assert _run_and_report_imports(params, check_mode=True) == (True, True)
    assert _run_and_report_imports(params) == (True, True)
    assert _run_and_report_imports(dict(params, state="rollback")) == (True, True)


def test_runner_offers_what_the_change_needs(inputs):
    """ReleaseChanger gets the run as RunSteps: SyncRunner must have every member it names."""
    runner = S.SyncRunner(inputs, runner=FakeUv())
    members = set(C.RunSteps.__annotations__) | {
        name for name in vars(C.RunSteps) if not name.startswith("_") and callable(getattr(C.RunSteps, name))}
    assert {"result", "pip_sync", "pruned_files", "p"} <= members
    assert [name for name in sorted(members) if not hasattr(runner, name)] == []
