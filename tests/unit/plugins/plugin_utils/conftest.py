# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to the airgap.uv collection
"""Fixtures of the controller tests (lock, selection, tags, wheelhouse).

``uv_bin``, ``uv_cache`` and the ``uv_lock`` marker are shared with the host tests:
tests/unit/conftest.py.
"""

from __future__ import annotations

import os
import textwrap
import typing as t

import pytest


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
    from ansible_collections.airgap.uv.tests.unit.plugins.plugin_utils.uvlock_helpers import ArtifactProxy

    proxy = ArtifactProxy(artifact_store)
    try:
        yield proxy
    finally:
        proxy.close()
