# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Answering a repeated no-op run of airgap.uv.sync from its record, before the rest loads.

Ansible ships module_utils as source and the host compiles each one it imports on every
run (zipimport on Python 3.11 even compiles it twice): for ``_sync`` that was most of what
a no-op run cost beyond Ansible's own start-up. So the module asks this small file first.

After a real offline run that changed nothing, warned of nothing and pruned nothing, the
runner records its result in the state file under a digest of everything such a run
looks at (:func:`noop_key`). A later run with the same digest returns that result
without importing ``_sync``. The digest is deliberately wide: the module's parameters,
the uv binary and the interpreter, the bytes of the install, build-constraints and
manifest files, every wheelhouse entry, the release store (the symlink, every release and
its metadata, leftover temporary links), the release in service (its top directory's
owner and mode, its interpreter, ``pyvenv.cfg`` and installed metadata:
:func:`environment_fingerprint`) and the user databases when owner or group is set. Any
difference, and any doubt (a file that cannot be read, a run holding the lock), means the
full run.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import stat
import sys
import typing as t

RELEASE_META = "airgap-uv-release.json"
STATE_FORMAT = 1
# Part of every digest: bump it when what a no-op run returns changes shape.
REPLAY_FORMAT = 1
UNREPORTED = "unreported_switch"  # _sync_report's record, read here without importing it
NOOP_RESULT = "noop_result"


class StorePaths(t.NamedTuple):
    venv: str
    releases_dir: str
    lock_path: str
    state_path: str


def store_paths(venv: str, releases_dir: t.Optional[str] = None) -> StorePaths:
    """Where the release store of VENV keeps its releases, lock and state file."""
    venv = os.path.abspath(venv)
    parent, name = os.path.split(venv)
    releases = os.path.abspath(releases_dir) if releases_dir else os.path.join(parent, ".%s.releases" % name)
    return StorePaths(venv, releases, releases + ".lock", releases + ".state.json")


def environment_fingerprint(prefix: str) -> t.List[t.List[t.Any]]:
    """What ``uv pip sync --dry-run`` reads of the environment at PREFIX, as cheap ``lstat`` facts.

    uv decides from the installed distributions' metadata directories: every entry of each
    ``site-packages`` (a package installed, removed or replaced changes the entry or its
    inode) and every file of the ``*.dist-info``/``*.egg-info`` directories (an in-place edit
    of ``METADATA`` changes its size or mtime). Nothing here reads a file. Names are looked
    up relative to an open descriptor of their directory: for the 1,200 entries of a
    150-package environment that is about 15 % faster than by full path.
    """
    facts: t.List[t.List[t.Any]] = []
    lib = os.path.join(prefix, "lib")
    try:
        pythons = sorted(n for n in os.listdir(lib) if n.startswith(("python", "pypy")))
    except OSError:
        return facts
    for name in pythons:
        site = os.path.join(lib, name, "site-packages")
        try:
            top = os.lstat(site)
            site_fd = os.open(site, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            try:
                entries = sorted(os.listdir(site_fd))
            except OSError:
                continue
            facts.append([site, top.st_ino, top.st_mtime_ns])
            for entry in entries:
                st = os.stat(entry, dir_fd=site_fd, follow_symlinks=False)
                facts.append([entry, st.st_ino, st.st_size, st.st_mtime_ns])
                if entry.endswith((".dist-info", ".egg-info")) and stat.S_ISDIR(st.st_mode):
                    meta_fd = os.open(entry, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=site_fd)
                    try:
                        for inner in sorted(os.listdir(meta_fd)):
                            ist = os.stat(inner, dir_fd=meta_fd, follow_symlinks=False)
                            facts.append([entry, inner, ist.st_ino, ist.st_size, ist.st_mtime_ns])
                    finally:
                        os.close(meta_fd)
        finally:
            os.close(site_fd)
    return facts


def _stat_facts(path: str, follow: bool = True) -> t.List[t.Any]:
    st = os.stat(path) if follow else os.lstat(path)
    return [path, st.st_mode, st.st_uid, st.st_gid, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1024 * 1024), b""):
            h.update(chunk)
    return h.hexdigest()


