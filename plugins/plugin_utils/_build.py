# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Turning what uv.lock does not hold as a wheel into one, on the controller.

Controller-only helpers for :mod:`._wheelhouse`:

* the source of a build: a local tree (the project, workspace members, path, directory and
  editable dependencies), a verified sdist or archive (sdist-only registry packages, direct-URL
  and path sdists) or a git commit, each with a cache key that changes exactly when the
  wheel could change;
* git: parse uv.lock's ``git`` source, fetch the locked commit into a bare repository kept in
  the cache, check it out in a temporary directory and verify ``HEAD``;
* archives: safe extraction (no absolute names, no ``..``, no links leaving the tree);
* interpreters: which Pythons on the controller can build a platform-specific wheel that a
  given target can install (same OS, CPU, libc family, a libc no newer than the target's, the
  same Python minor version and ABI flags).

No index or host is named here: git talks to the URL recorded in uv.lock, and ``uv build``
uses the user's own uv configuration to get build requirements.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import platform
import posixpath
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Optional, Sequence
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from ansible_collections.airgap.uv.plugins.module_utils._platform import normalize_arch, normalize_libc, normalize_os
from ansible_collections.airgap.uv.plugins.plugin_utils._download import file_sha256

try:
    from packaging.utils import (InvalidSdistFilename, InvalidWheelFilename, canonicalize_name,
                                 parse_sdist_filename, parse_wheel_filename)
    from packaging.version import InvalidVersion, Version
except ImportError:  # reported by the action plugin through _lock's HAS_PACKAGING check
    pass

#: Bumped when the way wheels are built changes, so older cached builds are not reused.
BUILD_RECIPE = "1"

_HEX = re.compile(r"^[0-9a-f]+$")
_SHA1_OR_SHA256 = (40, 64)
# git must never stop to ask for a password or a host key: the run is unattended.
_GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "SSH_ASKPASS": "true",
            "GCM_INTERACTIVE": "never", "GIT_LFS_SKIP_SMUDGE": "1"}


class BuildError(Exception):
    """A source cannot be fetched, unpacked or built; the message names what and why."""


# -- git sources -----------------------------------------------------------------------------


@dataclass(frozen=True)
class GitSource:
    """uv.lock's ``source = { git = "URL?rev=...&subdirectory=...#COMMIT" }``, taken apart."""

    url: str
    commit: str
    reference: Optional[str] = None
    reference_kind: Optional[str] = None  # "rev", "tag" or "branch", as the user wrote it
    subdirectory: Optional[str] = None
    lfs: bool = False

    @property
    def cache_key(self) -> str:
        return build_key("git", self.commit, self.subdirectory)

    @property
    def display_url(self) -> str:
        """The repository URL without credentials, for messages."""
        return strip_url_credentials(self.url)


def strip_url_credentials(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[1], parts.path, parts.query, parts.fragment))


def parse_git_source(source: str, subdirectory: Optional[str] = None) -> GitSource:
    """Parse the ``git`` value of a uv.lock source; SUBDIRECTORY from the source table wins if given.

    uv writes ``URL[?rev=R|tag=T|branch=B][&subdirectory=D][&lfs=true]#FULL_COMMIT``, with or
    without a ``git+`` prefix; the commit is the full hexadecimal object name.
    """
    text = (source or "").strip()
    if text.startswith("git+"):
        text = text[4:]
    base, sep, commit = text.partition("#")
    commit = commit.strip().lower()
    if not sep or not commit:
        raise BuildError("git source %r records no commit (expected URL#<full commit hash>); re-create the lock "
                         "with `uv lock`." % strip_url_credentials(source))
    if len(commit) not in _SHA1_OR_SHA256 or not _HEX.match(commit):
        raise BuildError("git source %r: %r is not a full commit hash; re-create the lock with `uv lock`."
                         % (strip_url_credentials(source), commit))
    parts = urlsplit(base)
    if not parts.scheme or (not parts.netloc and parts.scheme != "file"):
        raise BuildError("git source %r has no repository URL; re-create the lock with `uv lock`."
                         % strip_url_credentials(source))
    reference = kind = None
    subdir = None
    lfs = False
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in ("rev", "tag", "branch"):
            reference, kind = value, key
        elif key == "subdirectory":
            subdir = value
        elif key == "lfs":
            lfs = value.lower() in ("true", "1", "yes")
    if subdirectory:
        subdir = subdirectory
    url = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    return GitSource(url=url, commit=commit, reference=reference, reference_kind=kind,
                     subdirectory=normalize_subdirectory(subdir, source), lfs=lfs)


