# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``uv lock --check`` on the controller, with a Python inside the project's requires-python.

uv needs an interpreter that satisfies requires-python even to check a lock. Its own search
walks PATH, where version-manager shims (pyenv's) fail to run and stop it, so the interpreter
is chosen here: the one named by the user (option ``lock_check_python``, role variable
``uv_deploy_lock_check_python``), else ``UV_PYTHON`` (uv reads it), else the controller's own
Python when it fits, else a pyenv, asdf or uv-managed install found without shims.
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import TYPE_CHECKING, Callable, Optional, Sequence

from ansible_collections.airgap.uv.plugins.plugin_utils._uv_tool import UvError, controller_python_args, run_uv

if TYPE_CHECKING:  # annotations only
    from packaging.specifiers import SpecifierSet

    from ansible_collections.airgap.uv.plugins.plugin_utils._build import Interpreter

OPTION = "lock_check_python"
ROLE_VARIABLE = "uv_deploy_lock_check_python"
# uv's words when no interpreter fits or one it found cannot run (a shim of another version).
_INTERPRETER_TROUBLE = re.compile(r"interpreter|requested Python|Python requirement|python-build-standalone"
                                  r"|Failed to download .*cpython", re.I)


class LockCheckError(Exception):
    """uv.lock is stale, or its freshness cannot be checked; the message says what to do."""


def python_args(requires_python: Optional[SpecifierSet], explicit: Optional[str],
                interpreters: Callable[[], Sequence[Interpreter]]) -> list[str]:
    """``--python X`` for ``uv lock --check``, or [] to leave the choice to uv (UV_PYTHON set)."""
    if explicit:
        return ["--python", explicit]
    own = controller_python_args(requires_python)
    if own or os.environ.get("UV_PYTHON") or requires_python is None:
        return own
    found = fitting_interpreter(requires_python, interpreters())
    return ["--python", found.path] if found is not None else []


def fitting_interpreter(requires_python: SpecifierSet, found: Sequence[Interpreter]) -> Optional[Interpreter]:
    """The newest CPython (else any Python) of FOUND inside REQUIRES_PYTHON; None when none is."""
    fitting = [i for i in found if i.version and requires_python.contains(i.version, prereleases=True)
               and "t" not in i.abiflags]
    if not fitting:
        return None
    return max(fitting, key=lambda i: (i.implementation == "cpython", _version_tuple(i.version)))


def _version_tuple(version: str) -> tuple:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def marker_path(cache_dir: str, lock_sha256: str, configs: Sequence[tuple[str, str]]) -> str:
    """Where a passed check is remembered, per (pyproject.toml files, uv.lock) state."""
    digest = hashlib.sha256(lock_sha256.encode())
    for path, sha256 in configs:
        if os.path.basename(path) == "pyproject.toml":
            digest.update(path.encode() + b"\0" + sha256.encode())
    return os.path.join(cache_dir, "lock-checked", digest.hexdigest())


def check_lock(uv: str, project_dir: str, args: Sequence[str], exclude_newer: Optional[str], *,
               offline: bool, explicit: Optional[str], requires_python: Optional[str],
               found: Callable[[], Sequence[Interpreter]]) -> None:
    """Run ``uv lock --check`` with ARGS (the --python choice); LockCheckError says what failed."""
    command = ["lock", "--check", "--quiet", "--directory", project_dir, *args]
    # A lock made with `uv lock --exclude-newer DATE` records DATE; uv re-resolves (and calls
    # the lock stale) unless the check uses the same cut-off.
    if exclude_newer:
        command += ["--exclude-newer", exclude_newer]
    try:
        run_uv(uv, command, what="uv lock --check")
    except UvError as exc:
        raise LockCheckError(_failure(str(exc), project_dir, offline=offline, explicit=explicit,
                                      requires_python=requires_python, found=found)) from None


def _failure(error: str, project_dir: str, *, offline: bool, explicit: Optional[str],
             requires_python: Optional[str], found: Callable[[], Sequence[Interpreter]]) -> str:
    if "needs to be updated" in error:
        return ("uv.lock in %s does not match pyproject.toml (uv lock --check); run 'uv lock' there and commit "
                "the result." % project_dir)
    head = "Could not check that uv.lock in %s is current: %s\n" % (project_dir, error)
    if _INTERPRETER_TROUBLE.search(error):
        if explicit:
            return head + ("uv could not use %r, set by the role variable %s (option %s of airgap.uv.wheelhouse): "
                           "set it to the path of a Python on the controller that satisfies the project's "
                           "requires-python (%s)." % (explicit, ROLE_VARIABLE, OPTION, requires_python or "any"))
        seen = ", ".join("%s %s" % pair for pair in sorted({(i.implementation, i.version) for i in found()},
                                                           key=lambda p: (p[0], _version_tuple(p[1])))) or "none"
        return head + ("No Python on the controller that satisfies the project's requires-python (%s) was found "
                       "(found: %s). Install one (for example `uv python install`), or set the role variable %s "
                       "(option %s of airgap.uv.wheelhouse) to the path of one, for example "
                       "/usr/bin/python3.12." % (requires_python or "any", seen, ROLE_VARIABLE, OPTION))
    if offline:
        return head + ("UV_OFFLINE is set, so uv had only its cache. Run once with network access (unset UV_OFFLINE "
                       "or set it to 0): the answer is then remembered for this state of pyproject.toml and uv.lock.")
    return head + "The check asks the package index as 'uv lock' would; check that the controller reaches it."
