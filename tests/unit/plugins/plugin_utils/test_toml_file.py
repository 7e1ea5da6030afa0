# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of plugins/plugin_utils/_toml_file.py."""

from __future__ import annotations

import pytest

from ansible_collections.airgap.uv.plugins.plugin_utils._toml_file import TomlFileError, read_toml


def test_reads_a_table(tmp_path):
    path = tmp_path / "uv.toml"
    path.write_text('offline = true\n[pip]\nindex-url = "https://index.invalid/simple"\n')
    assert read_toml(str(path)) == {"offline": True, "pip": {"index-url": "https://index.invalid/simple"}}


@pytest.mark.parametrize("content, message", [
    (None, "no such file; run uv lock"),
    (b"\xff\xfe", "not UTF-8 text"),
    (b"a = [", "not valid TOML"),
])
def test_errors_name_the_file_and_the_remedy(tmp_path, content, message):
    path = tmp_path / "pyproject.toml"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(TomlFileError, match=message) as caught:
        read_toml(str(path), "run uv lock")
    assert str(path) in str(caught.value)


def test_a_directory_is_not_a_file(tmp_path):
    with pytest.raises(TomlFileError, match="is a directory"):
        read_toml(str(tmp_path))
