# -*- coding: utf-8 -*-
# Copyright (c) airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Package names, versions, hash-pinned install files, uv's change lists and package diffs
(PEP 503 / PEP 440 subset, no ``packaging`` on the target).

Runs on the TARGET: standard library only (Python 3.9+).
"""

from __future__ import annotations

import json
import re
import typing as t

from ansible_collections.airgap.uv.plugins.module_utils._sync_error import SyncError

# ---------------------------------------------------------------------------
# Names and versions (PEP 503 / PEP 440 subset, no ``packaging`` on the target)
# ---------------------------------------------------------------------------

_NAME_SEP_RE = re.compile(r"[-_.]+")

# Compiled by re on first use (and cached there), not at import: only a run that changes
# a package's version compares versions, and compiling this pattern costs about 1 ms.
_VERSION_PATTERN = r"""^\s*v?
    (?:(?P<epoch>[0-9]+)!)?
    (?P<release>[0-9]+(?:\.[0-9]+)*)
    (?P<pre>[-_.]?(?P<pre_l>alpha|a|beta|b|preview|pre|c|rc)[-_.]?(?P<pre_n>[0-9]+)?)?
    (?P<post>(?:-(?P<post_n1>[0-9]+))|(?:[-_.]?(?P<post_l>post|rev|r)[-_.]?(?P<post_n2>[0-9]+)?))?
    (?P<dev>[-_.]?dev[-_.]?(?P<dev_n>[0-9]+)?)?
    (?:\+(?P<local>[a-z0-9]+(?:[-_.][a-z0-9]+)*))?
    \s*$"""
_PRE_RANK = {"a": 0, "alpha": 0, "b": 1, "beta": 1, "c": 2, "rc": 2, "pre": 2, "preview": 2}


def canonical_name(name: str) -> str:
    """PEP 503 normalized project name (what uv prints)."""
    return _NAME_SEP_RE.sub("-", name).lower()


def version_key(version: str) -> t.Optional[tuple]:
    """Sort key for a PEP 440 version, ``None`` when the version does not parse."""
    m = re.match(_VERSION_PATTERN, version, re.IGNORECASE | re.VERBOSE)
    if not m:
        return None
    release = [int(x) for x in m.group("release").split(".")]
    while len(release) > 1 and release[-1] == 0:
        release.pop()
    has_pre, has_post, has_dev = m.group("pre"), m.group("post"), m.group("dev")
    if has_pre:
        pre: tuple = (0, _PRE_RANK[m.group("pre_l").lower()], int(m.group("pre_n") or 0))
    elif has_dev and not has_post:
        pre = (-1,)  # 1.0.dev0 sorts before 1.0a0
    else:
        pre = (1,)
    if has_post:
        post: tuple = (1, int(m.group("post_n1") or m.group("post_n2") or 0))
    else:
        post = (0,)
    dev: tuple = (0, int(m.group("dev_n") or 0)) if has_dev else (1,)
    local: tuple = ()
    if m.group("local"):
        local = tuple(
            (1, int(part), "") if part.isdigit() else (0, 0, part.lower())
            for part in re.split(r"[-_.]", m.group("local"))
        )
    return (int(m.group("epoch") or 0), tuple(release), pre, post, dev, local)


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 like ``cmp(a, b)``; unparsable versions compare as strings."""
    ka, kb = version_key(a), version_key(b)
    if ka is None or kb is None:
        return (a > b) - (a < b)
    return (ka > kb) - (ka < kb)


# ---------------------------------------------------------------------------
# requirements.txt (hash-pinned, as produced by the controller)
# ---------------------------------------------------------------------------

_REQ_RE = re.compile(
    r"^(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?:\[[^\]]*\])?\s*"
    r"==\s*(?P<version>[A-Za-z0-9!+._-]+)(?P<rest>.*)$"
)
_HASH_RE = re.compile(r"--hash(?:=|\s+)(?P<algo>[A-Za-z0-9]+):(?P<digest>[0-9A-Fa-f]+)")
_COMMENT_RE = re.compile(r"(^|\s)#.*$")


