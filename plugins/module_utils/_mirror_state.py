# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to the airgap.uv collection
"""What the index inside the air gap (airgap.uv.uv_mirror) was fed, and its pruning policy.

Runs on the mirror host: standard library only (Python 3.9+).

Each feed (one wheelhouse, or one bundle) is recorded as ``STATE/<project>/<feed id>.json``:
``{"format", "project", "feed", "files": {file name: sha256}}``, the feed id being a digest of
those files, so feeding the same files again finds its record. A record's modification time is
when that feed was last fed; the newest ``keep`` feeds of each project are kept. Pruning removes
the records of the other feeds, and those of their files that no kept feed (of any project)
references. A file no feed ever recorded (copied with ``uv_mirror_feed``, or by hand) is never
removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import typing as t

RECORD_FORMAT = 1
_PROJECT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+!-]*$")


class Record(t.NamedTuple):
    project: str
    feed: str
    mtime: float
    files: t.Dict[str, str]


class Plan(t.NamedTuple):
    """What recording FEED of PROJECT does: write its record (new) or make it the newest (touch), and prune."""

    record: str  # "new", "touch" or "same"
    dropped: t.List[Record]
    removed: t.List[str]


def feed_id(files: t.Mapping[str, str]) -> str:
    """The id of a feed of FILES ({file name: sha256}): the same files, the same id."""
    text = "".join("%s %s\n" % (name, files[name]) for name in sorted(files))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def check_names(project: str, files: t.Iterable[str]) -> None:
    """ValueError unless PROJECT and every file name is a plain name (no path, no dot first)."""
    if not _PROJECT.match(project):
        raise ValueError("refusing project name %r: letters, digits, '.', '_' and '-' only" % project)
    for name in files:
        if not _FILE.match(name):
            raise ValueError("refusing file name %r on the mirror: a plain file name only" % name)


def read_records(state: str) -> t.List[Record]:
    """Every feed record under STATE; a record that cannot be read is skipped (and so never prunes)."""
    records = []
    try:
        projects = sorted(os.listdir(state))
    except FileNotFoundError:
        return records
    for project in projects:
        directory = os.path.join(state, project)
        if not _PROJECT.match(project) or not os.path.isdir(directory):
            continue
        for name in sorted(os.listdir(directory)):
            path = os.path.join(directory, name)
            if not name.endswith(".json") or name.startswith("."):
                continue
            try:
                with open(path, encoding="utf-8") as handle:
                    data = json.load(handle)
                files = data["files"]
                if data.get("format") != RECORD_FORMAT or not isinstance(files, dict):
                    continue
                records.append(Record(project, name[:-5], os.stat(path).st_mtime,
                                      {str(k): str(v) for k, v in files.items() if _FILE.match(str(k))}))
            except (OSError, ValueError, KeyError, TypeError):
                continue
    return records


def plan(records: t.Sequence[Record], project: str, feed: str, files: t.Mapping[str, str], keep: int) -> Plan:
    """What feeding FILES (FEED of PROJECT) with KEEP feeds per project records and prunes."""
    if keep < 1:
        raise ValueError("keep is %d: keep at least the feed being fed (1 or more)" % keep)
    own = [r for r in records if r.project == project]
    current = next((r for r in own if r.feed == feed), None)
    others = sorted((r for r in own if r.feed != feed), key=lambda r: (r.mtime, r.feed), reverse=True)
    if current is None:
        state = "new"
    elif others and others[0].mtime >= current.mtime:
        state = "touch"
    else:
        state = "same"
    # The feed being fed is the newest of its project; the KEEP - 1 before it stay with it.
    dropped = others[keep - 1:]
    kept_files = set(files)
    for record in records:
        if record.project != project or record.feed == feed or record in others[:keep - 1]:
            kept_files.update(record.files)
    removed = sorted({name for record in dropped for name in record.files} - kept_files)
    return Plan(state, dropped, removed)


def record_path(state: str, project: str, feed: str) -> str:
    return os.path.join(state, project, feed + ".json")


def write_record(state: str, project: str, feed: str, files: t.Mapping[str, str], how: str) -> None:
    """Write FEED's record (HOW "new"), or make it the newest of its project (HOW "touch")."""
    path = record_path(state, project, feed)
    if how == "touch":
        os.utime(path)
        return
    if how != "new":
        return
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    tmp = path + ".tmp-%d" % os.getpid()
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump({"format": RECORD_FORMAT, "project": project, "feed": feed, "files": dict(sorted(files.items()))},
                  handle, indent=1, sort_keys=True)
        handle.write("\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def prune(state: str, packages_fd: int, pruning: Plan) -> t.List[str]:
    """Remove PRUNING's files (names in the directory PACKAGES_FD, no link followed) and its dropped
    records; the files removed."""
    removed = []
    for name in pruning.removed:
        try:
            os.unlink(name, dir_fd=packages_fd)
            removed.append(name)
        except FileNotFoundError:
            pass
    for record in pruning.dropped:
        try:
            os.unlink(record_path(state, record.project, record.feed))
        except FileNotFoundError:
            pass
    return removed
