# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Credentials for private-index downloads, found the way uv finds them.

uv writes the URLs in uv.lock without credentials, so the controller looks them up in the
user's existing uv configuration, as uv does for the same URL. Credentials are only ever
sent to the origin (scheme, host and port) they were configured for. For an artifact URL
the first of these that yields a username or password wins:

1. userinfo in the artifact URL itself (``https://user:pass@host/...``);
2. an index on the same origin as the URL, with
   a. ``UV_INDEX_<NAME>_USERNAME`` / ``UV_INDEX_<NAME>_PASSWORD`` for a named index, where
      NAME is the index name uppercased with every non-alphanumeric character turned into
      ``_`` (these win over the index URL's own userinfo, as in uv), else
   b. userinfo embedded in the index URL.
   Indexes are taken in uv's order: ``UV_INDEX`` (space-separated, ``name=url`` allowed),
   ``UV_DEFAULT_INDEX``, ``UV_INDEX_URL``, ``UV_EXTRA_INDEX_URL``; then the project's
   ``uv.toml`` or else its pyproject.toml ``[tool.uv]``; then the user's uv.toml
   (``$XDG_CONFIG_HOME/uv/uv.toml`` or ``~/.config/uv/uv.toml``) and the system's
   (``$XDG_CONFIG_DIRS/uv/uv.toml``, ``/etc/uv/uv.toml``). ``UV_CONFIG_FILE`` replaces all
   those files and ``UV_NO_CONFIG`` drops them, as in uv. When several indexes on the origin
   have credentials, the one whose root URL is the longest prefix of the artifact URL wins,
   then the first;
3. the netrc file (``$NETRC``, else ``~/.netrc``) entry for the host name. It also supplies
   the password when 1 or 2 gave a username only and the netrc login is that username.

Nothing here logs, and neither :class:`Credentials` nor :class:`CredentialProvider` shows a
secret in its repr; :meth:`CredentialProvider.redact` scrubs every secret handed out from a
text, for error messages built from lower-level exceptions.
"""

from __future__ import annotations

import base64
import netrc
import os
import re
import threading
from dataclasses import dataclass, field
from typing import Mapping, Optional
from urllib.parse import unquote, urlsplit, urlunsplit

from ansible_collections.airgap.uv.plugins.plugin_utils._toml_file import TomlFileError, read_toml
from ansible_collections.airgap.uv.plugins.plugin_utils._uv_env import env_flag

_ENV_INDEX_VARS = ("UV_INDEX", "UV_DEFAULT_INDEX", "UV_INDEX_URL", "UV_EXTRA_INDEX_URL")
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Credentials:
    """HTTP Basic credentials; ``source`` says where they came from and holds no secret."""

    username: str = field(repr=False)
    password: Optional[str] = field(default=None, repr=False)
    source: str = ""

    def authorization(self) -> str:
        token = "%s:%s" % (self.username, self.password or "")
        return "Basic " + base64.b64encode(token.encode("utf-8")).decode("ascii")


@dataclass(frozen=True)
class IndexConfig:
    """One index uv would use: its URL (possibly with userinfo), name, and where it is set."""

    url: str = field(repr=False)
    name: Optional[str] = None
    origin: str = ""


def env_var_name(index_name: str) -> str:
    """``UV_INDEX_<NAME>`` prefix for an index name, as uv spells it."""
    return "UV_INDEX_" + re.sub(r"[^A-Za-z0-9]", "_", index_name.upper())


def strip_userinfo(url: str) -> str:
    """URL without ``user:password@``; what goes on the wire and into messages."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def url_origin(url: str) -> Optional[tuple[str, str, int]]:
    """(scheme, host, port) of an http(s) URL, or None."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS or not parts.hostname:
            return None
        return scheme, parts.hostname.lower(), parts.port or _DEFAULT_PORTS[scheme]
    except ValueError:
        return None


def _url_credentials(url: str, source: str) -> Optional[Credentials]:
    try:
        parts = urlsplit(url)
        username, password = parts.username, parts.password
    except ValueError:
        return None
    if not username and not password:
        return None
    return Credentials(unquote(username or ""), unquote(password) if password is not None else None, source)


def parse_index_arg(value: str, origin: str) -> IndexConfig:
    """One ``--index``-style value: ``URL`` or ``name=URL``."""
    name, sep, url = value.partition("=")
    if sep and name and ":" not in name and "/" not in name:
        return IndexConfig(url=url, name=name, origin=origin)
    return IndexConfig(url=value, origin=origin)


def _root_url(url: str) -> str:
    """Index URL minus a trailing ``simple`` segment: files often live beside it."""
    plain = strip_userinfo(url).rstrip("/")
    if plain.endswith("/simple"):
        plain = plain[: -len("simple")]
    return plain if plain.endswith("/") else plain + "/"


class CredentialProvider:
    """Resolves the credentials uv would send for a URL from the user's configuration.

    ``project_dir`` adds the project's own indexes (uv.toml or pyproject.toml); ``environ``
    and ``home`` default to the process's environment and home directory.
    """

    def __init__(self, project_dir: Optional[str] = None, environ: Optional[Mapping[str, str]] = None,
                 home: Optional[str] = None) -> None:
        self.project_dir = project_dir
        self._env = dict(os.environ if environ is None else environ)
        self._home = home if home is not None else os.path.expanduser("~")
        self._mutex = threading.Lock()
        self._indexes: Optional[list[IndexConfig]] = None
        self._netrc: Optional[netrc.netrc] = None
        self._netrc_loaded = False
        self._handed_out: set[str] = set()

    def __repr__(self) -> str:
        return "CredentialProvider(project_dir=%r)" % (self.project_dir,)

    # -- configuration -------------------------------------------------------------------

    def indexes(self) -> list[IndexConfig]:
        """Every index uv would use, highest precedence first."""
        with self._mutex:
            if self._indexes is None:
                found = []
                for var in _ENV_INDEX_VARS:
                    for value in self._env.get(var, "").split():
                        found.append(parse_index_arg(value, var))
                for path, table in self._config_tables():
                    found.extend(_indexes_in(table, path))
                self._indexes = found
            return self._indexes

    def _config_files(self) -> list[tuple[str, bool]]:
        """(path, is a pyproject.toml) of each uv config file uv would read, by precedence."""
        if self._env.get("UV_CONFIG_FILE"):
            return [(self._env["UV_CONFIG_FILE"], False)]
        if env_flag("UV_NO_CONFIG", self._env):
            return []
        files: list[tuple[str, bool]] = []
        if self.project_dir:
            uv_toml = os.path.join(self.project_dir, "uv.toml")
            if os.path.isfile(uv_toml):
                files.append((uv_toml, False))
            else:
                files.append((os.path.join(self.project_dir, "pyproject.toml"), True))
        xdg = self._env.get("XDG_CONFIG_HOME") or os.path.join(self._home, ".config")
        files.append((os.path.join(xdg, "uv", "uv.toml"), False))
        system = [os.path.join(d, "uv", "uv.toml") for d in (self._env.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(":") if d]
        # Of the system files uv reads the first that exists.
        for path in system + ["/etc/uv/uv.toml"]:
            if os.path.isfile(path):
                files.append((path, False))
                break
        return files

    def _config_tables(self) -> list[tuple[str, dict]]:
        tables = []
        for path, is_pyproject in self._config_files():
            data = _read_toml(path)
            if is_pyproject:
                data = data.get("tool", {}).get("uv", {}) if isinstance(data.get("tool"), dict) else {}
            if isinstance(data, dict) and data:
                tables.append((path, data))
        return tables

    def _netrc_file(self) -> Optional[netrc.netrc]:
        with self._mutex:
            if not self._netrc_loaded:
                self._netrc_loaded = True
                path = self._env.get("NETRC") or os.path.join(self._home, ".netrc")
                try:
                    # An explicit path, as uv: no ftp-style permission check.
                    self._netrc = netrc.netrc(path)
                except (OSError, netrc.NetrcParseError):
                    self._netrc = None
            return self._netrc

    # -- lookup --------------------------------------------------------------------------

    def credentials_for(self, url: str) -> Optional[Credentials]:
        """The credentials uv would send for URL, or None."""
        origin = url_origin(url)
        if origin is None:
            return None
        found = _url_credentials(url, "the URL") or self._index_credentials(url, origin)
        if found is None or found.password is None:
            found = self._with_netrc(found, origin[1])
        if found is not None:
            with self._mutex:
                self._handed_out.update(v for v in (found.password, found.authorization().split(" ", 1)[1]) if v)
                if len(found.username) >= 3:
                    self._handed_out.add(found.username)
        return found

    def authorization(self, url: str) -> Optional[str]:
        """``Authorization`` header value for URL, or None."""
        found = self.credentials_for(url)
        return found.authorization() if found is not None else None

    def _index_credentials(self, url: str, origin: tuple) -> Optional[Credentials]:
        candidates = []
        for position, index in enumerate(self.indexes()):
            if url_origin(index.url) != origin:
                continue
            found = None
            if index.name:
                var = env_var_name(index.name)
                username = self._env.get(var + "_USERNAME")
                password = self._env.get(var + "_PASSWORD")
                if username is not None or password is not None:
                    found = Credentials(username or "", password, "%s_USERNAME/%s_PASSWORD" % (var, var))
            if found is None:
                found = _url_credentials(index.url, "the URL of index %s (%s)" % (index.name or "", index.origin))
            if found is not None:
                root = _root_url(index.url)
                prefix = len(root) if strip_userinfo(url).startswith(root) else 0
                candidates.append((-prefix, position, found))
        return min(candidates, key=lambda c: c[:2])[2] if candidates else None

    def _with_netrc(self, found: Optional[Credentials], host: str) -> Optional[Credentials]:
        rc = self._netrc_file()
        entry = rc.authenticators(host) if rc is not None else None
        if not entry:
            return found
        login, dummy, password = entry
        if found is None:
            return Credentials(login or "", password or None, "netrc") if (login or password) else None
        if found.username == login and password:
            return Credentials(found.username, password, found.source + " and netrc")
        return found

    def missing_hint(self, url: str) -> str:
        """How to configure credentials for URL, naming the index env variables when known."""
        origin = url_origin(url)
        names = [index.name for index in self.indexes() if index.name and origin and url_origin(index.url) == origin]
        ways = []
        if names:
            var = env_var_name(names[0])
            ways.append("set %s_USERNAME and %s_PASSWORD (index '%s')" % (var, var, names[0]))
        else:
            ways.append("set UV_INDEX_<NAME>_USERNAME/_PASSWORD for the named index")
        ways.append("put them in the index URL (UV_INDEX, UV_INDEX_URL)")
        ways.append("add a netrc entry for %s (~/.netrc or $NETRC)" % (origin[1] if origin else "the host"))
        return "configure credentials as for uv: " + ", or ".join(ways)

    def redact(self, text: str) -> str:
        """TEXT with every password, header token and username (3+ characters) handed out replaced by ``***``."""
        with self._mutex:
            secrets = sorted(self._handed_out, key=len, reverse=True)
        for secret in secrets:
            text = text.replace(secret, "***")
        return text


def _indexes_in(table: dict, path: str) -> list[IndexConfig]:
    found = []
    for entry in table.get("index") or []:
        if isinstance(entry, dict) and isinstance(entry.get("url"), str):
            name = entry.get("name")
            found.append(IndexConfig(url=entry["url"], name=name if isinstance(name, str) else None, origin=path))
    for key in ("index-url", "extra-index-url"):
        value = table.get(key)
        for url in [value] if isinstance(value, str) else (value or []):
            if isinstance(url, str):
                found.append(IndexConfig(url=url, origin=path))
    return found


def _read_toml(path: str) -> dict:
    """A TOML file's table; {} when absent or unreadable (uv itself reports broken files)."""
    try:
        data = read_toml(path)
    except TomlFileError:
        return {}
    return data if isinstance(data, dict) else {}
