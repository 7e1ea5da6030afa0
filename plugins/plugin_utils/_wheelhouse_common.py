# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What every stage of the wheelhouse pipeline shares: its options, its result and its error."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Mapping, Optional

from ansible_collections.airgap.uv.plugins.plugin_utils._download import write_atomically
from ansible_collections.airgap.uv.plugins.plugin_utils._selection import SelectionOptions
from ansible_collections.airgap.uv.plugins.plugin_utils._wheelhouse_args import DEFAULT_CACHE_DIR, default

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
    """The wheelhouse's options; the defaults are the action's (_wheelhouse_args), not repeated here."""

    project: str
    dest: str
    targets: Mapping[str, Mapping]
    selection: SelectionOptions = SelectionOptions()
    uv_version: Optional[str] = default("uv_version")
    cache_dir: str = DEFAULT_CACHE_DIR
    workers: int = default("workers")
    retries: int = default("retries")
    timeout: float = float(default("timeout"))
    check_lock: bool = default("check_lock")
    prune: bool = default("prune")
    # Package names shipped as sdists (with their build requirements) for the hosts to build.
    host_builds: tuple[str, ...] = default("host_builds")
    # Install the project, workspace members and editable path dependencies in editable mode (uv
    # sync's default) instead of as wheels (uv sync --no-editable).
    editable: bool = default("editable")
    # The controller Python `uv lock --check` runs with (a path or a version request); None: found.
    lock_check_python: Optional[str] = default("lock_check_python")

    @classmethod
    def from_args(cls, args: Mapping[str, object]) -> "WheelhouseOptions":
        """The options from the action's arguments, validated with ARGUMENT_SPEC (every key set)."""
        selection = SelectionOptions(
            groups=tuple(args["groups"]), only_groups=tuple(args["only_groups"]), all_groups=args["all_groups"],
            no_default_groups=args["no_default_groups"], no_dev=args["no_dev"], extras=tuple(args["extras"]),
            all_extras=args["all_extras"], package=args["package"],
        )
        return cls(project=args["project"], dest=args["dest"], targets=args["targets"], selection=selection,
                   uv_version=args["uv_version"], cache_dir=args["cache_dir"] or DEFAULT_CACHE_DIR,
                   workers=args["workers"], retries=args["retries"], timeout=float(args["timeout"]),
                   check_lock=args["check_lock"], prune=args["prune"], host_builds=tuple(args["host_builds"]),
                   editable=args["editable"], lock_check_python=args["lock_check_python"] or None)


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
