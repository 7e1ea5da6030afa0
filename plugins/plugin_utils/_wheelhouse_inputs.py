# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Wheelhouse stage 1, read and check the lock: the project's uv.lock, its uv configuration files,
``tool.uv.required-version`` and ``uv lock --check``."""

from __future__ import annotations

import os
from typing import Callable, Optional

try:
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
except ImportError:  # reported by the action plugin through _lock's HAS_PACKAGING check
    pass

from ansible_collections.airgap.uv.plugins.plugin_utils._download import file_sha256
from ansible_collections.airgap.uv.plugins.plugin_utils._lock import load_lock
from ansible_collections.airgap.uv.plugins.plugin_utils._toml_file import TomlFileError, read_toml
from ansible_collections.airgap.uv.plugins.plugin_utils._lock_types import Lock, LockError
from ansible_collections.airgap.uv.plugins.plugin_utils._lock_check import (
    LockCheckError,
    check_lock,
    marker_path,
    python_args,
)
from ansible_collections.airgap.uv.plugins.plugin_utils._wheelhouse_common import SKIP_DIRS, WheelhouseError


class ProjectInputs:
    """The uv project a wheelhouse is built from (PROJECT_DIR), as files on the controller."""

    def __init__(self, project_dir: str, cache_dir: str) -> None:
        self.project_dir = project_dir
        self.cache_dir = cache_dir
        self.lock_path = os.path.join(project_dir, "uv.lock")
        self.pyproject = os.path.join(project_dir, "pyproject.toml")
        self._configs: Optional[list] = None

    def forget(self) -> None:
        """Read the configuration files afresh (once per run)."""
        self._configs = None

    def configs(self) -> list:
        """[(path, sha256)] of every pyproject.toml, uv.toml and .python-version in the project, in
        the order the lock check has always hashed pyproject.toml files (read once per run)."""
        if self._configs is None:
            found = []
            for root, dirs, files in os.walk(self.project_dir):
                dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
                for name in ("pyproject.toml", "uv.toml", ".python-version"):
                    if name in files:
                        path = os.path.join(root, name)
                        found.append((path, file_sha256(path)))
            self._configs = found
        return self._configs

    def load_lock(self) -> Lock:
        if not os.path.isfile(self.pyproject):
            raise WheelhouseError("%s has no pyproject.toml; point 'project' at a uv project directory." % self.project_dir)
        if not os.path.isfile(self.lock_path):
            raise WheelhouseError("%s is missing; run 'uv lock' in %s and commit uv.lock." % (self.lock_path, self.project_dir))
        try:
            # Refuses entries outside the project that its configuration does not point at (_lock_paths).
            return load_lock(self.lock_path, cache_dir=self.cache_dir)
        except LockError as exc:
            raise WheelhouseError(str(exc)) from None

    def check_lock_current(self, uv: str, lock: Lock, interpreters: Callable[[], list], explicit: Optional[str],
                           offline: bool, check_mode: bool) -> None:
        """``uv lock --check`` once per (pyproject files, uv.lock) state; cached because it asks the index.

        INTERPRETERS gives the controller's Pythons (found only when needed); EXPLICIT is the one asked for.
        """
        marker = marker_path(self.cache_dir, lock.sha256, self.configs())
        if os.path.exists(marker):
            return
        exclude_newer = lock.options.get("exclude-newer")
        try:
            check_lock(uv, self.project_dir, python_args(lock.requires_python, explicit, interpreters),
                       exclude_newer if isinstance(exclude_newer, str) else None, offline=offline,
                       explicit=explicit, requires_python=lock.requires_python_raw, found=interpreters)
        except LockCheckError as exc:
            raise WheelhouseError(str(exc)) from None
        if not check_mode:
            os.makedirs(os.path.dirname(marker), exist_ok=True)
            open(marker, "w").close()

    def check_required_version(self, version: str) -> None:
        """Honour ``tool.uv.required-version``: every uv command in the project refuses other versions."""
        required = None
        for name, table in (("uv.toml", None), ("pyproject.toml", "tool")):
            path = os.path.join(self.project_dir, name)
            if not os.path.isfile(path):
                continue
            try:
                data = read_toml(path)
            except TomlFileError as exc:
                raise WheelhouseError(str(exc)) from None
            settings = (data.get(table) or {}).get("uv") if table else data
            if isinstance(settings, dict) and settings.get("required-version"):
                required = (path, str(settings["required-version"]).strip())
                break
        if required is None:
            return
        path, text = required
        spec = "==" + text if text[:1].isdigit() else text
        try:
            allowed = SpecifierSet(spec).contains(version, prereleases=True)
        except InvalidSpecifier:
            raise WheelhouseError("%s: tool.uv.required-version %r is not a version specifier." % (path, text)) from None
        if not allowed:
            raise WheelhouseError("%s sets required-version %r, so uv %s would refuse to run there; set uv_version "
                                  "(uv_deploy_uv_version) to a uv release that matches it." % (path, text, version))
