# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The pure parts of building non-wheels: git sources, cache keys, tree digests, archives,
wheel checks and the choice of a controller interpreter for a target."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import zipfile

import pytest

from ansible_collections.airgap.uv.plugins.plugin_utils._build import (
    BuildError,
    GitFetcher,
    GitSource,
    Interpreter,
    InterpreterFinder,
    build_key,
    check_wheel_identity,
    extract_archive,
    interpreter_mismatch,
    normalize_subdirectory,
    parse_git_source,
    platform_mismatch,
    probe_interpreter,
    tree_digest,
    wheel_is_pure,
)
from ansible_collections.airgap.uv.plugins.plugin_utils._target import Target

from test_target import facts  # same directory: pytest puts it on sys.path

COMMIT = "3fe6b1c437447c13a478badcdcfb31ebed63a5c3"


# -- git sources -------------------------------------------------------------------------------


@pytest.mark.parametrize("source, expected", [
    ("file:///tmp/x/repo#" + COMMIT, GitSource(url="file:///tmp/x/repo", commit=COMMIT)),
    ("https://example.invalid/org/repo?rev=v0.3.0#" + COMMIT,
     GitSource(url="https://example.invalid/org/repo", commit=COMMIT, reference="v0.3.0", reference_kind="rev")),
    ("git+https://example.invalid/org/repo.git?tag=v1&subdirectory=pkgs/a#" + COMMIT.upper(),
     GitSource(url="https://example.invalid/org/repo.git", commit=COMMIT, reference="v1", reference_kind="tag",
               subdirectory="pkgs/a")),
    ("ssh://git@example.invalid/org/repo?branch=main&lfs=true#" + COMMIT,
     GitSource(url="ssh://git@example.invalid/org/repo", commit=COMMIT, reference="main", reference_kind="branch",
               lfs=True)),
    ("file:///tmp/x/repo?subdirectory=.#" + COMMIT, GitSource(url="file:///tmp/x/repo", commit=COMMIT)),
    ("file:///r?subdirectory=a%2Fb/../c#" + COMMIT, GitSource(url="file:///r", commit=COMMIT, subdirectory="a/c")),
])
def test_parse_git_source(source, expected):
    assert parse_git_source(source) == expected


def test_git_subdirectory_from_the_source_table_wins():
    assert parse_git_source("file:///r?subdirectory=a#" + COMMIT, "b").subdirectory == "b"


@pytest.mark.parametrize("source, message", [
    ("file:///tmp/x/repo", "records no commit"),
    ("file:///tmp/x/repo#main", "is not a full commit hash"),
    ("file:///tmp/x/repo#" + COMMIT[:12], "is not a full commit hash"),
    ("/tmp/x/repo#" + COMMIT, "has no repository URL"),
    ("https://example.invalid/r?subdirectory=../../etc#" + COMMIT, "leaves the source tree"),
    ("https://example.invalid/r?subdirectory=/etc#" + COMMIT, "leaves the source tree"),
])
def test_bad_git_sources(source, message):
    with pytest.raises(BuildError, match=message):
        parse_git_source(source)


def test_credentials_never_reach_git_messages():
    source = parse_git_source("https://user:s3cret@example.invalid/r#" + COMMIT)
    assert source.display_url == "https://example.invalid/r"
    with pytest.raises(BuildError) as caught:
        parse_git_source("https://user:s3cret@example.invalid/r#nope")
    assert "s3cret" not in str(caught.value)


def test_normalize_subdirectory():
    assert normalize_subdirectory(None, "x") is None
    assert normalize_subdirectory("./", "x") is None
    assert normalize_subdirectory("a\\b", "x") == "a/b"
    with pytest.raises(BuildError):
        normalize_subdirectory("a/../../b", "x")


# -- cache keys --------------------------------------------------------------------------------


def test_cache_keys():
    sha = "ab" * 32
    assert build_key("sdist", sha) == "sdist-" + sha
    assert build_key("git", COMMIT) == "git-" + COMMIT
    assert parse_git_source("file:///r#" + COMMIT).cache_key == "git-" + COMMIT
    # Same commit, another subdirectory: another package, another key; the URL does not matter.
    one = parse_git_source("file:///r?subdirectory=a#" + COMMIT).cache_key
    two = parse_git_source("file:///r?subdirectory=b#" + COMMIT).cache_key
    moved = parse_git_source("https://example.invalid/mirror?rev=x&subdirectory=a#" + COMMIT).cache_key
    assert one != two and one == moved and one.startswith("git-" + COMMIT + "-")
    for bad in (("Git", COMMIT), ("git", ""), ("git", "../x")):
        with pytest.raises(ValueError):
            build_key(*bad)


