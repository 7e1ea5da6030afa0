# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to the airgap.uv collection
"""One target's PEP 751 lock file (``pylock.toml``) for the bundle, written from plain data.

The bundle's own route is ``airgap.uv.sync``; the pylock file is the route without us: a host
with pip >= 26.3 or uv can install a target's files with ``pip install --no-index -r`` or
``uv pip sync --offline``, every file checked against its sha256. Files are named by ``path``
(relative to the lock file's folder), which both installers prefer to ``url`` offline.

The controller may lack a TOML writer (tomli-w is not a dependency): the TOML is written here,
with the one string escape TOML's basic strings need. The output is deterministic (packages
sorted by name, files by name) so that the signed bundle is reproducible.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

LOCK_VERSION = "1.0"
CREATED_BY = "airgap.uv"
# Where our own keys go: PEP 751 reserves ``[tool]`` for the tools that write the file.
TOOL_TABLE = "airgap-uv"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_PYTHON_VERSION = re.compile(r"^[0-9]+\.[0-9]+(\.[0-9]+)?$")
# TOML basic strings: these escapes by name, other control characters as \uXXXX.
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f\x7f]')


@dataclass(frozen=True)
class PylockPackage:
    """One file a target installs: a wheel, or an sdist (``is_sdist``) the host builds.

    ``path`` is the file's place relative to the pylock file's folder (``files/<filename>`` when
    the lock sits at the bundle's top); ``url`` is where it came from, when known.
    """

    name: str
    version: str
    filename: str
    sha256: str
    size: int
    url: Optional[str]
    path: str
    is_sdist: bool


def toml_string(value: str) -> str:
    """``value`` as a TOML basic string: quotes, backslashes and control characters escaped,
    everything else (non-ASCII included) as is, since TOML files are UTF-8."""

    def _escape(match: "re.Match[str]") -> str:
        char = match.group(0)
        return _ESCAPES.get(char) or "\\u%04X" % ord(char)

    return '"%s"' % _NEEDS_ESCAPE.sub(_escape, value)


def normalize_name(name: str) -> str:
    """The PEP 503 normal form PEP 751 asks for in ``packages.name``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pylock_file_name(target_id: str) -> str:
    """``pylock.<name>.toml`` for a target: PEP 751's name may not hold a dot, and pip reads a
    file as a pylock only when its name matches (``pylock.cpython3.11.2-....toml`` would be
    read as a requirements file), so the target id's dots become underscores."""
    if not target_id or "/" in target_id or "\\" in target_id:
        raise ValueError("target id %r cannot name a pylock file" % (target_id,))
    return "pylock.%s.toml" % target_id.replace(".", "_")


def _check(package: PylockPackage) -> None:
    """Refuse an entry an installer would reject or could not verify."""
    where = "pylock entry %r" % (package.filename,)
    if not package.name or not package.version or not package.filename or not package.path:
        raise ValueError("%s: name, version, file name and path are required" % where)
    if not _SHA256.match(package.sha256):
        raise ValueError("%s: sha256 %r is not 64 lowercase hex digits" % (where, package.sha256))
    if isinstance(package.size, bool) or not isinstance(package.size, int) or package.size < 0:
        raise ValueError("%s: size %r is not a byte count" % (where, package.size))
    if package.is_sdist == package.filename.endswith(".whl"):
        raise ValueError("%s: a wheel's file name ends in .whl, an sdist's does not" % where)
    if package.path.startswith("/") or "\\" in package.path:
        raise ValueError("%s: path %r must be relative, with forward slashes" % (where, package.path))


def _file_table(package: PylockPackage) -> str:
    """One file as an inline table, in PEP 751's key order."""
    fields = [("name", toml_string(package.filename))]
    if package.url:
        fields.append(("url", toml_string(package.url)))
    fields.append(("path", toml_string(package.path)))
    fields.append(("size", str(package.size)))
    fields.append(("hashes", "{ sha256 = %s }" % toml_string(package.sha256)))
    return "{ %s }" % ", ".join("%s = %s" % field for field in fields)


def _grouped(packages: Sequence[PylockPackage]) -> List[Tuple[str, str, List[PylockPackage]]]:
    """The files by package, sorted by name then file name; one version per package, at most
    one sdist, each file once (the same entry given twice counts once)."""
    groups: Dict[str, Tuple[str, Dict[str, PylockPackage]]] = {}
    for package in packages:
        _check(package)
        name = normalize_name(package.name)
        version, files = groups.setdefault(name, (package.version, {}))
        if version != package.version:
            raise ValueError("package %s is locked at two versions for one target: %s and %s"
                             % (name, version, package.version))
        seen = files.setdefault(package.filename, package)
        if seen != package:
            raise ValueError("two different entries for the file %r: %r and %r" % (package.filename, seen, package))
    result = []
    for name in sorted(groups):
        version, files = groups[name]
        sdists = [f for f in files.values() if f.is_sdist]
        if len(sdists) > 1:
            raise ValueError("package %s has more than one sdist: %s" % (name, ", ".join(sorted(f.filename for f in sdists))))
        result.append((name, version, [files[filename] for filename in sorted(files)]))
    return result


def _requires_python(python_version: Optional[str]) -> Optional[str]:
    """The target's Python as a specifier: ``==3.11.2`` for a full version (the files and
    markers were chosen for exactly that interpreter), ``==3.11.*`` for a minor one."""
    if not python_version:
        return None
    if not _PYTHON_VERSION.match(python_version):
        raise ValueError("Python version %r is not X.Y or X.Y.Z" % (python_version,))
    return "==" + python_version if python_version.count(".") == 2 else "==%s.*" % python_version


def _package_lines(name: str, version: str, files: Sequence[PylockPackage]) -> List[str]:
    """One ``[[packages]]`` table: its wheels as an array of inline tables, its sdist inline."""
    lines = ["[[packages]]", "name = %s" % toml_string(name), "version = %s" % toml_string(version)]
    wheels = [f for f in files if not f.is_sdist]
    if wheels:
        lines.append("wheels = [")
        lines.extend("    %s," % _file_table(wheel) for wheel in wheels)
        lines.append("]")
    lines.extend("sdist = %s" % _file_table(sdist) for sdist in files if sdist.is_sdist)
    return lines


def pylock_text(target_id: str, python_version: Optional[str], packages: Sequence[PylockPackage]) -> str:
    """The ``pylock.toml`` text of one target: the packages it installs, each with its files.

    ``python_version`` (e.g. ``3.11.2``, or empty) becomes ``requires-python``; ``target_id``
    is recorded under ``[tool.airgap-uv]`` so that a lock found alone still says what it is for.
    """
    if not target_id:
        raise ValueError("a pylock file is for one target, and needs its id")
    lines = ["lock-version = %s" % toml_string(LOCK_VERSION)]
    requires_python = _requires_python(python_version)
    if requires_python:
        lines.append("requires-python = %s" % toml_string(requires_python))
    lines.append("created-by = %s" % toml_string(CREATED_BY))
    grouped = _grouped(packages)
    if not grouped:
        lines.append("packages = []")  # required even when the target installs nothing
    for name, version, files in grouped:
        lines.append("")
        lines.extend(_package_lines(name, version, files))
    lines.extend(["", "[tool.%s]" % TOOL_TABLE, "target = %s" % toml_string(target_id)])
    return "\n".join(lines) + "\n"
