# -*- coding: utf-8 -*-
# Copyright (c) airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What does making a new release durable before the switch cost?

Builds a throw-away wheelhouse of synthetic pure wheels shaped like a real environment
(default 150 packages x 120 files in 15 directories, file sizes around 4 KiB, about 18,000
files: the dev venv has 62 packages in 7,600 files), then, for each round, builds a fresh
release with uv exactly as airgap.uv.sync does (``uv venv`` + ``uv pip sync --offline``) and
times one way of flushing it. ``os.sync()`` runs (untimed) between measurements, so every
case starts from a clean page cache state and no case pays for another's dirty data.

  none          nothing (the switch happens with the files possibly still in memory only)
  dirs          meta file + release directory + releases directory (what the module always does)
  tree-N        dirs + fsync of every file and directory of the release from N threads
                (_sync_durability.fsync_tree: the module's fallback where syncfs is unavailable)
  syncfs        dirs + syncfs(2) of the release's file system via ctypes (flushes everything
                dirty on that file system, also other programs' data): what the module does

Two cache states: ``warm`` (uv cache filled and flushed earlier: uv hardlinks, the usual
deployment) and ``cold`` (empty uv cache per build: uv unpacks every wheel in the same run).
Finally ``module build`` times SyncRunner.run() for a change (a new release each round)
with the module's flush (_sync_durability.make_durable) and with it patched out.

Usage: python bench/sync_fsync.py [--uv PATH] [--runs 5] [--packages 150] [--files 120]
       [--workers 1,4,8] [--no-cold] [--no-module | --only-module]
Needs only a uv binary and Python; no network.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

# Same directory: the synthetic wheels and the collection import are sync_noop's.
from sync_noop import find_uv, import_sync, make_wheel, sha256  # noqa: E402


def syncfs(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if libc.syncfs(fd) != 0:
            raise OSError(ctypes.get_errno(), "syncfs")
    finally:
        os.close(fd)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    ap.add_argument("--uv", default="")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--packages", type=int, default=150)
    ap.add_argument("--files", type=int, default=120, help="files per package")
    ap.add_argument("--dirs", type=int, default=15, help="directories per package")
    ap.add_argument("--workers", default="1,4,8")
    ap.add_argument("--no-cold", action="store_true")
    ap.add_argument("--no-module", action="store_true")
    ap.add_argument("--only-module", action="store_true", help="skip the table of flush strategies")
    ap.add_argument("--keep", action="store_true")
    opts = ap.parse_args()

    uv = find_uv(opts.uv)
    python = os.path.realpath(sys.executable)
    tmp = tempfile.mkdtemp(prefix="airgap-uv-fsync-", dir=os.environ.get("BENCH_DIR"))
    try:
        S = import_sync(tmp)
        from ansible_collections.airgap.uv.plugins.module_utils import _sync_change as C  # noqa: E402
        from ansible_collections.airgap.uv.plugins.module_utils import _sync_durability as D  # noqa: E402
        wheelhouse = os.path.join(tmp, "wheelhouse")
        os.makedirs(wheelhouse)
        lines = []
        for i in range(opts.packages):
            whl = make_wheel(wheelhouse, "fspkg%03d" % i, "1.0.%d" % i, opts.files, opts.dirs)
            lines.append("fspkg%03d==1.0.%d --hash=sha256:%s" % (i, i, sha256(whl)))
        tails = []  # a small package whose version changes every round: forces a new release
        for r in range(2 * opts.runs + 2):
            whl = make_wheel(wheelhouse, "fstail", "1.%d" % r, 3, 1)
            tails.append("fstail==1.%d --hash=sha256:%s" % (r, sha256(whl)))
        requirements = os.path.join(tmp, "requirements.txt")
        with open(requirements, "w") as f:
            f.write("\n".join(lines + [tails[0]]) + "\n")
        cache = os.path.join(tmp, "cache")
        releases = os.path.join(tmp, "app", ".venv.releases")
        os.makedirs(releases)

        def build(cache_dir: str) -> tuple:
            rel = os.path.join(releases, "r%d" % time.monotonic_ns())
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/"),
                   "UV_CACHE_DIR": cache_dir, "UV_OFFLINE": "1", "UV_NO_CONFIG": "1", "UV_PYTHON_DOWNLOADS": "never"}
            t0 = time.perf_counter()
            subprocess.run([uv, "venv", "-q", "--python", python, rel], env=env, check=True)
            subprocess.run([uv, "pip", "sync", "-q", "--offline", "--no-index", "--find-links", wheelhouse,
                            "--require-hashes", "--python", os.path.join(rel, "bin", "python"), requirements],
                           env=env, check=True)
            return rel, time.perf_counter() - t0

        def dirs(rel: str) -> None:
            C.ReleaseWriter.write_meta(S.Release(rel), {"format": 1})
            D.fsync_dir(rel, strict=True)
            D.fsync_dir(releases, strict=True)

        workers = [int(w) for w in opts.workers.split(",") if w]
        cases = [("none", lambda rel: None), ("dirs", dirs)]
        cases += [("tree-%d" % w, (lambda w: lambda rel: (D.fsync_tree(rel, w), dirs(rel)))(w)) for w in workers]
        cases.append(("syncfs", lambda rel: (syncfs(rel), dirs(rel))))

        build(cache)  # fills the warm cache
        probe, _sec = build(cache)
        nfiles = sum(len(f) for _r, _d, f in os.walk(probe))
        ndirs = sum(1 for _w in os.walk(probe))
        size = sum(os.lstat(os.path.join(r, n)).st_size for r, _d, f in os.walk(probe) for n in f)
        shutil.rmtree(probe)
        os.sync()

        states = [] if opts.only_module else [("warm", lambda: cache)]
        if not opts.no_cold and not opts.only_module:
            states.append(("cold", lambda: os.path.join(tmp, "cold-%d" % time.monotonic_ns())))
        samples: dict = {}
        for _round in range(opts.runs):
            for state, cache_for in states:
                for label, flush in cases:
                    cache_dir = cache_for()
                    rel, build_sec = build(cache_dir)
                    t0 = time.perf_counter()
                    flush(rel)
                    samples.setdefault((state, label), []).append((time.perf_counter() - t0, build_sec))
                    shutil.rmtree(rel)
                    if cache_dir != cache:
                        shutil.rmtree(cache_dir)
                    os.sync()  # untimed: the next case starts clean

        uv_version = subprocess.run([uv, "--version"], capture_output=True, text=True, check=False).stdout.strip()
        print("release: %d packages, %d files in %d directories, %.0f MB; %s; %d runs each (median)"
              % (opts.packages + 1, nfiles, ndirs, size / 1e6, uv_version, opts.runs))
        if states:
            print("%-6s %-8s %12s %12s %10s" % ("cache", "case", "flush ms", "build ms", "flush/build"))
        for state, _c in states:
            for label, _f in cases:
                vals = samples[(state, label)]
                flush_ms = statistics.median(v[0] for v in vals) * 1000
                build_ms = statistics.median(v[1] for v in vals) * 1000
                print("%-6s %-8s %12.1f %12.1f %9.1f%%" % (state, label, flush_ms, build_ms, 100 * flush_ms / build_ms))

        if opts.no_module:
            return
        # The module's change path, with and without the per-file flush.
        params = {"uv": uv, "wheelhouse": wheelhouse, "requirements": requirements, "venv": os.path.join(tmp, "app", "venv"),
                  "cache_dir": cache, "python": python, "keep_releases": 1}
        S.SyncRunner(params).run()
        real_durable = C.make_durable  # patched where _sync_change calls it
        module: dict = {}
        for r in range(opts.runs):
            for label in ("module build, flush on", "module build, flush patched out"):
                with open(requirements, "w") as f:
                    f.write("\n".join(lines + [tails[1 + r * 2 + label.endswith("out")]]) + "\n")
                C.make_durable = real_durable if label.endswith("on") else (lambda path, dir_fd=None: "off")
                os.sync()
                t0 = time.perf_counter()
                result = S.SyncRunner(params).run()
                module.setdefault(label, []).append(time.perf_counter() - t0)
                assert result["changed"] and "switched" not in (result["reason"] or ""), result
        C.make_durable = real_durable
        for label, vals in module.items():
            print("%-32s %10.1f ms (median), min %.1f" % (label, statistics.median(vals) * 1000, min(vals) * 1000))
    finally:
        if opts.keep:
            print("kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