def normalize_subdirectory(subdirectory: Optional[str], where: str) -> Optional[str]:
    """A relative POSIX path inside a checkout or archive, or None for its root; refuses escapes."""
    if subdirectory is None:
        return None
    text = unquote(subdirectory).replace("\\", "/").strip()
    if text in ("", ".", "./"):
        return None
    norm = posixpath.normpath(text)
    if norm.startswith("/") or norm == ".." or norm.startswith("../") or ":" in norm.split("/")[0]:
        raise BuildError("%s: subdirectory %r leaves the source tree; refusing it."
                         % (strip_url_credentials(where), subdirectory))
    return norm


def build_key(kind: str, identity: str, subdirectory: Optional[str] = None) -> str:
    """Cache key of a build source: KIND-IDENTITY, plus a digest of the subdirectory if any."""
    if not re.match(r"^[a-z]+$", kind) or not identity or not _HEX.match(identity):
        raise ValueError("bad build key parts %r %r" % (kind, identity))
    key = "%s-%s" % (kind, identity)
    if subdirectory:
        key += "-" + hashlib.sha256(subdirectory.encode()).hexdigest()[:16]
    return key


def _git(args: Sequence[str], cwd: Optional[str] = None, what: str = "git") -> str:
    env = dict(os.environ)
    env.update(_GIT_ENV)
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, text=True, check=False)
    except FileNotFoundError:
        raise BuildError("%s: git is not installed on the controller; install git (it is needed for git "
                         "dependencies in uv.lock)." % what) from None
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-10:])
        raise BuildError("%s failed (git %s, rc=%d):\n%s"
                         % (what, " ".join(_redact_args(args)), proc.returncode, tail))
    return proc.stdout


def _redact_args(args: Iterable[str]) -> list[str]:
    return [strip_url_credentials(a) if "://" in a else a for a in args]


