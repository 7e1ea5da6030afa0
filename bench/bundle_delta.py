# -*- coding: utf-8 -*-
# Copyright (c) airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What does a one-package upgrade cost to carry across the gap, as a delta bundle?

Builds, with the real `ansible-playbook airgap.uv.bundle` (real uv, the configured index), a full
bundle of a project for two targets (CPython 3.11 and 3.12, Linux x86_64 glibc 2.36), upgrades
ONE package in the lock (`uv lock --upgrade-package`), and builds the next bundle twice: full,
and as a delta of the first. Prints the sizes, the upgraded package's files (all targets), the
metadata the delta must carry (bundle.json, SBOM, PEP 751 locks, install files) and the ratio
delta / (package files + metadata); the goal is at most 1.1.

Usage: python bench/bundle_delta.py [--package pyyaml --from 6.0.2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(REPO, "examples", "hello-airgap")
TARGETS = """format: 1
targets:
  cpython3.11.2-linux-x86_64-glibc2.36:
    python: "3.11.2"
    implementation: cpython
    abiflags: ""
    os: linux
    arch: x86_64
    libc: glibc
    libc_version: "2.36"
  cpython3.12.3-linux-x86_64-glibc2.36:
    python: "3.12.3"
    implementation: cpython
    abiflags: ""
    os: linux
    arch: x86_64
    libc: glibc
    libc_version: "2.36"
"""
METADATA_PREFIXES = ("bundle.json", "sbom.cdx.json", "pylock.", "targets/")


def env() -> dict:
    environ = dict(os.environ)
    environ["PATH"] = os.path.join(REPO, ".venv", "bin") + os.pathsep + environ.get("PATH", "")
    environ["ANSIBLE_COLLECTIONS_PATH"] = os.path.join(REPO, ".venv", "collections")
    environ["ANSIBLE_NOCOLOR"] = "1"
    # No inventory is the point (the connected side has none): no warnings about it.
    environ["ANSIBLE_LOCALHOST_WARNING"] = "false"
    environ["ANSIBLE_INVENTORY_UNPARSED_WARNING"] = "false"
    return environ


def bundle(work: str, out: str, base: str = "") -> None:
    args = ["ansible-playbook", "airgap.uv.bundle", "-e", "uv_deploy_project=%s" % os.path.join(work, "project"),
            "-e", "uv_deploy_targets_file=%s" % os.path.join(work, "targets.yml"), "-e", "uv_deploy_bundle=%s" % out,
            "-e", "uv_deploy_wheelhouse_dir=%s" % os.path.join(work, "wheelhouse")]
    if base:
        args += ["-e", "uv_deploy_bundle_base=%s" % base]
    subprocess.run(args, check=True, env=env(), stdout=subprocess.DEVNULL)


def members(path: str) -> dict:
    with tarfile.open(path) as archive:
        return {info.name: info.size for info in archive.getmembers()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--package", default="pyyaml")
    parser.add_argument("--from", dest="old", default="6.0.2", help="version to start from")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="airgap-uv-delta-")
    try:
        project = os.path.join(work, "project")
        shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".venv", "uv.lock"))
        with open(os.path.join(work, "targets.yml"), "w", encoding="utf-8") as handle:
            handle.write(TARGETS)
        uv = os.path.join(REPO, ".venv", "bin", "uv")
        subprocess.run([uv, "lock", "-q", "--upgrade-package", "%s==%s" % (args.package, args.old)],
                       cwd=project, check=True)
        v1 = os.path.join(work, "v1.tar")
        bundle(work, v1)
        subprocess.run([uv, "lock", "-q", "--upgrade-package", args.package], cwd=project, check=True)
        v2_full, v2_delta = os.path.join(work, "v2.tar"), os.path.join(work, "v2-delta.tar")
        bundle(work, v2_full)
        bundle(work, v2_delta, base=v1)
        old, new, delta = members(v1), members(v2_full), members(v2_delta)
        package = sum(size for name, size in new.items()
                      if name.startswith("files/%s-" % args.package.replace("-", "_")) and name not in old)
        metadata = sum(size for name, size in delta.items() if name.startswith(METADATA_PREFIXES))
        delta_size = os.path.getsize(v2_delta)
        print(json.dumps({"package": args.package, "full_v1_bytes": os.path.getsize(v1),
                          "full_v2_bytes": os.path.getsize(v2_full), "delta_bytes": delta_size,
                          "upgraded_package_files_bytes": package, "metadata_bytes": metadata,
                          "delta_members": sorted(name for name in delta if not name.startswith(METADATA_PREFIXES)),
                          "ratio_delta_over_package_plus_metadata": round(delta_size / (package + metadata), 3),
                          "ratio_delta_over_full": round(delta_size / os.path.getsize(v2_full), 4)}, indent=2))
        return 0 if delta_size <= 1.1 * (package + metadata) else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
