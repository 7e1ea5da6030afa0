# -*- coding: utf-8 -*-
# Copyright (c) airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""How much does a no-op airgap.uv.sync cost compared with a bare ``uv pip sync`` no-op?

Builds a throw-away bundle (synthetic pure wheels, hash-pinned requirements, manifest),
syncs it once, then times interleaved no-op runs and prints medians:

  bare uv (caller env)   uv pip sync --offline --no-index --find-links WH --require-hashes
                         --python REL/bin/python REQ, in the caller's environment (what a user
                         types in a shell); the reference for the ratio
  bare uv (minimal env)  the same with only PATH, HOME and UV_CACHE_DIR set
  module logic           SyncRunner.run() in-process: lock, state file, manifest check
                         (sha256 cache), symlink/release checks, the recorded dry run (or one
                         uv dry run when the environment changed)
  module process         python plugins/modules/sync.py ARGS (adds interpreter start-up and
                         AnsibleModule argument handling, with the collection's .pyc cache)
  module via AnsiballZ   the module as Ansible runs it on a host: the AnsiballZ_sync.py that
                         `ansible localhost -m airgap.uv.sync` left (ANSIBLE_KEEP_REMOTE_FILES),
                         run with the same interpreter; every module_util is compiled from the
                         payload on each run, as on a real host
  ping via AnsiballZ     the same for ansible.builtin.ping: what any Ansible module costs on
                         the host before it does anything (the floor)

The sync module's own cost as Ansible runs it is "module via AnsiballZ" less "ping via AnsiballZ":
the median of the per-round differences (the two run back to back in every round).

Usage: python bench/sync_noop.py [--uv PATH] [--runs 10] [--packages 30] [--no-manifest]
Needs only a uv binary and Python; no network.
"""

from __future__ import annotations

import argparse
import base64
import glob
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


SIZES = (600, 1500, 2600, 4000, 4200, 4400, 9000, 30000)  # median about 4 KiB, like the dev venv


def make_wheel(dest: str, name: str, version: str, nfiles: int = 3, ndirs: int = 1) -> str:
    """A pure wheel with NFILES files (the package module and dist-info included), in NDIRS subpackages."""
    dist = "%s-%s" % (name, version)
    files = {
        "%s.dist-info/METADATA" % dist: b"Metadata-Version: 2.1\nName: %s\nVersion: %s\n" % (name.encode(), version.encode()),
        "%s.dist-info/WHEEL" % dist: b"Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        "%s/__init__.py" % name: b"VALUE = %r\n" % dist.encode(),
    }
    for i in range(nfiles - 3):
        sub = "%s/sub%02d" % (name, i % ndirs) if ndirs > 1 else name
        body = (b"# %s %d\n" % (dist.encode(), i)) * (SIZES[i % len(SIZES)] // (len(dist) + 8) + 1)
        files["%s/m%04d.py" % (sub, i)] = body[: SIZES[i % len(SIZES)]]
    path = os.path.join(dest, "%s-py3-none-any.whl" % dist)
    record = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for arc, data in files.items():
            z.writestr(arc, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append("%s,sha256=%s,%d" % (arc, digest, len(data)))
        record.append("%s.dist-info/RECORD,," % dist)
        z.writestr("%s.dist-info/RECORD" % dist, "\n".join(record) + "\n")
    return path


def sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def find_uv(explicit: str) -> str:
    for cand in (explicit, os.environ.get("AIRGAP_UV_TEST_UV"), os.path.join(os.path.dirname(sys.executable), "uv"), shutil.which("uv")):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return os.path.abspath(cand)
    sys.exit("no uv binary found: pass --uv")


def import_sync(tmp: str):
    """Import the collection as ansible_collections.airgap.uv (symlinked layout); return its _sync."""
    link = os.path.join(tmp, "collections", "ansible_collections", "airgap", "uv")
    os.makedirs(os.path.dirname(link))
    os.symlink(REPO, link)
    sys.path.insert(0, os.path.join(tmp, "collections"))
    from ansible_collections.airgap.uv.plugins.module_utils import _sync  # noqa: E402

    return _sync


def ansiballz(module: str, args: dict, tmp: str, collections: str) -> str:
    """Path of the AnsiballZ payload Ansible builds for MODULE with ARGS (kept, not deleted)."""
    remote = os.path.join(tmp, "remote-" + module.replace(".", "-"))
    env = dict(os.environ, ANSIBLE_KEEP_REMOTE_FILES="1", ANSIBLE_REMOTE_TMP=remote,
               ANSIBLE_COLLECTIONS_PATH=collections, ANSIBLE_LOCALHOST_WARNING="false",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
    env.pop("PYTHONPATH", None)
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible"), "localhost", "-c", "local", "-m", module,
           "-e", "ansible_python_interpreter=%s" % sys.executable]
    if args:
        cmd += ["-a", json.dumps(args)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    found = glob.glob(os.path.join(remote, "*", "AnsiballZ_*.py"))
    if proc.returncode != 0 or len(found) != 1:
        sys.exit("ansible -m %s failed (rc %d):\n%s%s" % (module, proc.returncode, proc.stdout, proc.stderr))
    return found[0]


def timed(fn, label: str, samples: dict) -> None:
    t0 = time.perf_counter()
    fn()
    samples.setdefault(label, []).append(time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    ap.add_argument("--uv", default="")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--packages", type=int, default=30)
    ap.add_argument("--no-manifest", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    opts = ap.parse_args()

    uv = find_uv(opts.uv)
    tmp = tempfile.mkdtemp(prefix="airgap-uv-bench-")
    try:
        SyncRunner = import_sync(tmp).SyncRunner
        from ansible_collections.airgap.uv.plugins.modules.sync import ARGUMENT_SPEC
        collections = os.path.join(tmp, "collections")
        root = os.path.join(tmp, "root")
        wheelhouse = os.path.join(root, "wheelhouse")
        os.makedirs(wheelhouse)
        os.makedirs(os.path.join(root, "bin"))
        shutil.copy2(uv, os.path.join(root, "bin", "uv"))
        lines, files = [], []
        for i in range(opts.packages):
            whl = make_wheel(wheelhouse, "benchpkg%03d" % i, "1.0.%d" % i)
            lines.append("benchpkg%03d==1.0.%d --hash=sha256:%s" % (i, i, sha256(whl)))
            files.append({"filename": os.path.basename(whl), "sha256": sha256(whl), "size": os.path.getsize(whl)})
        requirements = os.path.join(root, "requirements.txt")
        with open(requirements, "w") as f:
            f.write("\n".join(lines) + "\n")
        manifest = os.path.join(root, "manifest.json")
        with open(manifest, "w") as f:
            json.dump({"format": 1, "files": files}, f)
        cache = os.path.join(root, "cache")
        params = {
            "uv": os.path.join(root, "bin", "uv"),
            "wheelhouse": wheelhouse,
            "requirements": requirements,
            "venv": os.path.join(tmp, "app", "venv"),
            "manifest": None if opts.no_manifest else manifest,
        }
        # Every option, as AnsibleModule hands them to the module: in-process runs then record
        # the same dry run as the module's runs.
        params = {name: params.get(name, spec.get("default")) for name, spec in ARGUMENT_SPEC.items()}
        first = SyncRunner(params).run()
        assert first["changed"], first
        release = first["release"]

        bare = [
            os.path.join(root, "bin", "uv"), "pip", "sync", "--offline", "--no-index", "--find-links", wheelhouse,
            "--require-hashes", "--python", os.path.join(release, "bin", "python"), requirements,
        ]
        caller_env = dict(os.environ, UV_CACHE_DIR=cache)
        minimal_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/"), "UV_CACHE_DIR": cache}
        argfile = os.path.join(tmp, "args.json")
        with open(argfile, "w") as f:
            json.dump({"ANSIBLE_MODULE_ARGS": {k: v for k, v in params.items() if v is not None}}, f)
        module_env = dict(os.environ, PYTHONPATH=os.pathsep.join([collections] + sys.path[1:]))
        module_cmd = [sys.executable, os.path.join(REPO, "plugins", "modules", "sync.py"), argfile]

        payload_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        sync_payload = ansiballz("airgap.uv.sync", {k: v for k, v in params.items() if v is not None}, tmp, collections)
        ping_payload = ansiballz("ansible.builtin.ping", {}, tmp, collections)

        def run_payload(path):
            proc = subprocess.run([sys.executable, path], env=payload_env, cwd=tmp, capture_output=True, text=True, check=False)
            assert proc.returncode == 0 and not json.loads(proc.stdout).get("changed"), proc.stdout + proc.stderr

        def run_bare(env):
            proc = subprocess.run(bare, env=env, capture_output=True, text=True, check=False)
            assert proc.returncode == 0 and "Installed" not in proc.stderr, proc.stderr

        def run_logic():
            result = SyncRunner(params).run()
            assert result["changed"] is False, result

        def run_module():
            proc = subprocess.run(module_cmd, env=module_env, capture_output=True, text=True, check=False)
            assert proc.returncode == 0 and json.loads(proc.stdout)["changed"] is False, proc.stdout + proc.stderr

        cases = [
            ("bare uv (caller env)", lambda: run_bare(caller_env)),
            ("bare uv (minimal env)", lambda: run_bare(minimal_env)),
            ("module logic", run_logic),
            ("module process", run_module),
            ("module via AnsiballZ", lambda: run_payload(sync_payload)),
            ("ping via AnsiballZ", lambda: run_payload(ping_payload)),
        ]
        for _label, fn in cases:  # warm up
            fn()
        samples: dict = {}
        for _round in range(opts.runs):  # interleaved, so drift hits every case alike
            for label, fn in cases:
                timed(fn, label, samples)
        own_rounds = [s - p for s, p in zip(samples["module via AnsiballZ"], samples["ping via AnsiballZ"])]

        ref = statistics.median(samples[cases[0][0]])
        uv_version = subprocess.run([uv, "--version"], capture_output=True, text=True, check=False).stdout.strip()
        print("no-op sync, %d packages, manifest %s, %s, %d runs each (median)"
              % (opts.packages, "off" if opts.no_manifest else "on", uv_version, opts.runs))
        print("%-24s %10s %10s %8s" % ("case", "median ms", "min ms", "ratio"))
        for label, _fn in cases:
            vals = samples[label]
            med = statistics.median(vals)
            print("%-24s %10.1f %10.1f %7.2fx" % (label, med * 1000, min(vals) * 1000, med / ref))
        logic = statistics.median(samples["module logic"])
        ratio = logic / ref
        strict = logic / statistics.median(samples["bare uv (minimal env)"])
        print("\nmodule logic / bare uv = %.2fx (caller env), %.2fx (minimal env); target <= 1.5x: %s"
              % (ratio, strict, "OK" if max(ratio, strict) <= 1.5 else "SLOW"))
        whole = statistics.median(samples["module via AnsiballZ"])
        floor = statistics.median(samples["ping via AnsiballZ"])
        own = statistics.median(own_rounds)
        print("as Ansible runs it: %.1f ms; the floor of any module (ping) %.1f ms; the sync module's own share "
              "(median of the per-round differences) %.1f ms" % (whole * 1000, floor * 1000, own * 1000))
        print("  own / bare uv = %.2fx (target <= 1.5x: %s); whole / bare uv = %.2fx, ping alone %.2fx"
              % (own / ref, "OK" if own / ref <= 1.5 else "SLOW", whole / ref, floor / ref))
    finally:
        if opts.keep:
            print("kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