class GitFetcher:
    """Fetches locked commits into bare repositories under ``root`` (one per repository URL)."""

    def __init__(self, root: str, progress: Optional[Callable[[str], None]] = None, offline: bool = False) -> None:
        self.root = root
        self._say = progress or (lambda message: None)
        self.fetches = 0
        # UV_OFFLINE: only commits already in the cache are used, as uv does with its git cache.
        self.offline = offline

    def database(self, url: str) -> str:
        return os.path.join(self.root, "db", hashlib.sha256(url.encode()).hexdigest()[:32])

    def _has_commit(self, database: str, commit: str) -> bool:
        try:
            _git(["--git-dir", database, "cat-file", "-e", commit + "^{commit}"])
        except BuildError:
            return False
        return True

    def fetch(self, source: GitSource, label: str) -> str:
        """The bare repository holding SOURCE's commit (fetched now unless it is there already)."""
        database = self.database(source.url)
        if not os.path.isdir(database):
            os.makedirs(os.path.dirname(database), exist_ok=True)
            staging = database + ".incoming-%d" % os.getpid()
            shutil.rmtree(staging, ignore_errors=True)
            _git(["init", "--quiet", "--bare", staging], what="%s: git init" % label)
            try:
                os.replace(staging, database)
            except OSError:
                shutil.rmtree(staging, ignore_errors=True)  # another run made it first
        if self._has_commit(database, source.commit):
            return database
        if self.offline:
            raise BuildError("%s: UV_OFFLINE is set, so git may not fetch, and the controller's git cache %s lacks "
                             "commit %s of %s; run once with network access (unset UV_OFFLINE or set it to 0)."
                             % (label, database, source.commit, source.display_url))
        self._say("fetching %s from %s" % (label, source.display_url))
        self.fetches += 1
        what = "%s: fetching commit %s from %s" % (label, source.commit, source.display_url)
        tags = "+refs/tags/*:refs/tags/*"
        try:
            # Most servers hand out any reachable commit by its name; tags help version plugins.
            _git(["--git-dir", database, "fetch", "--quiet", "--force", source.url, source.commit, tags], what=what)
        except BuildError:
            # Older servers only serve advertised refs: fetch branches and tags, then look again.
            try:
                _git(["--git-dir", database, "fetch", "--quiet", "--force", source.url,
                      "+refs/heads/*:refs/remotes/origin/*", tags], what=what)
            except BuildError as exc:
                raise BuildError("%s\nMake the repository reachable from the controller with git's own "
                                 "configuration (a credential helper or SSH key for it); git runs without prompts."
                                 % exc) from None
        if not self._has_commit(database, source.commit):
            raise BuildError("%s: %s has no commit %s (uv.lock records it%s); the history was rewritten or the "
                             "reference deleted: re-lock with `uv lock --upgrade-package %s`."
                             % (label, source.display_url, source.commit,
                                " for %s %s" % (source.reference_kind, source.reference) if source.reference else "",
                                label.split()[0]))
        return database

    def checkout(self, source: GitSource, label: str, directory: str) -> str:
        """Check SOURCE's commit out into DIRECTORY (made here); return the directory to build."""
        database = self.fetch(source, label)
        _git(["clone", "--quiet", "--no-checkout", database, directory],
             what="%s: git clone" % label)
        _git(["checkout", "--quiet", "--detach", source.commit], cwd=directory, what="%s: git checkout" % label)
        head = _git(["rev-parse", "HEAD"], cwd=directory, what="%s: git rev-parse" % label).strip().lower()
        if head != source.commit:
            raise BuildError("%s: the checkout of %s is at %s, not at the locked commit %s."
                             % (label, source.display_url, head, source.commit))
        # Relative submodule URLs and LFS objects are found from the real repository.
        _git(["remote", "set-url", "origin", source.url], cwd=directory, what="%s: git remote" % label)
        if self.offline and (source.lfs or os.path.isfile(os.path.join(directory, ".gitmodules"))):
            raise BuildError("%s: UV_OFFLINE is set, but building it needs its git %s fetched from the network; "
                             "run once with network access (unset UV_OFFLINE or set it to 0)."
                             % (label, "LFS objects" if source.lfs else "submodules"))
        if os.path.isfile(os.path.join(directory, ".gitmodules")):
            self._say("fetching submodules of %s" % label)
            _git(["-c", "protocol.file.allow=always", "submodule", "update", "--init", "--recursive", "--quiet"],
                 cwd=directory, what="%s: git submodule update" % label)
        if source.lfs:
            _git(["lfs", "pull"], cwd=directory, what="%s: git lfs pull (install git-lfs on the controller)"
                 % label)
        return subdirectory_of(directory, source.subdirectory, label)


def subdirectory_of(root: str, subdirectory: Optional[str], label: str) -> str:
    if not subdirectory:
        return root
    path = os.path.join(root, *subdirectory.split("/"))
    real_root = os.path.realpath(root)
    if not os.path.realpath(path).startswith(real_root + os.sep) or not os.path.isdir(path):
        raise BuildError("%s: subdirectory %r does not exist in the source." % (label, subdirectory))
    return path


# -- source trees ----------------------------------------------------------------------------

# Entries that never affect a built wheel; skipping them keeps the digest cheap and stable.
SKIP_DIRS = frozenset((".git", ".hg", ".svn", ".venv", "venv", "__pycache__", "dist", "build", ".tox", ".nox",
                       ".pytest_cache", ".mypy_cache", ".ruff_cache", "node_modules", ".eggs"))


