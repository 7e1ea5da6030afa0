# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""A corpus of uv projects, each turned into a wheelhouse for seven targets.

Every project is generated here and locked with ``uv lock --exclude-newer`` (no committed lock
names an index). For each (project, target) the install file must hold exactly what
``uv export --frozen --no-emit-project --no-hashes`` lists for that target once its markers are
evaluated, plus the project itself when it is a package; where a non-wheel is platform-specific
and the controller cannot build it for the target, the sdist and its pinned build requirements are shipped.
The linux x86_64 CPython 3.11 wheelhouse is really installed with the shipped uv in a network
namespace without network, and a second run of the whole corpus, also without network, must
build, download and fetch nothing.

Caches (uv's and the wheelhouse builder's) live in pytest's cache directory, so a warm run
only re-locks and re-checks.
"""

from __future__ import annotations

import functools
import gzip
import http.server
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from dataclasses import dataclass, field
from typing import Mapping

import pytest

from ansible_collections.airgap.uv.plugins.plugin_utils._lock import load_lock
from ansible_collections.airgap.uv.plugins.plugin_utils._selection import SelectionOptions
from ansible_collections.airgap.uv.plugins.plugin_utils._wheelhouse import (
    WheelhouseBuilder,
    WheelhouseError,
    WheelhouseOptions,
)
from ansible_collections.airgap.uv.tests.unit.plugins.plugin_utils import uvlock_helpers as H

from packaging.utils import canonicalize_name

HOST = "corpus-host"
# Fixed identities and dates: the git commits and sdists are the same bytes in every session,
# so the builder's cache (keyed by commit / sdist hash / tree digest) stays warm across runs.
GIT_ENV = {"GIT_AUTHOR_NAME": "airgap", "GIT_AUTHOR_EMAIL": "airgap@example.invalid",
           "GIT_COMMITTER_NAME": "airgap", "GIT_COMMITTER_EMAIL": "airgap@example.invalid",
           "GIT_AUTHOR_DATE": "2025-06-01T12:00:00Z", "GIT_COMMITTER_DATE": "2025-06-01T12:00:00Z",
           "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
UV_BUILD = '[build-system]\nrequires = ["uv_build>=0.8,<0.14"]\nbuild-backend = "uv_build"\n'


# -- targets ---------------------------------------------------------------------------------

def _pyenv_version(minor: str, fallback: str) -> str:
    found = H.find_python(minor)
    return H.python_full_version(found) if found else fallback


TARGETS = {
    "linux-x86_64-py39": H.Target("linux-x86_64-py39", _pyenv_version("3.9", "3.9.18"), "x86_64-manylinux_2_36",
                                  "linux", "x86_64", "glibc", "2.36"),
    "linux-x86_64-py311": H.Target("linux-x86_64-py311", _pyenv_version("3.11", "3.11.7"), "x86_64-manylinux_2_36",
                                   "linux", "x86_64", "glibc", "2.36"),
    "linux-x86_64-py313": H.Target("linux-x86_64-py313", _pyenv_version("3.13", "3.13.0"), "x86_64-manylinux_2_36",
                                   "linux", "x86_64", "glibc", "2.36"),
    "linux-aarch64-py312": H.Target("linux-aarch64-py312", "3.12.1", "aarch64-manylinux_2_36", "linux", "aarch64",
                                    "glibc", "2.36"),
    "musl-x86_64-py312": H.Target("musl-x86_64-py312", "3.12.1", "x86_64-unknown-linux-musl", "linux", "x86_64",
                                  "musl", "1.2.4"),
    "macos-arm64-14-py312": H.Target("macos-arm64-14-py312", "3.12.1", "aarch64-apple-darwin", "darwin", "arm64",
                                     None, None, macos_version="14.0"),
    "windows-amd64-py313": H.Target("windows-amd64-py313", "3.13.0", "x86_64-pc-windows-msvc", "windows", "AMD64",
                                    None, None),
}
INSTALL_TARGET = "linux-x86_64-py311"


def target_facts(target: H.Target) -> dict:
    """airgap_uv_target facts for a hand-made target (what airgap.uv.target_facts would report)."""
    facts = {"marker_environment": target.marker_env(), "os": target.os_name, "arch": target.arch,
             "python": {"version": target.python, "implementation": "cpython", "abiflags": ""}}
    if target.libc_family:
        facts["libc"] = {"family": target.libc_family, "version": target.libc_version}
    if target.macos_version:
        facts["macos_version"] = target.macos_version
    return facts


def target_id(target: H.Target) -> str:
    from ansible_collections.airgap.uv.plugins.plugin_utils._target import Target

    return Target.from_facts(target_facts(target)).id


# -- the corpus ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Project:
    name: str
    pyproject: str
    selection: SelectionOptions = SelectionOptions()
    # import names to try after the real install on INSTALL_TARGET
    imports: tuple = ()
    # target name -> regex the whole error message must match
    errors: Mapping[str, str] = field(default_factory=dict)
    # target name -> packages shipped as sdists (with build-constraints.txt) for the host to build
    host_built: Mapping[str, tuple] = field(default_factory=dict)
    files: Mapping[str, str] = field(default_factory=dict)


def corpus_projects(base: str, url_base: str) -> list[Project]:
    def src(name):
        return os.path.join(base, "sources", name)

    return [
        Project("a-sdist-only", '[project]\nname = "a-sdist-only"\nversion = "0.1.0"\nrequires-python = ">=3.9"\n'
                'dependencies = ["docopt==0.6.2"]\n' + UV_BUILD, imports=("docopt", "a_sdist_only")),
        Project("b-git", '[project]\nname = "b-git"\nversion = "0.1.0"\nrequires-python = ">=3.9"\n'
                'dependencies = ["gitdep @ git+file://%s@v0.3.0#subdirectory=python", "six"]\n\n'
                '[tool.uv]\npackage = false\n' % src("gitrepo"), imports=("gitdep", "six")),
        Project("c-workspace",
                '[project]\nname = "c-workspace"\nversion = "0.1.0"\nrequires-python = ">=3.9"\n'
                'dependencies = ["member"]\n\n[tool.uv.sources]\nmember = { workspace = true }\n\n'
                '[tool.uv.workspace]\nmembers = ["packages/*"]\n\n' + UV_BUILD,
                files={"packages/member/pyproject.toml":
                       '[project]\nname = "member"\nversion = "0.2.0"\nrequires-python = ">=3.9"\n'
                       'dependencies = ["outside", "iniconfig"]\n\n[tool.uv.sources]\n'
                       'outside = { path = "../../../sources/outside", editable = true }\n\n' + UV_BUILD,
                       "packages/member/src/member/__init__.py": "",
                       "src/c_workspace/__init__.py": ""},
                imports=("c_workspace", "member", "outside", "iniconfig")),
        Project("d-direct-url",
                '[project]\nname = "d-direct-url"\nversion = "0.1.0"\nrequires-python = ">=3.9"\n'
                'dependencies = ["localsd @ file://%s", "urlsd @ %s/urlsd-1.0.0.tar.gz"]\n\n'
                '[tool.uv]\npackage = false\n' % (src("localsd-1.0.0.tar.gz"), url_base),
                imports=("localsd", "urlsd")),
        Project("e-forks",
                '[project]\nname = "e-forks"\nversion = "0.1.0"\nrequires-python = ">=3.9"\n'
                'dependencies = ["packaging<24 ; python_version < \'3.10\'", '
                '"packaging>=24 ; python_version >= \'3.10\'", "tomli ; python_version < \'3.11\'"]\n'
                + UV_BUILD, imports=("packaging", "e_forks")),
        Project("f-extras-groups",
                '[project]\nname = "f-extras-groups"\nversion = "0.1.0"\nrequires-python = ">=3.9"\n'
                'dependencies = []\n\n[project.optional-dependencies]\ncli = ["click>=8"]\nidna = ["idna"]\n\n'
                '[dependency-groups]\ndev = ["iniconfig"]\ndocs = ["six"]\n\n' + UV_BUILD,
                selection=SelectionOptions(extras=("cli",), groups=("docs",)),
                imports=("click", "six", "iniconfig", "f_extras_groups")),
        Project("g-conflicts",
                '[project]\nname = "g-conflicts"\nversion = "0.1.0"\nrequires-python = ">=3.9"\n'
                'dependencies = []\n\n[project.optional-dependencies]\nold = ["packaging==23.2"]\n'
                'new = ["packaging==24.1"]\n\n[tool.uv]\nconflicts = [[{ extra = "old" }, { extra = "new" }]]\n\n'
                + UV_BUILD, selection=SelectionOptions(extras=("old",)), imports=("packaging", "g_conflicts")),
        Project("h-platform-markers",
                '[project]\nname = "h-platform-markers"\nversion = "0.1.0"\nrequires-python = ">=3.9"\n'
                'dependencies = ["colorama ; sys_platform == \'win32\'", "appnope ; sys_platform == \'darwin\'", '
                '"distro ; sys_platform == \'linux\'", "iniconfig ; platform_machine == \'aarch64\'"]\n\n'
                '[tool.uv]\npackage = false\n', imports=("distro",)),
        Project("i-c-extension",
                '[project]\nname = "i-c-extension"\nversion = "0.1.0"\nrequires-python = ">=3.9"\n'
                'dependencies = ["cspeed"]\n\n[tool.uv.sources]\ncspeed = { path = "../sources/cext" }\n\n'
                '[tool.uv]\npackage = false\n', imports=("cspeed",),
                # Platforms this controller cannot build for get the sdist and a pinned setuptools.
                host_built={name: ("cspeed",) for name in (
                    "linux-aarch64-py312", "musl-x86_64-py312", "macos-arm64-14-py312", "windows-amd64-py313")}),
    ]


def _git(args, cwd):
    env = dict(os.environ)
    env.update(GIT_ENV)
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _deterministic_sdist(path: str, name: str, version: str, pyproject: str, files: Mapping[str, str]) -> None:
    """An sdist whose bytes do not depend on when or where it was made."""
    top = "%s-%s" % (name, version)
    members = dict(files)
    members["pyproject.toml"] = pyproject
    members["PKG-INFO"] = "Metadata-Version: 2.1\nName: %s\nVersion: %s\n" % (name, version)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as handle:
        for member in sorted(members):
            data = members[member].encode()
            info = tarfile.TarInfo("%s/%s" % (top, member))
            info.size, info.mtime, info.mode = len(data), 1700000000, 0o644
            handle.addfile(info, io.BytesIO(data))
    with open(path, "wb") as out, gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="") as gz:
        gz.write(raw.getvalue())


def make_sources(base: str, served: str) -> None:
    sources = os.path.join(base, "sources")
    # A git repository with the package in a subdirectory and a tag.
    repo = os.path.join(sources, "gitrepo")
    os.makedirs(os.path.join(repo, "python", "src", "gitdep"))
    _git(["init", "--quiet", "-b", "main"], repo)
    with open(os.path.join(repo, "python", "pyproject.toml"), "w") as handle:
        handle.write('[project]\nname = "gitdep"\nversion = "0.3.0"\nrequires-python = ">=3.8"\n' + UV_BUILD)
    with open(os.path.join(repo, "python", "src", "gitdep", "__init__.py"), "w") as handle:
        handle.write("WHERE = 'git'\n")
    with open(os.path.join(repo, "README"), "w") as handle:
        handle.write("corpus\n")
    _git(["add", "-A"], repo)
    _git(["commit", "--quiet", "-m", "gitdep 0.3.0"], repo)
    _git(["tag", "v0.3.0"], repo)
    # A path dependency outside the workspace, with a version computed at build time.
    outside = os.path.join(sources, "outside")
    os.makedirs(os.path.join(outside, "src", "outside"))
    with open(os.path.join(outside, "pyproject.toml"), "w") as handle:
        handle.write('[project]\nname = "outside"\ndynamic = ["version"]\nrequires-python = ">=3.8"\n\n'
                     '[tool.hatch.version]\npath = "src/outside/__init__.py"\n\n'
                     '[tool.hatch.build.targets.wheel]\npackages = ["src/outside"]\n\n'
                     '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n')
    with open(os.path.join(outside, "src", "outside", "__init__.py"), "w") as handle:
        handle.write('__version__ = "1.2.0"\n')
    # sdists: one referenced by path, one served on loopback (a direct URL).
    for name, directory in (("localsd", sources), ("urlsd", served)):
        _deterministic_sdist(os.path.join(directory, "%s-1.0.0.tar.gz" % name), name, "1.0.0",
                             '[project]\nname = "%s"\nversion = "1.0.0"\nrequires-python = ">=3.8"\n' % name + UV_BUILD,
                             {"src/%s/__init__.py" % name: "WHERE = %r\n" % name})
    # A C extension: platform-specific wheels, built per Python on this controller only.
    cext = os.path.join(sources, "cext")
    os.makedirs(os.path.join(cext, "src"))
    with open(os.path.join(cext, "pyproject.toml"), "w") as handle:
        handle.write('[project]\nname = "cspeed"\nversion = "0.1.0"\nrequires-python = ">=3.8"\n\n'
                     '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n\n'
                     '[tool.setuptools]\next-modules = [{ name = "cspeed", sources = ["src/cspeed.c"] }]\n')
    with open(os.path.join(cext, "src", "cspeed.c"), "w") as handle:
        handle.write(
            "#include <Python.h>\n"
            "static PyObject *add(PyObject *self, PyObject *args) {\n"
            "    long a, b;\n    if (!PyArg_ParseTuple(args, \"ll\", &a, &b)) return NULL;\n"
            "    return PyLong_FromLong(a + b);\n}\n"
            "static PyMethodDef methods[] = {{\"add\", add, METH_VARARGS, \"add\"}, {NULL, NULL, 0, NULL}};\n"
            "static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, \"cspeed\", NULL, -1, methods};\n"
            "PyMODINIT_FUNC PyInit_cspeed(void) { return PyModule_Create(&module); }\n")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@dataclass
class Corpus:
    base: str
    uv: str
    env: dict
    cache_dir: str
    projects: dict
    dests: dict


@pytest.fixture(scope="module")
def corpus(request, tmp_path_factory, uv_executable) -> Corpus:
    try:
        persistent = str(request.config.cache.mkdir("airgap-uv-corpus"))
    except AttributeError:  # cache provider disabled
        persistent = str(tmp_path_factory.mktemp("airgap-uv-corpus"))
    base = str(tmp_path_factory.mktemp("corpus"))
    served = os.path.join(base, "served")
    os.makedirs(served)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=served))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    saved = {key: os.environ.get(key) for key in ("UV_CACHE_DIR", "UV_PYTHON_DOWNLOADS")}
    # uv downloads (index pages, build requirements) are cached for the next session;
    # the builder's own uv runs see the same cache through the environment.
    os.environ["UV_CACHE_DIR"] = os.path.join(persistent, "uv-cache")
    os.environ["UV_PYTHON_DOWNLOADS"] = "never"
    try:
        make_sources(base, served)
        projects = {}
        for project in corpus_projects(base, "http://127.0.0.1:%d" % httpd.server_address[1]):
            directory = os.path.join(base, project.name)
            os.makedirs(directory)
            files = dict(project.files)
            if "uv_build" in project.pyproject:
                files.setdefault("src/%s/__init__.py" % project.name.replace("-", "_"), "")
            for relative, text in list(files.items()) + [("pyproject.toml", project.pyproject)]:
                path = os.path.join(directory, relative)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w", encoding="utf-8") as handle:
                    handle.write(text)
            H.run_uv(uv_executable, ["lock", "--quiet", "--exclude-newer", H.EXCLUDE_NEWER], cwd=directory)
            projects[project.name] = (project, directory)
        yield Corpus(base=base, uv=uv_executable, env=dict(os.environ), cache_dir=os.path.join(persistent, "wheelhouse"),
                     projects=projects, dests={name: os.path.join(base, "dest-" + name) for name in TARGETS})
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        httpd.shutdown()
        httpd.server_close()


def run_builder(corpus: Corpus, project_name: str, target_name: str):
    project, directory = corpus.projects[project_name]
    options = WheelhouseOptions(project=directory, dest=corpus.dests[target_name],
                                targets={HOST: target_facts(TARGETS[target_name])}, selection=project.selection,
                                cache_dir=corpus.cache_dir, check_lock=False, retries=1)
    builder = WheelhouseBuilder(options, uv=corpus.uv)
    return builder, builder.run()


@functools.lru_cache(maxsize=None)
def _export(uv: str, directory: str, args: tuple) -> str:
    return H.run_uv(uv, ["export", "--frozen", "--no-emit-project", "--no-hashes", "--no-header",
                         "--no-annotate", *args], cwd=directory).stdout


def expected_packages(corpus: Corpus, project_name: str, target_name: str) -> set:
    """What uv export lists for the target (markers evaluated), plus the project when it is a package."""
    project, directory = corpus.projects[project_name]
    lock = load_lock(os.path.join(directory, "uv.lock"))
    entries = H.parse_export(_export(corpus.uv, directory, tuple(H.uv_option_args(project.selection))))
    expected = H.export_packages(entries, TARGETS[target_name].marker_env(), lock)
    root = lock.project
    if root is not None and root.source_kind != "virtual":
        expected.add((root.name, root.version))
    return expected


def install_file_packages(requirements: str) -> set:
    found = set()
    for line in requirements.splitlines():
        match = re.match(r"^([A-Za-z0-9._-]+)==(\S+) \\$", line)
        if match:
            found.add((canonicalize_name(match.group(1)), match.group(2)))
    return found


PAIRS = [(p, t) for p in [proj.name for proj in corpus_projects("/x", "http://127.0.0.1:1")] for t in TARGETS]


@pytest.mark.parametrize("project_name, target_name", PAIRS)
def test_install_file_matches_uv_export(corpus, project_name, target_name):
    project, directory = corpus.projects[project_name]
    if target_name in project.errors:
        with pytest.raises(WheelhouseError) as caught:
            run_builder(corpus, project_name, target_name)
        assert re.fullmatch(project.errors[target_name], str(caught.value)), str(caught.value)
        return
    builder, result = run_builder(corpus, project_name, target_name)
    tid = target_id(TARGETS[target_name])
    with open(os.path.join(corpus.dests[target_name], "targets", tid, "requirements.txt"), encoding="utf-8") as handle:
        requirements = handle.read()
    actual = install_file_packages(requirements)
    expected = expected_packages(corpus, project_name, target_name)
    # Versions computed at build time (no version in uv.lock) are checked by name here and
    # against the built wheel below.
    dynamic = {name for name, version in expected if version is None}
    assert {(n, v) for n, v in actual if n not in dynamic} == {(n, v) for n, v in expected if n not in dynamic}
    assert {n for n, v in actual if n in dynamic} == dynamic
    # Every file in the wheelhouse is the one the install file (or, for the build requirements of
    # packages the host builds, the build constraints) pins, hash and all.
    with open(os.path.join(corpus.dests[target_name], "targets", tid, "manifest.json"), encoding="utf-8") as handle:
        manifest = json.load(handle)
    with open(os.path.join(corpus.dests[target_name], "targets", tid, "build-constraints.txt"),
              encoding="utf-8") as handle:
        constraints = handle.read()
    host_built = set(project.host_built.get(target_name, ()))
    files = [entry for entry in manifest["files"] if "/" not in entry["filename"]]  # not bin/uv
    installed_files = build_files = 0
    for entry in files:
        pin = "%s==%s \\\n    --hash=sha256:%s" % (entry["name"], entry["version"], entry["sha256"])
        if pin in requirements:
            installed_files += 1
            assert entry["filename"].endswith(".whl") != (entry["name"] in host_built), entry
        else:
            assert pin in constraints, entry
            assert entry["filename"].endswith(".whl"), entry
            build_files += 1
    assert installed_files == len(actual)
    assert result.targets[tid]["host_built"] == len(host_built)
    # setuptools (from cspeed's build-system.requires) is pinned exactly when the host builds.
    assert bool(build_files) == bool(host_built)
    assert ("setuptools==" in constraints) == bool(host_built)


def test_dynamic_version_comes_from_the_built_wheel(corpus):
    dummy, result = run_builder(corpus, "c-workspace", INSTALL_TARGET)
    packages = result.targets[target_id(TARGETS[INSTALL_TARGET])]["packages"]
    assert "outside==1.2.0" in packages, packages


def test_no_interpreter_for_the_targets_python(corpus):
    """A platform the controller can build for, but no Python of the target's version (nor newer): say which
    to install."""
    future = H.Target("linux-x86_64-py315", "3.15.0", "x86_64-manylinux_2_36", "linux", "x86_64", "glibc", "2.36")
    project, directory = corpus.projects["i-c-extension"]
    options = WheelhouseOptions(project=directory, dest=os.path.join(corpus.base, "dest-py315"),
                                targets={HOST: target_facts(future)}, cache_dir=corpus.cache_dir, check_lock=False)
    with pytest.raises(WheelhouseError) as caught:
        WheelhouseBuilder(options, uv=corpus.uv).run()
    # The controller cannot build cspeed for 3.15, so it is shipped as source; its build
    # requirements are resolved with a Python of the target's version or newer, and there is none.
    assert re.match(
        r"Target cpython3\.15\.0-linux-x86_64-glibc2\.36 \(hosts %s\): cspeed 0\.1\.0 must be built on the host, "
        r"but its build requirements \(setuptools>=61\) cannot be resolved for it: no CPython 3\.15 or newer was found "
        r"on the controller to resolve them; install one \(for example `uv python install 3\.15`\)\. Alternatively "
        r"build the wheel on a builder host like the target and publish it to your index, then re-lock\.\n"
        r"Resolving the build requirements setuptools>=61 failed" % HOST, str(caught.value)), str(caught.value)


def _offline(args, env, cwd=None):
    """Run ARGS in a new network namespace: no interface but a downed loopback."""
    return subprocess.run(["unshare", "--net", "--", *args], env=env, cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, check=False, timeout=600)


def _install_offline(root: str, tmp_path, with_builds: bool = False) -> tuple:
    """Install the target directory ROOT with its own uv into a fresh venv, without network; return
    (the venv's python, the environment), after checking the venv holds exactly the install file."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.fail("the offline install needs root and unshare (network namespaces)")
    python = H.find_python(TARGETS[INSTALL_TARGET].minor)
    assert python, "no CPython %s on this machine" % TARGETS[INSTALL_TARGET].minor
    uv = os.path.join(root, "bin", "uv")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
           "UV_NO_CONFIG": "1", "UV_PYTHON_DOWNLOADS": "never", "UV_OFFLINE": "1", "NO_COLOR": "1"}
    venv = str(tmp_path / "venv")
    proc = _offline([uv, "venv", "--quiet", "--python", python, venv], env)
    assert proc.returncode == 0, proc.stdout
    build = ["--build-constraint", os.path.join(root, "build-constraints.txt")] if with_builds else ["--no-build"]
    proc = _offline([uv, "pip", "sync", "--offline", "--no-index", "--find-links", os.path.join(root, "wheelhouse"),
                     "--require-hashes", *build, "--python", os.path.join(venv, "bin", "python"),
                     os.path.join(root, "requirements.txt")], env)
    assert proc.returncode == 0, proc.stdout
    proc = _offline([uv, "pip", "list", "--format", "json", "--python", os.path.join(venv, "bin", "python")], env)
    assert proc.returncode == 0, proc.stdout
    installed = {(canonicalize_name(p["name"]), p["version"]) for p in json.loads(proc.stdout.splitlines()[-1])}
    with open(os.path.join(root, "requirements.txt"), encoding="utf-8") as handle:
        assert installed == install_file_packages(handle.read())
    return os.path.join(venv, "bin", "python"), env


