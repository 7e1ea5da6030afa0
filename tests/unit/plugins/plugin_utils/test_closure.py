# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Build-requirement closures: reading build systems, asking real backends, resolving with real uv."""

from __future__ import annotations

import os
import sys

import pytest

from ansible_collections.airgap.uv.plugins.plugin_utils._closure import (
    ClosureError,
    ClosureNotCached,
    ClosureResolver,
    index_settings,
    read_build_system,
)
from ansible_collections.airgap.uv.plugins.plugin_utils._toml_file import read_toml


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def test_build_system_defaults_to_setuptools_legacy(tmp_path):
    write(str(tmp_path / "setup.py"), "from setuptools import setup\nsetup()\n")
    system = read_build_system(str(tmp_path), "legacy 1.0")
    assert system.requires == ("setuptools>=40.8.0",)
    assert system.backend == "setuptools.build_meta:__legacy__"


def test_build_system_reads_pyproject(tmp_path):
    write(str(tmp_path / "pyproject.toml"), '[build-system]\nrequires = ["hatchling>=1.20", "hatch-vcs"]\n'
          'build-backend = "hatchling.build"\nbackend-path = ["_build"]\n')
    system = read_build_system(str(tmp_path), "p 1")
    assert system.requires == ("hatchling>=1.20", "hatch-vcs")
    assert system.backend == "hatchling.build"
    assert system.backend_path == ("_build",)


@pytest.mark.parametrize("table, message", [
    ('requires = "setuptools"', "has the wrong type"),
    ('requires = ["setuptools >>> 3"]', "build requirement 'setuptools >>> 3' is not a valid requirement"),
])
def test_bad_build_system_is_named(tmp_path, table, message):
    write(str(tmp_path / "pyproject.toml"), "[build-system]\n%s\n" % table)
    with pytest.raises(ClosureError) as caught:
        read_build_system(str(tmp_path), "broken 0.1")
    assert caught.value.args[0].startswith("broken 0.1: ")
    assert message in str(caught.value)


def test_index_settings_are_carried_as_valid_toml(tmp_path):
    write(str(tmp_path / "pyproject.toml"), '[project]\nname = "p"\nversion = "1"\n\n[tool.uv]\n'
          'index-strategy = "unsafe-best-match"\nno-build-isolation = true\n\n'
          '[[tool.uv.index]]\nname = "internal"\nurl = "https://index.invalid/simple"\ndefault = true\n')
    settings = index_settings(str(tmp_path))
    assert settings == {"index-strategy": "unsafe-best-match",
                        "index": [{"name": "internal", "url": "https://index.invalid/simple", "default": True}]}
    resolver = ClosureResolver("uv", str(tmp_path / "cache"), str(tmp_path), exclude_newer="2026-01-01T00:00:00Z")
    text = resolver._project_text(["setuptools>=61", "wheel ; python_version < '3.12'"], "3.11")
    write(str(tmp_path / "closure" / "pyproject.toml"), text)
    data = read_toml(str(tmp_path / "closure" / "pyproject.toml"))
    assert data["project"]["requires-python"] == ">=3.11"
    assert data["project"]["dependencies"] == ["setuptools>=61", "wheel ; python_version < '3.12'"]
    assert data["tool"]["uv"]["index"][0]["url"] == "https://index.invalid/simple"
    assert data["tool"]["uv"]["exclude-newer"] == "2026-01-01T00:00:00Z"
    assert "no-build-isolation" not in data["tool"]["uv"]


def test_uv_toml_wins_over_pyproject(tmp_path):
    write(str(tmp_path / "pyproject.toml"), '[tool.uv]\nindex-url = "https://a.invalid/simple"\n')
    write(str(tmp_path / "uv.toml"), 'index-url = "https://b.invalid/simple"\n')
    assert index_settings(str(tmp_path)) == {"index-url": "https://b.invalid/simple"}