def test_tree_digest_follows_what_a_build_reads(tmp_path):
    tree = tmp_path / "tree"
    (tree / "src" / "pkg").mkdir(parents=True)
    (tree / "pyproject.toml").write_text("[project]\nname = 'pkg'\n")
    (tree / "src" / "pkg" / "__init__.py").write_text("X = 1\n")
    first = tree_digest(str(tree))
    # Caches, VCS data, build output and bytecode do not count.
    for noise in (".git/objects/x", "src/pkg/__pycache__/a.pyc", "build/lib/x.py", "src/pkg.egg-info/PKG-INFO",
                  ".venv/bin/python", "dist/pkg-1.tar.gz"):
        (tree / noise).parent.mkdir(parents=True, exist_ok=True)
        (tree / noise).write_text("noise")
    assert tree_digest(str(tree)) == first
    # Content, names and the executable bit do.
    (tree / "src" / "pkg" / "__init__.py").write_text("X = 2\n")
    second = tree_digest(str(tree))
    assert second != first
    os.chmod(tree / "src" / "pkg" / "__init__.py", 0o755)
    assert tree_digest(str(tree)) != second
    # The digest does not depend on where the tree is.
    copy = tmp_path / "elsewhere"
    subprocess.run(["cp", "-a", str(tree), str(copy)], check=True)
    assert tree_digest(str(copy)) == tree_digest(str(tree))


# -- archives ----------------------------------------------------------------------------------


def _tar(path, members):
    with tarfile.open(path, "w:gz") as handle:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            handle.addfile(info, io.BytesIO(data))


def test_extract_sdist_returns_its_top_directory(tmp_path):
    archive = tmp_path / "pkg-1.0.tar.gz"
    _tar(archive, [("pkg-1.0/pyproject.toml", b"[project]\n"), ("pkg-1.0/pkg/__init__.py", b"")])
    root = extract_archive(str(archive), archive.name, str(tmp_path / "out"), "pkg 1.0")
    assert root == str(tmp_path / "out" / "pkg-1.0")
    assert os.path.isfile(os.path.join(root, "pyproject.toml"))


def test_extract_zip_with_project_at_its_root(tmp_path):
    archive = tmp_path / "main.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("setup.py", "")
        handle.writestr("pkg/__init__.py", "")
    root = extract_archive(str(archive), archive.name, str(tmp_path / "out"), "pkg")
    assert root == str(tmp_path / "out")


@pytest.mark.parametrize("name", ["../evil.py", "/abs/evil.py", "pkg-1.0/../../evil.py"])
def test_extract_refuses_escaping_members(tmp_path, name):
    archive = tmp_path / "pkg-1.0.tar.gz"
    _tar(archive, [("pkg-1.0/setup.py", b""), (name, b"x")])
    with pytest.raises(BuildError, match="unsafe member name"):
        extract_archive(str(archive), archive.name, str(tmp_path / "out"), "pkg 1.0")
    assert not (tmp_path / "evil.py").exists()


def test_extract_refuses_links_out_of_the_tree(tmp_path):
    archive = tmp_path / "pkg-1.0.tar.gz"
    with tarfile.open(archive, "w:gz") as handle:
        info = tarfile.TarInfo("pkg-1.0/link")
        info.type = tarfile.SYMTYPE
        info.linkname = "../../etc/passwd"
        handle.addfile(info)
    with pytest.raises(BuildError, match="points outside"):
        extract_archive(str(archive), archive.name, str(tmp_path / "out"), "pkg 1.0")


def test_extract_refuses_what_is_not_an_archive(tmp_path):
    path = tmp_path / "pkg-1.0.exe"
    path.write_bytes(b"MZ")
    with pytest.raises(BuildError, match="neither a tar nor a zip"):
        extract_archive(str(path), path.name, str(tmp_path / "out"), "pkg 1.0")


# -- wheels ------------------------------------------------------------------------------------


