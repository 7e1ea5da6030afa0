# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Import blocker of the inside-controller tests: airgap.uv code may not import packaging or tomli.

Issue 12's inside controller has only ansible-core and this collection. ansible-core depends on
``packaging``, so the library is installed there and must stay importable for ansible-core; what
the tests need to prove is that OUR inside code path does not use it. Python imports this file at
start-up when its directory is on PYTHONPATH (inside_controller.run_inside(block_imports=True));
it then stands in for the distribution's sitecustomize (Debian's only installs apport's hook).

It wraps ``builtins.__import__`` (every import statement, also when the module is already in
sys.modules because ansible-core imported it first: a meta-path finder alone would never be
asked then) and ``importlib.import_module``. An import of ``packaging`` or ``tomli`` (or their
submodules) made by a module under ``ansible_collections.airgap`` raises ModuleNotFoundError,
as on a controller without the library; everyone else gets the real module.

When AIRGAP_INSIDE_IMPORT_LOG names a file, each distinct attempt (module, importer, refused)
is appended to it as one JSON line, so a test can say who asked for these libraries.
"""

from __future__ import annotations

import builtins
import importlib
import json
import os
import sys

BLOCKED = ("packaging", "tomli")
GUARDED = "ansible_collections.airgap"
LOG_VARIABLE = "AIRGAP_INSIDE_IMPORT_LOG"

_real_import = builtins.__import__
_real_import_module = importlib.import_module
_seen: set = set()


def _is_blocked(name: str) -> bool:
    return name.partition(".")[0] in BLOCKED


def _is_guarded(importer: str) -> bool:
    return importer == GUARDED or importer.startswith(GUARDED + ".")


def _record(name: str, importer: str, refused: bool) -> None:
    """One JSON line per distinct (module, importer) and process: the log stays small."""
    path = os.environ.get(LOG_VARIABLE)
    key = (name, importer)
    if not path or key in _seen:
        return
    _seen.add(key)
    line = json.dumps({"module": name, "importer": importer, "refused": refused, "pid": os.getpid()})
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line + "\n").encode("utf-8"))
    finally:
        os.close(fd)


def _check(name: str, importer: str) -> None:
    if not _is_blocked(name):
        return
    refused = _is_guarded(importer)
    _record(name, importer, refused)
    if refused:
        raise ModuleNotFoundError("No module named %r (refused to %s by the inside-controller import blocker)"
                                  % (name, importer), name=name.partition(".")[0])


def _importer(globals_: object, depth: int) -> str:
    """The importing module's name: from the globals the import passed, else from the caller's frame."""
    if isinstance(globals_, dict) and isinstance(globals_.get("__name__"), str):
        return globals_["__name__"]
    return sys._getframe(depth + 1).f_globals.get("__name__", "") or ""


def _blocking_import(name, globals=None, locals=None, fromlist=(), level=0):  # noqa: A002 - __import__'s names
    if level == 0:
        _check(name, _importer(globals, 1))
    return _real_import(name, globals, locals, fromlist, level)


def _blocking_import_module(name, package=None):
    if not name.startswith("."):
        _check(name, _importer(None, 1))
    return _real_import_module(name, package)


builtins.__import__ = _blocking_import
importlib.import_module = _blocking_import_module
