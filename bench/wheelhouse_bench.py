#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark WheelhouseBuilder against ``uv sync`` and ``pip download``.

Run with the dev venv::

    .venv/bin/python bench/wheelhouse_bench.py [--repeat 3] [--sizes 30,150] [--quick] [--strict]

For every size a throw-away uv project is written and locked (not timed).  Then, for each
repetition, these are timed in the same run, in a rotating order so that drift of the shared
machine and network hits every contender alike:

* airgap.uv, 1 target, fully cold: fresh cache_dir, fresh dest, fresh UV_CACHE_DIR.
* airgap.uv, 1 target, cold packages but cache_dir/uv-releases (the uv-binary lock) present.
* airgap.uv, 1 target, uv-binary lock and uv wheel present: only the packages are fetched.
* airgap.uv, 5 targets, fully cold.
* uv sync --frozen --no-install-project into a fresh venv with a fresh UV_CACHE_DIR (peer).
* pip download --no-deps --only-binary :all: --no-cache-dir of the exported requirements (peer).
* airgap.uv warm rebuild, nothing changed (1 and 5 targets), in a fresh process each time:
  once the controller's verification record can hold the cold run's files (they were written
  more than its racy window, 2 s, ago; see plugins/plugin_utils/_verify.py), first the run that
  hashes every file once (what the first no-change run after a download costs), then the
  steady state (the record answers, nothing is hashed).
* the transfer floor, after the cold runs: the files the 1- and 5-target wheelhouses fetched,
  fetched again by the barest loop (8 kept-alive connections, sha256, write; no store, no uv,
  no planning), alternating. Its 5-to-1 ratio is what the bytes alone impose on that target.

Every airgap.uv measurement runs in a child process (like an Ansible module does) and times
``WheelhouseBuilder.run()`` only; the child's interpreter start and imports are reported apart.
No index is named anywhere: uv and pip use their defaults (pip runs with --isolated so local
pip configuration such as find-links or extra indexes does not skew it).

Exit status is non-zero when a target is missed only with --strict.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

COLLECTIONS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".venv", "collections")
VENV_BIN = os.path.dirname(os.path.abspath(sys.executable))
EXCLUDE_NEWER = "2026-10-01T00:00:00Z"

# Direct dependencies of the two bench projects.  Tuned so that the linux x86_64 glibc 2.36
# CPython 3.11 target selects about 30 and about 150 packages; everything has wheels for all
# five targets below (checked at bench time, a package needing a build is reported).
PROJECTS = {
    30: ["requests", "rich", "click", "pydantic", "httpx", "jinja2", "pyyaml", "attrs", "python-dateutil",
         "packaging", "tqdm", "platformdirs", "filelock", "wrapt"],
    150: ["fastapi[standard]", "sqlalchemy", "pandas", "scipy", "boto3", "sphinx", "pytest", "black", "mypy",
          "jupyter-core", "matplotlib", "aiohttp", "celery", "redis", "flask", "django", "cryptography",
          "paramiko", "lxml", "openpyxl", "beautifulsoup4", "requests", "rich", "pyyaml", "pydantic-settings",
          "alembic", "psutil", "structlog", "tenacity", "marshmallow", "arrow", "pendulum", "ujson", "orjson"],
}

PYPROJECT = """\
[project]
name = "airgap-bench-{size}"
version = "0"
requires-python = ">=3.9"
dependencies = [
{deps}
]

[tool.uv]
# Virtual: nothing of our own to build, so the airgap run and `uv sync --no-install-project`
# fetch exactly the same set.  See bench/README.md.
package = false
# In pyproject rather than only on the command line, so the builder's `uv lock --check`
# agrees with the lock.
exclude-newer = "{exclude_newer}"
"""

PACKAGED_PYPROJECT = """\
[project]
name = "airgap-bench-{size}"
version = "0"
requires-python = ">=3.9"
dependencies = [
{deps}
]

[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[tool.hatch.build.targets.wheel]
packages = ["src/airgap_bench"]

[tool.uv]
exclude-newer = "{exclude_newer}"
"""


def facts(python: str, arch: str = "x86_64", libc: tuple = ("glibc", "2.36")) -> dict:
    """Target facts as airgap.uv.target_facts returns them (see tests/.../test_target.py)."""
    env = {
        "implementation_name": "cpython", "implementation_version": python, "os_name": "posix",
        "platform_machine": arch, "platform_release": "6.1.0", "platform_system": "Linux",
        "platform_version": "#1 SMP", "python_full_version": python,
        "platform_python_implementation": "CPython", "python_version": ".".join(python.split(".")[:2]),
        "sys_platform": "linux",
    }
    return {"marker_environment": env, "os": "linux", "arch": arch,
            "libc": {"family": libc[0], "version": libc[1]},
            "python": {"version": python, "implementation": "cpython", "abiflags": ""}}


