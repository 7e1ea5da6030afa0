# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The wheelhouse trusts a controller file only once it matches the lock; UV_* booleans as uv reads them.

Artifacts are served on loopback; the uv binary comes from the real index through the real uv
(as in test_wheelhouse.py, whose helpers this reuses).
"""

from __future__ import annotations

import json
import os
import stat

import pytest

from ansible_collections.airgap.uv.plugins.plugin_utils._wheelhouse import WheelhouseError

from test_verify import flip_byte  # same directory
from test_wheelhouse import ALPHA, BETA, build, make_project, served, sha, snapshot, uv_cache  # noqa: F401  # pylint: disable=unused-import

TARGET = "cpython3.11.2-linux-x86_64-glibc2.36"


def published_matches_manifest(dest):
    """Every file a target's manifest lists has that sha256 on disk (what a push would send)."""
    directory = dest / "targets" / TARGET
    manifest = json.loads((directory / "manifest.json").read_text())
    files = snapshot(directory)
    for entry in manifest["files"]:
        name = entry["filename"]
        assert files[name if "/" in name else "wheelhouse/" + name] == entry["sha256"], name
    top = json.loads((dest / "manifest.json").read_text())
    for name, entry in top["files"].items():
        assert snapshot(dest / "files")[name] == entry["sha256"], name


def test_a_flipped_byte_in_the_store_is_refetched(served, uv_cache, tmp_path):  # noqa: F811
    base, dummy = served
    project = make_project(tmp_path / "project", base)
    dest = tmp_path / "wheelhouse"
    build(project, dest, uv_cache)
    store_file = os.path.join(uv_cache, "store", "sha256", sha(BETA)[:2], sha(BETA))
    published = dest / "targets" / TARGET / "wheelhouse" / "beta-2.0-py3-none-any.whl"
    assert os.path.samefile(store_file, published)  # hard-linked: one flip corrupts both
    flip_byte(store_file)

    again = build(project, dest, uv_cache)
    assert again.changed and again.downloaded == 1 and again.requests == 1
    assert len(again.repaired) == 1 and store_file in again.repaired[0] and "beta 2.0" in again.repaired[0]
    with open(store_file, "rb") as handle:
        assert handle.read() == BETA
    published_matches_manifest(dest)
    # And the next run is a clean no-op again.
    third = build(project, dest, uv_cache)
    assert not third.changed and third.requests == 0 and third.repaired == []


def test_a_corrupt_uv_binary_is_unpacked_again(served, uv_cache, tmp_path):  # noqa: F811
    base, dummy = served
    project = make_project(tmp_path / "project", base)
    dest = tmp_path / "wheelhouse"
    build(project, dest, uv_cache)
    uv = dest / "targets" / TARGET / "bin" / "uv"
    good = snapshot(uv.parent)["uv"]
    flip_byte(uv, offset=4096)  # hard-linked with the cache's unpacked binary and dest/uv/
    again = build(project, dest, uv_cache)
    assert again.changed
    assert snapshot(uv.parent)["uv"] == good
    assert os.stat(uv).st_mode & stat.S_IXUSR
    published_matches_manifest(dest)


def test_check_mode_reports_a_corrupt_store_file_as_a_change(served, uv_cache, tmp_path):  # noqa: F811
    base, dummy = served
    project = make_project(tmp_path / "project", base)
    dest = tmp_path / "wheelhouse"
    build(project, dest, uv_cache)
    flip_byte(os.path.join(uv_cache, "store", "sha256", sha(ALPHA)[:2], sha(ALPHA)))
    before = snapshot(dest)
    predicted = build(project, dest, uv_cache, check_mode=True)
    assert predicted.changed and predicted.downloaded == 1
    assert snapshot(dest) == before


