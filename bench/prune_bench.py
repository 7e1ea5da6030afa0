# -*- coding: utf-8 -*-
# Copyright (c) airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""How much does the host's wheelhouse hold after several deployments, pruned or not?

Deploys three versions of a set (numpy and six, real wheels fetched with pip from the
configured index) one after the other with the real airgap.uv.sync module process, as the
role does: each version's files are added to the wheelhouse (the push never deletes), then
its install file and manifest, then the sync (keep_releases=2). Prints the wheelhouse's size
after each deployment with prune_wheelhouse true and false.

Usage: python bench/prune_bench.py [--uv PATH] [--versions 2.1.3 2.2.6 2.3.5]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE = os.path.join(REPO, "plugins", "modules", "sync.py")


def collections_path() -> str:
    return os.path.join(REPO, ".venv", "collections")


def fetch(pins: list[str], dest: str) -> None:
    for pin in pins:  # one at a time: pip refuses two versions of one name in one call
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--only-binary", ":all:", "--no-deps", "-d",
                        dest, pin], check=True)


def wheel_for(directory: str, name: str, version: str) -> str:
    for filename in os.listdir(directory):
        dist, ver = filename.split("-")[:2]
        if dist.lower() == name and ver == version:
            return filename
    raise LookupError("%s==%s" % (name, version))


def write_set(root: str, store: str, pins: dict[str, str]) -> None:
    """Add the set's wheels to ROOT/wheelhouse, then its install file and manifest."""
    lines, files = [], []
    for name, version in sorted(pins.items()):
        filename = wheel_for(store, name, version)
        target = os.path.join(root, "wheelhouse", filename)
        if not os.path.exists(target):
            shutil.copy2(os.path.join(store, filename), target)
        with open(target, "rb") as handle:
            digest = hashlib.sha256(handle.read()).hexdigest()
        lines.append("%s==%s --hash=sha256:%s" % (name, version, digest))
        files.append({"filename": filename, "sha256": digest, "size": os.path.getsize(target), "name": name,
                      "version": version})
    with open(os.path.join(root, "requirements.txt"), "w") as handle:
        handle.write("\n".join(lines) + "\n")
    with open(os.path.join(root, "manifest.json"), "w") as handle:
        json.dump({"format": 1, "files": files, "project": {"name": "numpy", "version": pins["numpy"]}}, handle)


def size_of(directory: str) -> int:
    return sum(os.path.getsize(os.path.join(directory, name)) for name in os.listdir(directory))


def deploy(root: str, uv: str, prune: bool) -> dict:
    args = {"uv": uv, "wheelhouse": os.path.join(root, "wheelhouse"), "requirements": os.path.join(root,
            "requirements.txt"), "manifest": os.path.join(root, "manifest.json"), "venv": os.path.join(root, "venv"),
            "cache_dir": os.path.join(root, "cache"), "keep_releases": 2, "prune_wheelhouse": prune}
    argfile = os.path.join(root, "args.json")
    with open(argfile, "w") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
    env = dict(os.environ, PYTHONPATH=collections_path())
    proc = subprocess.run([sys.executable, MODULE, argfile], capture_output=True, text=True, env=env, check=False)
    result = json.loads(proc.stdout)
    if result.get("failed"):
        raise SystemExit(result["msg"])
    if result.get("switch_id"):  # as the action plugin does
        with open(argfile, "w") as handle:
            json.dump({"ANSIBLE_MODULE_ARGS": dict(args, acknowledge=result["switch_id"])}, handle)
        subprocess.run([sys.executable, MODULE, argfile], capture_output=True, env=env, check=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--uv", default=shutil.which("uv"))
    parser.add_argument("--versions", nargs="+", default=["2.1.3", "2.2.6", "2.3.5"])
    options = parser.parse_args()
    work = tempfile.mkdtemp(prefix="airgap-uv-prune-")
    try:
        store = os.path.join(work, "store")
        fetch(["numpy==%s" % v for v in options.versions] + ["six==1.16.0", "six==1.17.0"], store)
        sets = [{"numpy": v, "six": "1.16.0" if i % 2 == 0 else "1.17.0"} for i, v in enumerate(options.versions)]
        print("%-10s %-22s %14s %14s" % ("deploy", "set", "pruned (MB)", "unpruned (MB)"))
        sizes = {}
        for prune in (True, False):
            root = os.path.join(work, "prune" if prune else "keep")
            os.makedirs(os.path.join(root, "wheelhouse"))
            sizes[prune] = []
            for pins in sets:
                write_set(root, store, pins)
                deploy(root, options.uv, prune)
                sizes[prune].append(size_of(os.path.join(root, "wheelhouse")))
        for index, pins in enumerate(sets):
            print("%-10d %-22s %14.1f %14.1f" % (index + 1, "numpy %s six %s" % (pins["numpy"], pins["six"]),
                                                 sizes[True][index] / 1e6, sizes[False][index] / 1e6))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