ONE_TARGET = {"host-py311": facts("3.11.2")}
ONE_TARGET_ID = "cpython3.11.2-linux-x86_64-glibc2.36"
FIVE_TARGETS = {
    "host-py39": facts("3.9.18"),
    "host-py311": facts("3.11.2"),
    "host-py313": facts("3.13.1"),
    "host-arm-py312": facts("3.12.3", arch="aarch64"),
    "host-musl-py312": facts("3.12.3", libc=("musl", "1.2.4")),
}


# --------------------------------------------------------------------------------------
# child: one WheelhouseBuilder.run() in a fresh interpreter
# --------------------------------------------------------------------------------------

# Where a run's time goes: (module, owner, attribute, label).  Wrapped only when present, so
# the bench keeps working while the module evolves.  Nested: uv_release_lock is inside
# uv_wheel; extract_uv inside uv_fetch (or publish); compare_published inside publish.
# check_lock, uv_wheel and uv_fetch run in threads beside the planning and the downloads, so
# phases overlap: wait_downloads is the main thread's wait for all fetches (packages and uv).
PHASES = (
    ("_wheelhouse_unchanged", "UnchangedRun", "result", "unchanged_check"),
    ("_wheelhouse_inputs", "ProjectInputs", "load_lock", "load_lock"),
    ("_wheelhouse_select", None, "select_packages", "select"),
    ("_wheelhouse_inputs", "ProjectInputs", "check_lock_current", "check_lock"),
    ("_wheelhouse", None, "uv_version", "uv_version"),
    ("_wheelhouse_plan", "TargetPlanner", "artifact_for", "choose_wheels"),
    ("_wheelhouse_uv", "UvRelease", "wheel_for", "uv_wheel"),
    ("_wheelhouse_uv", None, "lock_uv_release", "uv_release_lock"),
    ("_wheelhouse_uv", "UvRelease", "fetch", "uv_fetch"),
    ("_wheelhouse_fetch", "Background", "downloaded", "wait_downloads"),
    ("_download", "ArtifactStore", "ensure", "downloads"),
    ("_wheelhouse_publish", "Publisher", "publish", "publish"),
    ("_wheelhouse_uv", None, "extract_uv_binaries", "extract_uv"),
    ("_wheelhouse_publish", "Publisher", "differs_from_published", "compare_published"),
    ("_wheelhouse_build", "SourceBuilder", "build", "build_wheel"),
)


def _instrument(timings: dict) -> None:
    import functools
    import importlib

    for module_name, owner_name, attribute, label in PHASES:
        module = importlib.import_module("ansible_collections.airgap.uv.plugins.plugin_utils." + module_name)
        owner = getattr(module, owner_name, None) if owner_name else module
        original = getattr(owner, attribute, None) if owner is not None else None
        if original is None:
            continue

        def wrapper(*args, __original=original, __label=label, **kwargs):
            t0 = time.perf_counter()
            try:
                return __original(*args, **kwargs)
            finally:
                timings[__label] = timings.get(__label, 0.0) + time.perf_counter() - t0

        setattr(owner, attribute, functools.wraps(original)(wrapper))