def test_uv_offline_uses_only_the_store_and_names_what_is_missing(served, uv_cache, tmp_path,  # noqa: F811
                                                                  monkeypatch):
    base, dummy = served
    project = make_project(tmp_path / "project", base)
    # Warm the shared cache's uv release lock and uv wheel online, then go offline with an empty store
    # for the packages: a fresh cache dir holding only those.
    build(project, tmp_path / "warm", uv_cache)
    cache = tmp_path / "cache"
    os.makedirs(cache / "store" / "sha256")
    for name in ("uv-releases", "uv-binaries"):
        os.symlink(os.path.join(uv_cache, name), cache / name)
    uv_wheel_sha = json.loads((tmp_path / "warm" / "targets" / TARGET / "manifest.json").read_text())["uv_wheel_sha256"]
    os.makedirs(cache / "store" / "sha256" / uv_wheel_sha[:2])
    os.link(os.path.join(uv_cache, "store", "sha256", uv_wheel_sha[:2], uv_wheel_sha),
            cache / "store" / "sha256" / uv_wheel_sha[:2] / uv_wheel_sha)

    monkeypatch.setenv("UV_OFFLINE", "Yes")
    dest = tmp_path / "wheelhouse"
    with pytest.raises(WheelhouseError) as caught:
        build(project, dest, str(cache))
    message = str(caught.value)
    assert "UV_OFFLINE is set" in message and str(cache / "store") in message
    assert "alpha 1.0: alpha-1.0-py3-none-any.whl is not in the store" in message
    assert "beta 2.0: beta-2.0-py3-none-any.whl is not in the store" in message
    assert not os.path.exists(dest / "targets")

    # With the files in the store the offline run succeeds and makes no request.
    monkeypatch.setenv("UV_OFFLINE", "0")
    build(project, tmp_path / "online", str(cache))
    monkeypatch.setenv("UV_OFFLINE", "TRUE")
    offline = build(project, dest, str(cache))
    assert offline.changed and offline.requests == 0
    published_matches_manifest(dest)


@pytest.mark.parametrize("variable, value", [("UV_OFFLINE", ""), ("UV_OFFLINE", "hello"), ("UV_NO_CONFIG", "2"),
                                             ("UV_NATIVE_TLS", "enable")])
def test_an_invalid_boolean_fails_before_uv_runs(served, tmp_path, monkeypatch, variable, value):  # noqa: F811
    base, dummy = served
    project = make_project(tmp_path / "project", base)
    marker = tmp_path / "uv-ran"
    fake_uv = tmp_path / "uv"
    fake_uv.write_text("#!/bin/sh\ntouch %s\necho 'uv 0.13.8'\n" % marker)
    fake_uv.chmod(0o755)
    monkeypatch.setenv(variable, value)
    from test_wheelhouse import SelectionOptions, WheelhouseBuilder, WheelhouseOptions, facts

    options = WheelhouseOptions(project=str(project), dest=str(tmp_path / "dest"), targets={"web1": facts()},
                                selection=SelectionOptions(), cache_dir=str(tmp_path / "cache"), retries=0)
    with pytest.raises(WheelhouseError) as caught:
        WheelhouseBuilder(options, uv=str(fake_uv)).run()
    assert "%s=%r" % (variable, value) in str(caught.value)
    assert "y, yes, t, true, on, 1" in str(caught.value)
    assert not marker.exists()


def test_a_lock_entry_outside_the_project_is_refused_before_anything_is_read(served, uv_cache,  # noqa: F811
                                                                             tmp_path):
    """The attack from issue 10: /etc/passwd named like a wheel, with its real hash."""
    base, dummy = served
    project = make_project(tmp_path / "project", base)
    with open("/etc/passwd", "rb") as handle:
        digest = sha(handle.read())
    lock = project / "uv.lock"
    lock.write_text(lock.read_text().replace(
        'source = {{ registry = "{base}/simple" }}\nwheels = [\n    {{ url = "{base}/beta'.format(base=base),
        'source = {{ path = "/etc/passwd" }}\nwheels = [\n    {{ filename = "beta-2.0-py3-none-any.whl", '
        'hash = "sha256:{digest}" }},\n    {{ url = "{base}/beta'.format(base=base, digest=digest)))
    assert "/etc/passwd" in lock.read_text()
    cache = tmp_path / "cache"
    with pytest.raises(WheelhouseError, match=r"package `beta` 2\.0: its source /etc/passwd is outside the workspace "
                                              + str(project)):
        build(project, tmp_path / "dest", str(cache))
    assert not os.path.exists(cache / "store" / "sha256" / digest[:2])
    assert not os.path.exists(tmp_path / "dest" / "files")


def test_a_warm_run_hashes_each_file_once_then_trusts_the_record(served, tmp_path):  # noqa: F811
    import time

    from test_wheelhouse import UV, SelectionOptions, WheelhouseBuilder, WheelhouseOptions, facts

    base, dummy = served
    project = make_project(tmp_path / "project", base)
    options = WheelhouseOptions(project=str(project), dest=str(tmp_path / "dest"), targets={"web1": facts()},
                                selection=SelectionOptions(), cache_dir=str(tmp_path / "cache"), check_lock=False)
    WheelhouseBuilder(options, uv=UV).run()
    time.sleep(2.1)  # younger files are not recorded (the racy rule of _verify)
    first = WheelhouseBuilder(options, uv=UV)
    assert not first.run().changed
    assert first.verifier.hashed >= 3  # alpha, beta, the uv binaries (each inode once, links included)
    assert os.path.isfile(tmp_path / "cache" / "verified.json")
    second = WheelhouseBuilder(options, uv=UV)
    assert not second.run().changed and second.verifier.hashed == 0
