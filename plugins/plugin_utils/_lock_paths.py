# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Where a uv.lock entry may point on the controller's disk.

The wheelhouse reads, builds and ships to hosts whatever local file or directory uv.lock
names. A lock entry may therefore point only inside the workspace (the directory holding
uv.lock), or at a location the workspace's own configuration declares: a ``tool.uv.sources``
path or ``file:`` git URL, a ``name @ file:...`` requirement, or a local ``find-links`` or
index directory (in a pyproject.toml or uv.toml of the workspace, or in ``UV_FIND_LINKS`` /
``UV_INDEX``-style variables). uv writes such entries itself for those declarations (``../lib``
or an absolute path); an entry that nothing declares (``path = "/etc/passwd"``) comes from an
edited lock and is refused. Paths are compared after resolving symbolic links, so a link inside
the workspace does not lead outside it either.

Standard library plus the TOML reader (_toml_file).
"""

from __future__ import annotations

import os
import re
from typing import Iterable, Mapping, Optional, Sequence
from urllib.parse import unquote, urlsplit

from ansible_collections.airgap.uv.plugins.plugin_utils._toml_file import TomlFileError, read_toml

# Directories never searched for pyproject.toml files (environments, caches, VCS data).
_SKIP_DIRS = {".git", ".hg", ".venv", "venv", "__pycache__", "dist", "build", ".tox", ".nox", ".pytest_cache",
              ".mypy_cache", ".ruff_cache", "node_modules"}
_WINDOWS_ABSOLUTE = re.compile(r"^(?:[A-Za-z]:[\\/]|\\\\)")
_DIRECT_REFERENCE = re.compile(r"@\s*((?:git\+)?file:\S+)")
_ENV_LISTS = (("UV_FIND_LINKS", ","), ("UV_INDEX", None), ("UV_DEFAULT_INDEX", None), ("UV_INDEX_URL", None),
              ("UV_EXTRA_INDEX_URL", None))


def file_url_path(url: str) -> str:
    """The local path of a ``file:`` (or ``git+file:``) URL, without its query, fragment or ``@rev``."""
    if url.startswith("git+"):
        url = url[4:]
    path = unquote(urlsplit(url).path)
    # pip-style `git+file:///repo@v1.0`: the revision is not part of the path.
    head, sep, tail = path.rpartition("@")
    return head if sep and "/" not in tail else path


def _local(value: str, base: str) -> Optional[str]:
    """VALUE as an absolute local path when it names one (a path or a file: URL), else None."""
    if value.startswith(("file:", "git+file:")):
        return os.path.normpath(file_url_path(value))
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]+://", value):
        return None  # a remote URL
    return os.path.normpath(os.path.join(base, value))


def _from_settings(settings: Mapping, base: str) -> list:
    """Local locations in a [tool.uv] table (or a uv.toml): find-links and indexes."""
    found = []
    links = settings.get("find-links")
    for value in links if isinstance(links, list) else []:
        if isinstance(value, str):
            found.append(_local(value, base))
    indexes = settings.get("index")
    for index in indexes if isinstance(indexes, list) else []:
        if isinstance(index, dict) and isinstance(index.get("url"), str):
            found.append(_local(index["url"], base))
    for key in ("index-url", "extra-index-url"):
        values = settings.get(key)
        for value in values if isinstance(values, list) else [values]:
            if isinstance(value, str):
                found.append(_local(value, base))
    return found


def _requirement_strings(data: Mapping) -> Iterable[str]:
    project = data.get("project") if isinstance(data.get("project"), dict) else {}
    lists = [project.get("dependencies")]
    optional = project.get("optional-dependencies")
    lists += list(optional.values()) if isinstance(optional, dict) else []
    groups = data.get("dependency-groups")
    lists += list(groups.values()) if isinstance(groups, dict) else []
    tool_uv = (data.get("tool") or {}).get("uv") if isinstance(data.get("tool"), dict) else None
    lists.append(tool_uv.get("dev-dependencies") if isinstance(tool_uv, dict) else None)
    for values in lists:
        for value in values if isinstance(values, list) else []:
            if isinstance(value, str):
                yield value


def _from_pyproject(data: Mapping, base: str) -> list:
    found = []
    for requirement in _requirement_strings(data):
        match = _DIRECT_REFERENCE.search(requirement)
        if match:
            found.append(_local(match.group(1), base))
    tool_uv = (data.get("tool") or {}).get("uv") if isinstance(data.get("tool"), dict) else None
    if not isinstance(tool_uv, dict):
        return found
    sources = tool_uv.get("sources")
    for entry in sources.values() if isinstance(sources, dict) else []:
        for source in entry if isinstance(entry, list) else [entry]:
            if not isinstance(source, dict):
                continue
            if isinstance(source.get("path"), str):
                found.append(_local(source["path"], base))
            if isinstance(source.get("git"), str) and source["git"].startswith("file:"):
                found.append(_local(source["git"], base))
    return found + _from_settings(tool_uv, base)


def declared_locations(workspace: str, environ: Optional[Mapping[str, str]] = None) -> tuple:
    """Absolute local paths the workspace's configuration (and uv's environment) points at."""
    env = os.environ if environ is None else environ
    found: list = []
    for root, dirs, files in os.walk(workspace):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
        for name, reader in (("pyproject.toml", _from_pyproject), ("uv.toml", _from_settings)):
            if name in files:
                try:
                    data = read_toml(os.path.join(root, name))
                except TomlFileError:
                    continue  # the lock check or the selection reports an unreadable file
                found += reader(data, root)
    for variable, separator in _ENV_LISTS:
        for value in (env.get(variable) or "").replace(separator or " ", " ").split():
            found.append(_local(value.split("=", 1)[1] if re.match(r"^[\w.-]+=", value) else value, os.getcwd()))
    return tuple(sorted({path for path in found if path}))


def _inside(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip(os.sep) + os.sep)


def outside_reason(value: str, base: str, workspace: str, declared: Sequence[str] = ()) -> Optional[str]:
    """Why the lock value VALUE (a path relative to BASE, an absolute path or a file: URL) points
    where no lock entry may, or None.

    Allowed: anything inside WORKSPACE or inside one of DECLARED, both as written and after
    resolving symbolic links. Remote URLs are not local paths: None.
    """
    if _WINDOWS_ABSOLUTE.match(value):
        return "%s is an absolute Windows path" % value
    path = _local(value, base)
    if path is None:
        return None
    shown = value if value == path else "%s (%s)" % (value, path)
    allowed = [os.path.normpath(workspace)] + [os.path.normpath(p) for p in declared]
    if not any(_inside(path, parent) for parent in allowed):
        return "%s is outside the workspace %s" % (shown, workspace)
    real = os.path.realpath(path)
    if not any(_inside(real, os.path.realpath(parent)) for parent in allowed):
        return "%s leads through a symbolic link to %s, outside the workspace %s" % (shown, real, workspace)
    return None