def _cpu_seconds() -> float:
    """User + system CPU of this process and its waited-for children (uv subprocesses)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def child(spec_json: str) -> int:
    started = time.perf_counter()
    spec = json.loads(spec_json)
    sys.path.insert(0, COLLECTIONS)
    from ansible_collections.airgap.uv.plugins.plugin_utils._selection import SelectionOptions
    from ansible_collections.airgap.uv.plugins.plugin_utils._wheelhouse import WheelhouseBuilder, WheelhouseOptions

    imported = time.perf_counter()
    timings: dict = {}
    if spec.get("phases"):
        _instrument(timings)
    options = WheelhouseOptions(project=spec["project"], dest=spec["dest"], targets=spec["targets"],
                                selection=SelectionOptions(), cache_dir=spec["cache_dir"], workers=spec["workers"])
    builder = WheelhouseBuilder(options, uv=spec["uv"], progress=lambda message: None)
    profiler = None
    if spec.get("profile"):
        import cProfile
        profiler = cProfile.Profile()
        profiler.enable()
    t0 = time.perf_counter()
    result = builder.run()
    elapsed = time.perf_counter() - t0
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(spec["profile"])
    cpu = _cpu_seconds()
    store = os.path.join(spec["cache_dir"], "store")
    stored = sum(os.path.getsize(os.path.join(root, name)) for root, dummy, names in os.walk(store) for name in names)
    # Files the run hashed (the rest were answered by the verification record); None before it existed.
    hashed = getattr(getattr(builder, "verifier", None), "hashed", None)
    print(json.dumps({"run": elapsed, "startup": imported - started, "changed": result.changed, "hashed": hashed,
                      "downloaded": result.downloaded, "reused": result.reused, "requests": result.requests,
                      "files": result.files, "bytes": result.bytes, "built": result.built, "stored_bytes": stored,
                      "cpu": cpu, "phases": timings, "targets": {k: v["files"] for k, v in result.targets.items()}}))
    return 0


def floor_child(spec_json: str) -> int:
    """The transfer floor: the same files fetched by the barest loop (no store, no checks but sha256).

    Eight threads, one kept-alive connection each, read 1 MiB blocks, hash and write them; the
    files go largest first, as the builder orders them. Whatever airgap.uv adds to this (the
    lock, uv commands, planning, verification, the uv binaries, publishing) is its overhead; the
    ratio of two floors is what the bytes alone impose.
    """
    import hashlib
    import http.client
    import ssl
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from urllib.parse import urlsplit

    spec = json.loads(spec_json)
    tls = ssl.create_default_context()
    local = threading.local()

    def fetch(item: list) -> None:
        url, sha256 = item
        parts = urlsplit(url)
        connection = getattr(local, "connection", None)
        if connection is None:
            factory = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
            kwargs = {"context": tls} if parts.scheme == "https" else {}
            connection = local.connection = factory(parts.hostname, parts.port, timeout=60, **kwargs)
        connection.request("GET", parts.path + ("?" + parts.query if parts.query else ""),
                           headers={"Accept-Encoding": "identity"})
        response = connection.getresponse()
        if response.status != 200:
            raise SystemExit("floor: HTTP %d for %s" % (response.status, os.path.basename(parts.path)))
        digest = hashlib.sha256()
        with open(os.path.join(spec["dest"], sha256), "wb") as out:
            for block in iter(lambda: response.read(1024 * 1024), b""):
                digest.update(block)
                out.write(block)
        if digest.hexdigest() != sha256:
            raise SystemExit("floor: sha256 mismatch for %s" % os.path.basename(parts.path))

    os.makedirs(spec["dest"], exist_ok=True)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(fetch, spec["files"]))
    elapsed = time.perf_counter() - t0
    print(json.dumps({"run": elapsed, "cpu": _cpu_seconds()}))
    return 0


def racy_window() -> float:
    """Seconds after a file was written before the controller's verification record keeps its
    digest (_verify._RACY_NS): a no-change run sooner than that hashes the file again and records
    nothing. 2 s when the collection does not say (or predates the record)."""
    sys.path.insert(0, COLLECTIONS)
    try:
        from ansible_collections.airgap.uv.plugins.plugin_utils import _verify
        return getattr(_verify, "_RACY_NS", 2_000_000_000) / 1e9
    except ImportError:
        return 2.0
    finally:
        sys.path.remove(COLLECTIONS)


def lock_urls(*locks: str) -> dict:
    """{sha256: url} of every remote artifact in these uv.lock files."""
    from ansible_collections.airgap.uv.plugins.plugin_utils._lock import load_lock

    urls = {}
    for path in locks:
        for package in load_lock(path).packages:
            for artifact in list(package.wheels) + ([package.sdist] if package.sdist else []):
                if artifact.url and artifact.sha256:
                    urls[artifact.sha256] = artifact.url
    return urls


# --------------------------------------------------------------------------------------
# parent
# --------------------------------------------------------------------------------------

class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.uv = args.uv
        self.root = tempfile.mkdtemp(prefix="airgap-bench-", dir=args.workdir)
        self.counter = 0
        self.samples: dict[tuple, list[float]] = {}
        self.info: dict[tuple, list[dict]] = {}
        self.notes: list[str] = []

    def fresh(self, label: str) -> str:
        self.counter += 1
        path = os.path.join(self.root, "runs", "%04d-%s" % (self.counter, label))
        os.makedirs(path)
        return path

    def scrub(self, path: str) -> None:
        """Drop a run's bytes as soon as it is measured: keeps the disk (and page cache) small."""
        if not self.args.keep:
            shutil.rmtree(path, ignore_errors=True)

    def env(self, **extra: str) -> dict:
        env = dict(os.environ)
        env.pop("VIRTUAL_ENV", None)
        env.update(extra)
        return env

    def sh(self, argv: list, env: dict | None = None, cwd: str | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            raise SystemExit("command failed (rc=%d): %s\n%s" % (proc.returncode, " ".join(argv), proc.stderr[-3000:]))
        return proc

    # -- setup ------------------------------------------------------------------------

    def make_project(self, size: int, packaged: bool = False) -> str:
        project = os.path.join(self.root, "project-%d%s" % (size, "-packaged" if packaged else ""))
        os.makedirs(project)
        deps = "\n".join('  "%s",' % dep for dep in PROJECTS[size])
        template = PACKAGED_PYPROJECT if packaged else PYPROJECT
        with open(os.path.join(project, "pyproject.toml"), "w", encoding="utf-8") as handle:
            handle.write(template.format(size=size, deps=deps, exclude_newer=EXCLUDE_NEWER))
        if packaged:
            os.makedirs(os.path.join(project, "src", "airgap_bench"))
            with open(os.path.join(project, "src", "airgap_bench", "__init__.py"), "w", encoding="utf-8") as handle:
                handle.write('"""airgap.uv bench project."""\n')
        # Locking is setup, not measured: use the user's uv cache to keep it quick.
        self.sh([self.uv, "lock", "--quiet", "--exclude-newer", EXCLUDE_NEWER, "--directory", project],
                env=self.env())
        export = self.sh([self.uv, "export", "--frozen", "--no-header", "--no-annotate", "--no-emit-project",
                          "--directory", project], env=self.env()).stdout
        with open(os.path.join(project, "requirements.txt"), "w", encoding="utf-8") as handle:
            handle.write(export)
        return project

    def preflight(self, project: str, targets: dict) -> dict:
        """Packages each target selects, and any that would need a build (not a fair bench)."""
        sys.path.insert(0, COLLECTIONS)
        from ansible_collections.airgap.uv.plugins.plugin_utils._lock import load_lock
        from ansible_collections.airgap.uv.plugins.plugin_utils._selection import (
            SelectionOptions, read_default_groups, select_packages)
        from ansible_collections.airgap.uv.plugins.plugin_utils._tags import choose_wheel, target_platforms, target_tags
        from ansible_collections.airgap.uv.plugins.plugin_utils._target import Target

        lock = load_lock(os.path.join(project, "uv.lock"))
        groups = read_default_groups(os.path.join(project, "pyproject.toml"))
        counts = {}
        for host, target_facts in targets.items():
            target = Target.from_facts(target_facts, host)
            tags = target_tags(target.python_version, target.implementation,
                               target_platforms(target.os, target.arch, target.libc_family, target.libc_version,
                                                target.macos_version), target.abiflags)
            selected = [s for s in select_packages(lock, target.marker_environment, SelectionOptions(), groups)
                        if s.package.source_kind != "virtual" and not s.is_root]
            unbuilt = [str(s.package) for s in selected if choose_wheel(s.package.wheels, tags) is None]
            if unbuilt:
                self.notes.append("%s needs builds for %s: %s" % (os.path.basename(project), target.id,
                                                                   ", ".join(unbuilt)))
            counts[target.id] = len(selected)
        return counts

    def seed(self, project: str) -> dict:
        """One untimed airgap run; its uv-releases/ lock and uv wheel seed the 'cached' variants."""
        run = os.path.join(self.root, "seed")
        data = self.airgap(project, ONE_TARGET, os.path.join(run, "cache"), os.path.join(run, "dest"),
                           os.path.join(run, "uv-cache"))
        seed = {"uv_releases": os.path.join(run, "cache", "uv-releases"), "uv_wheel": None}
        try:
            with open(os.path.join(run, "dest", "targets", ONE_TARGET_ID, "manifest.json"), encoding="utf-8") as handle:
                sha256 = json.load(handle)["uv_wheel_sha256"]
            relative = os.path.join("store", "sha256", sha256[:2], sha256)
            if os.path.isfile(os.path.join(run, "cache", relative)):
                seed["uv_wheel"] = (os.path.join(run, "cache", relative), relative)
        except (OSError, ValueError, KeyError):
            pass
        if seed["uv_wheel"] is None:
            self.notes.append("could not find the uv wheel in the seed store; 'uv binary cached' variant skipped")
        say("   seeded uv-binary lock and wheel (%.2f s, untimed)" % data["run"])
        return seed

    # -- contenders -------------------------------------------------------------------

    def airgap(self, project: str, targets: dict, cache_dir: str, dest: str, uv_cache: str,
               profile: str | None = None) -> dict:
        spec = {"project": project, "dest": dest, "targets": targets, "cache_dir": cache_dir,
                "workers": self.args.workers, "uv": self.uv, "profile": profile, "phases": True}
        t0 = time.perf_counter()
        proc = self.sh([sys.executable, os.path.abspath(__file__), "--_child", json.dumps(spec)],
                       env=self.env(UV_CACHE_DIR=uv_cache))
        wall = time.perf_counter() - t0
        data = json.loads(proc.stdout.strip().splitlines()[-1])
        data["wall"] = wall
        return data

    def airgap_cold(self, project: str, targets: dict, seeded: str = "") -> dict:
        """Fresh cache_dir, dest and UV_CACHE_DIR; SEEDED: '' (fully cold), 'lock' or 'binary'."""
        run = self.fresh("airgap")
        cache_dir = os.path.join(run, "cache")
        if seeded:
            shutil.copytree(self.seeded["uv_releases"], os.path.join(cache_dir, "uv-releases"))
        if seeded == "binary":
            source, relative = self.seeded["uv_wheel"]
            os.makedirs(os.path.dirname(os.path.join(cache_dir, relative)))
            shutil.copyfile(source, os.path.join(cache_dir, relative))
        data = self.airgap(project, targets, cache_dir, os.path.join(run, "dest"), os.path.join(run, "uv-cache"))
        data["dir"] = run
        return data

    def fetched_files(self, project: str, run: dict) -> list:
        """[url, sha256] of every remote file a kept cold run put in its wheelhouse, largest first."""
        dest = os.path.join(run["dir"], "dest")
        with open(os.path.join(dest, "manifest.json"), encoding="utf-8") as handle:
            manifest = json.load(handle)
        wanted = {entry["sha256"] for entry in manifest["files"].values()}
        for target_id in manifest["targets"]:
            with open(os.path.join(dest, "targets", target_id, "manifest.json"), encoding="utf-8") as handle:
                wanted.add(json.load(handle)["uv_wheel_sha256"])
        releases = os.path.join(run["dir"], "cache", "uv-releases")
        urls = lock_urls(os.path.join(project, "uv.lock"),
                         *(os.path.join(releases, version, "uv.lock") for version in os.listdir(releases)))
        store = os.path.join(run["dir"], "cache", "store", "sha256")
        chosen = [[urls[sha256], sha256] for sha256 in wanted if sha256 in urls]
        chosen.sort(key=lambda item: -os.path.getsize(os.path.join(store, item[1][:2], item[1])))
        return chosen

    def floor(self, files: list) -> dict:
        run = self.fresh("floor")
        spec = {"files": files, "dest": os.path.join(run, "files")}
        proc = self.sh([sys.executable, os.path.abspath(__file__), "--_floor", json.dumps(spec)], env=self.env())
        self.scrub(run)
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def timed(self, argv: list, env: dict) -> dict:
        """Wall time and CPU time (user + system) of one peer command."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        self.sh(argv, env=env)
        elapsed = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return {"run": elapsed, "cpu": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime}

    def uv_sync(self, project: str) -> dict:
        """The peer: what uv itself needs to get the same set, from an empty uv cache into a fresh venv."""
        run = self.fresh("uv-sync")
        env = self.env(UV_CACHE_DIR=os.path.join(run, "uv-cache"), UV_PROJECT_ENVIRONMENT=os.path.join(run, "venv"))
        data = self.timed([self.uv, "sync", "--frozen", "--no-install-project", "--python", "3.11", "--quiet",
                           "--directory", project], env)
        self.scrub(run)
        return data

    def pip_download(self, project: str) -> dict:
        run = self.fresh("pip")
        data = self.timed([sys.executable, "-m", "pip", "download", "--isolated", "--quiet",
                           "--disable-pip-version-check", "--no-deps", "--only-binary", ":all:", "--no-cache-dir",
                           "-r", os.path.join(project, "requirements.txt"), "-d", os.path.join(run, "wheels")],
                          self.env())
        self.scrub(run)
        return data

    # -- driver -----------------------------------------------------------------------

    def record(self, key: tuple, info: dict) -> None:
        self.samples.setdefault(key, []).append(info["run"])
        self.info.setdefault(key, []).append(info)
        say("    %-14s %8.3f s  cpu %6.2f s%s" % (
            " ".join(str(k) for k in key), info["run"], info.get("cpu", 0.0),
            "  requests=%s downloaded=%s files=%s%s" % (
                info["requests"], info["downloaded"], info["files"],
                "" if info.get("hashed") is None else " hashed=%d" % info["hashed"])
            if "requests" in info else ""))

    def run_size(self, size: int) -> None:
        say("== %d-package project" % size)
        project = self.make_project(size)
        counts = self.preflight(project, FIVE_TARGETS)
        self.counts[size] = counts
        say("   packages per target: %s" % ", ".join("%s=%d" % kv for kv in sorted(counts.items())))
        if self.seeded is None:
            self.seeded = self.seed(project)
        last: dict = {}
        floor_files: dict = {}
        settle = racy_window() + 0.5

        def cold(key: str, targets: dict, seeded: str = "", keep: bool = False):
            def contender() -> None:
                data = self.airgap_cold(project, targets, seeded)
                data["ended"] = time.monotonic()
                self.record((size, key), data)
                if keep:
                    last[key] = data
                else:
                    self.scrub(data["dir"])
            return contender

        def sync() -> None:
            self.record((size, "uv_sync"), self.uv_sync(project))

        def pip() -> None:
            self.record((size, "pip"), self.pip_download(project))

        contenders = [cold("cold1", ONE_TARGET, keep=True), sync, cold("cold5", FIVE_TARGETS, keep=True),
                      cold("cold1_uvlock", ONE_TARGET, "lock")]
        if self.seeded["uv_wheel"]:
            contenders.append(cold("cold1_uvbin", ONE_TARGET, "binary"))
        if not self.args.no_pip:
            contenders.append(pip)
        for rep in range(self.args.repeat):
            say("  repetition %d/%d" % (rep + 1, self.args.repeat))
            shift = rep % len(contenders)
            for contender in contenders[shift:] + contenders[:shift]:
                contender()
            # Warm rebuilds reuse this repetition's cold cache and dest; nothing changed. The first
            # no-change run after a download hashes every file once (the download's own digest is
            # not trusted later: the file may change within its timestamp's granularity), and records
            # the digests only of files written more than the racy window before; every run sooner
            # hashes them all again. The rotation puts cold1 right before these runs in one
            # repetition in six, so without the wait the medians mixed up to 5 of 9 hashing runs into
            # the steady state. Hence: wait out the window, time the first run apart, then the rest.
            for key, cold_key, targets in (("warm1", "cold1", ONE_TARGET), ("warm5", "cold5", FIVE_TARGETS)):
                run = last[cold_key]["dir"]
                where = (os.path.join(run, "cache"), os.path.join(run, "dest"), os.path.join(run, "uv-cache"))
                time.sleep(max(0.0, last[cold_key]["ended"] + settle - time.monotonic()))
                self.record((size, key + "_first"), self.airgap(project, targets, *where))
                for dummy in range(self.args.warm_repeat):
                    warm = self.airgap(project, targets, *where)
                    self.record((size, key), warm)
                if self.args.profile and rep == 0 and size == max(self.args.sizes):
                    out = os.path.join(self.args.profile, "%s-%d.prof" % (key, size))
                    self.airgap(project, targets, *where, profile=out)
                    say("    profile written: %s" % out)
            if not floor_files:
                floor_files.update(floor1=self.fetched_files(project, last["cold1"]),
                                   floor5=self.fetched_files(project, last["cold5"]))
            for data in last.values():
                self.scrub(data["dir"])
            last.clear()
        # The floors run after the cold runs (they need the first repetition's file lists), as many
        # times, alternating.
        for rep in range(self.args.repeat):
            for key in (("floor1", "floor5") if rep % 2 == 0 else ("floor5", "floor1")):
                self.record((size, key), self.floor(floor_files[key]))
        if self.args.profile and size == max(self.args.sizes):
            # cProfile sees the main thread only: downloads show up as waiting in as_completed.
            for key, targets in (("cold1", ONE_TARGET), ("cold5", FIVE_TARGETS)):
                run = self.fresh("profile")
                out = os.path.join(self.args.profile, "%s-%d.prof" % (key, size))
                self.airgap(project, targets, os.path.join(run, "cache"), os.path.join(run, "dest"),
                            os.path.join(run, "uv-cache"), profile=out)
                say("    profile written: %s" % out)
                self.scrub(run)
        if self.args.with_build:
            self.run_packaged(size)

    def run_packaged(self, size: int) -> None:
        """Informational: a packaged project, so the run includes `uv build` of the project."""
        project = self.make_project(size, packaged=True)
        for rep in range(self.args.repeat):
            data = self.airgap_cold(project, ONE_TARGET, "lock")
            self.record((size, "cold1_build"), data)
            self.scrub(data["dir"])
            run = self.fresh("uv-sync-build")
            env = self.env(UV_CACHE_DIR=os.path.join(run, "uv-cache"), UV_PROJECT_ENVIRONMENT=os.path.join(run, "venv"))
            self.record((size, "uv_sync_build"), self.timed(
                [self.uv, "sync", "--frozen", "--no-editable", "--python", "3.11", "--quiet", "--directory", project],
                env))
            self.scrub(run)
            run = self.fresh("uv-build")
            self.record((size, "uv_build_only"), self.timed(
                [self.uv, "build", "--wheel", "--quiet", "--out-dir", os.path.join(run, "out"), project],
                self.env(UV_CACHE_DIR=os.path.join(run, "uv-cache"))))
            self.scrub(run)

    def main(self) -> int:
        self.counts: dict[int, dict] = {}
        self.seeded = None
        say("work dir: %s" % self.root)
        started = time.perf_counter()
        try:
            for size in self.args.sizes:
                self.run_size(size)
        finally:
            if not self.args.keep:
                shutil.rmtree(self.root, ignore_errors=True)
        rows, missed = self.table()
        print()
        print(machine_notes(self.uv))
        print()
        print("\n".join(rows))
        for note in self.notes:
            print("\nNOTE: " + note)
        print("\nrepetitions: %d (medians), warm rebuilds per repetition: %d, total bench time %.0f s"
              % (self.args.repeat, self.args.warm_repeat, time.perf_counter() - started))
        if missed:
            print("missed targets: %s" % "; ".join(missed))
        return 1 if (missed and self.args.strict) else 0

    # -- report -----------------------------------------------------------------------

    def median(self, size: int, key: str) -> float | None:
        values = self.samples.get((size, key))
        return statistics.median(values) if values else None

    def table(self) -> tuple[list[str], list[str]]:
        rows = ["| scenario | packages | airgap.uv median | peer | peer median | ratio | target | result |",
                "|---|---:|---:|---|---:|---:|---|---|"]
        missed: list[str] = []

        def row(name: str, packages: str, mine: float | None, peer: str, theirs: float | None,
                op: str, limit: float | None, target: str, extra_ok: bool = True) -> None:
            ratio = None if (mine is None or not theirs) else mine / theirs
            if limit is None or mine is None:
                verdict = "info"
            else:
                value = ratio if op == "ratio" else mine
                ok = value is not None and value <= limit and extra_ok
                verdict = "PASS" if ok else "**FAIL**"
                if not ok:
                    missed.append("%s%s [packages: %s]" % (name, "" if peer == "-" else " vs " + peer, packages))
            rows.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
                name, packages, seconds(mine), peer, seconds(theirs),
                "" if ratio is None else "%.2fx" % ratio, target, verdict))

        for size in self.args.sizes:
            counts = self.counts.get(size, {})
            one = str(counts.get(ONE_TARGET_ID, "?"))
            five = "%d over 5 targets" % sum(counts.values()) if counts else "?"
            cold1 = self.median(size, "cold1")
            sync = self.median(size, "uv_sync")
            pip = self.median(size, "pip")
            row("cold, 1 target, fully cold", one, cold1, "uv sync, empty cache", sync, "ratio", 1.0, "<= 1.0x")
            row("cold, 1 target, uv-binary lock cached", one, self.median(size, "cold1_uvlock"),
                "uv sync, empty cache", sync, "ratio", 1.0, "<= 1.0x")
            if self.samples.get((size, "cold1_uvbin")):
                row("cold packages, uv-binary lock + uv wheel cached", one, self.median(size, "cold1_uvbin"),
                    "uv sync, empty cache", sync, "ratio", None, "info (packages only)")
            if pip is not None:
                row("cold, 1 target, fully cold", one, cold1, "pip download, no cache", pip,
                    "ratio", 0.2, ">= 5x faster (<= 0.20x)")
            for key, name, packages, limit in (
                    ("warm1_first", "1 target, first run after the download (hashes every file once)", one, None),
                    ("warm5_first", "5 targets, first run after the download (hashes every file once)", five, None),
                    ("warm1", "1 target", one, 0.2 if size >= 150 else None),
                    ("warm5", "5 targets", five, None)):
                infos = self.info.get((size, key), [])
                if not infos:
                    continue
                quiet = all(i["requests"] == 0 and not i["changed"] for i in infos)
                label = "warm rebuild, nothing changed, %s%s" % (
                    name, "" if quiet else " (made requests or changed)")
                row(label, packages, self.median(size, key), "-", None, "abs", limit,
                    "<= 0.2 s, 0 requests" if limit else "info", extra_ok=quiet)
            if pip is not None and sync is not None:
                row("for scale: uv sync vs pip download = %.2fx (uv is %.1fx faster than pip here)"
                    % (sync / pip, pip / sync), one, None, "-", None, "abs", None, "info")
            row("cold, 5 targets (fully cold)", five, self.median(size, "cold5"), "airgap.uv 1 target, fully cold",
                cold1, "ratio", 1.5, "<= 1.5x")
            floor1, floor5 = self.median(size, "floor1"), self.median(size, "floor5")
            if floor1 and floor5:
                row("transfer floor (bare fetch + sha256 + write of the same files), 5 targets", five, floor5,
                    "the same floor, 1 target", floor1, "ratio", None, "info: what the bytes alone impose")
                row("airgap.uv 1 target over its floor", one, cold1, "transfer floor, 1 target", floor1,
                    "ratio", None, "info")
                row("airgap.uv 5 targets over their floor", five, self.median(size, "cold5"),
                    "transfer floor, 5 targets", floor5, "ratio", None, "info")
            if self.samples.get((size, "cold1_build")):
                row("cold, 1 target, packaged project (incl. uv build)", one, self.median(size, "cold1_build"),
                    "uv sync --no-editable, empty cache", self.median(size, "uv_sync_build"), "ratio", None, "info")
                row("uv build --wheel of the project alone, empty uv cache", "-",
                    self.median(size, "uv_build_only"), "-", None, "abs", None, "info")

        rows += ["", "Where airgap.uv's time goes (medians, seconds; nested phases indented):", "",
                 "| run | size | total | CPU | " + " | ".join(PHASE_COLUMNS)
                 + " | startup+imports | bytes fetched | requests | files hashed |",
                 "|---|---:|---:|---:|" + "---:|" * (len(PHASE_COLUMNS) + 4)]
        for size in self.args.sizes:
            for key in ("cold1", "cold1_uvlock", "cold1_uvbin", "cold5", "warm1_first", "warm5_first", "warm1",
                        "warm5", "cold1_build"):
                infos = self.info.get((size, key), [])
                if not infos:
                    continue
                cells = []
                for column in PHASE_COLUMNS:
                    label = column.strip("> ")
                    values = [i["phases"].get(label, 0.0) for i in infos]
                    cells.append("%.3f" % statistics.median(values))
                hashed = [i["hashed"] for i in infos if i.get("hashed") is not None]
                rows.append("| %s | %d | %.3f | %.2f | %s | %.3f | %.1f MB | %d | %s |" % (
                    key, size, statistics.median(i["run"] for i in infos),
                    statistics.median(i["cpu"] for i in infos), " | ".join(cells),
                    statistics.median(i["startup"] for i in infos),
                    statistics.median(i["stored_bytes"] for i in infos) / 1e6 if not key.startswith("warm") else 0.0,
                    max(i["requests"] for i in infos), "%g" % statistics.median(hashed) if hashed else "-"))
        rows += ["", "Peers (medians):", "", "| peer | size | wall | CPU (user+sys) |", "|---|---:|---:|---:|"]
        for size in self.args.sizes:
            for key, name in (("uv_sync", "uv sync --frozen --no-install-project, empty uv cache, fresh venv"),
                              ("pip", "pip download --no-deps --only-binary :all: --no-cache-dir"),
                              ("floor1", "transfer floor, 1 target's files (8 connections, fetch + sha256 + write)"),
                              ("floor5", "transfer floor, 5 targets' files"),
                              ("uv_sync_build", "uv sync --no-editable (packaged project)"),
                              ("uv_build_only", "uv build --wheel (packaged project)")):
                infos = self.info.get((size, key), [])
                if infos:
                    rows.append("| %s | %d | %.3f s | %.2f s |" % (
                        name, size, statistics.median(i["run"] for i in infos),
                        statistics.median(i["cpu"] for i in infos)))
        return rows, missed


PHASE_COLUMNS = ("unchanged_check", "load_lock", "select", "check_lock", "uv_version", "choose_wheels", "uv_wheel",
                 "> uv_release_lock", "uv_fetch", "> extract_uv", "downloads", "wait_downloads", "publish",
                 "> compare_published")


def seconds(value: float | None) -> str:
    if value is None:
        return ""
    return "%.3f s" % value if value < 1 else "%.2f s" % value


def machine_notes(uv: str) -> str:
    uv_v = subprocess.run([uv, "--version"], stdout=subprocess.PIPE, text=True).stdout.strip()
    pip_v = subprocess.run([sys.executable, "-m", "pip", "--version"], stdout=subprocess.PIPE,
                           text=True).stdout.split(" from ")[0]
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    git = subprocess.run(["git", "-C", here, "log", "-1", "--format=%h %cI"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", here, "status", "--porcelain", "--", "plugins"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True).stdout.strip()
    return ("machine: %s, %d CPUs, %s %s, Python %s, %s, %s\ncode: commit %s%s" % (
        cpu, os.cpu_count() or 0, platform.system(), platform.release(), platform.python_version(), uv_v, pip_v,
        git or "?", " + uncommitted changes under plugins/" if dirty else ""))


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of every cold measurement (default 3)")
    parser.add_argument("--warm-repeat", type=int, default=3, help="warm rebuilds after each cold run (default 3)")
    parser.add_argument("--sizes", default="30,150", help="project sizes, from %s (default 30,150)"
                        % ",".join(str(s) for s in PROJECTS))
    parser.add_argument("--quick", action="store_true", help="one repetition of the 30-package project")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--no-pip", action="store_true", help="skip the (slow) pip download peer")
    parser.add_argument("--with-build", action="store_true",
                        help="also time a packaged project (the run includes uv build of the project)")
    parser.add_argument("--profile", metavar="DIR",
                        help="write cProfile stats of cold and warm runs of the largest size")
    parser.add_argument("--workers", type=int, default=8, help="WheelhouseOptions.workers (default 8)")
    parser.add_argument("--uv", default=os.path.join(VENV_BIN, "uv"), help="uv executable (default: next to Python)")
    parser.add_argument("--workdir", default=None, help="where the temporary tree goes (default: system temp)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary tree")
    parser.add_argument("--_child", help=argparse.SUPPRESS)
    parser.add_argument("--_floor", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._child:
        return child(args._child)
    if args._floor:
        return floor_child(args._floor)
    if args.quick:
        args.repeat, args.sizes = 1, "30"
    args.sizes = [int(s) for s in str(args.sizes).split(",") if s]
    for size in args.sizes:
        if size not in PROJECTS:
            parser.error("--sizes: %d is not one of %s" % (size, ", ".join(str(s) for s in PROJECTS)))
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)
        args.profile = os.path.abspath(args.profile)
    return Bench(args).main()


if __name__ == "__main__":
    sys.exit(main())