def tree_digest(directory: str, skip_dirs: Iterable[str] = SKIP_DIRS) -> str:
    """sha256 over the relative names, executable bits and contents of a source tree's files.

    Symbolic links count by their target text (a link to a file also by that file's content,
    as a build would read it); directories in SKIP_DIRS and ``*.egg-info`` are left out.
    """
    skip = set(skip_dirs)
    digest = hashlib.sha256(("tree:" + BUILD_RECIPE).encode())
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if d not in skip and not d.endswith(".egg-info"))
        for name in sorted(files):
            if name.endswith((".pyc", ".pyo")):
                continue
            path = os.path.join(root, name)
            rel = os.path.relpath(path, directory).replace(os.sep, "/")
            if os.path.islink(path):
                digest.update(b"L" + rel.encode() + b"\0" + os.readlink(path).encode() + b"\0")
                if not os.path.isfile(path):
                    continue
            elif not os.path.isfile(path):
                continue
            mode = b"x" if os.access(path, os.X_OK) else b"-"
            digest.update(b"F" + rel.encode() + b"\0" + mode + file_sha256(path).encode() + b"\0")
    return digest.hexdigest()


# -- archives --------------------------------------------------------------------------------


def archive_kind(filename: str) -> Optional[str]:
    lower = filename.lower()
    if lower.endswith((".tar.gz", ".tgz", ".tar.bz2", ".tbz", ".tar.xz", ".txz", ".tar")):
        return "tar"
    if lower.endswith(".zip"):
        return "zip"
    return None


def _safe_member(name: str, label: str) -> str:
    norm = posixpath.normpath(name.replace("\\", "/"))
    if norm.startswith("/") or norm == ".." or norm.startswith("../") or "\x00" in norm or ":" in norm.split("/")[0]:
        raise BuildError("%s: the archive holds an unsafe member name %r; refusing to unpack it." % (label, name))
    return norm


def extract_archive(archive: str, filename: str, destination: str, label: str) -> str:
    """Unpack ARCHIVE (named FILENAME) into DESTINATION; return the source root inside it.

    An sdist holds one top-level directory ``name-version/``: that is the root. Members that
    would land outside DESTINATION, device files and links leaving the tree are refused.
    """
    kind = archive_kind(filename)
    os.makedirs(destination, exist_ok=True)
    try:
        if kind == "tar":
            with tarfile.open(archive) as handle:
                members = handle.getmembers()
                for member in members:
                    norm = _safe_member(member.name, label)
                    if member.isdev() or member.isfifo():
                        raise BuildError("%s: the archive holds a device or FIFO %r; refusing to unpack it."
                                         % (label, member.name))
                    if member.issym() or member.islnk():
                        target = member.linkname.replace("\\", "/")
                        joined = posixpath.normpath(posixpath.join(posixpath.dirname(norm), target)
                                                    if member.issym() else target)
                        if target.startswith("/") or joined == ".." or joined.startswith("../"):
                            raise BuildError("%s: the archive link %r points outside it; refusing to unpack it."
                                             % (label, member.name))
                if hasattr(tarfile, "data_filter"):
                    handle.extractall(destination, members=members, filter="data")
                else:  # pragma: no cover - Pythons without extraction filters
                    handle.extractall(destination, members=members)
        elif kind == "zip":
            with zipfile.ZipFile(archive) as handle:
                for name in handle.namelist():
                    _safe_member(name, label)
                handle.extractall(destination)
        else:
            raise BuildError("%s: %s is neither a tar nor a zip archive; uv.lock's sdist must be one."
                             % (label, filename))
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as exc:
        raise BuildError("%s: cannot unpack %s: %s" % (label, filename, exc)) from None
    entries = [e for e in os.listdir(destination) if not e.startswith(".")]
    if (len(entries) == 1 and os.path.isdir(os.path.join(destination, entries[0]))
            and not _is_project_root(destination)):
        return os.path.join(destination, entries[0])
    return destination


