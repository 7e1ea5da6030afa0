# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to the airgap.uv collection
"""Shared fixtures for the lock / selection / tag tests.

Tests marked ``uv_lock`` run the real ``uv`` (0.13.x) and need the package index;
deselect them with ``-m "not uv_lock"``. They fail when uv is not found
(set ``AIRGAP_UV_TEST_UV`` to a uv binary to choose one).
"""

from __future__ import annotations

import os
import textwrap
import typing as t

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "uv_lock: runs the real uv against generated projects (needs uv 0.13.x and the package index)"
    )


@pytest.fixture
def write_lock(tmp_path: t.Any) -> t.Callable[..., str]:
    """Write a uv.lock (dedented) into a fresh directory and return its path."""

    def _write(text: str, name: str = "uv.lock", subdir: str = "proj") -> str:
        directory = tmp_path / subdir
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return str(path)

    return _write


@pytest.fixture(scope="session")
def uv_bin() -> str:
    from ansible_collections.airgap.uv.tests.unit.plugins.module_utils.uvlock_helpers import find_uv

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


@pytest.fixture(scope="session")
def artifact_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Where the recording proxy keeps upstream artifacts between runs."""
    explicit = os.environ.get("AIRGAP_UV_TEST_ARTIFACTS")
    if explicit:
        return explicit
    try:
        return str(request.config.cache.mkdir("airgap-uv-artifacts"))  # type: ignore[union-attr]
    except AttributeError:
        return str(tmp_path_factory.mktemp("artifacts"))


@pytest.fixture(scope="session")
def artifact_proxy(artifact_store: str) -> t.Iterator[t.Any]:
    from ansible_collections.airgap.uv.tests.unit.plugins.module_utils.uvlock_helpers import ArtifactProxy

    proxy = ArtifactProxy(artifact_store)
    try:
        yield proxy
    finally:
        proxy.close()
