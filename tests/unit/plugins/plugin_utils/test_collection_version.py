# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to the airgap.uv collection
"""The collection version comes from the collection itself: MANIFEST.json, else galaxy.yml."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from ansible_collections.airgap.uv.plugins.plugin_utils._collection_version import UNKNOWN_VERSION, collection_version

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))


def test_the_version_is_galaxy_yml_s() -> None:
    with open(os.path.join(ROOT, "galaxy.yml"), encoding="utf-8") as handle:
        expected = yaml.safe_load(handle)["version"]
    assert collection_version() == expected


@pytest.mark.parametrize("galaxy, expected", [
    ("namespace: airgap\nversion: 1.2.3\n", "1.2.3"),
    ("version: '2.0.0-rc.1'  # released soon\n", "2.0.0-rc.1"),
    ('name: uv\n  version: 9.9.9\nversion: "3.1.0"\n', "3.1.0"),
    ("name: uv\n", UNKNOWN_VERSION),
])
def test_galaxy_yml_version_line(tmp_path, galaxy: str, expected: str) -> None:
    (tmp_path / "galaxy.yml").write_text(galaxy, encoding="utf-8")
    assert collection_version(str(tmp_path)) == expected


def test_an_installed_collection_reads_manifest_json(tmp_path) -> None:
    (tmp_path / "MANIFEST.json").write_text(json.dumps({"collection_info": {"version": "4.5.6"}}), encoding="utf-8")
    (tmp_path / "galaxy.yml").write_text("version: 1.0.0\n", encoding="utf-8")
    assert collection_version(str(tmp_path)) == "4.5.6"
    (tmp_path / "MANIFEST.json").write_text("{}", encoding="utf-8")
    assert collection_version.__wrapped__(str(tmp_path)) == "1.0.0"
    assert collection_version(str(tmp_path / "missing")) == UNKNOWN_VERSION
