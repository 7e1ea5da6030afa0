# -*- coding: utf-8 -*-
# Copyright (c) airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of plugins/module_utils/_sync.py.

Most need no uv; the durability tests at the end run SyncRunner in-process with the real uv
(``uv_bin`` fixture) on synthetic wheels and record every fsync/syncfs and the switch.

uv outputs are real recordings of uv 0.13.8 (JSON + text), 0.8.22 and 0.5.31 (text only)
under fixtures/uv_output/<version>/ (see fixtures/uv_output/README.md).
"""

from __future__ import annotations

import time
import sys
import hashlib
import errno
import fcntl
import json
import os
import re
from pathlib import Path

import pytest

from ansible_collections.airgap.uv.plugins.module_utils import _sync_error as E
from ansible_collections.airgap.uv.plugins.module_utils import _sync_manifest as M
from ansible_collections.airgap.uv.plugins.module_utils import _sync_packages as P
from ansible_collections.airgap.uv.plugins.module_utils import _sync as S
from ansible_collections.airgap.uv.plugins.module_utils import _sync_store as ST
from ansible_collections.airgap.uv.plugins.module_utils import _sync_uv as U
from ansible_collections.airgap.uv.plugins.module_utils import _sync_change as C

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


def fixture(version: str, case: str) -> dict:
    with open(FIXTURES / version / (case + ".json"), encoding="utf-8") as f:
        return json.load(f)


def test_fixtures_cover_new_and_old_uv():
    assert "0.13.8" in VERSIONS and len(VERSIONS) >= 2
    assert any(P.compare_versions(v, "0.9") < 0 for v in VERSIONS)


# ---------------------------------------------------------------------------
# names and versions
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("raw, canon", [("PyYAML", "pyyaml"), ("zope.interface", "zope-interface"), ("a__b-.c", "a-b-c")])
def test_canonical_name(raw, canon):
    assert P.canonical_name(raw) == canon


@pytest.mark.parametrize(
    "lower, higher",
    [
        ("1.0", "1.0.1"),
        ("1.9", "1.10"),
        ("1.0.dev0", "1.0a1"),
        ("1.0a1", "1.0b1"),
        ("1.0b2", "1.0rc1"),
        ("1.0rc1", "1.0"),
        ("1.0", "1.0.post1"),
        ("1.0.post1.dev1", "1.0.post1"),
        ("1.0", "1!0.1"),
        ("1.0", "1.0+local"),
        ("1.0+abc", "1.0+5"),
        ("16.0", "17.0"),
    ],
)
def test_compare_versions(lower, higher):
    assert P.compare_versions(lower, higher) == -1
    assert P.compare_versions(higher, lower) == 1


def test_compare_versions_equal_and_unparsable():
    assert P.compare_versions("1.0", "1.0.0") == 0
    assert P.compare_versions("1.0-1", "1.0.post1") == 0
    assert P.compare_versions("weird-b", "weird-a") == 1


# ---------------------------------------------------------------------------
# requirements
# ---------------------------------------------------------------------------

H1 = "sha256:" + "a" * 64
H2 = "sha256:" + "b" * 64


def test_parse_requirements_as_exported():
    text = (
        "# generated\n"
        "PyYAML==6.0.1 \\\n    --hash=%s \\\n    --hash=%s\n"
        "six==1.16.0 --hash=%s  # pinned\n"
        "\n"
        "uvicorn[standard]==0.30.0 --hash %s\n" % (H1, H2, H1, H2)
    )
    reqs = P.parse_requirements(text)
    assert list(reqs) == ["pyyaml", "six", "uvicorn"]
    assert reqs["pyyaml"].version == "6.0.1" and reqs["pyyaml"].hashes == {H1, H2}
    assert reqs["uvicorn"].hashes == {H2}


@pytest.mark.parametrize(
    "line, fragment",
    [
        ("--index-url http://x/simple", "not allowed"),
        ("-e ./src", "not allowed"),
        ("six==1.16.0 ; python_version < '3.8' --hash=%s" % H1, "markers"),
        ("six>=1.16 --hash=%s" % H1, "cannot parse"),
        ("six==1.16.0", "no --hash"),
        ("six==1.16.0 --hash=%s --no-deps" % H1, "unexpected"),
    ],
)
def test_parse_requirements_refuses(line, fragment):
    with pytest.raises(E.SyncError) as exc:
        P.parse_requirements(line + "\n", source="req.txt")
    assert fragment in exc.value.msg and "req.txt line 1" in exc.value.msg


def test_read_requirements_refuses_empty(tmp_path):
    (tmp_path / "r.txt").write_text("# nothing\n")
    with pytest.raises(E.SyncError, match="lists no packages"):
        P.read_requirements(str(tmp_path / "r.txt"))


def test_parse_requirements_duplicate():
    with pytest.raises(E.SyncError, match="listed twice"):
        P.parse_requirements("six==1 --hash=%s\nSix==1 --hash=%s\n" % (H1, H1))


# ---------------------------------------------------------------------------
# recorded uv output
# ---------------------------------------------------------------------------


def _plan(version: str, case: str, after: dict):
    rec = fixture(version, case)
    assert rec["rc"] == 0, rec
    return P.state_before(after, P.parse_changes(rec["stdout"], rec["stderr"]))


@pytest.mark.parametrize("version", VERSIONS)
def test_recorded_dry_install(version):
    before, reinstalled = _plan(version, "dry_install", REQ1)
    assert before == {} and reinstalled == set()
    diff = P.PackageDiff(before, REQ1)
    assert [p["name"] for p in diff.installed] == sorted(REQ1) and diff.changed


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("case", ["dry_noop", "noop"])
def test_recorded_noop(version, case):
    rec = fixture(version, case)
    assert P.parse_changes(rec["stdout"], rec["stderr"]) == []
    assert re.search(r"(Checked|Audited) 4 packages", rec["stderr"])


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("case", ["dry_change", "change"])
def test_recorded_upgrade_remove_install(version, case):
    before, reinstalled = _plan(version, case, REQ2)
    assert before == REQ1 and not reinstalled
    diff = P.PackageDiff(before, REQ2)
    assert diff.upgraded == [{"name": "six", "from": "1.16.0", "to": "1.17.0"}]
    assert diff.removed == [{"name": "markupsafe", "version": "2.1.5"}]
    assert diff.installed == [{"name": "pyyaml", "version": "6.0.1"}]
    assert diff.downgraded == []


@pytest.mark.parametrize("version", VERSIONS)
def test_recorded_downgrade(version):
    before, _reinstalled = _plan(version, "dry_downgrade", REQ1)
    assert before == REQ2
    diff = P.PackageDiff(before, REQ1)
    assert diff.downgraded == [{"name": "six", "from": "1.17.0", "to": "1.16.0"}]
    assert diff.installed == [{"name": "markupsafe", "version": "2.1.5"}] and diff.upgraded == []


def test_json_and_text_agree():
    for case in ("dry_install", "install", "dry_change", "change", "dry_downgrade"):
        rec = fixture("0.13.8", case)
        from_json = P.parse_changes_json(rec["stdout"])
        assert from_json is not None
        assert sorted(from_json) == sorted(P.parse_changes_text(rec["stderr"])), case


def test_json_unknown_schema_falls_back_to_text():
    rec = fixture("0.13.8", "dry_change")
    weird = json.dumps({"changes": [{"name": "six", "action": "transmogrified"}]})
    assert P.parse_changes_json(weird) is None
    assert P.parse_changes(weird, rec["stderr"]) == P.parse_changes_text(rec["stderr"])
    assert P.parse_changes("not json", rec["stderr"]) == P.parse_changes_text(rec["stderr"])


def test_text_reinstall_and_url_lines():
    stderr = " ~ myproj==0.1.0\n - foo @ file:///w/foo-1.0-py3-none-any.whl\n + Bar_Baz==2.0\nResolved 3 packages\n"
    changes = P.parse_changes_text(stderr)
    assert changes == [
        P.Change("myproj", "0.1.0", P.REINSTALL),
        P.Change("foo", None, P.REMOVE),
        P.Change("bar-baz", "2.0", P.INSTALL),
    ]
    before, reinstalled = P.state_before({"myproj": "0.1.0", "bar-baz": "2.0"}, changes)
    assert reinstalled == {"myproj"} and before == {"myproj": "0.1.0", "foo": "unknown"}
    assert P.PackageDiff(before, {"myproj": "0.1.0", "bar-baz": "2.0"}, reinstalled).reinstalled == [
        {"name": "myproj", "version": "0.1.0"}
    ]


@pytest.mark.parametrize("version", VERSIONS)
def test_recorded_pip_list(version):
    assert C.parse_pip_list(fixture(version, "pip_list")["stdout"]) == REQ2


@pytest.mark.parametrize("version", VERSIONS)
def test_recorded_failures_keep_stderr_tail(version):
    rec = fixture(version, "fail_corrupt")
    res = U.CommandResult(rec["argv"], rec["rc"], rec["stdout"], rec["stderr"])
    err = U.uv_failure("uv pip sync", res, hint="HINT")
    assert rec["rc"] != 0 and "exit code %d" % rec["rc"] in err.msg
    assert "idna" in err.msg and err.msg.endswith("HINT")
    assert err.details["cmd"] == rec["argv"] and err.details["rc"] == rec["rc"]
    missing = fixture(version, "fail_missing")
    assert "9.9.9" in U.uv_failure("x", U.CommandResult([], missing["rc"], "", missing["stderr"])).msg
    online = fixture(version, "online_unreachable")
    assert online["rc"] != 0 and "index.invalid" in U.stderr_tail(online["stderr"])
    for case in ("venv_nopython_path", "venv_nopython_version"):
        assert fixture(version, case)["rc"] != 0


def test_killed_by_signal_message():
    err = U.uv_failure("uv pip sync", U.CommandResult(["uv"], -9, "", ""))
    assert "killed by signal 9" in err.msg


@pytest.mark.parametrize(
    "text, version",
    [("uv 0.13.8 (abcdef 2025-01-01)\n", "0.13.8"), ("uv 0.5.31\n", "0.5.31"), ("uv 0.9.0+12 (x)", "0.9.0+12")],
)
def test_parse_uv_version(text, version):
    assert P.parse_uv_version(text) == version


def test_package_diff_lists():
    diff = P.PackageDiff({"a": "1", "b": "2", "c": "3"}, {"a": "1", "b": "1.5", "d": "1"})
    assert diff.installed == [{"name": "d", "version": "1"}]
    assert diff.removed == [{"name": "c", "version": "3"}]
    assert diff.downgraded == [{"name": "b", "from": "2", "to": "1.5"}]
    assert P.PackageDiff({"a": "1"}, {"a": "1"}).changed is False


# ---------------------------------------------------------------------------
# environment and uv invocation
# ---------------------------------------------------------------------------


def test_uv_environment_sanitized():
    base = {
        "HOME": "/home/u", "PATH": "/bin", "UV_OFFLINE": "", "UV_INDEX_URL": "http://x", "UV_NO_CONFIG": "0",
        "PIP_INDEX_URL": "http://x", "VIRTUAL_ENV": "/v", "PYTHONPATH": "/p", "SSL_CERT_DIR": "/etc/ssl/certs",
    }
    env = U.uv_environment(base, "/c", offline=True)
    assert env == {
        "HOME": "/home/u", "PATH": "/bin", "UV_NO_CONFIG": "1", "UV_CACHE_DIR": "/c",
        "UV_PYTHON_DOWNLOADS": "never", "NO_COLOR": "1", "UV_OFFLINE": "1",
    }
    online = U.uv_environment(base, "/c", offline=False)
    assert "UV_OFFLINE" not in online and online["SSL_CERT_DIR"] == "/etc/ssl/certs"
    assert not any(k.startswith("PIP_") for k in online)


class FakeUv:
    """Records uv calls and answers from a table (first matching key)."""

    def __init__(self, answers=None):
        self.calls = []
        self.answers = answers or {}

    def __call__(self, argv, env):
        self.calls.append((argv, env))
        joined = " ".join(argv)
        for key, (rc, out, err) in self.answers.items():
            if key in joined:
                return U.CommandResult(argv, rc, out, err)
        if "--version" in argv:
            return U.CommandResult(argv, 0, "uv 0.13.8 (x 2025-01-01)\n", "")
        if "--help" in argv:
            return U.CommandResult(argv, 0, "  --output-format <FORMAT>\n", "")
        return U.CommandResult(argv, 0, "", "")


def test_uv_info_cached_in_state(tmp_path):
    uv = tmp_path / "uv"
    uv.write_text("#!/bin/sh\n")
    fake = FakeUv()
    state = ST.StateFile(str(tmp_path / "state.json"))
    info = U.Uv(str(uv), "/c", {}, fake).info(state)
    assert info == U.UvInfo("0.13.8", True) and len(fake.calls) == 2
    assert all(argv[1] == "--no-config" for argv, _env in fake.calls)
    state.save()
    fake2 = FakeUv()
    assert U.Uv(str(uv), "/c", {}, fake2).info(ST.StateFile.load(state.path)) == info and fake2.calls == []
    uv.write_text("#!/bin/sh\n# another uv\n")  # other size -> probed again
    fake3 = FakeUv()
    U.Uv(str(uv), "/c", {}, fake3).info(ST.StateFile.load(state.path))
    assert len(fake3.calls) == 2


# ---------------------------------------------------------------------------
# manifest
# ---------------------------------------------------------------------------


def _manifest(tmp_path, files):
    wh = tmp_path / "wheelhouse"
    wh.mkdir(exist_ok=True)
    entries = []
    for name, data in files.items():
        (wh / name).write_bytes(data)
        entries.append({"filename": name, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)})
    m = tmp_path / "manifest.json"
    m.write_text(json.dumps({"format": 1, "files": entries, "uv_version": "0.13.8"}))
    return m, wh


def test_manifest_ok_and_cached(tmp_path, monkeypatch):
    m, wh = _manifest(tmp_path, {"a-1-py3-none-any.whl": b"aaa", "b-1-py3-none-any.whl": b"bbbb"})
    state = ST.StateFile(str(tmp_path / "state.json"))
    M.ManifestVerifier(str(m), str(wh), state).verify()
    assert len(state.data["sha256"]) == 2 and state.dirty
    state.save()
    hashed = []
    monkeypatch.setattr(M, "sha256_file", lambda p: hashed.append(p) or "x")
    state2 = ST.StateFile.load(state.path)
    M.ManifestVerifier(str(m), str(wh), state2).verify()
    assert hashed == [] and not state2.dirty


def test_manifest_missing_and_corrupt_named(tmp_path):
    m, wh = _manifest(tmp_path, {"a-1.whl": b"aaa", "b-1.whl": b"bbbb", "c-1.whl": b"cc"})
    (wh / "a-1.whl").unlink()
    (wh / "b-1.whl").write_bytes(b"bbbX")  # same size
    (wh / "c-1.whl").write_bytes(b"ccc")  # other size
    with pytest.raises(E.SyncError) as exc:
        M.ManifestVerifier(str(m), str(wh), ST.StateFile(str(tmp_path / "s"))).verify()
    msg = exc.value.msg
    assert "%s is missing" % (wh / "a-1.whl") in msg
    assert "%s is corrupt: sha256" % (wh / "b-1.whl") in msg
    assert "%s is corrupt: size 3" % (wh / "c-1.whl") in msg


def test_manifest_detects_change_with_same_mtime(tmp_path):
    m, wh = _manifest(tmp_path, {"a-1.whl": b"aaa"})
    state = ST.StateFile(str(tmp_path / "s"))
    M.ManifestVerifier(str(m), str(wh), state).verify()
    st = os.stat(wh / "a-1.whl")
    (wh / "a-1.whl").write_bytes(b"aaX")
    os.utime(wh / "a-1.whl", ns=(st.st_atime_ns, st.st_mtime_ns))  # ctime still moves
    with pytest.raises(E.SyncError, match="corrupt"):
        M.ManifestVerifier(str(m), str(wh), state).verify()


@pytest.mark.parametrize("content, fragment", [("{", "not valid JSON"), ('{"format": 2, "files": []}', "unsupported format")])
def test_manifest_bad_document(tmp_path, content, fragment):
    (tmp_path / "m.json").write_text(content)
    with pytest.raises(E.SyncError, match=fragment):
        M.ManifestVerifier(str(tmp_path / "m.json"), str(tmp_path), ST.StateFile(str(tmp_path / "s"))).verify()


def test_manifest_paths(tmp_path):
    v = M.ManifestVerifier(str(tmp_path / "manifest.json"), str(tmp_path / "wh"), ST.StateFile("x"))
    assert v.resolve("a.whl") == str(tmp_path / "wh" / "a.whl")
    assert v.resolve("bin/uv") == str(tmp_path / "bin" / "uv")


# ---------------------------------------------------------------------------
# lock and state
# ---------------------------------------------------------------------------


def test_lock_times_out_with_clear_message(tmp_path):
    path = str(tmp_path / "x.lock")
    with ST.FileLock(path, 5):
        t0 = time.monotonic()
        with pytest.raises(E.SyncError) as exc:
            with ST.FileLock(path, 0.3):
                pass
        assert time.monotonic() - t0 < 3
        assert "Timed out after 0.3s" in exc.value.msg and path in exc.value.msg and str(os.getpid()) in exc.value.msg
    with ST.FileLock(path, 0):  # released
        pass


def test_shared_lock_without_file_creates_nothing(tmp_path):
    with ST.FileLock(str(tmp_path / "none.lock"), 1, shared=True, create=False):
        pass
    assert os.listdir(tmp_path) == []


def test_shared_lock_waits_for_writer(tmp_path):
    path = str(tmp_path / "x.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(E.SyncError, match="Timed out"):
            with ST.FileLock(path, 0.2, shared=True, create=False):
                pass
    finally:
        os.close(fd)


def test_state_file_corrupt_is_ignored(tmp_path):
    p = tmp_path / "state.json"
    p.write_text("{garbage")
    st = ST.StateFile.load(str(p))
    assert st.data == {"format": ST.STATE_FORMAT}
    st.set("k", 1)
    st.save()
    assert json.loads(p.read_text())["k"] == 1


# ---------------------------------------------------------------------------
# releases
# ---------------------------------------------------------------------------


def _complete(store, rel_id, previous=None):
    rel = ST.Release(os.path.join(store.releases_dir, rel_id))
    os.makedirs(os.path.join(rel.path, "bin"))
    C.ReleaseWriter(store).write_meta(rel, {"format": 1, "id": rel_id, "previous": previous, "packages": {"six": {"version": "1", "hashes": []}}})
    return rel


def test_store_inspect_kinds(tmp_path):
    store = ST.ReleaseStore(str(tmp_path / "venv"))
    assert store.releases_dir == str(tmp_path / ".venv.releases")
    assert store.lock_path == str(tmp_path / ".venv.releases.lock")
    assert store.inspect().kind == "absent"
    (tmp_path / "venv").mkdir()
    assert store.inspect().kind == "directory"
    (tmp_path / "venv").rmdir()
    (tmp_path / "venv").symlink_to("/usr")
    assert store.inspect().kind == "foreign"
    (tmp_path / "venv").unlink()
    (tmp_path / "venv").symlink_to(".venv.releases/gone")
    assert store.inspect().kind == "dangling"
    rel = _complete(store, "20250101T000000.000000Z-aaaaaa")
    C.ReleaseWriter(store).activate(rel)
    view = store.inspect()
    assert view.kind == "release" and view.current.id == rel.id
    assert os.readlink(tmp_path / "venv") == ".venv.releases/" + rel.id  # relative: the tree can move


def test_store_activate_absolute_when_elsewhere(tmp_path):
    store = ST.ReleaseStore(str(tmp_path / "a" / "venv"), str(tmp_path / "r"))
    os.makedirs(tmp_path / "a")
    rel = _complete(store, "20250101T000000.000000Z-aaaaaa")
    C.ReleaseWriter(store).activate(rel)
    assert os.readlink(tmp_path / "a" / "venv") == rel.path
    assert store.inspect().current.id == rel.id


def test_store_cleanup_and_previous(tmp_path):
    store = ST.ReleaseStore(str(tmp_path / "venv"))
    r1 = _complete(store, "20250101T000000.000000Z-000001")
    r2 = _complete(store, "20250102T000000.000000Z-000002", previous=r1.id)
    r3 = _complete(store, "20250103T000000.000000Z-000003", previous=r2.id)
    half = ST.Release(os.path.join(store.releases_dir, "20250104T000000.000000Z-000004"))
    os.makedirs(half.path)
    C.ReleaseWriter(store).activate(r2)  # after a rollback to r2, r1 is r2's previous
    (tmp_path / ".venv.tmp-1-abc").symlink_to("x")
    assert store.previous_of(r2).id == r1.id
    removed = store.cleanup(2, [r2, store.previous_of(r2)])
    assert sorted(os.listdir(store.releases_dir)) == [r1.id, r2.id]
    assert sorted(removed) == sorted([r3.path, half.path])
    assert not os.path.lexists(tmp_path / ".venv.tmp-1-abc")


def test_previous_falls_back_to_newest_older(tmp_path):
    store = ST.ReleaseStore(str(tmp_path / "venv"))
    r1 = _complete(store, "20250101T000000.000000Z-000001")
    r2 = _complete(store, "20250102T000000.000000Z-000002", previous="20240101T000000.000000Z-pruned")
    assert store.previous_of(r2).id == r1.id
    assert store.previous_of(r1) is None


# ---------------------------------------------------------------------------
# runner without uv (validation happens before any uv call)
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# mode option
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, mode",
    [(None, None), ("", None), ("0750", 0o750), ("750", 0o750), ("0o750", 0o750), (" 2770 ", 0o2770),
     ("0700", 0o700), (0o755, 0o755), (493, 0o755)],
)
def test_parse_mode(value, mode):
    assert S.parse_mode(value) == mode


@pytest.mark.parametrize(
    "value, fragment",
    [
        ("u=rwx,g=rx", "symbolic modes"),
        ("0759", "not an octal mode"),
        ("0x1ed", "not an octal mode"),
        ("17777", "out of range"),
        ("0644", "must give the owner rwx"),  # a file mode on a directory
        ("0500", "must give the owner rwx"),
        (755, "the number 1363 in octal; quote octal modes"),  # YAML's unquoted 755 is decimal
        (True, "octal string"),
    ],
)
def test_parse_mode_refuses(value, fragment):
    with pytest.raises(E.SyncError) as exc:
        S.parse_mode(value)
    assert fragment in exc.value.msg


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

    real_syncfs = C._libc_syncfs()
    assert real_syncfs is not None, "syncfs through ctypes should work on Linux"

    def syncfs(fd):
        events.append(("syncfs", _fd_path(fd)))
        return real_syncfs(fd)

    real_activate = C.ReleaseWriter.activate

    def activate(writer, release):
        events.append(("activate", release.path))
        return real_activate(writer, release)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(C, "_libc_syncfs", lambda: syncfs)
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
        assert C.fsync_tree(str(tmp_path / "t"), workers=workers) == 6  # 3 dirs, 2 files, 1 link skipped
        flushed = sorted(p for kind, p in fsync_log)
        assert flushed == sorted([str(tmp_path / "t")] + [str(tmp_path / "t" / p) for p in ("a", "a/b", "a/b/f.py", "g.txt")])


def test_make_durable_syncfs_fallback_and_errors(tmp_path, monkeypatch):
    (tmp_path / "rel" / "lib").mkdir(parents=True)
    (tmp_path / "rel" / "lib" / "m.py").write_text("x")
    assert C.make_durable(str(tmp_path / "rel")) == "syncfs"  # the real syscall

    flushed = []
    monkeypatch.setattr(C, "fsync_tree", lambda path, workers=1: flushed.append(path) or 1)
    monkeypatch.setattr(C, "_libc_syncfs", lambda: None)  # not Linux, no ctypes
    assert C.make_durable(str(tmp_path / "rel")) == "fsync" and flushed == [str(tmp_path / "rel")]
    monkeypatch.setattr(C, "_libc_syncfs", lambda: (lambda fd: errno.ENOSYS))  # refused by a seccomp filter
    assert C.make_durable(str(tmp_path / "rel")) == "fsync"
    monkeypatch.setattr(C, "_libc_syncfs", lambda: (lambda fd: errno.EIO))
    with pytest.raises(E.SyncError, match=r"Cannot flush .*/rel to disk: Input/output error"):
        C.make_durable(str(tmp_path / "rel"))


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
    monkeypatch.setattr(C, "_libc_syncfs", lambda: None)
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


def test_environment_fingerprint_sees_entries_and_metadata(tmp_path):
    site = tmp_path / "lib" / "python3.11" / "site-packages"
    (site / "pkg-1.0.dist-info").mkdir(parents=True)
    (site / "pkg-1.0.dist-info" / "METADATA").write_text("Name: pkg\nVersion: 1.0\n")
    (site / "pkg").mkdir()
    first = ST.environment_fingerprint(str(tmp_path))
    assert first == ST.environment_fingerprint(str(tmp_path))
    (site / "pkg" / "module.py").write_text("")  # inside a package, not metadata: uv does not look
    assert ST.environment_fingerprint(str(tmp_path))[2:] == first[2:]
    (site / "other.pth").write_text("")
    assert ST.environment_fingerprint(str(tmp_path)) != first
    assert ST.environment_fingerprint(str(tmp_path / "absent")) == []


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
