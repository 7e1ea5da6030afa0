# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to the airgap.uv collection
"""Test helpers: targets, real uv runs, and a recording artifact proxy.

Used by the ``uv_lock``-marked comparison tests. Nothing here is shipped code.
The package index is never named here: lock files are generated at test time
by ``uv lock`` with the user's default index, and the proxy learns upstream
URLs from those generated locks.
"""

from __future__ import annotations

import base64
import glob
import hashlib
import http.server
import os
import re
import shutil
import subprocess
import threading
import typing as t
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass, field

from packaging.markers import Marker
from packaging.utils import canonicalize_name

EXCLUDE_NEWER = "2026-10-01T00:00:00Z"


# ---------------------------------------------------------------------------
# Targets
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One simulated target host: what uv gets via --python-platform, and what we compute from."""

    name: str
    python: str  # full version, e.g. 3.12.1
    uv_platform: str  # uv --python-platform value
    os_name: str  # for target_platforms()
    arch: str
    libc_family: str | None
    libc_version: str | None
    macos_version: str | None = None
    env: t.Mapping[str, str] = field(default_factory=dict)

    @property
    def minor(self) -> str:
        return ".".join(self.python.split(".")[:2])

    def marker_env(self) -> dict[str, str]:
        """A hand-built marker environment (the keys of packaging's default_environment())."""
        base = {
            "implementation_name": "cpython",
            "implementation_version": self.python,
            "platform_python_implementation": "CPython",
            "python_full_version": self.python,
            "python_version": self.minor,
        }
        if self.os_name == "linux":
            base.update(
                os_name="posix",
                platform_machine=self.arch,
                platform_release="6.1.0-28-amd64" if self.arch == "x86_64" else "6.1.0-28-arm64",
                platform_system="Linux",
                platform_version="#1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22)",
                sys_platform="linux",
            )
        elif self.os_name == "darwin":
            base.update(
                os_name="posix",
                platform_machine="arm64" if self.arch in ("arm64", "aarch64") else "x86_64",
                platform_release="23.5.0",
                platform_system="Darwin",
                platform_version="Darwin Kernel Version 23.5.0",
                sys_platform="darwin",
            )
        elif self.os_name == "windows":
            base.update(
                os_name="nt",
                platform_machine="AMD64" if self.arch in ("x86_64", "amd64", "AMD64") else "ARM64",
                platform_release="10",
                platform_system="Windows",
                platform_version="10.0.20348",
                sys_platform="win32",
            )
        else:  # pragma: no cover
            raise ValueError(self.os_name)
        return base


#: Extra targets for the offline fake-wheel comparisons (no downloads involved).
EXTRA_TAG_TARGETS: tuple[Target, ...] = (
    Target("linux-x86_64-glibc228-py312", "3.12.1", "x86_64-manylinux_2_28", "linux", "x86_64", "glibc", "2.28"),
    Target("linux-aarch64-glibc217-py312", "3.12.1", "aarch64-manylinux2014", "linux", "aarch64", "glibc", "2.17"),
    Target("musl-aarch64-py313", "3.13.0", "aarch64-unknown-linux-musl", "linux", "aarch64", "musl", "1.2"),
    Target(
        "macos-x86_64-py311", "3.11.7", "x86_64-apple-darwin", "darwin", "x86_64", None, None,
        macos_version="10.15", env={"MACOSX_DEPLOYMENT_TARGET": "10.15"},
    ),
    Target(
        "macos-arm64-13-py39", "3.9.18", "aarch64-apple-darwin", "darwin", "arm64", None, None,
        macos_version="13.0", env={"MACOSX_DEPLOYMENT_TARGET": "13.0"},
    ),
    Target("windows-arm64-py312", "3.12.1", "aarch64-pc-windows-msvc", "windows", "ARM64", None, None),
    Target("windows-x86-py311", "3.11.7", "i686-pc-windows-msvc", "windows", "x86", None, None),
)

TARGETS: tuple[Target, ...] = (
    Target("linux-x86_64-py39", "3.9.18", "x86_64-manylinux_2_36", "linux", "x86_64", "glibc", "2.36"),
    Target("linux-x86_64-py312", "3.12.1", "x86_64-manylinux_2_36", "linux", "x86_64", "glibc", "2.36"),
    Target("linux-aarch64-py311", "3.11.7", "aarch64-manylinux_2_36", "linux", "aarch64", "glibc", "2.36"),
    Target("musl-x86_64-py311", "3.11.7", "x86_64-unknown-linux-musl", "linux", "x86_64", "musl", "1.2"),
    Target(
        "macos-arm64-py312",
        "3.12.1",
        "aarch64-apple-darwin",
        "darwin",
        "arm64",
        None,
        None,
        macos_version="14.0",
        env={"MACOSX_DEPLOYMENT_TARGET": "14.0"},
    ),
    Target("windows-amd64-py313", "3.13.0", "x86_64-pc-windows-msvc", "windows", "AMD64", None, None),
)


def target_tags_for(target: Target) -> list[t.Any]:
    from ansible_collections.airgap.uv.plugins.plugin_utils._tags import target_platforms, target_tags

    platforms = target_platforms(target.os_name, target.arch, target.libc_family, target.libc_version, target.macos_version)
    return target_tags(target.python, "cpython", platforms)


# ---------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------


def find_python(version: str) -> str | None:
    """Find an interpreter of exactly ``version`` (pyenv layout, then PATH)."""
    roots = [os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv")), "/root/.pyenv"]
    for root in roots:
        candidate = os.path.join(root, "versions", version, "bin", "python")
        if os.path.exists(candidate):
            return candidate
    minor = ".".join(version.split(".")[:2])
    for root in roots:
        for candidate in sorted(glob.glob(os.path.join(root, "versions", minor + ".*", "bin", "python"))):
            return candidate
    return shutil.which("python" + minor)


def python_full_version(python: str) -> str:
    out = subprocess.run(
        [python, "-c", "import platform; print(platform.python_version())"], check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


def run_uv(uv: str, args: list[str], cwd: str, env: t.Mapping[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
    for key in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "UV_OFFLINE", "UV_FROZEN", "UV_LOCKED", "UV_NO_SYNC"):
        full_env.pop(key, None)
    full_env["UV_NO_PROGRESS"] = "1"
    full_env["NO_COLOR"] = "1"
    if env:
        full_env.update(env)
    proc = subprocess.run([uv] + args, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=600, check=False)
    if check and proc.returncode != 0:
        raise AssertionError("uv %s failed (%d):\n%s\n%s" % (" ".join(args), proc.returncode, proc.stdout, proc.stderr))
    return proc


# ---------------------------------------------------------------------------
# uv export parsing
# ---------------------------------------------------------------------------

_REQ_LINE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:==\s*(?P<version>[^\s;]+)|@\s*(?P<url>[^\s;]+))?\s*(?:;\s*(?P<marker>.*))?$")


def parse_export(text: str) -> list[tuple[str, str | None, str | None, str | None]]:
    """Parse ``uv export --no-hashes --no-annotate --no-header`` output.

    Returns (name or None for local paths, version, local path, marker).
    """
    entries = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        marker = None
        if line.startswith(("-e ", "./", "../", "/", "file://")):
            body = line[3:] if line.startswith("-e ") else line
            if ";" in body:
                body, marker = [x.strip() for x in body.split(";", 1)]
            body = body.strip()
            if body.startswith("file://"):
                body = urllib.parse.unquote(urllib.parse.urlsplit(body).path)
            entries.append((None, None, body, marker))
            continue
        match = _REQ_LINE.match(line)
        if not match:
            raise AssertionError("cannot parse export line %r" % line)
        entries.append((canonicalize_name(match["name"]), match["version"], match["url"], match["marker"]))
    return entries


def export_packages(
    entries: t.Iterable[tuple[str | None, str | None, str | None, str | None]],
    marker_env: t.Mapping[str, str],
    lock: t.Any,
) -> set[tuple[str, str | None]]:
    """Filter exported requirements by evaluating their markers for the target."""
    result = set()
    for name, version, local, marker in entries:
        if marker and not Marker(marker).evaluate(dict(marker_env)):
            continue
        if name is None:
            assert local is not None
            wanted = os.path.normpath(os.path.join(lock.directory, local))
            matches = [p for p in lock.packages if p.local_path and os.path.normpath(p.local_path) == wanted]
            assert len(matches) == 1, (local, matches)
            result.add((matches[0].name, matches[0].version))
        else:
            if version is None:
                matches = lock.packages_named(name)
                assert len(matches) == 1, (name, matches)
                version = matches[0].version
            result.add((name, version))
    return result


def uv_option_args(options: t.Any) -> list[str]:
    args: list[str] = []
    for g in options.groups:
        args += ["--group", g]
    for g in options.only_groups:
        args += ["--only-group", g]
    for g in options.no_groups:
        args += ["--no-group", g]
    if options.all_groups:
        args.append("--all-groups")
    if options.no_default_groups:
        args.append("--no-default-groups")
    if options.no_dev:
        args.append("--no-dev")
    for e in options.extras:
        args += ["--extra", e]
    for e in options.no_extras:
        args += ["--no-extra", e]
    if options.all_extras:
        args.append("--all-extras")
    if options.package:
        args += ["--package", options.package]
    if options.all_packages:
        args.append("--all-packages")
    return args


# ---------------------------------------------------------------------------
# Recording proxy for artifact downloads
# ---------------------------------------------------------------------------


class ArtifactProxy:
    """Serve lock artifacts over local HTTP, recording which files uv fetches.

    Upstream bytes are fetched once (from the URL recorded in a generated lock)
    and kept in ``store`` keyed by sha256, so repeated runs are local.
    """

    def __init__(self, store: str) -> None:
        self.store = store
        os.makedirs(store, exist_ok=True)
        self._routes: dict[str, tuple[str, str | None]] = {}
        self._lock = threading.Lock()
        self.requests: list[str] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: t.Any) -> None:  # silence
                pass

            def do_GET(self) -> None:  # noqa: N802
                route = proxy._routes.get(self.path)
                if route is None:
                    self.send_error(404)
                    return
                try:
                    local = proxy._fetch(*route)
                except Exception as exc:  # pragma: no cover - network trouble
                    self.send_error(502, str(exc))
                    return
                with proxy._lock:
                    proxy.requests.append(urllib.parse.unquote(self.path.rsplit("/", 1)[-1]))
                size = os.path.getsize(local)
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(size))
                self.end_headers()
                with open(local, "rb") as handle:
                    shutil.copyfileobj(handle, self.wfile)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return "http://127.0.0.1:%d" % self.server.server_address[1]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _fetch(self, url: str, sha256: str | None) -> str:
        key = sha256 or hashlib.sha256(url.encode()).hexdigest()
        local = os.path.join(self.store, key)
        if os.path.exists(local):
            return local
        tmp = local + ".part.%d" % threading.get_ident()
        digest = hashlib.sha256()
        with urllib.request.urlopen(url, timeout=120) as response, open(tmp, "wb") as out:
            while True:
                chunk = response.read(1 << 20)
                if not chunk:
                    break
                digest.update(chunk)
                out.write(chunk)
        if sha256 and digest.hexdigest() != sha256:
            os.unlink(tmp)
            raise RuntimeError("hash mismatch for %s" % url)
        os.replace(tmp, local)
        return local

    def take_requests(self) -> list[str]:
        with self._lock:
            out, self.requests = self.requests, []
        return out

    def rewrite_lock(self, text: str) -> str:
        """Point every artifact URL (not package sources) of a uv.lock text at this proxy."""
        pattern = re.compile(r'(?<!source = )\{ url = "(https?://[^"]+)"((?:, hash = "sha256:([0-9a-f]+)")?)')

        def repl(match: re.Match[str]) -> str:
            url = match.group(1)
            sha = match.group(3)
            filename = url.rsplit("/", 1)[-1]
            route = "/f/%s/%s" % (sha or hashlib.sha256(url.encode()).hexdigest()[:32], filename)
            self._routes[route] = (url, sha)
            return '{ url = "%s%s"%s' % (self.base, route, match.group(2))

        return pattern.sub(repl, text)


# ---------------------------------------------------------------------------
# Fake wheels for offline tag-priority comparisons
# ---------------------------------------------------------------------------


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def make_fake_wheel(directory: str, filename: str) -> str:
    """Write a tiny valid wheel whose module records its own file name."""
    stem = filename[: -len(".whl")]
    parts = stem.split("-")
    name, version = parts[0], parts[1]
    py, abi, plat = parts[-3:]
    files: dict[str, bytes] = {}
    files["%s/__init__.py" % name] = ("WHEEL_FILE = %r\n" % filename).encode()
    info = "%s-%s.dist-info" % (name, version)
    files[info + "/METADATA"] = ("Metadata-Version: 2.1\nName: %s\nVersion: %s\n" % (name, version)).encode()
    lines = ["Wheel-Version: 1.0", "Generator: airgap-uv-tests", "Root-Is-Purelib: false"]
    if len(parts) == 6:
        lines.append("Build: %s" % parts[2])
    lines += ["Tag: %s-%s-%s" % (x, y, z) for x in py.split(".") for y in abi.split(".") for z in plat.split(".")]
    files[info + "/WHEEL"] = ("\n".join(lines) + "\n").encode()
    record = "".join("%s,%s,%d\n" % (k, _record_hash(v), len(v)) for k, v in files.items()) + info + "/RECORD,,\n"
    files[info + "/RECORD"] = record.encode()
    path = os.path.join(directory, filename)
    with zipfile.ZipFile(path, "w") as archive:
        for key, value in files.items():
            archive.writestr(key, value)
    return path


def installed_fake_wheel(venv: str, module: str) -> str | None:
    """Return the WHEEL_FILE recorded by an installed fake wheel."""
    for init in glob.glob(os.path.join(venv, "lib", "python*", "site-packages", module, "__init__.py")) + glob.glob(
        os.path.join(venv, "Lib", "site-packages", module, "__init__.py")
    ):
        text = open(init, encoding="utf-8").read()
        match = re.search(r"WHEEL_FILE = '([^']+)'", text)
        if match:
            return match.group(1)
    return None


_INSTALLED = re.compile(r"^ \+ (?P<name>[A-Za-z0-9._-]+)==(?P<version>\S+)")


def parse_installed(stderr: str) -> set[tuple[str, str]]:
    out = set()
    for line in stderr.splitlines():
        match = _INSTALLED.match(line)
        if match:
            out.add((canonicalize_name(match["name"]), match["version"]))
    return out