def test_wheel_purity():
    assert wheel_is_pure("docopt-0.6.2-py2.py3-none-any.whl")
    assert not wheel_is_pure("cspeed-0.1.0-cp311-cp311-linux_x86_64.whl")
    assert not wheel_is_pure("not-a-wheel.whl")


def test_wheel_identity():
    assert check_wheel_identity("my_pkg-1.0-py3-none-any.whl", "my-pkg", "1.0.0", "my-pkg 1.0") == "1.0"
    assert check_wheel_identity("my_pkg-2.1-py3-none-any.whl", "my-pkg", None, "my-pkg") == "2.1"
    with pytest.raises(BuildError, match="produced version 1.1 but uv.lock records 1.0"):
        check_wheel_identity("my_pkg-1.1-py3-none-any.whl", "my-pkg", "1.0", "my-pkg 1.0")
    with pytest.raises(BuildError, match="a wheel for other, not for my-pkg"):
        check_wheel_identity("other-1.0-py3-none-any.whl", "my-pkg", "1.0", "my-pkg 1.0")


# -- interpreters ------------------------------------------------------------------------------


def interp(version="3.11.7", arch="x86_64", libc=("glibc", "2.36"), abiflags="", path="/py"):
    return Interpreter(path=path, implementation="cpython", version=version, abiflags=abiflags, os="linux",
                       arch=arch, libc_family=libc[0], libc_version=libc[1])


def target(**overrides):
    return Target.from_facts(facts(**overrides))


@pytest.mark.parametrize("overrides, reason", [
    ({}, None),
    ({"libc": {"family": "glibc", "version": "2.39"}}, None),
    ({"arch": "aarch64"}, "the target's CPU is aarch64, the controller's x86_64"),
    ({"libc": {"family": "musl", "version": "1.2.4"}}, "the target uses musl, the controller glibc"),
    ({"libc": {"family": "glibc", "version": "2.28"}}, "glibc 2.36 is newer than the target's 2.28"),
    ({"os": "darwin", "macos_version": "14.0", "libc": None}, "the target runs darwin, the controller linux"),
    ({"os": "windows", "arch": "AMD64", "libc": None}, "the target runs windows, the controller linux"),
])
def test_platform_mismatch(overrides, reason):
    found = platform_mismatch(interp(), target(**overrides))
    if reason is None:
        assert found is None
    else:
        assert reason in found


def test_interpreter_mismatch():
    assert interpreter_mismatch(interp(), target()) is None
    assert interpreter_mismatch(interp("3.12.1"), target()) == "Python 3.12, not 3.11"
    assert "ABI flags" in interpreter_mismatch(interp(abiflags="t"), target())


def test_variant_names_the_abi_not_the_patch_release():
    assert interp("3.12.1").variant == interp("3.12.9").variant == "cpython3.12-linux-x86_64-glibc2.36"
    assert interp("3.13.0", abiflags="t").variant != interp("3.13.0").variant


def test_finder_picks_the_targets_python_and_explains_otherwise(monkeypatch):
    known = {"/py311": interp("3.11.7", path="/py311"), "/py312": interp("3.12.1", path="/py312"),
             "/shim": interp("3.12.1", path="/shim"), "/broken": None}
    monkeypatch.setattr("ansible_collections.airgap.uv.plugins.plugin_utils._build.probe_interpreter",
                        lambda path: known[path])
    finder = InterpreterFinder(None, candidates=lambda: ["/py311", "/broken", "/py312", "/shim"])
    assert [i.path for i in finder.interpreters] == ["/py311", "/py312"]
    py312 = target(python={"version": "3.12.4", "implementation": "cpython", "abiflags": ""})
    assert finder.for_target(py312, platform_specific=True) == (known["/py312"], "")
    py313 = target(python={"version": "3.13.0", "implementation": "cpython", "abiflags": ""})
    assert finder.for_target(py313, True) == (
        None, "no cpython 3.13 interpreter on the controller (found: cpython 3.11, cpython 3.12)")
    arm = target(arch="aarch64", python={"version": "3.12.1", "implementation": "cpython", "abiflags": ""})
    assert finder.for_target(arm, True) == (None, "the target's CPU is aarch64, the controller's x86_64")
    # A pure wheel for another Python version only needs the version, not the platform.
    assert finder.for_target(arm, False) == (known["/py312"], "")


