# -*- coding: utf-8 -*-
# Copyright (c) airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Functional tests of airgap.uv.sync with the real uv binary.

The module runs as a subprocess (``python plugins/modules/sync.py ARGS.json``), as root
under ``unshare --net`` (no network at all) when possible.  A session fixture downloads
a few pure and compiled wheels once (cached in $TMPDIR between sessions); everything
else happens offline with a shared uv cache.

Knobs: AIRGAP_UV_TEST_UV (uv binary, default: the uv next to sys.executable or on PATH),
AIRGAP_UV_TEST_WHEELS (directory to keep the downloaded wheels in).
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import pwd
import shutil
import stat
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import pytest

THIS = Path(__file__).absolute()
COLLECTION = THIS.parents[4]
MODULE = COLLECTION / "plugins" / "modules" / "sync.py"
IS_ROOT = os.geteuid() == 0
HAVE_UNSHARE = IS_ROOT and shutil.which("unshare") is not None

# Real wheels: pure (six, idna, attrs) and compiled (markupsafe, pyyaml), two versions of six.
DOWNLOADS = [
    ("six", "1.16.0"),
    ("six", "1.17.0"),
    ("idna", "3.7"),
    ("attrs", "23.2.0"),
    ("markupsafe", "3.0.2"),
    ("pyyaml", "6.0.2"),
]

REQ_A = {"six": "1.16.0", "idna": "3.7", "markupsafe": "3.0.2", "attrs": "23.2.0", "myproj": "0.1.0"}
REQ_B = {"six": "1.17.0", "idna": "3.7", "pyyaml": "6.0.2", "attrs": "23.2.0", "myproj": "0.1.0"}
REQ_C = {"six": "1.16.0", "idna": "3.7", "attrs": "23.2.0", "myproj": "0.1.0"}
PURE = {"six": "1.17.0", "idna": "3.7"}


# ---------------------------------------------------------------------------
# session fixtures
# ---------------------------------------------------------------------------


def _find_uv() -> str:
    cands = [os.environ.get("AIRGAP_UV_TEST_UV"), os.path.join(os.path.dirname(sys.executable), "uv"), shutil.which("uv")]
    for c in cands:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return os.path.abspath(c)
    pytest.fail("no uv binary found (set AIRGAP_UV_TEST_UV)")


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _wheel_for(wheelhouse: Path, name: str, version: str) -> Path:
    for p in wheelhouse.glob("*.whl"):
        dist, ver = p.name.split("-")[:2]
        if _norm(dist) == name and ver == version:
            return p
    raise LookupError("%s==%s not in %s" % (name, version, wheelhouse))


def make_wheel(dest: Path, name: str, version: str, body: str) -> Path:
    """A minimal pure wheel with a console script ``<name>-cli``."""
    dist = "%s-%s" % (name, version)
    files = {
        "%s/__init__.py" % name: body,
        "%s.dist-info/METADATA" % dist: "Metadata-Version: 2.1\nName: %s\nVersion: %s\n" % (name, version),
        "%s.dist-info/WHEEL" % dist: "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        "%s.dist-info/entry_points.txt" % dist: "[console_scripts]\n%s-cli = %s:main\n" % (name, name),
    }
    path = dest / ("%s-py3-none-any.whl" % dist)
    record = []
    with zipfile.ZipFile(path, "w") as z:
        for arc, text in files.items():
            data = text.encode()
            z.writestr(arc, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append("%s,sha256=%s,%d" % (arc, digest, len(data)))
        record.append("%s.dist-info/RECORD,," % dist)
        z.writestr("%s.dist-info/RECORD" % dist, "\n".join(record) + "\n")
    return path


@pytest.fixture(scope="session")
def uv_bin() -> str:
    return _find_uv()


@pytest.fixture(scope="session")
def wheels(tmp_path_factory) -> Path:
    """Downloaded real wheels (cached across sessions) plus two synthetic myproj wheels."""
    tag = "cp%d%d" % sys.version_info[:2]
    keep = Path(os.environ.get("AIRGAP_UV_TEST_WHEELS") or os.path.join(tempfile.gettempdir(), "airgap-uv-test-wheels-" + tag))
    keep.mkdir(parents=True, exist_ok=True)
    missing = []
    for name, version in DOWNLOADS:
        try:
            _wheel_for(keep, name, version)
        except LookupError:
            missing.append((name, version))
    for name, version in missing:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--only-binary", ":all:", "--no-deps", "-d", str(keep),
             "%s==%s" % (name, version)],
            capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            pytest.fail("cannot download test wheels (%s==%s): %s" % (name, version, proc.stderr[-500:]))
    out = tmp_path_factory.mktemp("wheels")
    for name, version in DOWNLOADS:
        src = _wheel_for(keep, name, version)
        shutil.copy2(src, out / src.name)
    (out / "myproj-a").mkdir()
    (out / "myproj-b").mkdir()
    make_wheel(out / "myproj-a", "myproj", "0.1.0", "def main():\n    print('A')\n")
    make_wheel(out / "myproj-b", "myproj", "0.1.0", "def main():\n    print('B')\n")
    return out


