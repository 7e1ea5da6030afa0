# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What every stage of the wheelhouse pipeline shares: its options, its result and its error."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Mapping, Optional

from ansible_collections.airgap.uv.plugins.plugin_utils._download import write_atomically
from ansible_collections.airgap.uv.plugins.plugin_utils._selection import SelectionOptions

# Source-tree entries that never affect a built wheel; skipping them keeps the digest cheap.
SKIP_DIRS = {".git", ".hg", ".venv", "venv", "__pycache__", "dist", "build", ".tox", ".nox",
             ".pytest_cache", ".mypy_cache", ".ruff_cache", "node_modules"}


class WheelhouseError(Exception):
    """The wheelhouse cannot be built; the message names what and how to fix it."""


@dataclass
class WheelhouseResult:
    changed: bool
    dest: str
    hosts: dict
    targets: dict
    files: int
    bytes: int
    downloaded: int
    reused: int
    built: int
    requests: int
    uv_version: str
    lock_sha256: str
    # Controller files found corrupt this run, removed and fetched or built again.
    repaired: list = field(default_factory=list)


@dataclass(frozen=True)
class WheelhouseOptions:
    project: str
    dest: str
    targets: Mapping[str, Mapping]
    selection: SelectionOptions = SelectionOptions()
    uv_version: Optional[str] = None
    cache_dir: str = os.path.join(os.path.expanduser("~"), ".cache", "airgap-uv")
    workers: int = 8
    retries: int = 3
    timeout: float = 60.0
    check_lock: bool = True
    prune: bool = True
    # Package names shipped as sdists (with their build requirements) for the hosts to build.
    host_builds: tuple[str, ...] = ()
    # Install the project, workspace members and editable path dependencies in editable mode (uv
    # sync's default) instead of as wheels (uv sync --no-editable).
    editable: bool = False
    # The controller Python `uv lock --check` runs with (a path or a version request); None: found.
    lock_check_python: Optional[str] = None


def write_text(path: str, text: str) -> None:
    write_atomically(path, lambda out: out.write(text.encode("utf-8")))


def plain(value):
    """JSON stand-in for the option values json does not know (for the inputs digest)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    return repr(value)
