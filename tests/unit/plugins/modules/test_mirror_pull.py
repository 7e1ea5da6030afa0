# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The mirror (issue 14): uv out of its zip on a real HTTP server, hash-pinned; the feed's zip of uv
binaries; the pruning policy of the feeds."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import re
import shutil
import threading

import pytest

from ansible_collections.airgap.uv.plugins.action.push import describe_tree
from ansible_collections.airgap.uv.plugins.module_utils._mirror_state import Record, feed_id, plan, prune, read_records, write_record
from ansible_collections.airgap.uv.plugins.module_utils._push_files import apply, stage
from ansible_collections.airgap.uv.plugins.module_utils._push_pull import MirrorError, pulled, uv_container_name
from ansible_collections.airgap.uv.plugins.plugin_utils._mirror_feed import FeedError, FeedFile, collect, uv_zip


@pytest.fixture
def served(tmp_path):
    """A directory served over HTTP as MIRROR/packages/<file>; yields (mirror URL, directory)."""
    root = tmp_path / "www"
    (root / "packages").mkdir(parents=True)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "http://127.0.0.1:%d" % server.server_address[1], root / "packages"
    finally:
        server.shutdown()
        server.server_close()


def make_tree(root):
    (root / "bin").mkdir(parents=True)
    (root / "wheelhouse").mkdir()
    for name, data in (("uv", b"\x7fELF uv" * 1000), ("uvx", b"\x7fELF uvx")):
        (root / "bin" / name).write_bytes(data)
        os.chmod(root / "bin" / name, 0o755)
    (root / "wheelhouse" / "a-1-py3-none-any.whl").write_bytes(b"a" * 100)
    os.chmod(root / "wheelhouse" / "a-1-py3-none-any.whl", 0o644)
    (root / "manifest.json").write_text(json.dumps({"project": {"name": "app"}, "files": [
        {"filename": name, "sha256": meta["sha256"], "size": meta["size"]}
        for name, meta in ((n[len("wheelhouse/"):] if n.startswith("wheelhouse/") else n, m)
                           for n, m in describe_tree(str(root)).items()) if name != "manifest.json"]}))
    return describe_tree(str(root))


def feed_mirror(src, packages, cache):
    """What airgap.uv.mirror_feed puts in the served directory, from the target directory SRC."""
    feed = collect(str(src.parent.parent), str(cache))
    for name, entry in feed.files.items():
        shutil.copy(entry.path, packages / name)
    return feed


def test_uv_comes_out_of_its_zip_checked_against_the_pins(tmp_path, served):
    url, packages = served
    src, dest = tmp_path / "wh" / "targets" / "t1", tmp_path / "dest"
    files = make_tree(src)
    container = uv_container_name(files)
    assert container.startswith("airgap_uv_binaries-0+") and container.endswith("-py3-none-any.whl")
    assert pulled(sorted(files), with_uv=True) == ["bin/uv", "bin/uvx", "wheelhouse/a-1-py3-none-any.whl"]
    assert pulled(sorted(files)) == ["wheelhouse/a-1-py3-none-any.whl"]
    feed = feed_mirror(src, packages, tmp_path / "cache")
    assert sorted(feed.files) == sorted(["a-1-py3-none-any.whl", container]) and feed.project == "app"
    # The same binaries make the same zip, byte for byte (another controller, a bundle's copy).
    again = uv_zip(str(tmp_path / "other-cache"), container,
                   {n: FeedFile(files[n]["sha256"], files[n]["size"], str(src / n)) for n in ("bin/uv", "bin/uvx")})
    assert again.sha256 == feed.files[container].sha256

    pull = pulled(sorted(files), with_uv=True)
    staged = stage(str(dest), files, None, url, pull, container)
    for name in pull:
        with open(os.path.join(staged, name), "rb") as got, open(src / name, "rb") as want:
            assert got.read() == want.read()
    assert os.access(os.path.join(staged, "bin", "uv"), os.X_OK)


