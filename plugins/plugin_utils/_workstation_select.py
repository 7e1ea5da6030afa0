# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Which entries of a workstation's uv cache serve the current lock and tools (issue 13, pruning).

The controller's cache per target keeps everything it ever held: after a lock change the old
lock's wheels are still there, still linked. What ships must be only what serves: the lock's
packages for the target (all groups and extras asked for), the build requirements of the
project's editable build (in no lock: the host resolves them offline from the cached index pages,
so the versions uv picks from those pages must stay), and the tools.

How it is found, and why this way. Names and versions read from the lock and the tool
environments would miss the build requirements, which only uv knows (``[build-system]`` plus what
the backend's ``get_requires_for_build_editable`` asks for, resolved against the cached pages),
and inodes of the scratch environments miss them too: uv builds in a temporary environment that
it deletes. So uv is asked: the same steps the host will run (``uv sync --frozen --offline`` into
a fresh environment, which also builds the project editable, and ``uv tool install --offline``
of each tool) are replayed against a copy of the cache whose archives are hard links of the
persistent ones, with ``UV_LINK_MODE=hardlink``. Every file uv installs, into the environment,
a tool environment or a build environment it deletes afterwards, is a new hard link of an
archive file, and POSIX says ``link()`` and ``unlink()`` mark the file's status change time
(ctime): the archives with a file changed after a marker set just before the replay are the ones
uv used. The metadata follows the kept archives (``select``). Then the proof: a second replay
against a cache made of only what will ship must succeed offline; when it does not (an entry this
logic did not foresee), nothing is pruned and the report says why. Both replays take about a
second for a 20-package project and run only when the lock, the project, the tools or the cache
changed (``selection.json`` records the inputs' digest).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
from typing import Iterable, Mapping, Optional, Sequence

from ansible_collections.airgap.uv.plugins.plugin_utils._workstation_cache import (
    FillRequest,
    archive_links,
    cache_entries,
    fill,
    pack,
    run_uv,
)

SELECTION_FILE = "selection.json"
# A link's siblings in wheels-v*: the HTTP cache entry and the wheel's metadata.
LINK_SIBLINGS = (".http", ".msgpack")
PAGE_SUFFIX = ".rkyv"


def _bucket(relative: str) -> str:
    return relative.split("/", 1)[0]


def select(meta: Sequence[str], links: Mapping[str, str], used: Iterable[str]) -> tuple:
    """(metadata, archives) of the cache that serve, given the archives uv USED.

    META are the cache's shipped metadata paths (links included), LINKS maps each link to the
    archive it points to (``archive-v0/<id>``), all relative with ``/``. A link is kept when its
    archive was used; in ``wheels-v*`` its ``.http``/``.msgpack`` siblings with it; in
    ``sdists-v*`` the whole source entry holding it (``<entry>/revision.*`` and
    ``<entry>/<revision>/...``: the built wheel, its metadata, the unpacked source); in
    ``simple-v*`` the index page of each name with a kept link under the same index. Files at a
    bucket's top (markers) and ``git-v*`` (the git databases and checkouts) are kept; anything
    this logic does not know is kept rather than dropped.
    """
    used = set(used)
    kept_links = frozenset(link for link, archive in links.items() if archive in used)
    archives = sorted({links[link] for link in kept_links})
    siblings = {link + suffix for link in kept_links if _bucket(link).startswith("wheels-v") for suffix in LINK_SIBLINGS}
    entries = tuple(os.path.dirname(os.path.dirname(link)) + "/" for link in kept_links
                    if _bucket(link).startswith("sdists-v"))
    # "pypi/", "pypi/ruff/", ... for wheels-v7/pypi/ruff/0.17.6-...: where a kept link lies, under its bucket.
    named = {rest[:i + 1] for rest in (link.split("/", 1)[1] for link in kept_links)
             for i, char in enumerate(rest) if char == "/"}
    kept = []
    for path in meta:
        bucket, rest = (path.split("/", 1) + [""])[:2]
        if path in links:
            keep = path in kept_links
        elif "/" not in rest or bucket.startswith("git-v"):
            keep = True
        elif bucket.startswith("wheels-v"):
            keep = path in siblings
        elif bucket.startswith("sdists-v"):
            keep = path.startswith(entries)
        elif bucket.startswith("simple-v") and rest.endswith(PAGE_SUFFIX):
            keep = rest[:-len(PAGE_SUFFIX)] + "/" in named
        else:
            keep = True
        if keep:
            kept.append(path)
    return kept, archives


def _copy_meta(cache: str, clone: str, meta: Iterable[str]) -> None:
    for name in meta:
        source, dest = os.path.join(cache, name), os.path.join(clone, name)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if os.path.islink(source):
            os.symlink(os.readlink(source), dest)
            # The link's own time goes into the tar of the metadata: the copy packs to the same bytes.
            stat = os.lstat(source)
            os.utime(dest, ns=(stat.st_atime_ns, stat.st_mtime_ns), follow_symlinks=False)
        elif os.path.isfile(source):
            shutil.copy2(source, dest)


def clone_cache(cache: str, clone: str, meta: Iterable[str], archives: Iterable[str]) -> None:
    """CLONE holds META (copied: uv may rewrite metadata) and ARCHIVES (hard links: uv never changes one)."""
    _copy_meta(cache, clone, meta)
    for archive in archives:
        shutil.copytree(os.path.join(cache, archive), os.path.join(clone, archive), symlinks=True, copy_function=os.link)


def replay(request: FillRequest, work: str) -> Optional[str]:
    """Run offline, in WORK (whose ``uv-cache`` is ready), what the host will: None, or uv's error."""
    project = os.path.join(work, "project")
    shutil.copytree(os.path.join(request.work, "project"), project, symlinks=True)
    request = dataclasses.replace(request, work=work, environ=dict(request.environ, UV_LINK_MODE="hardlink"))
    python = ["--python-platform", request.platform, "--python", request.python, "--offline"]
    steps = [(["sync", "--frozen", *request.sync_args, *python], project)]
    steps += [(["tool", "install", tool, *python], work) for tool in request.tools]
    for args, cwd in steps:
        for scratch_dir in ("tools", "tool-bin"):
            shutil.rmtree(os.path.join(work, scratch_dir), ignore_errors=True)
        proc = run_uv(request, args, cwd)
        if proc.returncode != 0:
            return "uv %s: %s" % (" ".join(args), proc.stderr.strip()[-1500:])
    return None


def _marker(path: str) -> int:
    """A file's ctime between two pauses; the pauses outlast a coarse clock tick (1 s when the file system
    keeps whole seconds)."""
    time.sleep(0.05)
    with open(path, "w", encoding="utf-8"):
        pass
    mark = os.stat(path).st_ctime_ns
    if mark % 1000000 == 0:
        time.sleep(1.1)
        os.utime(path)
        with open(path, "a", encoding="utf-8"):
            pass
        mark = os.stat(path).st_ctime_ns
        time.sleep(1.1)
    time.sleep(0.05)
    return mark


def _touched(cache: str, archive: str, mark: int) -> bool:
    for root, dummy, files in os.walk(os.path.join(cache, archive)):
        for name in files:
            if os.lstat(os.path.join(root, name)).st_ctime_ns > mark:
                return True
    return False


def observe(request: FillRequest, meta: Sequence[str], archives: Sequence[str], scratch: str) -> tuple:
    """(archives uv used replaying the host's steps against everything, None or uv's error)."""
    work = os.path.join(scratch, "observe")
    clone_cache(request.cache, os.path.join(work, "uv-cache"), meta, archives)
    mark = _marker(os.path.join(scratch, "marker"))
    error = replay(request, work)
    used = [archive for archive in archives if _touched(request.cache, archive, mark)]
    return used, error


def inputs_digest(request: FillRequest, meta: Sequence[str], archives: Sequence[str]) -> str:
    """What the selection depends on: the scratch project's files, the request, the cache's entries."""
    digest = hashlib.sha256()
    digest.update(json.dumps([request.platform, request.python, list(request.sync_args), list(request.tools),
                              list(archives)]).encode())
    project = os.path.join(request.work, "project")
    for root, dirs, files in os.walk(project):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                digest.update(("%s\0" % os.path.relpath(path, project)).encode())
                digest.update(hashlib.sha256(handle.read()).digest())
    for name in meta:
        path = os.path.join(request.cache, name)
        if os.path.islink(path):
            digest.update(("%s\0%s\n" % (name, os.readlink(path))).encode())
            continue
        stat = os.lstat(path)
        digest.update(("%s\0%d\0%d\n" % (name, stat.st_size, stat.st_mtime_ns)).encode())
    return digest.hexdigest()


def _read_selection(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            return dict(json.load(handle))
    except (OSError, ValueError, TypeError):
        return {}


def serving(request: FillRequest, meta: Sequence[str], links: Mapping[str, str], archives: Sequence[str],
            record: str, remember: bool = True) -> tuple:
    """(metadata, archives, report) that ship: only what serves, proven by an offline replay.

    The result is remembered (REMEMBER) in RECORD (``selection.json``) under the inputs' digest, so
    a rerun with the same inputs replays nothing. When a replay fails, everything ships and the
    report says why (``pruning``).
    """
    digest = inputs_digest(request, meta, archives)
    known = _read_selection(record)
    if known.get("digest") == digest:
        used, verdict = known.get("used", []), known.get("pruning", "")
    else:
        used, verdict = _decide(request, meta, links, archives)
        if remember:
            text = json.dumps({"digest": digest, "used": used, "pruning": verdict}, indent=1, sort_keys=True)
            with open(record + ".tmp", "w", encoding="utf-8") as handle:
                handle.write(text + "\n")
            os.replace(record + ".tmp", record)
    if verdict != "verified":
        return list(meta), list(archives), {"pruning": verdict}
    kept_meta, kept_archives = select(meta, links, used)
    return kept_meta, kept_archives, {"pruning": verdict,
                                      "left_out": sorted(set(archives) - set(kept_archives))}


def _decide(request: FillRequest, meta: Sequence[str], links: Mapping[str, str], archives: Sequence[str]) -> tuple:
    """(used archives, "verified" or why nothing is pruned)."""
    scratch = os.path.join(request.work, "replay")
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch)
    try:
        used, error = observe(request, meta, archives, scratch)
        if error:
            return [], "not pruned: the offline replay against the whole cache failed (%s)" % error
        kept_meta, kept_archives = select(meta, links, used)
        proof = os.path.join(scratch, "proof")
        clone_cache(request.cache, os.path.join(proof, "uv-cache"), kept_meta, kept_archives)
        error = replay(request, proof)
        if error:
            return used, "not pruned: the offline replay against only what would ship failed (%s)" % error
        return used, "verified"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def pack_serving(request: FillRequest, ship: str, uv_version: str, prune: bool, record: str, dry: bool = False) -> dict:
    """Pack into SHIP what serves (everything when not PRUNE); DRY: report what would change, write nothing."""
    meta, archives = cache_entries(request.cache)
    report = {"pruning": "off: everything in the controller's cache ships"}
    if prune:
        meta, archives, report = serving(request, meta, archive_links(request.cache, meta), archives, record,
                                         remember=not dry)
    result = pack(request.cache, ship, uv_version, (meta, archives), dry)
    result.update(report)
    return result


def simulate(request: FillRequest, ship: str, uv_version: str, prune: bool, record: str) -> dict:
    """Check mode: what a real run would change in SHIP, found in a throwaway copy of the cache (archives hard
    linked), with every step offline; a step that would need the index is a change (``online``)."""
    temp = tempfile.mkdtemp(prefix="check-", dir=request.work)
    try:
        meta, archives = cache_entries(request.cache)
        clone_cache(request.cache, os.path.join(temp, "uv-cache"), meta, archives)
        trial = dataclasses.replace(request, work=temp)
        online = fill(trial, offline_only=True)
        if online:
            return {"written": [], "removed": [], "online": online, "pruning": "unknown until the index is asked"}
        report = pack_serving(trial, ship, uv_version, prune, record, dry=True)
        report["online"] = []
        return report
    finally:
        shutil.rmtree(temp, ignore_errors=True)