@pytest.mark.parametrize("project_name", [p for p, t in PAIRS if t == INSTALL_TARGET])
def test_offline_install_on_linux_x86_64_py311(corpus, project_name, tmp_path):
    project, dummy = corpus.projects[project_name]
    dummy, result = run_builder(corpus, project_name, INSTALL_TARGET)
    root = os.path.join(corpus.dests[INSTALL_TARGET], "targets", target_id(TARGETS[INSTALL_TARGET]))
    python, env = _install_offline(root, tmp_path)
    code = "import %s; print('ok')" % ", ".join(project.imports)
    if project_name == "i-c-extension":
        code = "import cspeed; assert cspeed.add(2, 3) == 5; print('ok')"
    proc = _offline([python, "-c", code], env)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stdout


@pytest.mark.parametrize("project_name, package, code", [
    # A C extension from a path dependency (the controller ships the sdist it builds from the tree)...
    ("i-c-extension", "cspeed", "import cspeed; assert cspeed.add(2, 3) == 5"),
    # ...and a registry sdist (shipped as downloaded, sha256 from uv.lock).
    ("a-sdist-only", "docopt", "import docopt"),
])
def test_host_builds_offline_from_the_shipped_closure(corpus, project_name, package, code, tmp_path):
    """host_builds: the sdist and its pinned build requirements go to the host, which builds offline."""
    project, directory = corpus.projects[project_name]
    dest = os.path.join(corpus.base, "dest-hostbuild-" + project_name)
    options = WheelhouseOptions(project=directory, dest=dest, targets={HOST: target_facts(TARGETS[INSTALL_TARGET])},
                                selection=project.selection, cache_dir=corpus.cache_dir, check_lock=False,
                                retries=1, host_builds=(package,))
    result = WheelhouseBuilder(options, uv=corpus.uv).run()
    tid = target_id(TARGETS[INSTALL_TARGET])
    assert result.targets[tid]["host_built"] == 1
    root = os.path.join(dest, "targets", tid)
    sdists = [name for name in os.listdir(os.path.join(root, "wheelhouse")) if not name.endswith(".whl")]
    assert len(sdists) == 1 and sdists[0].startswith(package), sdists
    python, env = _install_offline(root, tmp_path, with_builds=True)
    proc = _offline([python, "-c", code + "; print('ok')"], env)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stdout
    # The install really built from the sdist (not a wheel from elsewhere) with the pinned backend.
    proc = _offline([python, "-c", "import importlib.metadata as m; print(m.distribution(%r).read_text('WHEEL'))"
                     % package], env)
    with open(os.path.join(root, "build-constraints.txt"), encoding="utf-8") as handle:
        pinned = re.search(r"^setuptools==(\S+)", handle.read(), re.M)
    assert pinned and "setuptools (%s)" % pinned.group(1) in proc.stdout, proc.stdout
    # Check mode of a second run predicts no change and runs nothing.
    again = WheelhouseBuilder(options, uv=corpus.uv, check_mode=True).run()
    assert again.changed is False


