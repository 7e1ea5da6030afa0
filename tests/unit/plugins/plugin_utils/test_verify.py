# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""FileVerifier, the push's manifest check, and the store's repair and UV_OFFLINE behaviour."""

from __future__ import annotations

import hashlib
import json
import os
import re

import pytest

from ansible_collections.airgap.uv.plugins.plugin_utils._download import ArtifactStore, DownloadError, FileRequest
from ansible_collections.airgap.uv.plugins.plugin_utils._verify import FileVerifier, holds, manifest_mismatches

from test_download import PAYLOAD, PAYLOAD_SHA, _Handler, server  # noqa: F401  (fixture) same directory  # pylint: disable=unused-import


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def flip_byte(path, offset=10):
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0x01]))


@pytest.fixture()
def stored(tmp_path):
    path = tmp_path / "file.whl"
    path.write_bytes(b"content " * 1000)
    return str(path), sha(b"content " * 1000)


def test_record_answers_without_hashing_until_the_file_changes(tmp_path, stored):
    path, digest = stored
    record = str(tmp_path / "verified.json")
    first = FileVerifier(record, racy_ns=0)
    assert first.sha256(path) == digest and first.hashed == 1
    first.save()
    second = FileVerifier(record, racy_ns=0)
    assert second.matches(path, digest) and second.hashed == 0
    flip_byte(path)
    third = FileVerifier(record, racy_ns=0)
    assert not third.matches(path, digest) and third.hashed == 1


