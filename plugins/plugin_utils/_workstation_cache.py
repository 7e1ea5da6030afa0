# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A developer workstation's uv cache, made on the controller (issue 13).

uv takes a locked registry package offline only from the lock's URL or from its own cache, so
the workstation gets a cache: the controller runs the uv version the host gets (same cache
format) with ``--python-platform`` of the host and a controller Python of the host's version
against a scratch copy of the project, and with ``uv tool install`` for each tool. The cache is
persistent per target, so a rerun adds only what is new; it is tried ``--offline`` first, which
is exactly what the host will do, and uv goes online only when that fails.

What ships is packed into ``chunks``: one gzip tar per unpacked archive that a kept link points
to (``archive-v0/<id>``, stable while the cache lives) and one for the small metadata (links,
HTTP cache entries, index pages, built wheels of sdists and git sources, git checkouts). Tars are
deterministic (sorted, owner 0, gzip without time), so an unchanged cache packs to the same bytes
and `airgap.uv.push` sends nothing.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Optional, Sequence

SEED_FILE = "seed.json"
CHUNKS_DIR = "cache"
# Cache buckets that serve the host; the rest (builds, interpreters, tool environments) are the
# controller's own. Names are prefixes: uv versions its buckets (wheels-v7, simple-v27, ...).
SHIPPED_BUCKETS = ("wheels-v", "simple-v", "sdists-v", "git-v")
ARCHIVE_BUCKET = "archive-v"
# Inside shipped buckets: the scratch project's own editable build and uv's lock files.
SKIPPED_PARTS = ("editable", "locks")


class WorkstationError(Exception):
    """A failure with a message for the user."""


@dataclass
class FillRequest:
    """What one target's cache must serve."""

    uv: str
    project: str
    python: str
    platform: str
    work: str
    sync_args: Sequence[str] = ()
    tools: Sequence[str] = ()
    environ: Mapping[str, str] = field(default_factory=dict)

    @property
    def cache(self) -> str:
        return os.path.join(self.work, "uv-cache")


def python_platform(arch: str, libc: Optional[str], libc_version: Optional[str], os_name: str) -> str:
    """uv's ``--python-platform`` naming the host's CPU and C library (exact glibc version)."""
    if os_name != "linux" or arch not in ("x86_64", "aarch64"):
        raise WorkstationError("A workstation must be Linux on x86_64 or aarch64 (uv's --python-platform); "
                               "this host is %s on %s." % (os_name, arch))
    if libc == "musl":
        return "%s-unknown-linux-musl" % arch
    try:
        major, minor = (int(part) for part in (libc_version or "").split(".")[:2])
    except ValueError:
        raise WorkstationError("The host's glibc version is unknown (%r)." % libc_version) from None
    if (major, minor) < (2, 17):
        raise WorkstationError("glibc %s is older than manylinux2014 (2.17)." % libc_version)
    # uv names glibc 2.17 .. 2.40; a newer host takes the newest name (wheels for a newer glibc are rare).
    return "%s-manylinux_2_%d" % (arch, min(minor, 40) if major == 2 else 40)


def group_args(groups: Sequence[str], all_groups: bool, extras: Sequence[str], all_extras: bool) -> list:
    """``uv sync`` selection flags: what the cache must hold so the user's ``uv sync --group X`` works."""
    args = ["--all-groups"] if all_groups else [a for g in groups for a in ("--group", g)]
    args += ["--all-extras"] if all_extras else [a for e in extras for a in ("--extra", e)]
    return args