_WARM_RUN = r"""
import json, os, sys
sys.path[:0] = json.loads(os.environ["CORPUS_SYS_PATH"])
from ansible_collections.airgap.uv.plugins.plugin_utils._selection import SelectionOptions
from ansible_collections.airgap.uv.plugins.plugin_utils._wheelhouse import WheelhouseBuilder, WheelhouseOptions
report = []
for job in json.loads(sys.stdin.read()):
    options = WheelhouseOptions(project=job["project"], dest=job["dest"], targets={"h": job["facts"]},
                                selection=SelectionOptions(**{k: tuple(v) for k, v in job["selection"].items()}), cache_dir=job["cache"],
                                check_lock=False, retries=0)
    builder = WheelhouseBuilder(options, uv=job["uv"])
    result = builder.run()
    report.append([job["name"], builder.builds_run, builder.git.fetches, result.requests, result.downloaded])
print(json.dumps(report))
"""


def test_warm_corpus_run_needs_no_network_and_builds_nothing(corpus, tmp_path):
    """After one run, the whole corpus builds again in a namespace without network: no build, no fetch."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.fail("the offline run needs root and unshare (network namespaces)")
    jobs = []
    for project_name, target_name in PAIRS:
        project, directory = corpus.projects[project_name]
        if target_name in project.errors:
            continue
        run_builder(corpus, project_name, target_name)  # warm (a no-op when the tests above ran)
        selection = {key: getattr(project.selection, key) for key in ("extras", "groups")}
        jobs.append({"name": "%s@%s" % (project_name, target_name), "project": directory,
                     "dest": str(tmp_path / ("dest-" + target_name)), "facts": target_facts(TARGETS[target_name]),
                     "selection": selection, "cache": corpus.cache_dir, "uv": corpus.uv})
    env = dict(corpus.env, CORPUS_SYS_PATH=json.dumps([p for p in sys.path if p]))
    started = time.monotonic()
    proc = subprocess.run(["unshare", "--net", "--", sys.executable, "-c", _WARM_RUN], input=json.dumps(jobs), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(report) == len(jobs)
    busy = [row for row in report if row[1:] != [0, 0, 0, 0]]
    assert busy == [], busy
    # The publication of new per-target directories dominates; nothing is rebuilt.
    assert time.monotonic() - started < 120


def test_check_mode_builds_into_the_cache_only(corpus, tmp_path):
    """Check mode writes nothing under dest but builds (cloning the git source) into the controller's
    cache, so its prediction carries the built wheels' real hashes; the real run reuses the builds."""
    project, directory = corpus.projects["b-git"]
    facts = {HOST: target_facts(TARGETS[INSTALL_TARGET])}
    cold = tmp_path / "cold-cache"
    # The corpus's downloads and uv release, but none of its builds or clones.
    shutil.copytree(os.path.join(corpus.cache_dir, "uv-releases"), str(cold / "uv-releases"))
    shutil.copytree(os.path.join(corpus.cache_dir, "store"), str(cold / "store"), copy_function=os.link)
    dest = tmp_path / "dest"
    options = WheelhouseOptions(project=directory, dest=str(dest), targets=facts, cache_dir=str(cold),
                                check_lock=False)
    builder = WheelhouseBuilder(options, uv=corpus.uv, check_mode=True)
    predicted = builder.run()
    assert predicted.changed and builder.builds_run > 0 and (cold / "built").exists()
    assert not dest.exists()
    assert "0" * 64 not in json.dumps(predicted.targets)
    builder = WheelhouseBuilder(options, uv=corpus.uv)
    real = builder.run()
    assert real.changed and builder.builds_run == 0 and builder.git.fetches == 0 and real.downloaded == 0
    assert real.targets == predicted.targets and real.hosts == predicted.hosts
    builder = WheelhouseBuilder(options, uv=corpus.uv, check_mode=True)
    again = builder.run()
    assert not again.changed and builder.builds_run == 0
