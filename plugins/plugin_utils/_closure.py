# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Build-requirement closures: what a host needs to build a source distribution offline.

When a package must be built on the host (a platform-specific build the controller cannot make
for that host, a package the user asks to build there, or an editable install), the host gets
the source and every wheel its build backend will ask for:

* the static ``build-system.requires`` of the source tree (PEP 518; setuptools' legacy
  defaults when the tree has none);
* the dynamic results of the backend's ``get_requires_for_build_wheel`` or
  ``get_requires_for_build_editable`` hook (PEP 517/660), which are in no lockfile
  (hatchling asks for ``editables`` only when building an editable, for example). The hook
  runs once per source and kind, in a throw-away environment holding the static requirements,
  and its answer is cached;
* all of them resolved together by ``uv lock`` in a throw-away project, so the versions are
  consistent, and then selected for the target like any lock: markers in the target's own
  environment, one wheel per package by the target's tag priority, each with the sha256 the
  index published.

The throw-away project carries the user project's index settings (``[tool.uv]`` of its
pyproject.toml or its uv.toml) and the lock's ``exclude-newer``, so the closure comes from the
same indexes, with the same cut-off, as the project's own packages. No index is named here.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence

from ansible_collections.airgap.uv.plugins.plugin_utils._download import write_atomically
from ansible_collections.airgap.uv.plugins.plugin_utils._lock import load_lock
from ansible_collections.airgap.uv.plugins.plugin_utils._toml_file import TomlFileError, read_toml
from ansible_collections.airgap.uv.plugins.plugin_utils._lock_types import Lock, LockError
from ansible_collections.airgap.uv.plugins.plugin_utils._uv_tool import UvError, run_uv

try:
    from packaging.requirements import InvalidRequirement, Requirement
except ImportError:  # reported by the action plugin through _lock's HAS_PACKAGING check
    pass

#: Bumped when the way closures are computed changes, so cached answers are not reused.
CLOSURE_RECIPE = "1"
HOOKS = ("wheel", "editable")
#: PEP 517: a tree without [build-system] builds with setuptools' legacy backend.
_LEGACY_REQUIRES = ("setuptools>=40.8.0",)
_LEGACY_BACKEND = "setuptools.build_meta:__legacy__"
#: The project settings that decide where packages come from (copied to the throw-away project).
_INDEX_KEYS = ("index", "index-url", "extra-index-url", "find-links", "no-index", "index-strategy",
               "keyring-provider", "allow-insecure-host")

# Runs inside the throw-away build environment, with the source tree as working directory. The
# answer goes to a file: backends print to stdout freely.
_HOOK_SCRIPT = """\
import importlib, json, os, sys
backend, backend_path, hook, out = json.loads(sys.argv[1])
if backend_path:
    sys.path[:0] = [os.path.abspath(p) for p in backend_path]
module, _, attrs = backend.partition(":")
obj = importlib.import_module(module.strip())
for attr in filter(None, attrs.strip().split(".")):
    obj = getattr(obj, attr)
function = getattr(obj, "get_requires_for_build_" + hook, None)
if function is None and hook == "editable" and not hasattr(obj, "build_editable"):
    sys.exit("the build backend %s does not support editable installs (PEP 660)" % backend)
with open(out, "w") as handle:
    json.dump([str(r) for r in (function({}) if function else [])], handle)
"""


class ClosureError(Exception):
    """A build-requirement closure cannot be made; the message names the package and the remedy."""


class ClosureNotCached(Exception):
    """Check mode: the answer is not in the cache and finding it would run builds or ask the index."""


@dataclass(frozen=True)
class BuildSystem:
    requires: tuple[str, ...]
    backend: str
    backend_path: tuple[str, ...]


def read_build_system(tree: str, label: str) -> BuildSystem:
    """The PEP 517/518 build system of the source tree at TREE."""
    path = os.path.join(tree, "pyproject.toml")
    table: Mapping[str, Any] = {}
    if os.path.isfile(path):
        try:
            table = read_toml(path).get("build-system") or {}
        except TomlFileError as exc:
            raise ClosureError("%s: %s" % (label, exc)) from None
    if not isinstance(table, Mapping):
        raise ClosureError("%s: [build-system] in its pyproject.toml is not a table." % label)
    requires = table.get("requires", list(_LEGACY_REQUIRES))
    backend = table.get("build-backend") or _LEGACY_BACKEND
    backend_path = table.get("backend-path") or []
    if not (isinstance(requires, list) and all(isinstance(r, str) for r in requires)
            and isinstance(backend, str) and isinstance(backend_path, list)):
        raise ClosureError("%s: build-system.requires, build-backend or backend-path in its pyproject.toml has "
                           "the wrong type (PEP 517/518)." % label)
    for requirement in requires:
        _parse_requirement(requirement, label)
    return BuildSystem(tuple(requires), backend, tuple(str(p) for p in backend_path))