def test_a_restored_mtime_does_not_hide_a_change(tmp_path, stored):
    """utime can set mtime back (same size too), not ctime: the change is still seen."""
    path, digest = stored
    verifier = FileVerifier(str(tmp_path / "verified.json"), racy_ns=0)
    assert verifier.matches(path, digest)
    before = os.stat(path)
    flip_byte(path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(path).st_mtime_ns == before.st_mtime_ns and os.path.getsize(path) == before.st_size
    assert not verifier.matches(path, digest)


def test_hard_links_share_one_entry(tmp_path, stored):
    path, digest = stored
    link = str(tmp_path / "link.whl")
    os.link(path, link)
    verifier = FileVerifier(None, racy_ns=0)
    assert verifier.matches(path, digest) and verifier.matches(link, digest)
    assert verifier.hashed == 1
    assert holds(link, digest, FileVerifier(None), origin=path)  # a link of the origin: no hashing at all


def test_a_just_written_file_is_not_recorded(tmp_path, stored):
    """The racy rule: with a coarse clock a write right after hashing could keep every stat field."""
    path, digest = stored
    record = str(tmp_path / "verified.json")
    verifier = FileVerifier(record)  # default margin: the file is younger than it
    assert verifier.matches(path, digest)
    verifier.save()
    again = FileVerifier(record)
    assert again.matches(path, digest) and again.hashed == 1


def test_forget_all_hashes_everything_again(tmp_path, stored):
    path, digest = stored
    verifier = FileVerifier(None, racy_ns=0)
    verifier.matches(path, digest)
    verifier.forget_all()
    assert verifier.matches(path, digest) and verifier.hashed == 2


def test_missing_file_does_not_match(tmp_path):
    assert not FileVerifier(None).matches(str(tmp_path / "nope"), "0" * 64)


def _target_dir(tmp_path):
    src = tmp_path / "target"
    (src / "wheelhouse").mkdir(parents=True)
    (src / "bin").mkdir()
    (src / "wheelhouse" / "a-1.0-py3-none-any.whl").write_bytes(b"wheel a")
    (src / "bin" / "uv").write_bytes(b"uv binary")
    (src / "requirements.txt").write_text("a==1.0\n")
    manifest = {"format": 1, "files": [
        {"filename": "a-1.0-py3-none-any.whl", "sha256": sha(b"wheel a"), "size": 7},
        {"filename": "bin/uv", "sha256": sha(b"uv binary"), "size": 9}]}
    (src / "manifest.json").write_text(json.dumps(manifest))
    return src


def _described(src):
    files = {}
    for root, dummy, names in os.walk(src):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                files[os.path.relpath(path, src)] = {"sha256": sha(handle.read())}
    return files


@pytest.mark.parametrize("change, expected", [
    (None, []),
    (lambda src: flip_byte(src / "wheelhouse" / "a-1.0-py3-none-any.whl", 0),
     [r"wheelhouse/a-1\.0-py3-none-any\.whl has sha256 [0-9a-f]{64}, but manifest\.json records " + sha(b"wheel a")]),
    (lambda src: flip_byte(src / "bin" / "uv", 0), [r"bin/uv has sha256 .* but manifest\.json records"]),
    (lambda src: (src / "bin" / "uv").unlink(), [r"/bin/uv is missing"]),
    (lambda src: (src / "wheelhouse" / "evil-1.0-py3-none-any.whl").write_bytes(b"x"),
     [r"wheelhouse/evil-1\.0-py3-none-any\.whl is not listed in manifest\.json"]),
    (lambda src: (src / "manifest.json").write_text("{"), [r"manifest\.json cannot be read"]),
    (lambda src: (src / "manifest.json").unlink(), []),  # a plain directory: nothing to check against
    (lambda src: (src / "requirements.txt").write_text("b==2\n"), []),  # not listed: the host checks hashes
], ids=["intact", "corrupt-wheel", "corrupt-uv", "missing", "unlisted", "bad-manifest", "no-manifest", "install-file"])
def test_manifest_mismatches(tmp_path, change, expected):
    src = _target_dir(tmp_path)
    if change:
        change(src)
    problems = manifest_mismatches(str(src), _described(src))
    assert len(problems) == len(expected), problems
    for problem, pattern in zip(problems, expected):
        assert re.search(pattern, problem), problem
        assert str(src) in problem


def test_store_discards_a_corrupt_file_and_fetches_it_again(tmp_path, server):  # noqa: F811
    store = ArtifactStore(str(tmp_path / "store"), retries=0, verifier=FileVerifier(None, racy_ns=0))
    request = FileRequest(filename="p-1.0-py3-none-any.whl", sha256=PAYLOAD_SHA, url=server + "/p.whl", label="p 1.0")
    assert store.ensure([request]) == {PAYLOAD_SHA: "downloaded"}
    path = store.path_for(PAYLOAD_SHA)
    link = str(tmp_path / "published.whl")
    os.link(path, link)  # as the wheelhouse publishes it
    assert store.ensure([request]) == {PAYLOAD_SHA: "reused"}
    flip_byte(link)
    assert store.ensure([request]) == {PAYLOAD_SHA: "downloaded"}
    assert _Handler.hits["/p.whl"] == 2
    with open(path, "rb") as handle:
        assert handle.read() == PAYLOAD
    assert len(store.repaired) == 1 and path in store.repaired[0] and "p 1.0" in store.repaired[0]


def test_offline_store_names_what_is_missing_and_makes_no_request(tmp_path, server):  # noqa: F811
    local = tmp_path / "local.whl"
    local.write_bytes(PAYLOAD + b"local")
    store = ArtifactStore(str(tmp_path / "store"), retries=0, offline=True)
    requests = [FileRequest(filename="p-1.0-py3-none-any.whl", sha256=PAYLOAD_SHA, url=server + "/p.whl",
                            label="p 1.0"),
                FileRequest(filename="q-2.0.tar.gz", sha256="ab" * 32, url=server + "/q.tar.gz", label="q 2.0"),
                FileRequest(filename="local.whl", sha256=sha(PAYLOAD + b"local"), path=str(local), label="l 1")]
    with pytest.raises(DownloadError) as caught:
        store.ensure(requests)
    message = str(caught.value)
    assert "UV_OFFLINE is set" in message and str(tmp_path / "store") in message
    assert "p 1.0: p-1.0-py3-none-any.whl is not in the store" in message and "q 2.0: q-2.0.tar.gz" in message
    assert "l 1" not in message
    assert store.requests_made == 0 and _Handler.hits == {}
    # What it has (or can copy from a local path) an offline store still uses.
    online = ArtifactStore(str(tmp_path / "store"), retries=0)
    online.ensure(requests[:1])
    assert store.ensure(requests[:1] + requests[2:]) == {PAYLOAD_SHA: "reused", sha(PAYLOAD + b"local"): "copied"}