def _is_project_root(directory: str) -> bool:
    return any(os.path.isfile(os.path.join(directory, name)) for name in ("pyproject.toml", "setup.py", "setup.cfg"))


# -- wheels ----------------------------------------------------------------------------------


def wheel_is_pure(filename: str) -> bool:
    """True when every tag of the wheel is platform ``any`` (a build here suits every target)."""
    try:
        tags = parse_wheel_filename(filename)[3]
    except InvalidWheelFilename:
        return False
    return all(tag.platform == "any" for tag in tags)


def check_wheel_identity(filename: str, name: str, version: Optional[str], label: str) -> str:
    """The wheel's (or sdist's) version; BuildError when its name or version differs from what uv.lock records."""
    try:
        if filename.endswith(".whl"):
            wheel_name, wheel_version = parse_wheel_filename(filename)[:2]
        else:
            wheel_name, wheel_version = parse_sdist_filename(filename)
    except (InvalidWheelFilename, InvalidSdistFilename) as exc:
        raise BuildError("%s: the build produced %r, not a valid distribution name: %s"
                         % (label, filename, exc)) from None
    if canonicalize_name(wheel_name) != canonicalize_name(name):
        raise BuildError("%s: the build produced a wheel for %s, not for %s; the source does not hold the "
                         "locked package: re-run `uv lock`." % (label, wheel_name, name))
    if version:
        try:
            same = Version(version) == wheel_version
        except InvalidVersion:
            same = str(wheel_version) == version
        if not same:
            raise BuildError("%s: the build produced version %s but uv.lock records %s; the source changed "
                             "since locking (or its version is computed at build time): re-run `uv lock`."
                             % (label, wheel_version, version))
    return str(wheel_version)


# -- interpreters ----------------------------------------------------------------------------

_PROBE = r"""
import json, os, platform, sys, sysconfig
family = version = None
try:
    # The C library this system runs (libc_ver() of old Pythons reads symbol versions instead).
    name, _, version = os.confstr("CS_GNU_LIBC_VERSION").partition(" ")
    family = "glibc" if name == "glibc" and version else None
    version = version or None
except (AttributeError, ValueError, OSError):
    pass
if family is None:
    libc = platform.libc_ver()
    family, version = libc[0] or None, libc[1] or None
if sys.platform.startswith("linux") and family is None:
    try:
        import subprocess
        out = subprocess.run(["ldd", "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             universal_newlines=True).stdout
        if "musl" in out:
            family = "musl"
            for line in out.splitlines():
                if line.lower().startswith("version"):
                    version = line.split()[-1]
    except Exception:
        pass
print(json.dumps({"implementation": sys.implementation.name,
                  "version": "%d.%d.%d" % sys.version_info[:3],
                  "abiflags": getattr(sys, "abiflags", ""),
                  "gil_disabled": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
                  "os": sys.platform, "arch": platform.machine(),
                  "libc_family": family, "libc_version": version,
                  "executable": sys.executable}))
"""


@dataclass(frozen=True)
class Interpreter:
    """A Python on the controller that can run a build."""

    path: str
    implementation: str
    version: str
    abiflags: str
    os: str
    arch: str
    libc_family: Optional[str]
    libc_version: Optional[str]

    @property
    def minor(self) -> str:
        return ".".join(self.version.split(".")[:2])

    @property
    def variant(self) -> str:
        """Names the wheels this interpreter builds: same variant, same wheel (the cache key part)."""
        libc = "%s%s" % (self.libc_family or "", self.libc_version or "")
        return "-".join(p for p in (self.implementation + self.minor + self.abiflags, self.os,
                                    normalize_arch(self.arch), libc) if p)

    def describe(self) -> str:
        libc = " %s %s" % (self.libc_family, self.libc_version) if self.libc_family else ""
        return "%s %s on %s %s%s" % (self.implementation, self.version, self.os, self.arch, libc)


_PROBED: dict = {}