def test_cached_only_never_runs_anything(tmp_path):
    write(str(tmp_path / "src" / "pyproject.toml"), '[build-system]\nrequires = []\nbuild-backend = "nope"\n')
    resolver = ClosureResolver("/nonexistent/uv", str(tmp_path / "cache"), str(tmp_path))
    with pytest.raises(ClosureNotCached):
        resolver.build_requirements(str(tmp_path / "src"), "k", "wheel", "x 1", cached_only=True)
    with pytest.raises(ClosureNotCached):
        resolver.lock(["setuptools"], "3.11", cached_only=True)


def test_in_tree_backend_hook_answers_and_is_cached(tmp_path, uv_bin):
    """A backend in the tree (backend-path) with no requirements: the hook runs without the index."""
    tree = tmp_path / "src"
    write(str(tree / "pyproject.toml"), '[build-system]\nrequires = []\nbuild-backend = "backend"\n'
          'backend-path = ["."]\n')
    write(str(tree / "backend.py"),
          "def get_requires_for_build_wheel(config_settings=None):\n    print('noise on stdout')\n"
          "    return ['cython>=3', 'setuptools']\n"
          "def build_editable(*a):\n    pass\n")
    resolver = ClosureResolver(uv_bin, str(tmp_path / "cache"), str(tmp_path))
    assert resolver.build_requirements(str(tree), "key1", "wheel", "inner 1", python=sys.executable) == \
        ("cython>=3", "setuptools")
    # No get_requires_for_build_editable but build_editable exists: nothing extra.
    assert resolver.build_requirements(str(tree), "key1", "editable", "inner 1", python=sys.executable) == ()
    # Cached: answered without running the backend again, even when told not to run anything.
    assert resolver.build_requirements(str(tree), "key1", "wheel", "inner 1", cached_only=True) == \
        ("cython>=3", "setuptools")


def test_backend_without_editable_support_is_named(tmp_path, uv_bin):
    tree = tmp_path / "src"
    write(str(tree / "pyproject.toml"), '[build-system]\nrequires = []\nbuild-backend = "backend"\n'
          'backend-path = ["."]\n')
    write(str(tree / "backend.py"), "def build_wheel(*a):\n    pass\n")
    resolver = ClosureResolver(uv_bin, str(tmp_path / "cache"), str(tmp_path))
    with pytest.raises(ClosureError) as caught:
        resolver.build_requirements(str(tree), "key2", "editable", "old 1", python=sys.executable)
    assert "old 1: the build backend backend failed to say what it needs to build an editable" in str(caught.value)
    assert "does not support editable installs (PEP 660)" in str(caught.value)


@pytest.mark.uv_lock
def test_hatchling_editable_asks_for_editables_and_resolves(tmp_path, uv_bin):
    """The case from the field: hatchling's editable hook wants `editables`, which no lock holds."""
    tree = tmp_path / "proj"
    write(str(tree / "pyproject.toml"), '[project]\nname = "proj"\nversion = "0.1.0"\n\n'
          '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n')
    write(str(tree / "src" / "proj" / "__init__.py"), "")
    resolver = ClosureResolver(uv_bin, str(tmp_path / "cache"), str(tree), exclude_newer="2025-10-01T00:00:00Z")
    editable = resolver.build_requirements(str(tree), "proj", "editable", "proj 0.1.0", python=sys.executable)
    assert editable[0] == "hatchling" and any(r.startswith("editables") for r in editable), editable
    assert resolver.build_requirements(str(tree), "proj", "wheel", "proj 0.1.0", python=sys.executable) == \
        ("hatchling",)
    minor = "%d.%d" % sys.version_info[:2]
    lock = resolver.lock(list(editable), minor, sys.executable)
    names = {p.name for p in lock.packages}
    assert {"hatchling", "editables", "packaging", "pathspec", "pluggy", "trove-classifiers"} <= names
    assert all(w.sha256 for p in lock.packages for w in p.wheels)