def test_a_wrong_or_missing_uv_zip_is_refused_and_changes_nothing(tmp_path, served):
    url, packages = served
    src, dest = tmp_path / "wh" / "targets" / "t1", tmp_path / "dest"
    files = make_tree(src)
    container = uv_container_name(files)
    feed_mirror(src, packages, tmp_path / "cache")
    pull = pulled(sorted(files), with_uv=True)
    apply(str(dest), files, None, url, pull, container)
    before = describe_tree(str(dest))

    # Another uv in a zip of that name: the binary's sha256 is not the pin.
    other = tmp_path / "other"
    (other / "bin").mkdir(parents=True)
    (other / "bin" / "uv").write_bytes(b"evil")
    (other / "bin" / "uvx").write_bytes(b"\x7fELF uvx")
    forged = uv_zip(str(tmp_path / "c2"), container, {
        "bin/uv": FeedFile(hashlib.sha256(b"evil").hexdigest(), 4, str(other / "bin" / "uv")),
        "bin/uvx": FeedFile(files["bin/uvx"]["sha256"], files["bin/uvx"]["size"], str(other / "bin" / "uvx"))})
    shutil.copy(forged.path, packages / container)
    os.unlink(dest / "bin" / "uv")
    with pytest.raises(MirrorError, match="not what the controller pinned.*bin/uv arrived with sha256"):
        apply(str(dest), files, None, url, ["bin/uv"], container)
    (packages / container).write_bytes(b"not a zip")
    with pytest.raises(MirrorError, match="not the zip of uv binaries"):
        apply(str(dest), files, None, url, ["bin/uv"], container)
    os.unlink(packages / container)
    with pytest.raises(MirrorError, match=re.escape("does not have %s (HTTP 404 for %s/packages/%s)" % (container, url, container))):
        apply(str(dest), files, None, url, ["bin/uv"], container)
    del before["bin/uv"]
    assert describe_tree(str(dest)) == before
    assert [n for n in os.listdir(dest) if n.startswith(".push-")] == []


def test_a_binary_changed_on_the_controller_never_reaches_the_mirror(tmp_path):
    src = tmp_path / "wh" / "targets" / "t1"
    make_tree(src)
    (src / "bin" / "uv").write_bytes(b"changed")
    with pytest.raises(FeedError, match="bin/uv has sha256 .* not the .* its manifest names"):
        collect(str(tmp_path / "wh"), str(tmp_path / "cache"))
    assert os.listdir(tmp_path / "cache" / "mirror-uv") == []
    with pytest.raises(FeedError, match="neither a wheelhouse"):
        collect(str(tmp_path), str(tmp_path / "cache"))


def rec(project, feed, mtime, *names):
    return Record(project, feed, mtime, {name: "0" * 64 for name in names})


def test_pruning_keeps_the_newest_feeds_and_what_they_reference():
    records = [rec("app", "v1", 1, "six-1.16.whl", "uvzip-a", "idna.whl"), rec("app", "v2", 2, "six-1.17.whl", "uvzip-a"),
               rec("other", "o1", 0, "idna.whl")]
    files = {"six-1.17.whl": "0" * 64, "attrs.whl": "0" * 64, "uvzip-a": "0" * 64}
    # v3 is new; with keep 2 it and v2 stay: v1 goes, but idna stays (another project's feed keeps it).
    result = plan(records, "app", "v3", files, keep=2)
    assert result.record == "new" and [r.feed for r in result.dropped] == ["v1"] and result.removed == ["six-1.16.whl"]
    # keep 1: v2 goes too, but its files that v3 has stay.
    result = plan(records, "app", "v3", files, keep=1)
    assert [r.feed for r in result.dropped] == ["v2", "v1"] and result.removed == ["six-1.16.whl"]
    # Feeding v1 again makes it the newest (a change); v2 goes with keep 1.
    v1_files = dict.fromkeys(records[0].files, "0" * 64)
    result = plan(records, "app", "v1", v1_files, keep=1)
    assert result.record == "touch" and [r.feed for r in result.dropped] == ["v2"] and result.removed == ["six-1.17.whl"]
    # v2, the newest, fed again with keep 2: nothing to do.
    assert plan(records, "app", "v2", dict.fromkeys(records[1].files, "0" * 64), keep=2) == ("same", [], [])
    with pytest.raises(ValueError, match="keep at least"):
        plan(records, "app", "v2", {}, keep=0)


def test_records_round_trip_and_prune_only_recorded_files(tmp_path):
    state, packages = tmp_path / "feeds", tmp_path / "packages"
    packages.mkdir()
    for name in ("old.whl", "new.whl", "by-hand.whl"):
        (packages / name).write_bytes(b"x")
    old, new = {"old.whl": "1" * 64}, {"new.whl": "2" * 64}
    write_record(str(state), "app", feed_id(old), old, "new")
    os.utime(state / "app" / (feed_id(old) + ".json"), (1, 1))
    pruning = plan(read_records(str(state)), "app", feed_id(new), new, keep=1)
    assert pruning.removed == ["old.whl"]
    write_record(str(state), "app", feed_id(new), new, pruning.record)
    fd = os.open(str(packages), os.O_RDONLY)
    try:
        assert prune(str(state), fd, pruning) == ["old.whl"]
    finally:
        os.close(fd)
    assert sorted(os.listdir(packages)) == ["by-hand.whl", "new.whl"]
    assert [(r.project, r.feed, r.files) for r in read_records(str(state))] == [("app", feed_id(new), new)]
    assert plan(read_records(str(state)), "app", feed_id(new), new, keep=1) == ("same", [], [])