@pytest.fixture(scope="session")
def shared_root(tmp_path_factory) -> Path:
    """World-readable scratch dir (tmp_path is 0700: unusable for another user)."""
    d = Path(tempfile.mkdtemp(prefix="airgap-uv-ft-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def pythonpath(shared_root) -> str:
    """``ansible_collections/airgap/uv`` -> this collection, plus ansible-core."""
    import ansible

    base = shared_root / "collections"
    link = base / "ansible_collections" / "airgap" / "uv"
    link.parent.mkdir(parents=True)
    link.symlink_to(COLLECTION)
    for p in (base, base / "ansible_collections", link.parent):
        p.chmod(0o755)
    return os.pathsep.join([str(base), os.path.dirname(os.path.dirname(ansible.__file__))])


@pytest.fixture(scope="session")
def uv_cache(shared_root) -> Path:
    d = shared_root / "uv-cache"
    d.mkdir()
    return d


# ---------------------------------------------------------------------------
# a bundle as the roles copy it to a host, and running the module
# ---------------------------------------------------------------------------


class Bundle:
    def __init__(self, root: Path, wheels: Path, uv_bin: str, cache: Path, pythonpath: str) -> None:
        self.root = root
        self.wheels = wheels
        self.real_uv = uv_bin
        self.cache = cache
        self.pythonpath = pythonpath
        (root / "bin").mkdir(parents=True)
        self.uv = root / "bin" / "uv"
        shutil.copy2(uv_bin, self.uv)
        self.wheelhouse = root / "wheelhouse"
        self.wheelhouse.mkdir()
        for p in wheels.glob("*.whl"):
            shutil.copy2(p, self.wheelhouse / p.name)
        self.use_myproj("a")
        self.requirements = root / "requirements.txt"
        self.manifest = root / "manifest.json"
        self.venv = root / "app" / "venv"
        self.uv_log = root / "uv.log"

    def use_myproj(self, variant: str) -> None:
        shutil.copy2(self.wheels / ("myproj-" + variant) / "myproj-0.1.0-py3-none-any.whl", self.wheelhouse)

    def write(self, pins: dict, only_pinned: bool = False) -> None:
        """The install file for PINS and a manifest of the wheelhouse (ONLY_PINNED: of PINS' wheels)."""
        lines, pinned = [], set()
        for name, version in sorted(pins.items()):
            whl = _wheel_for(self.wheelhouse, name, version)
            pinned.add(whl)
            lines.append("%s==%s --hash=sha256:%s" % (name, version, hashlib.sha256(whl.read_bytes()).hexdigest()))
        self.requirements.write_text("\n".join(lines) + "\n")
        files = [
            {"filename": p.name, "sha256": hashlib.sha256(p.read_bytes()).hexdigest(), "size": p.stat().st_size}
            for p in sorted(self.wheelhouse.glob("*.whl")) if not only_pinned or p in pinned
        ]
        self.manifest.write_text(json.dumps({"format": 1, "files": files, "uv_version": None, "project": {"name": "myproj", "version": "0.1.0"}}))

    def wrap_uv(self, mode: str = "") -> None:
        """Replace bin/uv by a shell wrapper that logs calls and can misbehave on the real sync."""
        real = self.root / "bin" / "uv.real"
        if not real.exists():
            shutil.copy2(self.real_uv, real)
        self.uv.unlink()
        self.uv.write_text(
            "#!/bin/sh\n"
            'echo "$*" >> %(log)s\n'
            'case " $* " in *" pip sync "*) case " $* " in *" --dry-run "*|*" --help "*) ;; *)\n'
            "  case %(mode)s in\n"
            '    kill-self) %(real)s "$@"; kill -KILL $$ ;;\n'
            '    kill-parent) %(real)s "$@"; kill -KILL $PPID; sleep 5 ;;\n'
            "    sleep) sleep 1.5 ;;\n"
            "  esac ;; esac ;; esac\n"
            'exec %(real)s "$@"\n' % {"log": self.uv_log, "mode": mode or "none", "real": real}
        )
        self.uv.chmod(0o755)

    def args(self, **kw) -> dict:
        args = {
            "uv": str(self.uv),
            "wheelhouse": str(self.wheelhouse),
            "requirements": str(self.requirements),
            "venv": str(self.venv),
            "cache_dir": str(self.cache),
        }
        args.update(kw)
        return {k: v for k, v in args.items() if v is not None}

    def run(self, check: bool = False, diff: bool = True, user: str = None, interpreter: str = None,
            env: dict = None, net: bool = False, acknowledge: bool = True, **kw) -> dict:
        """One module run; a switch it reports is acknowledged as the action plugin does."""
        result = self._run_module(check, diff, user, interpreter, env, net, **kw)
        if acknowledge and result.get("switch_id") and not check:
            ok(self._run_module(False, False, user, interpreter, env, net, acknowledge=result["switch_id"], **kw))
        return result

    def _run_module(self, check: bool, diff: bool, user: str, interpreter: str, env: dict, net: bool,
                    **kw) -> dict:
        args = self.args(**kw)
        args["_ansible_check_mode"] = check
        args["_ansible_diff"] = diff
        fd, argfile = tempfile.mkstemp(prefix="args-", suffix=".json", dir=str(self.root))
        with os.fdopen(fd, "w") as f:
            json.dump({"ANSIBLE_MODULE_ARGS": args}, f)
        os.chmod(argfile, 0o644)
        cmd = [interpreter or sys.executable, str(MODULE), argfile]
        if user:
            cmd = ["runuser", "-u", user, "--"] + cmd
        if HAVE_UNSHARE and not net:
            cmd = ["unshare", "--net"] + cmd
        run_env = dict(os.environ if env is None else env)
        run_env["PYTHONPATH"] = self.pythonpath
        proc = subprocess.run(cmd, capture_output=True, text=True, env=run_env, cwd=str(self.root), check=False)
        os.unlink(argfile)
        try:
            result = json.loads(proc.stdout)
        except ValueError:
            result = {"failed": True, "msg": "no JSON", "_stdout": proc.stdout, "_stderr": proc.stderr}
        result["_rc"] = proc.returncode
        return result

    # inspection helpers
    def current(self) -> str:
        return os.path.realpath(self.venv)

    def releases(self) -> list:
        d = self.venv.parent / ".venv.releases"
        return sorted(os.listdir(d)) if d.exists() else []

    def python_ok(self, code: str = "") -> subprocess.CompletedProcess:
        return subprocess.run([str(self.venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=False)

    def uv_calls(self) -> list:
        return self.uv_log.read_text().splitlines() if self.uv_log.exists() else []


@pytest.fixture
def bundle(shared_root, wheels, uv_bin, uv_cache, pythonpath, request) -> Bundle:
    root = Path(tempfile.mkdtemp(prefix="b-", dir=str(shared_root)))
    root.chmod(0o755)
    b = Bundle(root, wheels, uv_bin, uv_cache, pythonpath)
    b.write(REQ_A)
    yield b
    shutil.rmtree(root, ignore_errors=True)


def ok(result: dict) -> dict:
    assert not result.get("failed"), result
    return result


def snapshot(path: Path) -> list:
    """Everything under ``path`` with its identity (to prove check mode touched nothing)."""
    out = []
    for root, dirs, files in os.walk(str(path)):
        for n in sorted(dirs + files):
            p = os.path.join(root, n)
            st = os.lstat(p)
            out.append((p, st.st_ino, st.st_mtime_ns, st.st_size, os.readlink(p) if os.path.islink(p) else None))
    return sorted(out)


CHANGE_KEYS = ("changed", "installed", "removed", "upgraded", "downgraded", "reinstalled", "packages", "diff")


# ---------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------


def test_create_noop_and_changes_match_check_mode(bundle):
    # check mode with no venv: everything would be installed, nothing is created
    before = snapshot(bundle.root / "app") if (bundle.root / "app").exists() else []
    predicted = ok(bundle.run(check=True))
    assert predicted["changed"] is True
    assert [p["name"] for p in predicted["installed"]] == sorted(REQ_A)
    assert not (bundle.root / "app").exists() and before == []

    first = ok(bundle.run())
    for key in CHANGE_KEYS:
        assert first[key] == predicted[key], key
    assert first["reason"] == "venv created" and first["previous_release"] is None
    assert os.path.islink(bundle.venv) and first["release"] == bundle.current()
    assert bundle.python_ok("import six, markupsafe, myproj; assert six.__version__ == '1.16.0'").returncode == 0
    assert subprocess.run([str(bundle.venv / "bin" / "myproj-cli")], capture_output=True, text=True, check=False).stdout == "A\n"

    second = ok(bundle.run())
    assert second["changed"] is False and second["release"] == first["release"]
    assert second["packages"] == first["packages"] and second["diff"]["before"] == second["diff"]["after"]

    steps = [
        # upgrade six, remove markupsafe, add pyyaml
        (REQ_B, dict(installed=[{"name": "pyyaml", "version": "6.0.2"}],
                     removed=[{"name": "markupsafe", "version": "3.0.2"}],
                     upgraded=[{"name": "six", "from": "1.16.0", "to": "1.17.0"}], downgraded=[])),
        # and back: downgrade
        (REQ_A, dict(installed=[{"name": "markupsafe", "version": "3.0.2"}],
                     removed=[{"name": "pyyaml", "version": "6.0.2"}],
                     upgraded=[], downgraded=[{"name": "six", "from": "1.17.0", "to": "1.16.0"}])),
        # removal only
        (REQ_C, dict(installed=[], removed=[{"name": "markupsafe", "version": "3.0.2"}], upgraded=[], downgraded=[])),
    ]
    for pins, expected in steps:
        in_service = bundle.current()
        bundle.write(pins)
        snap = snapshot(bundle.root / "app")
        predicted = ok(bundle.run(check=True))
        assert snapshot(bundle.root / "app") == snap, "check mode changed the host"
        real = ok(bundle.run())
        for key in CHANGE_KEYS:
            assert real[key] == predicted[key], (key, real[key], predicted[key])
        for key, value in expected.items():
            assert real[key] == value, (key, real[key])
        assert real["changed"] and real["previous_release"] == in_service
        assert real["release"] == bundle.current() != in_service
        assert real["packages"] == ["%s==%s" % kv for kv in sorted(pins.items())]
        assert real["diff"]["after"] == "".join("%s==%s\n" % kv for kv in sorted(pins.items()))
        assert len(bundle.releases()) <= 2  # keep_releases=2
        assert ok(bundle.run())["changed"] is False

    # the same version of myproj rebuilt with other content: uv alone would not notice
    bundle.use_myproj("b")
    bundle.write(REQ_C)
    predicted = ok(bundle.run(check=True))
    real = ok(bundle.run())
    for key in CHANGE_KEYS:
        assert real[key] == predicted[key], key
    assert real["changed"] and real["reinstalled"] == [{"name": "myproj", "version": "0.1.0"}]
    assert subprocess.run([str(bundle.venv / "bin" / "myproj-cli")], capture_output=True, text=True, check=False).stdout == "B\n"


def test_noop_is_one_dry_run_uv_call(bundle):
    bundle.wrap_uv()
    ok(bundle.run())
    bundle.uv_log.unlink()
    result = ok(bundle.run(manifest=str(bundle.manifest)))
    assert result["changed"] is False
    calls = bundle.uv_calls()
    assert len(calls) == 1 and "pip sync" in calls[0] and "--dry-run" in calls[0], calls
    assert "--offline" in calls[0] and "--no-index" in calls[0] and calls[0].startswith("--no-config ")


def test_check_mode_without_venv_touches_nothing(bundle, tmp_path):
    cache = bundle.root / "fresh-cache"
    result = ok(bundle.run(check=True, cache_dir=str(cache)))
    assert result["changed"] and result["release"] is None
    assert not cache.exists() and not (bundle.root / "app").exists()


def test_corrupt_wheel_named_and_old_release_kept(bundle):
    first = ok(bundle.run(manifest=str(bundle.manifest)))
    bundle.write(REQ_B)
    whl = _wheel_for(bundle.wheelhouse, "pyyaml", "6.0.2")
    data = bytearray(whl.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other content
    whl.write_bytes(bytes(data))
    result = bundle.run(manifest=str(bundle.manifest))
    assert result["failed"] and whl.name in result["msg"] and "corrupt" in result["msg"], result["msg"]
    assert bundle.current() == first["release"] and bundle.releases() == [os.path.basename(first["release"])]
    assert bundle.python_ok("import six, markupsafe").returncode == 0

    # without a manifest uv's own hash check refuses it; uv's stderr is in the message
    result = bundle.run()
    assert result["failed"] and "uv pip sync" in result["msg"] and "pyyaml" in result["msg"].lower(), result["msg"]
    assert result.get("stderr") and result.get("cmd")
    assert bundle.current() == first["release"] and bundle.releases() == [os.path.basename(first["release"])]


def test_missing_manifest_file_is_named(bundle):
    whl = _wheel_for(bundle.wheelhouse, "idna", "3.7")
    whl.unlink()
    result = bundle.run(manifest=str(bundle.manifest))
    assert result["failed"] and str(whl) in result["msg"] and "missing" in result["msg"]
    assert not os.path.lexists(bundle.venv)


@pytest.mark.parametrize("mode", ["kill-self", "kill-parent"])
def test_killed_midway_keeps_old_release_and_next_run_repairs(bundle, mode):
    first = ok(bundle.run())
    bundle.write(REQ_B)
    bundle.wrap_uv(mode)
    result = bundle.run()
    if mode == "kill-self":
        assert result["failed"] and "killed by signal 9" in result["msg"], result
        assert bundle.releases() == [os.path.basename(first["release"])]  # half-built one removed
    else:
        assert result["_rc"] == -signal.SIGKILL  # the module itself died: leftovers stay
        assert len(bundle.releases()) == 2
    assert bundle.current() == first["release"]
    assert bundle.python_ok("import six; assert six.__version__ == '1.16.0'").returncode == 0

    bundle.wrap_uv("")
    repaired = ok(bundle.run())
    assert repaired["changed"] and repaired["upgraded"] == [{"name": "six", "from": "1.16.0", "to": "1.17.0"}]
    assert sorted(bundle.releases()) == sorted(os.path.basename(r) for r in (first["release"], repaired["release"]))
    assert bundle.python_ok("import yaml, six; assert six.__version__ == '1.17.0'").returncode == 0


def test_rollback(bundle):
    r1 = ok(bundle.run())
    no_prev = bundle.run(state="rollback")
    assert no_prev["failed"] and "no previous release" in no_prev["msg"]
    bundle.write(REQ_B)
    r2 = ok(bundle.run())

    predicted = ok(bundle.run(state="rollback", check=True))
    assert predicted["changed"] and bundle.current() == r2["release"]
    back = ok(bundle.run(state="rollback"))
    assert back["changed"] and back["release"] == r1["release"] == bundle.current()
    assert back["previous_release"] == r2["release"]
    assert back["downgraded"] == [{"name": "six", "from": "1.17.0", "to": "1.16.0"}]
    assert predicted["downgraded"] == back["downgraded"]
    assert bundle.python_ok("import markupsafe").returncode == 0
    # state=present with the newer requirements rolls forward to the release rolled back from
    fwd = ok(bundle.run())
    assert fwd["changed"] and fwd["upgraded"] == [{"name": "six", "from": "1.16.0", "to": "1.17.0"}]
    assert fwd["release"] == r2["release"] == bundle.current()
    assert "switched to existing release %s" % os.path.basename(r2["release"]) in fwd["reason"]


def installs(bundle) -> list:
    """The uv calls (logged by the wrapper) that create or fill an environment."""
    return [c for c in bundle.uv_calls()
            if " venv " in " %s " % c or (" pip sync " in " %s " % c and "--dry-run" not in c and "--help" not in c)]


def test_roll_forward_after_rollback(bundle):
    bundle.wrap_uv()
    r1 = ok(bundle.run())
    bundle.write(REQ_B)
    r2 = ok(bundle.run())
    assert ok(bundle.run(state="rollback"))["release"] == r1["release"] == bundle.current()

    # the same requirements as the release rolled back from: switch to it, build nothing
    snap = snapshot(bundle.root / "app")
    predicted = ok(bundle.run(check=True))
    assert snapshot(bundle.root / "app") == snap, "check mode changed the host"
    bundle.uv_log.unlink()
    fwd = ok(bundle.run())
    assert installs(bundle) == [], bundle.uv_calls()
    for key in CHANGE_KEYS:
        assert fwd[key] == predicted[key], key
    reason = "packages changed; switched to existing release %s" % os.path.basename(r2["release"])
    assert fwd["reason"] == predicted["reason"] == reason
    assert fwd["release"] == r2["release"] == bundle.current() and fwd["previous_release"] == r1["release"]
    assert predicted["release"] == r1["release"]  # check mode reports the release in service now
    assert fwd["upgraded"] == [{"name": "six", "from": "1.16.0", "to": "1.17.0"}]
    assert fwd["installed"] == [{"name": "pyyaml", "version": "6.0.2"}]
    assert fwd["removed"] == [{"name": "markupsafe", "version": "3.0.2"}]
    assert bundle.releases() == sorted(os.path.basename(r["release"]) for r in (r1, r2))
    assert bundle.python_ok("import yaml, six; assert six.__version__ == '1.17.0'").returncode == 0
    assert ok(bundle.run())["changed"] is False

    # a rollback from there goes back to the release it replaced
    assert ok(bundle.run(state="rollback"))["release"] == r1["release"]

    # no symlink at all (removed by hand): the kept release is put back as well
    os.unlink(bundle.venv)
    predicted = ok(bundle.run(check=True))
    bundle.uv_log.unlink()
    back = ok(bundle.run())
    assert installs(bundle) == []
    assert back["reason"] == predicted["reason"] == "venv created; switched to existing release %s" % os.path.basename(r2["release"])
    for key in CHANGE_KEYS:
        assert back[key] == predicted[key], key
    assert back["release"] == r2["release"] == bundle.current()


@pytest.mark.parametrize("case", ["content", "damaged", "extra"])
def test_no_roll_forward_to_a_release_that_differs(bundle, case):
    """Only an exact, intact match is switched to; anything else builds a new release."""
    bundle.wrap_uv()
    r1 = ok(bundle.run())
    bundle.write(REQ_B)
    r2 = ok(bundle.run())
    ok(bundle.run(state="rollback"))
    if case == "content":  # myproj 0.1.0 rebuilt with other content: the same versions, another hash
        bundle.use_myproj("b")
        bundle.write(REQ_B)
    elif case == "damaged":  # the kept release no longer runs
        os.unlink(os.path.join(r2["release"], "bin", "python"))
    else:  # a package installed into the kept release by hand (while it was in service, say)
        subprocess.run([bundle.real_uv, "pip", "install", "-q", "--offline", "--no-index", "--find-links", str(bundle.wheelhouse),
                        "markupsafe==3.0.2", "--python", os.path.join(r2["release"], "bin", "python")],
                       env=dict(os.environ, UV_CACHE_DIR=str(bundle.cache)), check=True)
    predicted = ok(bundle.run(check=True))
    bundle.uv_log.unlink()
    built = ok(bundle.run())
    assert built["changed"] and "switched" not in built["reason"] and predicted["reason"] == built["reason"]
    assert built["release"] not in (r1["release"], r2["release"]) and built["release"] == bundle.current()
    assert len(installs(bundle)) == 2  # uv venv + uv pip sync
    for key in CHANGE_KEYS:
        assert built[key] == predicted[key], key
    if case == "content":
        assert built["reinstalled"] == [{"name": "myproj", "version": "0.1.0"}]
        assert subprocess.run([str(bundle.venv / "bin" / "myproj-cli")], capture_output=True, text=True,
                              check=False).stdout == "B\n"
    assert bundle.python_ok("import yaml, six; assert six.__version__ == '1.17.0'").returncode == 0
    assert bundle.python_ok("import markupsafe").returncode != 0


def test_roll_forward_needs_the_same_python(bundle):
    mine = "%d.%d" % sys.version_info[:2]
    others = [py for minor, py in sorted(_pythons().items()) if minor != mine]
    if not others:
        pytest.skip("no second Python")
    other = others[-1]
    bundle.write(PURE)
    r1 = ok(bundle.run(python=other, keep_releases=3))
    bundle.write({"six": "1.16.0", "idna": "3.7"})
    r2 = ok(bundle.run(keep_releases=3))
    bundle.write(PURE)
    # r1 holds these packages, but for the other Python: a new release
    r3 = ok(bundle.run(keep_releases=3))
    assert r3["release"] not in (r1["release"], r2["release"]) and "switched" not in r3["reason"]
    # and asked for the other Python again, r1 is the match
    back = ok(bundle.run(python=other, keep_releases=3))
    assert back["release"] == r1["release"] == bundle.current()
    assert back["reason"] == "python changed from %s to %s; switched to existing release %s" % (
        os.path.realpath(sys.executable), other, os.path.basename(r1["release"]))


def _mode(path) -> int:
    return os.stat(path).st_mode & 0o7777


def test_mode_applied_fixed_and_predicted(bundle):
    first = ok(bundle.run(mode="0750"))
    rel = first["release"]
    assert _mode(rel) == 0o750 and first["reason"] == "venv created"
    assert ok(bundle.run(mode="0750"))["changed"] is False
    assert ok(bundle.run())["changed"] is False  # not given: left as it is

    # a mode change alone: fixed on the release in service, reported, predicted
    snap = snapshot(bundle.root / "app")
    predicted = ok(bundle.run(mode="0700", check=True))
    assert snapshot(bundle.root / "app") == snap and _mode(rel) == 0o750
    real = ok(bundle.run(mode="0700"))
    reason = "mode of %s changed from 0750 to 0700" % rel
    assert predicted["changed"] and real["changed"] and predicted["reason"] == real["reason"] == reason
    assert real["release"] == rel and _mode(rel) == 0o700 and len(bundle.releases()) == 1
    assert not (real["installed"] or real["removed"] or real["upgraded"] or real["downgraded"] or real["reinstalled"])
    assert ok(bundle.run(mode="0700"))["changed"] is False

    # a number is the mode itself (YAML's unquoted 0750); a new release gets it, the old one keeps its own
    bundle.write(REQ_B)
    second = ok(bundle.run(mode=0o750))
    assert second["release"] != rel and _mode(second["release"]) == 0o750 and _mode(rel) == 0o700

    # the release switched back to by a roll forward gets the mode too
    ok(bundle.run(state="rollback", mode="0755"))  # ignored by a rollback
    assert _mode(rel) == 0o700
    predicted = ok(bundle.run(mode="0755", check=True))
    fwd = ok(bundle.run(mode="0755"))
    assert fwd["release"] == second["release"] and _mode(second["release"]) == 0o755
    assert fwd["reason"] == predicted["reason"] == "packages changed; switched to existing release %s; mode of %s changed from 0750 to 0755" % (
        os.path.basename(second["release"]), second["release"])


@pytest.mark.parametrize(
    "mode, fragment",
    [("0644", "must give the owner rwx"), ("u=rwx,g=rx", "symbolic modes"), (755, "quote octal modes"), ("0789", "not an octal mode")],
)
def test_bad_mode_refused_before_anything(bundle, mode, fragment):
    result = bundle.run(mode=mode)
    assert result["failed"] and fragment in result["msg"], result["msg"]
    assert not (bundle.root / "app").exists()


def test_negative_check_settings_refused_before_anything(bundle):
    result = bundle.run(check_command=["python", "-c", "pass"], check_retries=-1, check_timeout=-5)
    assert result["failed"] and "check_retries and check_timeout cannot be negative (got -1, -5)" in result["msg"]
    assert not (bundle.root / "app").exists()


def test_concurrent_runs_serialize(bundle):
    bundle.wrap_uv("sleep")
    results = [None, None]

    def go(i):
        results[i] = bundle.run()

    threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
    for th in threads:
        th.start()
        time.sleep(0.2)
    for th in threads:
        th.join()
    for r in results:
        ok(r)
    # One run built the release; the other changed nothing, though it may have started before the
    # first run's result was acknowledged and then reports that switch too (unreported_switch).
    assert sorted(r["changed"] and "unreported_switch" not in r for r in results) == [False, True]
    assert len(bundle.releases()) == 1


def test_lock_timeout(bundle):
    ok(bundle.run())
    lock = str(bundle.venv.parent / ".venv.releases.lock")
    fd = os.open(lock, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        t0 = time.monotonic()
        result = bundle.run(lock_timeout=1)
        assert result["failed"] and "Timed out" in result["msg"] and lock in result["msg"]
        assert time.monotonic() - t0 < 10
    finally:
        os.close(fd)


def test_refresh_with_offline_refused_before_uv_runs(bundle):
    bundle.wrap_uv()
    result = bundle.run(refresh=True)
    assert result["failed"] and "refresh" in result["msg"] and "offline" in result["msg"]
    assert bundle.uv_calls() == []


@pytest.mark.parametrize(
    "override, fragment",
    [
        (dict(wheelhouse="/nonexistent/wheelhouse"), "wheelhouse /nonexistent/wheelhouse"),
        (dict(requirements="/nonexistent/req.txt"), "requirements file /nonexistent/req.txt"),
        (dict(manifest="/nonexistent/manifest.json"), "manifest /nonexistent/manifest.json"),
        (dict(uv="/nonexistent/uv"), "uv binary /nonexistent/uv does not exist"),
        (dict(python="/nonexistent/python3"), "Python interpreter /nonexistent/python3 not found"),
        (dict(python="3.99"), "Python interpreter '3.99' not found"),
    ],
)
def test_input_errors(bundle, override, fragment):
    result = bundle.run(**override)
    assert result["failed"] and fragment in result["msg"], result["msg"]
    assert not os.path.lexists(bundle.venv)
    assert bundle.releases() == []


def test_uv_not_executable(bundle):
    bundle.uv.chmod(0o644)
    result = bundle.run()
    assert result["failed"] and "not an executable" in result["msg"]


def test_real_directory_refused_then_adopted(bundle, uv_bin):
    bundle.venv.parent.mkdir(parents=True)
    subprocess.run([uv_bin, "venv", "-q", "--python", os.path.realpath(sys.executable), str(bundle.venv)], check=True,
                   env=dict(os.environ, UV_CACHE_DIR=str(bundle.cache)))
    (bundle.venv / "user-data.txt").write_text("keep me")
    refused = bundle.run()
    assert refused["failed"] and "adopt" in refused["msg"] and bundle.venv.is_dir() and not bundle.venv.is_symlink()
    adopted = ok(bundle.run(adopt=True))
    assert adopted["changed"] and "adopted" in adopted["reason"]
    assert os.path.islink(bundle.venv)
    assert Path(adopted["previous_release"], "user-data.txt").read_text() == "keep me"
    assert bundle.python_ok("import six").returncode == 0
    back = ok(bundle.run(state="rollback"))
    assert back["release"] == adopted["previous_release"]


def test_python_change_rebuilds(bundle):
    mine = "%d.%d" % sys.version_info[:2]
    others = [py for minor, py in sorted(_pythons().items()) if minor != mine]
    if not others:
        pytest.skip("no second Python")
    other = others[-1]
    bundle.write(PURE)
    ok(bundle.run())
    moved = ok(bundle.run(python=other))
    assert moved["changed"] and "python changed" in moved["reason"] and not moved["installed"]
    assert ok(bundle.run(python=other))["changed"] is False


def test_sanitized_environment(bundle, tmp_path):
    """Nothing from the user's uv/pip setup may re-enable the network or break uv."""
    cfg = tmp_path / "xdg"
    (cfg / "uv").mkdir(parents=True)
    (cfg / "uv" / "uv.toml").write_text('offline = "not a bool"\n')
    env = dict(os.environ)
    env.update({
        "UV_OFFLINE": "",  # a hard error if uv saw it
        "UV_INDEX_URL": "http://index.invalid/simple",
        "UV_NO_CACHE": "1",
        "UV_CONFIG_FILE": str(cfg / "uv" / "uv.toml"),
        "PIP_INDEX_URL": "http://index.invalid/simple",
        "XDG_CONFIG_HOME": str(cfg),
        "VIRTUAL_ENV": "/nonexistent",
    })
    result = ok(bundle.run(env=env))
    assert result["changed"] and result["network_used"] == "offline"


@pytest.mark.skipif(not HAVE_UNSHARE, reason="needs root and unshare --net")
def test_fallback_and_online_without_network(bundle):
    index = "http://127.0.0.1:9/simple"
    result = ok(bundle.run(network="fallback", index_url=index, http_retries=0))
    assert result["changed"] and result["network_used"] == "offline"
    assert "falling back to offline" in json.dumps(result.get("warnings"))  # structure differs by ansible-core version
    bundle.write(REQ_B)
    online = bundle.run(network="online", index_url=index, http_retries=0, http_timeout=5)
    assert online["failed"] and "uv pip sync" in online["msg"]


@pytest.mark.skipif(not IS_ROOT or not shutil.which("useradd"), reason="needs root and useradd")
def test_owner_never_gets_code_run_as_root(bundle):
    """Root deploys for an owner: the owner's environment is never executed as root.

    The owner plants a marker-writing .pth file in its release, which runs whenever its
    interpreter starts; the next root runs (a no-op, check mode and a change) start it only as
    the owner. Root keeps the releases
    directory, lock and state (0600); the owner gets its releases and its uv cache.
    """
    user = "airgapuvtest"
    if subprocess.run(["id", user], capture_output=True, check=False).returncode != 0:
        subprocess.run(["useradd", "--system", "--create-home", "--shell", "/bin/sh", user], check=True)
    pw = pwd.getpwnam(user)
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else None
    probe = subprocess.run(["runuser", "-u", user, "--", python or "python3", "-c", ""], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("no Python usable by an unprivileged user")
    vinfo = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True, check=False).stdout.strip()
    if vinfo != "%d.%d" % sys.version_info[:2]:
        pytest.skip("the compiled test wheels are for another Python")
    cache = bundle.root / "cache"
    first = ok(bundle.run(owner=user, python=python, cache_dir=str(cache)))
    release = first["release"]
    st = os.stat(release)
    assert (st.st_uid, st.st_gid) == (pw.pw_uid, pw.pw_gid)
    assert all(os.lstat(os.path.join(r, n)).st_uid == pw.pw_uid for r, ds, fs in os.walk(release) for n in ds + fs)
    assert all(os.lstat(os.path.join(r, n)).st_uid == pw.pw_uid for r, ds, fs in os.walk(cache) for n in ds + fs)
    releases = bundle.venv.parent / ".venv.releases"
    for path, mode in ((releases, 0o755), (Path(str(releases) + ".lock"), 0o600), (Path(str(releases) + ".state.json"), 0o600)):
        st = os.lstat(path)
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, mode), path
    # The owner can write into its environment ...
    assert subprocess.run(["runuser", "-u", user, "--", str(bundle.venv / "bin" / "python"), "-c",
                           "import sys; open(sys.prefix + '/owner-probe', 'w')"], check=False).returncode == 0

    # ... so it plants code that would run as whoever starts the interpreter.
    markers = bundle.root / "markers"
    markers.mkdir(mode=0o1777)
    markers.chmod(0o1777)
    record = "import os; open('%s/uid-%%d' %% os.getuid(), 'w').close()" % markers
    site = next(Path(release, "lib").glob("python*/site-packages"))
    # site runs the .pth lines that start with "import" whenever the interpreter starts
    (site / "zz_marker.pth").write_text(record + "\n")
    # and replaces the interpreter link by a binary of its own, which uv then asks about anew
    interpreter = Path(release, "bin", "python")
    interpreter.unlink()
    shutil.copyfile(os.path.realpath(python), interpreter)
    interpreter.chmod(0o755)
    for path in (site / "zz_marker.pth", interpreter):  # as if the owner had written them
        os.chown(path, pw.pw_uid, pw.pw_gid)
    assert subprocess.run(["runuser", "-u", user, "--", str(bundle.venv / "bin" / "python"), "-c", ""],
                          check=False).returncode == 0
    assert sorted(os.listdir(markers)) == ["uid-%d" % pw.pw_uid]  # the plant works, as the owner
    os.unlink(markers / ("uid-%d" % pw.pw_uid))

    ok(bundle.run(owner=user, python=python, cache_dir=str(cache)))  # uv's dry run runs the interpreter
    ok(bundle.run(owner=user, python=python, cache_dir=str(cache), check=True))
    bundle.write(REQ_B)
    second = ok(bundle.run(owner=user, python=python, cache_dir=str(cache)))
    assert second["changed"] and os.stat(second["release"]).st_uid == pw.pw_uid
    assert "uid-0" not in os.listdir(markers), "root ran code the owner planted"
    assert "uid-%d" % pw.pw_uid in os.listdir(markers)  # it did run, as the owner


@pytest.mark.skipif(not IS_ROOT or not shutil.which("useradd"), reason="needs root and useradd")
def test_root_refuses_a_tree_another_user_controls_and_the_user_deploys_it_itself(bundle):
    user = "airgapuvtest"
    if subprocess.run(["id", user], capture_output=True, check=False).returncode != 0:
        subprocess.run(["useradd", "--system", "--create-home", "--shell", "/bin/sh", user], check=True)
    pw = pwd.getpwnam(user)
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else None
    vinfo = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True, check=False).stdout.strip()
    if vinfo != "%d.%d" % sys.version_info[:2]:
        pytest.skip("the compiled test wheels are for another Python")
    (bundle.root / "app").mkdir()
    os.chown(bundle.root / "app", pw.pw_uid, pw.pw_gid)  # the admin gives the app user its directory
    cache = bundle.root / "app" / "cache"
    refused = bundle.run(owner=user, python=python, cache_dir=str(cache))
    assert refused["failed"] and "%s/app" % bundle.root in refused["msg"] and "owned by %s" % user in refused["msg"]
    assert "become_user" in refused["msg"] and not os.path.lexists(bundle.venv)

    # The user deploys into its own directory itself.
    env = dict(os.environ, HOME=pw.pw_dir, USER=user, LOGNAME=user)
    first = ok(bundle.run(user=user, interpreter=python, python=python, cache_dir=str(cache), env=env))
    assert first["changed"] and os.stat(first["release"]).st_uid == pw.pw_uid
    assert ok(bundle.run(user=user, interpreter=python, python=python, cache_dir=str(cache), env=env))["changed"] is False
    denied = bundle.run(user=user, interpreter=python, python=python, cache_dir=str(cache), env=env, owner="root")
    assert denied["failed"] and "root" in denied["msg"]


def test_broken_or_missing_release_is_rebuilt(bundle):
    first = ok(bundle.run())
    os.unlink(os.path.join(first["release"], "bin", "python"))  # e.g. someone removed the interpreter link
    repaired = ok(bundle.run())
    assert repaired["changed"] and "broken" in repaired["reason"]
    assert bundle.python_ok("import six").returncode == 0
    shutil.rmtree(repaired["release"])  # dangling symlink
    again = ok(bundle.run())
    assert again["changed"] and again["reason"] == "venv created" and bundle.python_ok("import six").returncode == 0


def _pythons():
    found = {}
    for minor in range(9, 14):
        cands = sorted(str(p) for p in Path(os.path.expanduser("~/.pyenv/versions")).glob("3.%d.*/bin/python3.%d" % (minor, minor)))
        cands.append(shutil.which("python3.%d" % minor))  # may be a pyenv shim that does not work
        for cand in cands:
            if cand and subprocess.run([cand, "-c", ""], capture_output=True, check=False).returncode == 0:
                found["3.%d" % minor] = os.path.realpath(cand)
                break
    return found


@pytest.mark.parametrize("minor", ["3.9", "3.10", "3.11", "3.12", "3.13"])
def test_module_runs_on_target_pythons(bundle, minor):
    """The module (and its default python, the interpreter running it) on each target Python."""
    interpreter = _pythons().get(minor)
    if interpreter is None:
        pytest.skip("no Python %s here" % minor)
    bundle.write(PURE)
    first = ok(bundle.run(interpreter=interpreter))
    assert first["changed"]
    cfg = Path(first["release"], "pyvenv.cfg").read_text()
    assert "version_info = %s." % minor in cfg
    assert ok(bundle.run(interpreter=interpreter))["changed"] is False


@pytest.mark.skipif(not IS_ROOT, reason="the root-only rule applies to root")
@pytest.mark.parametrize("which", ["wheelhouse", "requirements", "uv"])
def test_root_refuses_linked_bundle_files(bundle, which):
    ok(bundle.run())
    ok(bundle.run())  # recorded: the next no-op would be answered from the record if the link went unseen
    path = Path(str(getattr(bundle, which)))
    real = path.with_name(path.name + ".real")
    os.rename(path, real)
    os.symlink(real, path)
    refused = bundle.run()
    assert refused["failed"] and "%s (" % path in refused["msg"] and "is a symlink" in refused["msg"], refused["msg"]


# ---------------------------------------------------------------------------
# what a run reports: the release in service, its version, switches nobody reported
# ---------------------------------------------------------------------------


def with_manifest(bundle):
    """Runs as the role makes them: with the bundle's manifest."""
    return lambda **kw: bundle.run(manifest=str(bundle.manifest), **kw)


def test_every_result_names_the_release_in_service_and_the_project_version(bundle):
    first = ok(with_manifest(bundle)())
    assert first["release"] == bundle.current() and first["version"] == "0.1.0"
    again = ok(with_manifest(bundle)())
    assert again["changed"] is False and again["release"] == first["release"] and again["version"] == "0.1.0"
    assert ok(with_manifest(bundle)(check=True))["version"] == "0.1.0"


def test_a_switch_no_run_reported_is_reported_by_the_next_run(bundle):
    # The controller never got the first result (ansible-playbook killed): no acknowledgement.
    first = ok(with_manifest(bundle)(acknowledge=False))
    assert first["changed"] and first["switch_id"]
    predicted = ok(with_manifest(bundle)(check=True))
    assert predicted["changed"] and predicted["unreported_switch"]["release"] == first["release"]
    second = ok(with_manifest(bundle)())
    assert second["changed"] is True and second["release"] == first["release"]
    assert second["unreported_switch"]["release"] == first["release"]
    assert second["unreported_switch"]["version"] == "0.1.0"
    assert "had not reported it" in json.dumps(second.get("warnings")), second  # structure differs by ansible-core
    # Reported (and acknowledged) once: the next run is a plain no-op again, answered from its record.
    third = ok(with_manifest(bundle)())
    assert third["changed"] is False and "unreported_switch" not in third
    assert ok(with_manifest(bundle)())["changed"] is False


def _stage_new_set(bundle, pins):
    """What airgap.uv.push with stage=true leaves on the host: the new install files, staged."""
    from ansible_collections.airgap.uv.plugins.action.push import describe_tree
    from ansible_collections.airgap.uv.plugins.module_utils._push_files import stage

    src = Path(tempfile.mkdtemp(prefix="src-", dir=str(bundle.root.parent)))
    saved = {name: (bundle.root / name).read_bytes() for name in ("requirements.txt", "manifest.json")}
    bundle.write(pins, only_pinned=True)
    for name in saved:
        shutil.copy2(bundle.root / name, src / name)
        (bundle.root / name).write_bytes(saved[name])
    files = describe_tree(str(src))
    archive = src / "push.tar"
    with tarfile.open(archive, "w") as tar:
        for name in files:
            tar.add(str(src / name), arcname=name)
    staged = stage(str(bundle.root), files, str(archive))
    shutil.rmtree(src)
    return staged, files["manifest.json"]["sha256"]


def test_a_staged_push_lands_under_the_lock_and_is_what_the_run_syncs(bundle):
    ok(with_manifest(bundle)())
    staged, manifest_sha256 = _stage_new_set(bundle, REQ_B)
    assert "pyyaml" not in bundle.requirements.read_text()  # nothing in place before the sync
    result = ok(with_manifest(bundle)(incoming=staged, manifest_sha256=manifest_sha256))
    assert {"name": "six", "from": "1.16.0", "to": "1.17.0"} in result["upgraded"]
    assert "pyyaml" in bundle.requirements.read_text() and not os.path.exists(staged)


def test_a_run_whose_set_was_replaced_by_another_changes_nothing_and_says_so(bundle):
    first = ok(with_manifest(bundle)())
    mine = hashlib.sha256(bundle.manifest.read_bytes()).hexdigest()
    bundle.write(REQ_A, only_pinned=True)
    mine = hashlib.sha256(bundle.manifest.read_bytes()).hexdigest()
    staged, theirs = _stage_new_set(bundle, REQ_B)
    ok(with_manifest(bundle)(incoming=staged, manifest_sha256=theirs, prune_wheelhouse=False))  # the other one
    refused = with_manifest(bundle)(manifest_sha256=mine)
    assert refused["failed"] and "not the ones this run pushed" in refused["msg"]
    assert "This run changed nothing" in refused["msg"] and bundle.current() in refused["msg"]
    assert bundle.current() != first["release"]


def test_the_wheelhouse_keeps_only_what_kept_releases_were_built_from(bundle):
    def push(pins):  # as airgap.uv.push would: the wheels of the new set, then its install files
        for wheel in bundle.wheels.glob("*.whl"):
            if not (bundle.wheelhouse / wheel.name).exists():
                shutil.copy2(wheel, bundle.wheelhouse / wheel.name)
        bundle.write(pins, only_pinned=True)

    push(REQ_A)
    first = ok(with_manifest(bundle)())        # release 1: REQ_A; what no set names goes
    assert sorted(name.split("-")[0] for name in first["pruned_files"]) == ["PyYAML", "six"]
    push(REQ_B)
    assert ok(with_manifest(bundle)())["pruned_files"] == []  # release 1 is kept: so are its wheels
    markupsafe = _wheel_for(bundle.wheelhouse, "markupsafe", "3.0.2")
    size = markupsafe.stat().st_size
    push(REQ_C)
    result = ok(with_manifest(bundle)())                 # release 3: release 1 goes, and with it markupsafe
    assert len(result["pruned_releases"]) == 1
    assert result["pruned_files"] == [markupsafe.name] and result["pruned_bytes"] == size
    assert not markupsafe.exists() and _wheel_for(bundle.wheelhouse, "pyyaml", "6.0.2").exists()
    # A rollback to release 2 needs nothing from the wheelhouse; a redeploy of REQ_B would send nothing.
    assert ok(with_manifest(bundle)(state="rollback"))["changed"]
    assert ok(with_manifest(bundle)(prune_wheelhouse=False))["pruned_files"] == []


@pytest.mark.skipif(not IS_ROOT, reason="mounts a small tmpfs")
def test_a_full_disk_is_reported_as_a_full_disk(bundle, tmp_path):
    ok(bundle.run())
    small = bundle.root / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k,mode=0755", "tmpfs", str(small)], check=True)
    try:
        failed = bundle.run(venv=str(small / "venv"))
        assert failed["failed"] and "ran out of disk space" in failed["msg"], failed
        assert "same bundle" not in failed["msg"], failed["msg"]
        assert not (small / "venv").exists()
    finally:
        subprocess.run(["umount", str(small)], check=True)
