# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of plugins/plugin_utils/_bundle_write.py, _bundle_read.py and _bundle_sign.py.

A published wheelhouse is made by hand (no index needed); signatures are real (ssh-keygen -Y).
The end-to-end flow with real uv and offline hosts is tests/integration/test_bundle_e2e.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
import typing as t

import pytest

from ansible_collections.airgap.uv.plugins.plugin_utils._bundle_format import BundleError, check_document
from ansible_collections.airgap.uv.plugins.plugin_utils._bundle_read import hosts_for, import_bundle, read_document
from ansible_collections.airgap.uv.plugins.plugin_utils._bundle_write import BundleRequest, build_bundle

TARGET = "cpython3.11.2-linux-x86_64-glibc2.36"
SPEC = {"python": "3.11.2", "implementation": "cpython", "abiflags": "", "os": "linux", "arch": "x86_64",
        "libc": "glibc", "libc_version": "2.36"}
UV_WHEEL = "uv-0.13.8-py3-none-manylinux_2_17_x86_64.whl"


def _describe(data: bytes, mode: int = 0o644) -> dict:
    return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "mode": mode}


def publish(root: str, wheels: t.Mapping[str, bytes]) -> dict:
    """A wheelhouse result for one target whose directory holds WHEELS ({file name: content})."""
    path = os.path.join(root, "targets", TARGET)
    contents: dict = {"bin/uv": (b"uv binary\n", 0o755), "bin/uvx": (b"uvx binary\n", 0o755)}
    package_files = []
    for filename, data in sorted(wheels.items()):
        contents["wheelhouse/" + filename] = (data, 0o644)
        name, version = filename.split("-")[:2]
        package_files.append(dict(_describe(data), filename=filename, name=name, version=version))
    contents["requirements.txt"] = ("".join("%s==%s\n" % (e["name"], e["version"]) for e in package_files).encode(), 0o644)
    contents["build-constraints.txt"] = (b"", 0o644)
    contents["manifest.json"] = (json.dumps({"format": 1, "files": package_files}).encode(), 0o644)
    for relpath, (data, mode) in contents.items():
        os.makedirs(os.path.dirname(os.path.join(path, relpath)), exist_ok=True)
        with open(os.path.join(path, relpath), "wb") as handle:
            handle.write(data)
        os.chmod(os.path.join(path, relpath), mode)
    described = {relpath: _describe(data, mode) for relpath, (data, mode) in contents.items()}
    install_file = {"requirements": contents["requirements.txt"][0].decode(), "build_constraints": "", "editable": [],
                    "wheels": sorted(wheels), "project": {"name": "app", "version": "1.0"}}
    return {"lock_sha256": "ab" * 32, "uv_version": "0.13.8",
            "hosts": {TARGET: {"target": TARGET, "path": path, "files": described}},
            "targets": {TARGET: {"path": path, "uv_wheel": UV_WHEEL, "install_file": install_file, "hosts": [TARGET]}}}


@pytest.fixture()
def keys(tmp_path) -> dict:
    """Two real ssh key pairs, and an allowed-signers file that trusts only the first."""
    found = {}
    for name in ("release", "intruder"):
        key = str(tmp_path / name)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", key], check=True)
        found[name] = key
    with open(found["release"] + ".pub", encoding="utf-8") as handle:
        public = handle.read().split()
    allowed = str(tmp_path / "allowed_signers")
    with open(allowed, "w", encoding="utf-8") as handle:
        handle.write("release@example.invalid %s %s\n" % (public[0], public[1]))
    found["allowed"] = allowed
    return found


WHEELS_V1 = {"alpha-1.0-py3-none-any.whl": b"alpha wheel 1.0" * 100, "beta-2.0-py3-none-any.whl": b"beta wheel" * 1000}
WHEELS_V2 = {"alpha-1.1-py3-none-any.whl": b"alpha wheel 1.1" * 100, "beta-2.0-py3-none-any.whl": b"beta wheel" * 1000}


def bundle(tmp_path, name: str, wheels: t.Optional[dict] = None, key: t.Optional[str] = None, base: t.Optional[str] = None,
           check_mode: bool = False):
    result = publish(str(tmp_path / ("wh-" + name)), wheels or WHEELS_V1)
    request = BundleRequest(wheelhouse=result, specs={TARGET: dict(SPEC, hosts=["web1"])},
                            dest=str(tmp_path / "out" / name), base=base, signing_key=key, mtime=0)
    return build_bundle(request, check_mode=check_mode)