class Requirement:
    """One pinned requirement: ``name==version --hash=...``."""

    __slots__ = ("name", "version", "hashes")

    def __init__(self, name: str, version: str, hashes: t.Iterable[str]) -> None:
        self.name = canonical_name(name)
        self.version = version
        self.hashes = frozenset(hashes)

    def __repr__(self) -> str:
        return "Requirement(%r, %r)" % (self.name, self.version)


def _logical_lines(text: str) -> t.Iterator[t.Tuple[int, str]]:
    buf: t.List[str] = []
    start = 0
    for lineno, line in enumerate(text.splitlines(), 1):
        if not buf:
            start = lineno
        # comments: whole line, or " #" after content (as pip does)
        stripped = _COMMENT_RE.sub("", line) if "#" in line else line
        if stripped.rstrip().endswith("\\"):
            buf.append(stripped.rstrip()[:-1])
            continue
        buf.append(stripped)
        joined = " ".join(buf).strip()
        buf = []
        if joined:
            yield start, joined
    if buf and " ".join(buf).strip():
        yield start, " ".join(buf).strip()


def parse_requirements(text: str, source: str = "requirements") -> t.Dict[str, Requirement]:
    """Parse the hash-pinned requirements file shipped by the controller.

    Only ``name==version --hash=algo:digest ...`` lines are accepted: markers must
    already be evaluated on the controller, and index or other options could
    re-enable the network or change what gets installed.
    """
    reqs: t.Dict[str, Requirement] = {}
    for lineno, line in _logical_lines(text):
        where = "%s line %d" % (source, lineno)
        if line.startswith("-"):
            raise SyncError(
                "%s: option %r is not allowed; the requirements file must contain only "
                "'name==version --hash=sha256:...' lines (no index or other options)" % (where, line.split()[0])
            )
        m = _REQ_RE.match(line)
        if not m:
            raise SyncError(
                "%s: cannot parse %r; expected 'name==version --hash=sha256:...'" % (where, line)
            )
        rest = m.group("rest")
        if ";" in rest:
            raise SyncError(
                "%s: environment markers are not supported (%r); the controller must evaluate "
                "them for this host" % (where, line)
            )
        hashes = ["%s:%s" % (h.group("algo").lower(), h.group("digest").lower()) for h in _HASH_RE.finditer(rest)]
        leftover = _HASH_RE.sub("", rest).strip()
        if leftover:
            raise SyncError("%s: unexpected %r after the version (only --hash options are allowed)" % (where, leftover))
        if not hashes:
            raise SyncError("%s: %s has no --hash; every requirement must be hash-pinned" % (where, m.group("name")))
        req = Requirement(m.group("name"), m.group("version"), hashes)
        if req.name in reqs:
            raise SyncError("%s: %s is listed twice" % (where, req.name))
        reqs[req.name] = req
    return reqs


def read_requirements(path: str) -> t.Dict[str, Requirement]:
    try:
        with open(path, "r", encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise SyncError("Cannot read requirements file %s: %s" % (path, exc.strerror or exc))
    reqs = parse_requirements(text, source=path)
    if not reqs:
        # uv would silently do nothing (it needs --allow-empty-requirements to clear an environment)
        raise SyncError("requirements file %s lists no packages; the bundle always holds at least the project" % path)
    return reqs


# ---------------------------------------------------------------------------
# uv output
# ---------------------------------------------------------------------------

INSTALL, REMOVE, REINSTALL = "install", "remove", "reinstall"
_JSON_ACTIONS = {
    "installed": INSTALL,
    "install": INSTALL,
    "added": INSTALL,
    "uninstalled": REMOVE,
    "removed": REMOVE,
    "remove": REMOVE,
    "reinstalled": REINSTALL,
    "reinstall": REINSTALL,
}
# uv's human output, read only where uv has no JSON output: compiled by re on first use.
_TEXT_CHANGE_PATTERN = (
    r"^ (?P<op>[-+~]) (?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?"
    r"(?:==(?P<version>\S+)| @ (?P<url>\S.*))?\s*$"
)
_TEXT_OPS = {"+": INSTALL, "-": REMOVE, "~": REINSTALL}


class Change(t.NamedTuple):
    name: str
    version: t.Optional[str]
    action: str


def parse_changes_json(stdout: str) -> t.Optional[t.List[Change]]:
    """Changes from ``uv pip sync --output-format json``; ``None`` if not understood."""
    try:
        doc = json.loads(stdout)
    except ValueError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("changes"), list):
        return None
    changes = []
    for item in doc["changes"]:
        if not isinstance(item, dict) or "name" not in item:
            return None
        action = _JSON_ACTIONS.get(str(item.get("action", "")).lower())
        if action is None:
            return None
        version = item.get("version")
        changes.append(Change(canonical_name(str(item["name"])), None if version is None else str(version), action))
    return changes


