# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to the airgap.uv collection
"""Fixtures shared by the host (module_utils, modules) and controller (plugin_utils) unit tests.

Tests marked ``uv_lock`` run the real ``uv`` (0.13.x) and need the package index;
deselect them with ``-m "not uv_lock"``. They fail when uv is not found
(set ``AIRGAP_UV_TEST_UV`` to a uv binary to choose one).
"""

from __future__ import annotations

import os
import shutil
import sys

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "uv_lock: runs the real uv against generated projects (needs uv 0.13.x and the package index)"
    )


def find_uv() -> str | None:
    """The uv the tests run: ``AIRGAP_UV_TEST_UV``, the one beside this Python, or the one on PATH."""
    explicit = os.environ.get("AIRGAP_UV_TEST_UV")
    if explicit:
        return explicit
    candidate = os.path.join(os.path.dirname(sys.executable), "uv")
    if os.path.exists(candidate):
        return candidate
    return shutil.which("uv")


@pytest.fixture(scope="session")
def uv_bin() -> str:
    uv = find_uv()
    if not uv:
        pytest.fail("uv not found (set AIRGAP_UV_TEST_UV)")
    return uv


@pytest.fixture(scope="session")
def uv_cache(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A uv cache shared by the whole session (kept in pytest's cache dir when available)."""
    explicit = os.environ.get("AIRGAP_UV_TEST_CACHE")
    if explicit:
        return explicit
    try:
        return str(request.config.cache.mkdir("airgap-uv-cache"))  # type: ignore[union-attr]
    except AttributeError:  # cache provider disabled
        return str(tmp_path_factory.mktemp("uv-cache"))