def test_same_inputs_give_the_same_bytes(tmp_path):
    first = bundle(tmp_path, "one.tar")
    second = bundle(tmp_path, "two.tar")
    assert first.changed and second.changed
    with open(first.path, "rb") as a, open(second.path, "rb") as b:
        assert a.read() == b.read()
    again = bundle(tmp_path, "one.tar")
    assert not again.changed and again.sha256 == first.sha256
    with tarfile.open(first.path) as archive:
        infos = archive.getmembers()
    assert infos[0].name == "bundle.json"
    assert [i.name for i in infos[1:]] == sorted(i.name for i in infos[1:])
    assert {(i.mtime, i.uid, i.gid, i.uname, i.gname) for i in infos} == {(0, 0, 0, "", "")}
    with open(first.path + ".sha256", encoding="utf-8") as handle:
        assert handle.read() == "%s  one.tar\n" % first.sha256


def test_each_file_once_with_sbom_and_pylock(tmp_path):
    outcome = bundle(tmp_path, "b.tar")
    with tarfile.open(outcome.path) as archive:
        names = archive.getnames()
    assert "files/alpha-1.0-py3-none-any.whl" in names and "sbom.cdx.json" in names
    assert "pylock.cpython3_11_2-linux-x86_64-glibc2_36.toml" in names
    assert not any(name.startswith("targets/%s/wheelhouse" % TARGET) for name in names)
    document = read_document(outcome.path)
    assert document["project"] == {"name": "app", "version": "1.0"}
    assert document["targets"][TARGET]["tree"]["wheelhouse/alpha-1.0-py3-none-any.whl"] == "files/alpha-1.0-py3-none-any.whl"


def test_check_mode_writes_nothing_and_predicts_the_digest(tmp_path):
    predicted = bundle(tmp_path, "c.tar", check_mode=True)
    assert predicted.changed and not os.path.exists(predicted.path)
    real = bundle(tmp_path, "c.tar")
    assert real.sha256 == predicted.sha256


def test_signed_bundle_is_imported_and_hosts_mapped(tmp_path, keys):
    outcome = bundle(tmp_path, "s.tar", key=keys["release"])
    store = str(tmp_path / "store")
    imported = import_bundle(outcome.path, store, keys["allowed"], False, keep=2)
    assert imported.changed and imported.signer == "release@example.invalid"
    facts = {"web1": dict(SPEC), "web2": dict(SPEC)}
    hosts, targets = hosts_for(imported.document, imported.root, facts)
    path = hosts["web1"]["path"]
    assert targets[TARGET]["hosts"] == ["web1", "web2"]
    for relpath, meta in hosts["web1"]["files"].items():
        with open(os.path.join(path, relpath), "rb") as handle:
            assert hashlib.sha256(handle.read()).hexdigest() == meta["sha256"], relpath
    again = import_bundle(outcome.path, store, keys["allowed"], False, keep=2)
    assert not again.changed


def test_wrong_signer_is_refused(tmp_path, keys):
    outcome = bundle(tmp_path, "w.tar", key=keys["intruder"])
    with pytest.raises(BundleError, match="not signed by a key listed"):
        import_bundle(outcome.path, str(tmp_path / "store"), keys["allowed"], False, keep=2)
    assert not os.path.exists(tmp_path / "store")


def test_unsigned_needs_allow_unsigned(tmp_path, keys):
    outcome = bundle(tmp_path, "u.tar")
    with pytest.raises(BundleError, match="has no signature"):
        import_bundle(outcome.path, str(tmp_path / "store"), keys["allowed"], False, keep=2)
    with pytest.raises(BundleError, match="uv_deploy_bundle_allow_unsigned"):
        import_bundle(outcome.path, str(tmp_path / "store"), None, False, keep=2)
    assert import_bundle(outcome.path, str(tmp_path / "store"), None, True, keep=2).signer is None


def _flip_byte_in(path: str, member: str) -> None:
    with tarfile.open(path) as archive:
        offset = archive.getmember(member).offset_data
    with open(path, "r+b") as handle:
        handle.seek(offset + 10)
        byte = handle.read(1)
        handle.seek(offset + 10)
        handle.write(bytes([byte[0] ^ 0xFF]))


def test_tampered_byte_is_refused_by_signature_and_by_hash(tmp_path, keys):
    outcome = bundle(tmp_path, "t.tar", key=keys["release"])
    _flip_byte_in(outcome.path, "files/beta-2.0-py3-none-any.whl")
    store = str(tmp_path / "store")
    with pytest.raises(BundleError, match="signature does not verify"):
        import_bundle(outcome.path, store, keys["allowed"], False, keep=2)
    with pytest.raises(BundleError, match="member files/beta-2.0-py3-none-any.whl does not match its sha256"):
        import_bundle(outcome.path, store, None, True, keep=2)
    assert os.listdir(store) == []  # the staging directory is gone, nothing was kept


