# -*- coding: utf-8 -*-
# Copyright (c) airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The options of airgap.uv.sync with their defaults applied, and the ``mode`` option's parser.

Runs on the TARGET: standard library only (Python 3.9+).
"""

from __future__ import annotations

import os
import sys
import typing as t

from ansible_collections.airgap.uv.plugins.module_utils._sync_error import SyncError


def parse_mode(value: t.Any) -> t.Optional[int]:
    """The ``mode`` option: an octal string (``'0750'``, ``'750'``, ``'0o750'``) or, as
    Ansible's file module takes it, a number that already is the mode (YAML ``0750``).
    ``None`` or ``''``: not managed.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise SyncError("mode must be an octal string such as '0755', got %r" % (value,))
    if isinstance(value, int):
        mode = value
        shown = "%r (the number %04o in octal; quote octal modes in YAML)" % (value, value)
    else:
        text = str(value).strip().lower()
        digits = text[2:] if text.startswith("0o") else text
        if not digits or any(c not in "01234567" for c in digits):
            raise SyncError(
                "mode %r is not an octal mode such as '0755' (symbolic modes like 'u=rwx' are not supported)" % (value,)
            )
        mode = int(digits, 8)
        shown = repr(value)
    if not 0 <= mode <= 0o7777:
        raise SyncError("mode %s is out of range (0000 to 7777 in octal)" % shown)
    if mode & 0o700 != 0o700:
        raise SyncError(
            "mode %s must give the owner rwx on the environment directory (for example '0750'): without them "
            "the environment cannot be used, updated or removed by its owner; is it a file mode such as '0644'?" % shown
        )
    return mode


class SyncParams:
    """Module parameters with defaults applied (see the module's argument spec)."""

    def __init__(self, params: t.Mapping[str, t.Any], python_executable: t.Optional[str] = None) -> None:
        uv = params.get("uv")
        self.uv: str = os.path.abspath(str(uv)) if uv else ""
        self.venv: str = os.path.abspath(str(params["venv"]))
        self.state: str = params.get("state") or "present"
        wheelhouse = params.get("wheelhouse")
        requirements = params.get("requirements")
        self.wheelhouse: t.Optional[str] = os.path.abspath(str(wheelhouse)) if wheelhouse else None
        self.requirements: t.Optional[str] = os.path.abspath(str(requirements)) if requirements else None
        manifest = params.get("manifest")
        self.manifest: t.Optional[str] = os.path.abspath(str(manifest)) if manifest else None
        constraints = params.get("build_constraints")
        self.build_constraints: t.Optional[str] = os.path.abspath(str(constraints)) if constraints else None
        self.releases_dir: t.Optional[str] = params.get("releases_dir") or None
        cache_dir = params.get("cache_dir")
        if cache_dir:
            self.cache_dir: str = os.path.abspath(str(cache_dir))
        elif self.wheelhouse:
            self.cache_dir = os.path.join(os.path.dirname(self.wheelhouse), "cache")
        else:
            self.cache_dir = os.path.join(os.path.dirname(self.uv), "cache")
        python = params.get("python")
        self.python: str = str(python) if python else os.path.realpath(python_executable or sys.executable)
        self.network: str = params.get("network") or "offline"
        self.index_url: t.Optional[str] = params.get("index_url") or None
        self.refresh: bool = bool(params.get("refresh"))
        self.adopt: bool = bool(params.get("adopt"))
        self.owner: t.Optional[str] = params.get("owner") or None
        self.group: t.Optional[str] = params.get("group") or None
        self.keep_releases: int = int(params.get("keep_releases") if params.get("keep_releases") is not None else 2)
        lock_timeout = params.get("lock_timeout")
        self.lock_timeout: float = float(lock_timeout if lock_timeout is not None else 600)
        self.compile_bytecode: bool = bool(params.get("compile_bytecode"))
        self.http_timeout: t.Optional[int] = params.get("http_timeout")
        self.http_retries: t.Optional[int] = params.get("http_retries")
        self.mode_input: t.Any = params.get("mode")
        self.mode: t.Optional[int] = None  # parsed by SyncRunner._validate (errors become task failures)
        pending = params.get("pending")
        self.pending: t.Optional[t.Mapping[str, t.Any]] = pending if pending else None
        # The push's staged set to land first, and the manifest this run pushed (_sync_inputs).
        self.incoming: t.Optional[str] = params.get("incoming") or None
        self.manifest_sha256: t.Optional[str] = params.get("manifest_sha256") or None
        self.prune_wheelhouse: bool = params.get("prune_wheelhouse") is not False
        self.acknowledge: t.Optional[str] = params.get("acknowledge") or None