def _parse_requirement(text: str, label: str) -> "Requirement":
    try:
        return Requirement(text)
    except InvalidRequirement as exc:
        raise ClosureError("%s: build requirement %r is not a valid requirement: %s" % (label, text, exc)) from None


def _toml_value(value: Any) -> str:
    """TOML for the plain values index settings hold (JSON strings are valid TOML basic strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[%s]" % ", ".join(_toml_value(v) for v in value)
    if isinstance(value, Mapping):
        return "{ %s }" % ", ".join("%s = %s" % (json.dumps(str(k)), _toml_value(v)) for k, v in value.items())
    raise ClosureError("Cannot carry the index setting value %r into the build-requirement project." % (value,))


def index_settings(project_dir: str) -> dict:
    """The project's index settings: ``[tool.uv]`` of pyproject.toml, else uv.toml (uv's precedence)."""
    settings: Mapping[str, Any] = {}
    uv_toml = os.path.join(project_dir, "uv.toml")
    try:
        if os.path.isfile(uv_toml):
            settings = read_toml(uv_toml)
        else:
            pyproject = os.path.join(project_dir, "pyproject.toml")
            if os.path.isfile(pyproject):
                settings = (read_toml(pyproject).get("tool") or {}).get("uv") or {}
    except TomlFileError as exc:
        raise ClosureError(str(exc)) from None
    return {key: settings[key] for key in _INDEX_KEYS if key in settings}


class ClosureResolver:
    """Learns and resolves build requirements; every answer is cached under ``cache_dir``."""

    def __init__(self, uv: str, cache_dir: str, project_dir: str, exclude_newer: Optional[str] = None,
                 progress: Optional[Callable[[str], None]] = None) -> None:
        self.uv = uv
        self.cache_dir = cache_dir
        self.project_dir = project_dir
        self.exclude_newer = exclude_newer
        self._say = progress or (lambda message: None)
        self._settings: Optional[dict] = None

    @property
    def settings(self) -> dict:
        if self._settings is None:
            self._settings = index_settings(self.project_dir)
        return self._settings

    # -- what the backend asks for -------------------------------------------------------

    def build_requirements(self, tree: str, source_key: str, hook: str, label: str,
                           python: Optional[str] = None, cached_only: bool = False) -> tuple[str, ...]:
        """Static plus dynamic build requirements of TREE for HOOK ("wheel" or "editable")."""
        if hook not in HOOKS:
            raise ValueError("hook must be one of %s" % (HOOKS,))
        system = read_build_system(tree, label)
        key = hashlib.sha256(json.dumps([CLOSURE_RECIPE, source_key, hook, system.requires, system.backend,
                                         system.backend_path]).encode()).hexdigest()
        cached = os.path.join(self.cache_dir, "build-requires", key + ".json")
        try:
            with open(cached, encoding="utf-8") as handle:
                dynamic = json.load(handle)
            if isinstance(dynamic, list) and all(isinstance(r, str) for r in dynamic):
                return _merged(system.requires, dynamic)
        except (OSError, ValueError):
            pass
        if cached_only:
            raise ClosureNotCached(label)
        dynamic = self._run_hook(tree, system, hook, label, python)
        for requirement in dynamic:
            _parse_requirement(requirement, label)
        text = json.dumps(dynamic)
        os.makedirs(os.path.dirname(cached), exist_ok=True)
        write_atomically(cached, lambda out: out.write(text.encode()))
        return _merged(system.requires, dynamic)

    def _run_hook(self, tree: str, system: BuildSystem, hook: str, label: str, python: Optional[str]) -> list:
        what = "an editable" if hook == "editable" else "a wheel"
        self._say("asking the build backend of %s what it needs to build %s" % (label, what))
        work = tempfile.mkdtemp(prefix="airgap-uv-hook-")
        try:
            venv = os.path.join(work, "venv")
            args = ["venv", "--quiet", venv] + (["--python", python] if python else [])
            try:
                # From the project directory: its index settings apply to the build requirements.
                run_uv(self.uv, args, cwd=self.project_dir, what="Creating a build environment for %s" % label)
                interpreter = os.path.join(venv, "bin", "python")
                if system.requires:
                    run_uv(self.uv, ["pip", "install", "--quiet", "--python", interpreter, *system.requires],
                           cwd=self.project_dir, what="Installing the build requirements of %s" % label)
            except UvError as exc:
                raise ClosureError("%s: %s" % (label, exc)) from None
            out = os.path.join(work, "requires.json")
            request = json.dumps([system.backend, list(system.backend_path), hook, out])
            proc = _run([interpreter, "-c", _HOOK_SCRIPT, request], cwd=tree)
            if proc[0] != 0:
                raise ClosureError("%s: the build backend %s failed to say what it needs to build %s: %s"
                                   % (label, system.backend, "an editable" if hook == "editable" else "a wheel",
                                      "\n".join(proc[1].strip().splitlines()[-10:])))
            with open(out, encoding="utf-8") as handle:
                return list(json.load(handle))
        finally:
            shutil.rmtree(work, ignore_errors=True)

    # -- resolving them --------------------------------------------------------------------

    def lock(self, requirements: Sequence[str], python_minor: str, python: Optional[str] = None,
             cached_only: bool = False) -> Lock:
        """A uv.lock resolving REQUIREMENTS for Python >= PYTHON_MINOR (cached by its inputs).

        uv locks only with an interpreter inside requires-python: PYTHON names one (any newer
        Python will do; the lock is universal and the target's fork is selected later).
        """
        project = self._project_text(requirements, python_minor)
        key = hashlib.sha256(project.encode()).hexdigest()
        directory = os.path.join(self.cache_dir, "build-closures", key)
        lock_path = os.path.join(directory, "uv.lock")
        if not os.path.isfile(lock_path):
            if cached_only:
                raise ClosureNotCached(", ".join(requirements))
            os.makedirs(os.path.dirname(directory), exist_ok=True)
            work = tempfile.mkdtemp(dir=os.path.dirname(directory), prefix=".lock-")
            try:
                with open(os.path.join(work, "pyproject.toml"), "w", encoding="utf-8") as handle:
                    handle.write(project)
                self._say("resolving build requirements: %s" % ", ".join(requirements))
                try:
                    run_uv(self.uv, ["lock", "--quiet", "--no-python-downloads", "--directory", work]
                           + (["--python", python] if python else []),
                           what="Resolving the build requirements %s" % ", ".join(requirements))
                except UvError as exc:
                    raise ClosureError(str(exc)) from None
                try:
                    os.replace(work, directory)
                except OSError:
                    pass  # a concurrent run locked the same closure first: as good as ours
            finally:
                shutil.rmtree(work, ignore_errors=True)
        try:
            return load_lock(lock_path)
        except LockError as exc:
            raise ClosureError(str(exc)) from None

    def _project_text(self, requirements: Sequence[str], python_minor: str) -> str:
        lines = ["# Written by airgap.uv (recipe %s) to resolve build requirements." % CLOSURE_RECIPE,
                 "[project]", 'name = "airgap-uv-build-closure"', 'version = "0"',
                 "requires-python = %s" % _toml_value(">=" + python_minor),
                 "dependencies = %s" % _toml_value(sorted(set(requirements))),
                 "", "[tool.uv]", "package = false"]
        if self.exclude_newer:
            lines.append("exclude-newer = %s" % _toml_value(self.exclude_newer))
        for key, value in sorted(self.settings.items()):
            lines.append("%s = %s" % (key, _toml_value(value)))
        return "\n".join(lines) + "\n"


def _merged(static: Sequence[str], dynamic: Sequence[str]) -> tuple[str, ...]:
    seen = []
    for requirement in list(static) + list(dynamic):
        if requirement not in seen:
            seen.append(requirement)
    return tuple(seen)


def _run(argv: Sequence[str], cwd: str) -> tuple[int, str]:
    proc = subprocess.run(list(argv), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          stdin=subprocess.DEVNULL, text=True, check=False)
    return proc.returncode, proc.stdout