def test_truncated_bundle_is_refused(tmp_path):
    outcome = bundle(tmp_path, "x.tar")
    with open(outcome.path, "r+b") as handle:
        handle.truncate(outcome.size // 2)
    with pytest.raises(BundleError, match="truncated or damaged|incomplete"):
        import_bundle(outcome.path, str(tmp_path / "store"), None, True, keep=2)


def test_unknown_target_names_host_target_and_remedy(tmp_path):
    outcome = bundle(tmp_path, "k.tar")
    imported = import_bundle(outcome.path, str(tmp_path / "store"), None, True, keep=2)
    other = dict(SPEC, python="3.12.3")
    with pytest.raises(BundleError, match=r"Host db1 is target cpython3\.12\.3-linux-x86_64-glibc2\.36.*targets file"):
        hosts_for(imported.document, imported.root, {"db1": other})


def test_delta_holds_only_what_the_base_lacks(tmp_path):
    full = bundle(tmp_path, "v1.tar")
    delta = bundle(tmp_path, "v2-delta.tar", wheels=WHEELS_V2, base=full.path)
    with tarfile.open(delta.path) as archive:
        names = set(archive.getnames())
    assert "files/alpha-1.1-py3-none-any.whl" in names
    assert "files/beta-2.0-py3-none-any.whl" not in names and not any(n.startswith("uv/") for n in names)
    assert delta.document["base"]["name"] == "v1.tar"
    store = str(tmp_path / "store")
    with pytest.raises(BundleError, match="delta of v1.tar .* not in the bundle store"):
        import_bundle(delta.path, store, None, True, keep=3)
    import_bundle(full.path, store, None, True, keep=3)
    imported = import_bundle(delta.path, store, None, True, keep=3)
    hosts, dummy = hosts_for(imported.document, imported.root, {"web1": dict(SPEC)})
    assert os.path.isfile(os.path.join(hosts["web1"]["path"], "wheelhouse", "beta-2.0-py3-none-any.whl"))
    assert os.path.isfile(os.path.join(hosts["web1"]["path"], "bin", "uv"))


def test_store_keeps_the_most_recent(tmp_path):
    store = str(tmp_path / "store")
    first = import_bundle(bundle(tmp_path, "a.tar").path, store, None, True, keep=1)
    second = import_bundle(bundle(tmp_path, "b.tar", wheels=WHEELS_V2).path, store, None, True, keep=1)
    assert second.pruned == [first.root] and os.listdir(store) == [os.path.basename(second.root)]


def test_check_mode_import_checks_but_keeps_nothing(tmp_path):
    outcome = bundle(tmp_path, "m.tar")
    imported = import_bundle(outcome.path, str(tmp_path / "store"), None, True, keep=2, check_mode=True)
    assert imported.changed and not os.path.exists(tmp_path / "store")
    _flip_byte_in(outcome.path, "files/beta-2.0-py3-none-any.whl")
    with pytest.raises(BundleError, match="does not match its sha256"):
        import_bundle(outcome.path, str(tmp_path / "store"), None, True, keep=2, check_mode=True)


def test_member_outside_the_layout_is_refused(tmp_path):
    outcome = bundle(tmp_path, "p.tar")
    document = read_document(outcome.path)
    document["members"]["../../etc/cron.d/x"] = {"sha256": "0" * 64, "size": 1, "mode": 0o644}
    evil = str(tmp_path / "evil.tar")
    data = json.dumps(document).encode()
    with tarfile.open(evil, "w") as archive:
        info = tarfile.TarInfo("bundle.json")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    with pytest.raises(BundleError, match="refusing member '../../etc/cron.d/x'"):
        import_bundle(evil, str(tmp_path / "store"), None, True, keep=2)


def test_a_concurrent_import_of_the_same_bundle_is_as_good(tmp_path, monkeypatch):
    """Two deployments import one bundle at once: the second rename finds the first's complete entry."""
    import shutil

    from ansible_collections.airgap.uv.plugins.plugin_utils import _bundle_read

    outcome = bundle(tmp_path, "same.tar")
    real_rename = os.rename

    def another_run_first(source, destination):
        shutil.copytree(source, destination)  # the other deployment's complete entry lands first
        return real_rename(source, destination)  # ours then fails: the directory is not empty

    monkeypatch.setattr(_bundle_read.os, "rename", another_run_first)
    store = str(tmp_path / "store")
    imported = import_bundle(outcome.path, store, None, True, keep=2)
    assert imported.changed and sorted(os.listdir(store)) == [imported.sha256]


def test_a_new_signing_key_re_signs_an_unchanged_bundle(tmp_path, keys):
    first = bundle(tmp_path, "r.tar", key=keys["intruder"])
    again = bundle(tmp_path, "r.tar", key=keys["release"])
    assert again.changed and again.sha256 == first.sha256
    assert import_bundle(again.path, str(tmp_path / "store"), keys["allowed"], False, keep=2).signer
    unsigned = bundle(tmp_path, "r.tar")
    assert unsigned.changed and not os.path.exists(unsigned.path + ".sig")
    assert not bundle(tmp_path, "r.tar").changed


def test_the_store_keeps_the_checked_document(tmp_path):
    from ansible_collections.airgap.uv.plugins.plugin_utils._bundle_read import stored_document

    outcome = bundle(tmp_path, "d.tar")
    store = str(tmp_path / "store")
    assert stored_document(store, outcome.sha256) is None
    imported = import_bundle(outcome.path, store, None, True, keep=2)
    assert stored_document(store, outcome.sha256) == imported.document


def _ship(root: str, wheelhouse: dict, chunks: t.Mapping[str, bytes]) -> dict:
    """A workstation_cache result for TARGET: its uv linked from the wheelhouse, CHUNKS, seed.json."""
    ship = os.path.join(root, TARGET, "ship")
    os.makedirs(os.path.join(ship, "cache"))
    os.makedirs(os.path.join(ship, "bin"))
    for name in ("uv", "uvx"):
        os.link(os.path.join(wheelhouse["hosts"][TARGET]["path"], "bin", name), os.path.join(ship, "bin", name))
    for name, data in chunks.items():
        with open(os.path.join(ship, "cache", name), "wb") as handle:
            handle.write(data)
    with open(os.path.join(ship, "seed.json"), "w", encoding="utf-8") as handle:
        json.dump({"format": 1, "chunks": sorted(chunks)}, handle)
    return {"changed": True, "hosts": {TARGET: {"target": TARGET, "path": ship, "ready": True}},
            "targets": {TARGET: {"path": ship}}}


def test_workstation_caches_travel_in_the_bundle(tmp_path):
    wheelhouse = publish(str(tmp_path / "wh"), WHEELS_V1)
    chunk = b"archive chunk" * 500
    caches = _ship(str(tmp_path / "caches"), wheelhouse, {"a1": chunk, "a2": chunk, "metadata": b"links"})
    request = BundleRequest(wheelhouse=wheelhouse, specs={TARGET: dict(SPEC, hosts=["dev1"])},
                            dest=str(tmp_path / "out" / "ws.tar"), mtime=0, workstation=caches)
    outcome = build_bundle(request)
    document = read_document(outcome.path)
    entry = document["targets"][TARGET]["workstation"]
    # uv once (the target's own member), the two equal chunks once, by content.
    assert entry["tree"]["bin/uv"] == document["targets"][TARGET]["tree"]["bin/uv"]
    assert entry["tree"]["cache/a1"] == entry["tree"]["cache/a2"] == "cache/" + hashlib.sha256(chunk).hexdigest()
    with tarfile.open(outcome.path) as archive:
        assert sum(1 for name in archive.getnames() if name.startswith("cache/")) == 3  # chunk, metadata, seed.json
    imported = import_bundle(outcome.path, str(tmp_path / "store"), None, True, keep=1)
    hosts, dummy = hosts_for(imported.document, imported.root, {"dev1": dict(SPEC)})
    path = hosts["dev1"]["workstation_path"]
    assert path and not path.startswith(hosts["dev1"]["path"] + os.sep)  # never pushed to a deployed host
    for relpath, meta in entry["files"].items():
        with open(os.path.join(path, relpath), "rb") as handle:
            assert hashlib.sha256(handle.read()).hexdigest() == meta["sha256"], relpath
    assert os.access(os.path.join(path, "bin", "uv"), os.X_OK)
    # A deploy-only bundle says so: no workstation directory.
    plain = import_bundle(bundle(tmp_path, "plain.tar").path, str(tmp_path / "store2"), None, True, keep=1)
    assert hosts_for(plain.document, plain.root, {"dev1": dict(SPEC)})[0]["dev1"]["workstation_path"] is None


def test_workstation_cache_missing_or_escaping_is_refused(tmp_path):
    wheelhouse = publish(str(tmp_path / "wh"), WHEELS_V1)
    request = BundleRequest(wheelhouse=wheelhouse, specs={TARGET: dict(SPEC)}, dest=str(tmp_path / "ws.tar"),
                            workstation={"changed": False, "targets": {}})
    with pytest.raises(BundleError, match="uv cache of target %s was not filled" % TARGET):
        build_bundle(request)
    # A bundle.json whose workstation tree climbs out of its directory is refused before any file is written.
    caches = _ship(str(tmp_path / "caches"), wheelhouse, {"a1": b"chunk"})
    outcome = build_bundle(BundleRequest(wheelhouse=wheelhouse, specs={TARGET: dict(SPEC)},
                                         dest=str(tmp_path / "ok.tar"), workstation=caches))
    document = read_document(outcome.path)
    tree = document["targets"][TARGET]["workstation"]["tree"]
    tree["cache/.."] = tree.pop("cache/a1")
    with pytest.raises(BundleError, match=r"maps 'cache/\.\.'"):
        check_document(document, "edited")