def parse_changes_text(stderr: str) -> t.List[Change]:
    """Changes from uv's human output (`` + name==ver``, `` - name==ver``, `` ~ ...``)."""
    changes = []
    for line in stderr.splitlines():
        m = re.match(_TEXT_CHANGE_PATTERN, line)
        if m:
            changes.append(Change(canonical_name(m.group("name")), m.group("version"), _TEXT_OPS[m.group("op")]))
    return changes


def parse_changes(stdout: str, stderr: str) -> t.List[Change]:
    parsed = parse_changes_json(stdout) if stdout.strip() else None
    return parsed if parsed is not None else parse_changes_text(stderr)


def parse_uv_version(stdout: str) -> str:
    m = re.search(r"\buv\s+([0-9][^\s]*)", stdout)
    return m.group(1) if m else stdout.strip()


def state_before(after: t.Mapping[str, str], changes: t.Iterable[Change]) -> t.Tuple[t.Dict[str, str], t.Set[str]]:
    """Package set before a sync, from the set after it and uv's plan.

    Returns ``(before, reinstalled)``; ``reinstalled`` names packages uv removes and
    installs again at the same version.
    """
    before = dict(after)
    removed: t.Dict[str, t.Optional[str]] = {}
    installed: t.Set[str] = set()
    for change in changes:
        if change.action in (REMOVE, REINSTALL):
            removed[change.name] = change.version
        if change.action in (INSTALL, REINSTALL):
            installed.add(change.name)
    for name in installed:
        before.pop(name, None)
    for name, version in removed.items():
        before[name] = version if version is not None else after.get(name, "unknown")
    reinstalled = {n for n in installed if n in before and n in after and before[n] == after[n]}
    return before, reinstalled


class PackageDiff:
    """Difference between two package sets (community.docker style before/after)."""

    def __init__(self, before: t.Mapping[str, str], after: t.Mapping[str, str], reinstalled: t.Iterable[str] = ()) -> None:
        self.before = dict(before)
        self.after = dict(after)
        self.installed: t.List[t.Dict[str, str]] = []
        self.removed: t.List[t.Dict[str, str]] = []
        self.upgraded: t.List[t.Dict[str, str]] = []
        self.downgraded: t.List[t.Dict[str, str]] = []
        for name in sorted(set(self.before) | set(self.after)):
            old, new = self.before.get(name), self.after.get(name)
            if old is None and new is not None:
                self.installed.append({"name": name, "version": new})
            elif new is None and old is not None:
                self.removed.append({"name": name, "version": old})
            elif old != new and old is not None and new is not None:
                entry = {"name": name, "from": old, "to": new}
                (self.downgraded if compare_versions(new, old) < 0 else self.upgraded).append(entry)
        self.reinstalled = [
            {"name": n, "version": self.after[n]}
            for n in sorted(set(reinstalled))
            if n in self.after and self.before.get(n) == self.after[n]
        ]

    @property
    def changed(self) -> bool:
        return bool(self.installed or self.removed or self.upgraded or self.downgraded or self.reinstalled)

    def as_dict(self) -> t.Dict[str, t.Any]:
        return {
            "installed": self.installed,
            "removed": self.removed,
            "upgraded": self.upgraded,
            "downgraded": self.downgraded,
            "reinstalled": self.reinstalled,
        }


def format_packages(packages: t.Mapping[str, str]) -> t.List[str]:
    return ["%s==%s" % (n, packages[n]) for n in sorted(packages)]


class Plan(t.NamedTuple):
    """What uv plans against the environment in service: packages before, reinstalled, network used."""
    before: t.Dict[str, str]
    reinstalled: t.Set[str]
    network_used: str
