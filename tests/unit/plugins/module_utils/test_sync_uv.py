# -*- coding: utf-8 -*-
# Copyright (c) airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of plugins/module_utils/_sync_uv.py: running uv and what its failures say."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ansible_collections.airgap.uv.plugins.module_utils import _sync_store as ST
from ansible_collections.airgap.uv.plugins.module_utils import _sync_uv as U

FIXTURES = Path(__file__).absolute().parent / "fixtures" / "uv_output"

VERSIONS = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())
REQ1 = {"attrs": "23.2.0", "idna": "3.7", "markupsafe": "2.1.5", "six": "1.16.0"}
REQ2 = {"attrs": "23.2.0", "idna": "3.7", "pyyaml": "6.0.1", "six": "1.17.0"}


def fixture(version: str, case: str) -> dict:
    with open(FIXTURES / version / (case + ".json"), encoding="utf-8") as f:
        return json.load(f)


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