def probe_interpreter(path: str) -> Optional[Interpreter]:
    """What the Python at PATH is, or None when it does not run (remembered per binary and mtime)."""
    try:
        real = os.path.realpath(path)
        key = (path, real, os.stat(real).st_mtime_ns)
    except OSError:
        return None
    if key not in _PROBED:
        _PROBED[key] = _probe(path)
    return _PROBED[key]


def _probe(path: str) -> Optional[Interpreter]:
    try:
        proc = subprocess.run([path, "-I", "-S", "-c", _PROBE], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    try:
        data = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None
    abiflags = str(data.get("abiflags") or "")
    if data.get("gil_disabled") and "t" not in abiflags:
        abiflags += "t"
    family = data.get("libc_family")
    if family == "glibc" or family == "libc":
        family = "glibc"
    return Interpreter(path=path, implementation=str(data.get("implementation") or ""),
                       version=str(data.get("version") or ""), abiflags=abiflags,
                       os="linux" if str(data.get("os", "")).startswith("linux") else str(data.get("os") or ""),
                       arch=str(data.get("arch") or ""), libc_family=family,
                       libc_version=data.get("libc_version") or None)


def interpreter_candidates(uv: Optional[str], environ: Optional[Mapping[str, str]] = None) -> list[str]:
    """Paths of Pythons that may be on the controller: uv-managed ones, pyenv and asdf builds, this
    Python, and versioned names on PATH."""
    env = os.environ if environ is None else environ
    paths: list[str] = [sys.executable]
    if uv:
        # uv-managed Pythons (`uv python install`); asking uv to list every interpreter is slow.
        try:
            proc = subprocess.run([uv, "python", "dir"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  stdin=subprocess.DEVNULL, text=True, timeout=60, check=False)
            if proc.returncode == 0 and proc.stdout.strip():
                paths.extend(sorted(os.path.join(d, "bin", "python3")
                                    for d in glob.glob(os.path.join(proc.stdout.strip(), "*"))))
        except (OSError, subprocess.SubprocessError):
            pass
    home = os.path.expanduser("~")
    for pattern in (os.path.join(env.get("PYENV_ROOT") or os.path.join(home, ".pyenv"), "versions", "*"),
                    os.path.join(home, ".pyenv", "versions", "*"),
                    os.path.join(env.get("ASDF_DATA_DIR") or os.path.join(home, ".asdf"), "installs", "python", "*")):
        paths.extend(sorted(os.path.join(d, "bin", "python3") for d in glob.glob(pattern)))
    for directory in (env.get("PATH") or "").split(os.pathsep):
        if directory:
            paths.extend(sorted(glob.glob(os.path.join(directory, "python3.[0-9]*"))))
    seen = set()
    result = []
    for path in paths:
        # Version-manager shims are slow and lead to the installs found above.
        if (path.endswith(("-config", ".py")) or os.path.basename(os.path.dirname(path)) == "shims"
                or not os.access(path, os.X_OK)):
            continue
        real = os.path.realpath(path)
        if real in seen:
            continue
        seen.add(real)
        result.append(path)
    return result


def _version_tuple(text: Optional[str]) -> tuple:
    parts = []
    for piece in str(text or "").split("."):
        match = re.match(r"\d+", piece)
        if not match:
            break
        parts.append(int(match.group(0)))
    return tuple(parts)


def platform_mismatch(interpreter: Interpreter, target) -> Optional[str]:
    """Why INTERPRETER cannot build platform-specific wheels for TARGET (a _target.Target), or None."""
    t_os, c_os = normalize_os(target.os), normalize_os(interpreter.os)
    if t_os != c_os:
        return "the target runs %s, the controller %s" % (t_os, c_os)
    t_arch, c_arch = normalize_arch(target.arch), normalize_arch(interpreter.arch)
    if t_arch != c_arch:
        return "the target's CPU is %s, the controller's %s" % (t_arch, c_arch)
    if t_os == "linux":
        t_libc, c_libc = normalize_libc(target.libc_family), normalize_libc(interpreter.libc_family)
        if t_libc != c_libc:
            return "the target uses %s, the controller %s" % (t_libc, c_libc)
        if _version_tuple(interpreter.libc_version) > _version_tuple(target.libc_version):
            return ("the controller's %s %s is newer than the target's %s (a wheel built here may need symbols "
                    "the target lacks)" % (c_libc, interpreter.libc_version, target.libc_version))
    return None


def interpreter_mismatch(interpreter: Interpreter, target) -> Optional[str]:
    """Why INTERPRETER is not the target's kind of Python (implementation, minor version, ABI flags)."""
    if interpreter.implementation.lower() != str(target.implementation).lower():
        return "%s, not %s" % (interpreter.implementation, target.implementation)
    if interpreter.minor != target.python_minor:
        return "Python %s, not %s" % (interpreter.minor, target.python_minor)
    if ("t" in interpreter.abiflags) != ("t" in (target.abiflags or "")):
        return "ABI flags %r, not %r" % (interpreter.abiflags, target.abiflags)
    return None


def controller_platform() -> Interpreter:
    """The machine this code runs on, described like an interpreter (this process's Python)."""
    family = version = None
    try:
        name, dummy, version = os.confstr("CS_GNU_LIBC_VERSION").partition(" ")
        family = "glibc" if name == "glibc" and version else None
    except (AttributeError, ValueError, OSError):
        pass
    if family is None:
        libc = platform.libc_ver()
        family, version = libc[0] or None, libc[1] or None
        if family is None and sys.platform.startswith("linux"):
            found = _probe(sys.executable)  # musl: ask ldd through the probe
            if found is not None:
                family, version = found.libc_family, found.libc_version
    return Interpreter(path=sys.executable, implementation=sys.implementation.name,
                       version="%d.%d.%d" % sys.version_info[:3], abiflags=getattr(sys, "abiflags", ""),
                       os="linux" if sys.platform.startswith("linux") else sys.platform,
                       arch=platform.machine(), libc_family=family, libc_version=version or None)


class InterpreterFinder:
    """Finds (once per run) the controller Pythons, and picks one that builds for a target."""

    def __init__(self, uv: Optional[str], candidates: Optional[Callable[[], list[str]]] = None) -> None:
        self._candidates = candidates or (lambda: interpreter_candidates(uv))
        self._found: Optional[list[Interpreter]] = None

    @property
    def interpreters(self) -> list[Interpreter]:
        if self._found is None:
            found = []
            seen = set()
            paths = self._candidates()
            with ThreadPoolExecutor(max_workers=8) as pool:
                probed = list(pool.map(probe_interpreter, paths))
            for interpreter in probed:
                if interpreter is None or not interpreter.version:
                    continue
                # Shims and links can lead to one binary from several names: keep the first.
                identity = (interpreter.variant, interpreter.version)
                if identity in seen:
                    continue
                seen.add(identity)
                found.append(interpreter)
            self._found = found
        return self._found

    def for_target(self, target, platform_specific: bool) -> tuple[Optional[Interpreter], str]:
        """(an interpreter that builds wheels TARGET can install, or None; why not, when None)."""
        if platform_specific:
            # Every Python here runs on this machine: a platform it is not needs no search.
            why = platform_mismatch(controller_platform(), target)
            if why:
                return None, why
        reasons = []
        for interpreter in self.interpreters:
            why = interpreter_mismatch(interpreter, target)
            if why is None and platform_specific:
                why = platform_mismatch(interpreter, target)
            if why is None:
                return interpreter, ""
            reasons.append(why)
        if platform_specific and self.interpreters:
            platform_why = platform_mismatch(self.interpreters[0], target)
            if platform_why:
                return None, platform_why
        found = ", ".join(sorted({"%s %s" % (i.implementation, i.minor + i.abiflags) for i in self.interpreters}))
        return None, ("no %s %s%s interpreter on the controller (found: %s)"
                      % (target.implementation, target.python_minor, target.abiflags or "", found or "none"))