def test_probe_this_interpreter():
    found = probe_interpreter(sys.executable)
    assert found is not None
    assert found.version == "%d.%d.%d" % sys.version_info[:3]
    assert found.implementation == sys.implementation.name
    assert probe_interpreter("/nonexistent/python") is None


# -- git fetching --------------------------------------------------------------------------------


def _git(*args, cwd=None):
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.invalid", GIT_AUTHOR_DATE="2025-01-01T00:00:00Z",
               GIT_COMMITTER_DATE="2025-01-01T00:00:00Z")
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, stdout=subprocess.PIPE,
                          text=True).stdout.strip()


@pytest.fixture()
def repo(tmp_path):
    path = tmp_path / "repo"
    path.mkdir()
    _git("init", "--quiet", "-b", "main", cwd=path)
    (path / "pkg").mkdir()
    (path / "pkg" / "v.txt").write_text("one\n")
    _git("add", "-A", cwd=path)
    _git("commit", "--quiet", "-m", "one", cwd=path)
    first = _git("rev-parse", "HEAD", cwd=path)
    (path / "pkg" / "v.txt").write_text("two\n")
    _git("commit", "--quiet", "-am", "two", cwd=path)
    return path, first, _git("rev-parse", "HEAD", cwd=path)


def test_checkout_of_the_locked_commit_is_cached(tmp_path, repo):
    path, first, dummy = repo
    fetcher = GitFetcher(str(tmp_path / "git"))
    source = parse_git_source("file://%s?subdirectory=pkg#%s" % (path, first))
    tree = fetcher.checkout(source, "pkg 1.0", str(tmp_path / "co1"))
    assert tree == str(tmp_path / "co1" / "pkg")
    assert (tmp_path / "co1" / "pkg" / "v.txt").read_text() == "one\n"
    assert _git("rev-parse", "HEAD", cwd=tmp_path / "co1") == first
    assert fetcher.fetches == 1
    # The commit is in the cache now: no second fetch, even with the repository gone.
    os.rename(path, str(path) + ".gone")
    fetcher.checkout(source, "pkg 1.0", str(tmp_path / "co2"))
    assert fetcher.fetches == 1


def test_missing_commit_names_package_and_remedy(tmp_path, repo):
    path, dummy, dummy2 = repo
    fetcher = GitFetcher(str(tmp_path / "git"))
    source = parse_git_source("file://%s?rev=v9#%s" % (path, "0" * 40))
    with pytest.raises(BuildError, match=r"pkg 1\.0: file://.* has no commit 0{40} .*for rev v9.*"
                                         r"uv lock --upgrade-package pkg"):
        fetcher.fetch(source, "pkg 1.0")


def test_missing_subdirectory(tmp_path, repo):
    path, first, dummy = repo
    source = parse_git_source("file://%s?subdirectory=nope#%s" % (path, first))
    with pytest.raises(BuildError, match="subdirectory 'nope' does not exist"):
        GitFetcher(str(tmp_path / "git")).checkout(source, "pkg 1.0", str(tmp_path / "co"))


# -- the build cache records each wheel's hash ------------------------------------------------------


def test_cached_wheel_is_used_only_while_it_matches_its_recorded_hash(tmp_path):
    import hashlib
    import json

    from ansible_collections.airgap.uv.plugins.plugin_utils._wheelhouse_build import cached_wheel as _cached_wheel

    entry = tmp_path / "built" / "tree-abc" / "any"
    entry.mkdir(parents=True)
    wheel = entry / "pkg-1.0-py3-none-any.whl"
    wheel.write_bytes(b"wheel bytes")
    assert _cached_wheel(str(entry)) is None  # no record: built by an older recipe, build again
    (entry / "build.json").write_text(json.dumps({"wheel": wheel.name,
                                                  "sha256": hashlib.sha256(b"wheel bytes").hexdigest()}))
    assert _cached_wheel(str(entry)) == str(wheel)
    wheel.write_bytes(b"tampered")
    assert _cached_wheel(str(entry)) is None
    (entry / "build.json").write_text(json.dumps({"wheel": "../../escape.whl", "sha256": "0" * 64}))
    assert _cached_wheel(str(entry)) is None
    assert _cached_wheel(str(tmp_path / "missing")) is None
