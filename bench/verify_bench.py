#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What verifying the controller's files costs a warm wheelhouse run (issue 10, item 3).

Run with the dev venv::

    .venv/bin/python bench/verify_bench.py [--size 150] [--repeat 7]

Locks the 150-package bench project of wheelhouse_bench.py (not timed), builds its wheelhouse
once for one target (cold, not timed), then times ``WheelhouseBuilder.run()`` in this process,
alternating the cases round by round:

* ``shortcut``: nothing changed, the stat record is current (the usual warm run);
* ``shortcut, no record``: nothing changed, verified.json removed first: every file is hashed
  (the first run after a download, or after the record was lost);
* ``shortcut, unverified``: the same run with verification switched off (size checks only, as
  before issue 10), the baseline;
* ``full``: the "nothing changed" short cut defeated, so the store and the published tree are
  checked file by file (record current), and ``full, unverified`` as its baseline.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), ".venv", "collections"))

import wheelhouse_bench as wb  # noqa: E402  (beside this file)

from ansible_collections.airgap.uv.plugins.plugin_utils import _verify  # noqa: E402
from ansible_collections.airgap.uv.plugins.plugin_utils._wheelhouse import (  # noqa: E402
    WheelhouseBuilder,
    WheelhouseOptions,
)


def run(options: WheelhouseOptions, uv: str, full: bool = False, verified: bool = True) -> tuple:
    original = _verify.FileVerifier.matches
    if not verified:
        _verify.FileVerifier.matches = lambda self, path, expected: os.path.exists(path)
    try:
        builder = WheelhouseBuilder(options, uv=uv)
        if full:
            # Skip the short cut but keep its inputs digest, so the run records it as usual and the
            # next short-cut case finds it.
            builder.unchanged.result = lambda: builder.unchanged.digest() and None
        start = time.perf_counter()
        result = builder.run()
        return time.perf_counter() - start, result, builder.verifier.hashed
    finally:
        _verify.FileVerifier.matches = original


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=150, choices=sorted(wb.PROJECTS))
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--uv", default=os.path.join(wb.VENV_BIN, "uv"))
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="airgap-verify-bench-")
    try:
        project = os.path.join(work, "project")
        os.makedirs(project)
        deps = ",\n".join('    "%s"' % dep for dep in wb.PROJECTS[args.size])
        with open(os.path.join(project, "pyproject.toml"), "w", encoding="utf-8") as handle:
            handle.write(wb.PYPROJECT.format(size=args.size, deps=deps, exclude_newer=wb.EXCLUDE_NEWER))
        subprocess.run([args.uv, "lock", "--quiet", "--directory", project], check=True)
        cache = os.path.join(work, "cache")
        options = WheelhouseOptions(project=project, dest=os.path.join(work, "dest"), targets=wb.ONE_TARGET,
                                    cache_dir=cache)
        cold, result, dummy = run(options, args.uv)
        size = sum(os.path.getsize(os.path.join(root, name)) for root, dummy2, names in
                   os.walk(os.path.join(cache, "store")) for name in names)
        print("cold build: %.2f s, %d files, store %.0f MB" % (cold, result.files, size / 1e6))
        # Files younger than 2 s are not recorded (the racy rule in _verify): let them settle, then
        # the first warm run hashes each file once and records it.
        time.sleep(2.5)
        run(options, args.uv)
        cases = {
            "shortcut": dict(),
            "shortcut, no record": dict(drop_record=True),
            "shortcut, unverified": dict(verified=False),
            "full": dict(full=True),
            "full, unverified": dict(full=True, verified=False),
        }
        times: dict = {name: [] for name in cases}
        hashed: dict = {name: [] for name in cases}
        for dummy in range(args.repeat):
            for name, case in cases.items():
                if case.get("drop_record"):
                    os.unlink(os.path.join(cache, "verified.json"))
                seconds, result, count = run(options, args.uv, full=case.get("full", False),
                                             verified=case.get("verified", True))
                assert not result.changed, name
                times[name].append(seconds)
                hashed[name].append(count)
        print("median of %d rounds, %d packages, one target (%s):" % (args.repeat, args.size, wb.ONE_TARGET_ID))
        for name in cases:
            print("  %-22s %7.1f ms   files hashed: %d" % (name, statistics.median(times[name]) * 1000,
                                                          statistics.median(hashed[name])))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
