# -*- coding: utf-8 -*-
# Copyright (c) airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of plugins/module_utils/_sync_packages.py: names, versions, install files, uv's change
lists and package diffs.

uv outputs are real recordings of uv 0.13.8 (JSON + text), 0.8.22 and 0.5.31 (text only)
under fixtures/uv_output/<version>/ (see fixtures/uv_output/README.md).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ansible_collections.airgap.uv.plugins.module_utils import _sync_error as E
from ansible_collections.airgap.uv.plugins.module_utils import _sync_packages as P
from ansible_collections.airgap.uv.plugins.module_utils import _sync_change as C

FIXTURES = Path(__file__).absolute().parent / "fixtures" / "uv_output"

VERSIONS = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())
REQ1 = {"attrs": "23.2.0", "idna": "3.7", "markupsafe": "2.1.5", "six": "1.16.0"}
REQ2 = {"attrs": "23.2.0", "idna": "3.7", "pyyaml": "6.0.1", "six": "1.17.0"}


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
