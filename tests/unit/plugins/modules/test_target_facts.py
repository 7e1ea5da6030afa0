# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""airgap.uv.target_facts reports a deployment's uv without running it."""

from __future__ import annotations

import hashlib
import json
import os

from ansible_collections.airgap.uv.plugins.modules.target_facts import _uv_version


def _deployment(tmp_path, uv_bytes: bytes, listed: bytes):
    (tmp_path / "bin").mkdir()
    marker = tmp_path / "ran"
    uv = tmp_path / "bin" / "uv"
    uv.write_bytes(uv_bytes % str(marker).encode())
    uv.chmod(0o755)
    listed = listed % str(marker).encode()
    (tmp_path / "manifest.json").write_text(json.dumps({"format": 1, "uv_version": "0.13.8", "files": [
        {"filename": "bin/uv", "sha256": hashlib.sha256(listed).hexdigest(), "size": len(listed)}]}))
    return str(uv), marker


def test_a_verified_uv_is_read_from_its_manifest_not_run(tmp_path):
    script = b"#!/bin/sh\ntouch %s\necho 'uv 9.9.9'\n"
    uv, marker = _deployment(tmp_path, script, script)
    assert _uv_version(None, uv) == {"path": uv, "version": "0.13.8", "verified": True}
    assert not marker.exists()


def test_a_tampered_uv_is_neither_run_nor_believed(tmp_path):
    uv, marker = _deployment(tmp_path, b"#!/bin/sh\ntouch %s\necho 'uv 6.6.6'\n", b"#!/bin/sh\ntouch %s\necho 'uv 0.13.8'\n")
    assert _uv_version(None, uv) == {"path": uv, "version": None, "verified": False}
    assert not marker.exists()
    os.unlink(tmp_path / "manifest.json")  # no manifest: nothing to verify against
    assert _uv_version(None, uv)["verified"] is False and not marker.exists()


def test_release_in_service_from_the_release_record(tmp_path):
    from ansible_collections.airgap.uv.plugins.modules.target_facts import _release_in_service

    release = tmp_path / ".venv.releases" / "20260101T000000.000000Z-aaaaaa"
    release.mkdir(parents=True)
    (release / "airgap-uv-release.json").write_text(json.dumps(
        {"project": {"name": "Hello_Airgap", "version": "0.1.0"}, "packages": {"hello-airgap": {"version": "0.1.0"}}}))
    venv = tmp_path / "venv"
    os.symlink(".venv.releases/20260101T000000.000000Z-aaaaaa", venv)
    assert _release_in_service(str(venv)) == {"venv": str(venv), "release": str(release), "version": "0.1.0"}
    # A record that names no project, a venv that is no link: the release without a version, or nothing.
    (release / "airgap-uv-release.json").write_text("{}")
    assert _release_in_service(str(venv))["version"] is None
    assert _release_in_service(str(tmp_path / "none")) == {"venv": str(tmp_path / "none"), "release": None,
                                                           "version": None}
