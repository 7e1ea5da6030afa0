# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of plugins/module_utils/_hashing.py: the one file hash, by path or in a directory."""

from __future__ import annotations

import hashlib
import os

import pytest

from ansible_collections.airgap.uv.plugins.module_utils._hashing import sha256_file
from ansible_collections.airgap.uv.plugins.plugin_utils._verify import file_sha256


def test_one_hash_by_path_and_by_directory_without_following_links(tmp_path):
    data = os.urandom(3 << 20)  # more than one block
    (tmp_path / "f").write_bytes(data)
    (tmp_path / "link").symlink_to(tmp_path / "f")
    expected = hashlib.sha256(data).hexdigest()
    assert sha256_file(str(tmp_path / "f")) == file_sha256(str(tmp_path / "f")) == expected
    assert sha256_file(str(tmp_path / "link")) == expected  # by path, as the caller named it
    fd = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert sha256_file("f", dir_fd=fd) == expected
        with pytest.raises(OSError):
            sha256_file("link", dir_fd=fd)  # in a directory: a link is never followed
    finally:
        os.close(fd)