def noop_key(params: t.Mapping[str, t.Any], diff: bool, interpreter: t.Optional[str] = None,
             fingerprint: t.Callable[[str], t.List[t.List[t.Any]]] = environment_fingerprint) -> t.Optional[str]:
    """Digest of everything an offline ``state=present`` run of PARAMS looks at, or None.

    None when no record applies: another state or network mode, a pending copy (check
    mode's prediction), a venv that is not a release symlink, or anything unreadable.
    INTERPRETER is the Python the module runs on (the default ``python``); FINGERPRINT gives
    a prefix's environment_fingerprint (the runner passes the one it already took).
    """
    if (params.get("state") or "present") != "present" or (params.get("network") or "offline") != "offline" \
            or params.get("pending") is not None or not params.get("venv") \
            or params.get("incoming") or params.get("acknowledge"):
        return None
    paths = store_paths(str(params["venv"]), params.get("releases_dir"))
    try:
        target = os.readlink(paths.venv)
        release = os.path.normpath(os.path.join(os.path.dirname(paths.venv), target))
        facts: t.List[t.Any] = [REPLAY_FORMAT, sorted((str(k), v) for k, v in params.items()), bool(diff),
                                interpreter or sys.executable, os.geteuid(), target]
        facts.append(_stat_facts(os.path.abspath(str(params.get("uv")))))
        # What kind each entry is: a file or directory swapped for a link is refused by the full run.
        facts += [stat.S_IFMT(os.lstat(os.path.abspath(str(params[name]))).st_mode)
                  for name in ("uv", "wheelhouse", "requirements", "build_constraints", "manifest") if params.get(name)]
        for name in ("requirements", "build_constraints", "manifest"):
            value = params.get(name)
            facts.append([name, sha256_file(os.path.abspath(str(value))) if value else None])
        python = params.get("python")
        if python and "/" in str(python):
            facts.append(_stat_facts(str(python)))
        if params.get("owner") or params.get("group"):
            facts += [_stat_facts(path) for path in ("/etc/passwd", "/etc/group")]
        wheelhouse = os.path.abspath(str(params.get("wheelhouse")))
        with os.scandir(wheelhouse) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                st = entry.stat(follow_symlinks=False)
                facts.append([entry.name, st.st_mode, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns])
        for name in sorted(os.listdir(paths.releases_dir)):
            meta = os.path.join(paths.releases_dir, name, RELEASE_META)
            facts.append([name, _stat_facts(meta, follow=False) if os.path.lexists(meta) else None])
        parent, venv_name = os.path.split(paths.venv)
        facts.append(sorted(n for n in os.listdir(parent) if n.startswith(".%s.tmp-" % venv_name)))
        facts.append(_stat_facts(release, follow=False))
        facts.append(sha256_file(os.path.join(release, RELEASE_META)))
        facts.append(_stat_facts(os.path.realpath(os.path.join(release, "bin", "python"))))
        facts.append(_stat_facts(os.path.join(release, "pyvenv.cfg")))
        facts.append(fingerprint(release))
        return hashlib.sha256(json.dumps(facts, default=str).encode("utf-8")).hexdigest()
    except (OSError, TypeError, ValueError):
        return None


def replay_noop(params: t.Mapping[str, t.Any], diff: bool) -> t.Optional[t.Dict[str, t.Any]]:
    """The recorded result of the same no-op run, when nothing it looks at changed; else None.

    Holds a shared lock on the store's lock file meanwhile, as check mode does, so it never
    reads a half-finished switch; when a changing run holds the lock, the full run waits.
    """
    if not params.get("venv"):
        return None
    paths = store_paths(str(params["venv"]), params.get("releases_dir"))
    try:
        fd = os.open(paths.lock_path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return None
        try:
            with open(paths.state_path, "r", encoding="utf-8") as handle:
                state = json.load(handle)
        except (OSError, ValueError):
            return None
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT or state.get(UNREPORTED):
            return None  # a switch no run reported yet: the full run reports it
        record = state.get(NOOP_RESULT)
        if not isinstance(record, dict) or not isinstance(record.get("result"), dict):
            return None
        key = noop_key(params, diff)
        if key is None or record.get("key") != key:
            return None
        return dict(record["result"])
    finally:
        os.close(fd)