def run_uv(request: FillRequest, args: Sequence[str], cwd: str) -> subprocess.CompletedProcess:
    env = dict(request.environ)
    env.update(UV_CACHE_DIR=request.cache, UV_PROJECT_ENVIRONMENT=os.path.join(request.work, "venv"),
               UV_TOOL_DIR=os.path.join(request.work, "tools"), UV_TOOL_BIN_DIR=os.path.join(request.work, "tool-bin"),
               UV_NO_PROGRESS="1")
    env.pop("UV_OFFLINE", None)
    return subprocess.run([request.uv, *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, check=False)


def _offline_then_online(request: FillRequest, args: Sequence[str], cwd: str, what: str, offline_only: bool) -> bool:
    """Run ARGS offline; when the cache cannot serve it, online (unless OFFLINE_ONLY). True when it needed the index."""
    if run_uv(request, [*args, "--offline"], cwd).returncode == 0:
        return False
    if offline_only:
        return True
    proc = run_uv(request, args, cwd)
    if proc.returncode != 0:
        raise WorkstationError("%s failed on the controller (uv %s): %s" % (what, " ".join(args), proc.stderr.strip()[-2000:]))
    return True


def copy_project(project: str, scratch: str) -> None:
    """SCRATCH holds PROJECT's tracked files (all files but .git and .venv when it is not a git tree)."""
    if os.path.isdir(scratch):
        shutil.rmtree(scratch)
    if os.path.isdir(os.path.join(project, ".git")):
        listed = subprocess.run(["git", "-C", project, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
        if listed.returncode != 0:
            raise WorkstationError("git ls-files failed in %s: %s" % (project, listed.stderr.decode(errors="replace")))
        for name in sorted(set(filter(None, listed.stdout.decode().split("\0")))):
            source = os.path.join(project, name)
            if os.path.isfile(source):
                os.makedirs(os.path.dirname(os.path.join(scratch, name)), exist_ok=True)
                shutil.copy2(source, os.path.join(scratch, name))
        return
    shutil.copytree(project, scratch, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__"))


def fill(request: FillRequest, offline_only: bool = False) -> list:
    """Make the target's cache serve the sync and the tools; the steps that needed (OFFLINE_ONLY: would need)
    the network."""
    scratch = os.path.join(request.work, "project")
    copy_project(request.project, scratch)
    python = ["--python-platform", request.platform, "--python", request.python]
    online = []
    if _offline_then_online(request, ["sync", "--frozen", *request.sync_args, *python], scratch, "uv sync",
                            offline_only):
        online.append("sync")
    for tool in request.tools:
        for scratch_dir in ("tools", "tool-bin"):
            shutil.rmtree(os.path.join(request.work, scratch_dir), ignore_errors=True)
        if _offline_then_online(request, ["tool", "install", tool, *python], request.work, "uv tool install",
                                offline_only):
            online.append(tool)
    return online


def _shipped(relative: str) -> bool:
    parts = relative.split(os.sep)
    return parts[0].startswith(SHIPPED_BUCKETS) and not any(p in SKIPPED_PARTS for p in parts[1:3]) \
        and not parts[-1].endswith(".lock")


def cache_entries(cache: str) -> tuple:
    """(metadata paths, archive ids) of CACHE that serve the host, relative and sorted."""
    meta, archives = [], set()
    for root, dirs, files in os.walk(cache):
        rel_root = os.path.relpath(root, cache)
        if rel_root == ".":
            dirs[:] = sorted(d for d in dirs if d.startswith(SHIPPED_BUCKETS))
            continue
        dirs.sort()
        for name in sorted(dirs + files):
            relative = os.path.normpath(os.path.join(rel_root, name))
            path = os.path.join(cache, relative)
            if not _shipped(relative):
                if name in dirs:
                    dirs.remove(name)
                continue
            if os.path.islink(path):
                target = os.path.normpath(os.path.join(os.path.dirname(relative), os.readlink(path)))
                if target.split(os.sep)[0].startswith(ARCHIVE_BUCKET) and os.path.isdir(os.path.join(cache, target)):
                    archives.add(target)
                    meta.append(relative)
            elif name in files:
                meta.append(relative)
    return sorted(meta), sorted(archives)


def archive_links(cache: str, meta: Iterable[str]) -> dict:
    """The links among META (from ``cache_entries``) and the archive each points to."""
    links = {}
    for relative in meta:
        path = os.path.join(cache, relative)
        if os.path.islink(path):
            links[relative] = os.path.normpath(os.path.join(os.path.dirname(relative), os.readlink(path)))
    return links


def _tar_bytes(cache: str, names: Iterable[str]) -> bytes:
    """A deterministic gzip tar of NAMES (relative to CACHE), directories expanded in sorted order."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as zipped:
        with tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name in names:
                _add(tar, cache, name)
    return buffer.getvalue()


def _add(tar: tarfile.TarFile, cache: str, name: str) -> None:
    path = os.path.join(cache, name)
    info = tar.gettarinfo(path, arcname=name)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode &= 0o755
    if info.islnk():
        # A hard link (git's objects after a local clone) travels as the file it is.
        info.type, info.linkname, info.size = tarfile.REGTYPE, "", os.lstat(path).st_size
    if info.isfile():
        with open(path, "rb") as handle:
            tar.addfile(info, handle)
        return
    tar.addfile(info)
    if info.isdir():
        for child in sorted(os.listdir(path)):
            _add(tar, cache, os.path.join(name, child))


def _write_if_changed(path: str, data: bytes, dry: bool = False) -> bool:
    try:
        with open(path, "rb") as handle:
            if handle.read() == data:
                return False
    except FileNotFoundError:
        pass
    if dry:
        return True
    temporary = path + ".tmp"
    with open(temporary, "wb") as handle:
        handle.write(data)
    os.replace(temporary, path)
    return True


def pack(cache: str, ship: str, uv_version: str, entries: Optional[tuple] = None, dry: bool = False) -> dict:
    """Write SHIP/cache/*.tar.gz and SHIP/seed.json from ENTRIES of CACHE (default: all ``cache_entries``);
    what changed in SHIP (DRY: what would, writing nothing)."""
    meta, archives = entries if entries is not None else cache_entries(cache)
    chunks_dir = os.path.join(ship, CHUNKS_DIR)
    if not dry:
        os.makedirs(chunks_dir, exist_ok=True)
    chunks, written = {}, []
    before = _previous_chunks(ship)
    for name, kind, members, root in [("meta.tar.gz", "meta", meta, "")] + [
            ("%s.tar.gz" % a.replace(os.sep, "-"), "archive", [a], a) for a in archives]:
        if kind == "archive" and name in before and os.path.isfile(os.path.join(chunks_dir, name)):
            # uv never changes an unpacked archive once made: its tar from an earlier run stands.
            chunks[name] = before[name]
            continue
        if dry and kind == "archive":
            written.append(name)
            continue
        data = _tar_bytes(cache, members)
        if _write_if_changed(os.path.join(chunks_dir, name), data, dry):
            written.append(name)
        chunks[name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "kind": kind, "root": root}
    removed = sorted(set(os.listdir(chunks_dir) if os.path.isdir(chunks_dir) else ()) - set(chunks) - set(written))
    for name in removed if not dry else ():
        os.unlink(os.path.join(chunks_dir, name))
    seed = {"format": 1, "uv_version": uv_version, "chunks": chunks}
    text = (json.dumps(seed, indent=1, sort_keys=True) + "\n").encode()
    if (dry and (written or removed)) or _write_if_changed(os.path.join(ship, SEED_FILE), text, dry):
        written.append(SEED_FILE)
    return {"written": written, "removed": removed, "chunks": len(chunks),
            "bytes": sum(c["size"] for c in chunks.values()),
            "unpacked_bytes": _unpacked_size(cache, list(meta) + list(archives))}


def _previous_chunks(ship: str) -> dict:
    try:
        with open(os.path.join(ship, SEED_FILE), encoding="utf-8") as handle:
            return dict(json.load(handle)["chunks"])
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _unpacked_size(cache: str, names: Iterable[str]) -> int:
    total = 0
    for name in names:
        path = os.path.join(cache, name)
        if os.path.islink(path) or os.path.isfile(path):
            total += os.lstat(path).st_size
            continue
        for root, dummy, files in os.walk(path):
            total += sum(os.lstat(os.path.join(root, f)).st_size for f in files)
    return total


def link_binaries(source_dir: str, ship: str) -> list:
    """SHIP/bin/uv and uvx: hard links (else copies) of the wheelhouse target's verified binaries."""
    changed = []
    os.makedirs(os.path.join(ship, "bin"), exist_ok=True)
    for name in ("uv", "uvx"):
        source, dest = os.path.join(source_dir, "bin", name), os.path.join(ship, "bin", name)
        if os.path.exists(dest) and os.path.samefile(source, dest):
            continue
        temporary = dest + ".tmp"
        if os.path.lexists(temporary):
            os.unlink(temporary)
        try:
            os.link(source, temporary)
        except OSError:
            shutil.copy2(source, temporary)
        os.replace(temporary, dest)
        changed.append("bin/" + name)
    return changed
