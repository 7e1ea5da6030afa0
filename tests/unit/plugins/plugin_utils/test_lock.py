# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to the airgap.uv collection
from __future__ import annotations

import os
import typing as t

import pytest

from ansible_collections.airgap.uv.plugins.plugin_utils._lock import LockError, load_lock, validate_filename
from ansible_collections.airgap.uv.plugins.plugin_utils._lock_types import ConflictItem
from ansible_collections.airgap.uv.tests.unit.plugins.plugin_utils.lock_text import forked, package, registry

VIRTUAL = 'source = { virtual = "." }'

SHA_A = "a" * 64
SHA_B = "b" * 64
SHA_C = "c" * 64

ALL_SOURCES = f"""
version = 1
revision = 3
requires-python = ">=3.9"

[manifest]
members = ["app", "member"]

[[package]]
name = "App"
version = "1.0"
source = {{ editable = "." }}
dependencies = [
    {{ name = "dirlib" }},
    {{ name = "gitpkg" }},
    {{ name = "localwheel" }},
    {{ name = "member" }},
    {{ name = "Reg_Pkg" }},
    {{ name = "urlpkg" }},
    {{ name = "urlsdist" }},
    {{ name = "localsdist" }},
    {{ name = "flpkg" }},
]

[[package]]
name = "member"
version = "0.1"
source = {{ editable = "packages/member" }}

[[package]]
name = "dirlib"
version = "0.3"
source = {{ directory = "libs/dirlib" }}

[[package]]
name = "gitpkg"
version = "2.0"
source = {{ git = "https://git.invalid/org/gitpkg?rev=v2#0123456789abcdef0123456789abcdef01234567", subdirectory = "python" }}

[[package]]
name = "localwheel"
version = "1.0"
source = {{ path = "dist/localwheel-1.0-py3-none-any.whl" }}
wheels = [
    {{ filename = "localwheel-1.0-py3-none-any.whl", hash = "sha256:{SHA_A}" }},
]

[[package]]
name = "localsdist"
version = "1.1"
source = {{ path = "/abs/dist/localsdist-1.1.tar.gz" }}
sdist = {{ hash = "sha256:{SHA_B}" }}

[[package]]
name = "reg-pkg"
version = "3.0"
source = {{ registry = "https://index.invalid/simple" }}
sdist = {{ url = "https://files.index.invalid/packages/reg_pkg-3.0.tar.gz", hash = "sha256:{SHA_C}", size = 1234, upload-time = "2025-01-01T00:00:00Z" }}
wheels = [
    {{ url = "https://files.index.invalid/packages/reg_pkg-3.0-py3-none-any.whl", hash = "sha256:{SHA_A.upper()}", size = 99 }},
    {{ url = "https://files.index.invalid/packages/reg_pkg-3.0%2Blocal-cp312-cp312-win_amd64.whl", hash = "sha512:abcd" }},
]

[[package]]
name = "urlpkg"
version = "4.0"
source = {{ url = "https://files.index.invalid/direct/urlpkg-4.0-py3-none-any.whl" }}
wheels = [
    {{ url = "https://files.index.invalid/direct/urlpkg-4.0-py3-none-any.whl", hash = "sha256:{SHA_B}" }},
]

[[package]]
name = "urlsdist"
version = "5.0"
source = {{ url = "https://files.index.invalid/direct/urlsdist-5.0.tar.gz", subdirectory = "sub" }}
sdist = {{ hash = "sha256:{SHA_C}" }}

[[package]]
name = "flpkg"
version = "6.0"
source = {{ registry = "../wheelhouse" }}
sdist = {{ path = "flpkg-6.0.tar.gz" }}
wheels = [
    {{ path = "flpkg-6.0-py3-none-any.whl" }},
]

[[package]]
name = "virt"
version = "0.0.0"
source = {{ virtual = "tools/virt" }}
"""


@pytest.fixture
def all_sources(write_lock: t.Callable[..., str]) -> t.Any:
    path = write_lock(ALL_SOURCES)
    # The two entries outside the workspace, as its pyproject.toml would declare them (find-links
    # and a tool.uv.sources path); test_lock_paths.py covers what happens without.
    declared = (os.path.normpath(os.path.join(os.path.dirname(path), "..", "wheelhouse")), "/abs/dist")
    return load_lock(path, declared=declared)


class TestSources:
    def test_header(self, all_sources: t.Any) -> None:
        lock = all_sources
        assert lock.version == 1 and lock.revision == 3
        assert str(lock.requires_python) == ">=3.9"
        assert lock.members == ("app", "member")
        assert lock.project is not None and lock.project.name == "app"
        assert lock.workspace_members == ("app", "member")

    def test_registry(self, all_sources: t.Any) -> None:
        pkg = all_sources.find_unique("REG.pkg")
        assert pkg.name == "reg-pkg" and pkg.source_kind == "registry"
        assert pkg.source == "https://index.invalid/simple"
        assert pkg.sdist.filename == "reg_pkg-3.0.tar.gz"
        assert pkg.sdist.sha256 == SHA_C and pkg.sdist.size == 1234 and not pkg.sdist.is_wheel
        assert pkg.sdist.upload_time == "2025-01-01T00:00:00Z"
        first, second = pkg.wheels
        assert first.filename == "reg_pkg-3.0-py3-none-any.whl" and first.is_wheel
        assert first.sha256 == SHA_A  # lower-cased
        assert first.url.startswith("https://files.index.invalid/") and first.path is None
        # percent-decoded basename; non-sha256 hashes are kept aside
        assert second.filename == "reg_pkg-3.0+local-cp312-cp312-win_amd64.whl"
        assert second.sha256 is None and second.other_hash == "sha512:abcd"

    def test_local_registry_paths_are_relative_to_the_registry(self, all_sources: t.Any) -> None:
        pkg = all_sources.find_unique("flpkg")
        lock_dir = os.path.dirname(all_sources.path)
        wheelhouse = os.path.normpath(os.path.join(lock_dir, "..", "wheelhouse"))
        assert pkg.wheels[0].path == os.path.join(wheelhouse, "flpkg-6.0-py3-none-any.whl")
        assert pkg.wheels[0].url is None and pkg.wheels[0].sha256 is None
        assert pkg.sdist.path == os.path.join(wheelhouse, "flpkg-6.0.tar.gz")
        assert pkg.local_path == wheelhouse

    def test_git(self, all_sources: t.Any) -> None:
        pkg = all_sources.find_unique("gitpkg")
        assert pkg.source_kind == "git" and pkg.source.startswith("https://git.invalid/org/gitpkg?rev=v2#")
        assert pkg.subdirectory == "python"
        assert pkg.wheels == () and pkg.sdist is None

    def test_path_wheel_and_sdist(self, all_sources: t.Any) -> None:
        lock_dir = os.path.dirname(all_sources.path)
        wheel_pkg = all_sources.find_unique("localwheel")
        assert wheel_pkg.source_kind == "path"
        (art,) = wheel_pkg.wheels
        assert art.filename == "localwheel-1.0-py3-none-any.whl" and art.sha256 == SHA_A
        assert art.path == os.path.join(lock_dir, "dist", "localwheel-1.0-py3-none-any.whl") and art.url is None
        sdist_pkg = all_sources.find_unique("localsdist")
        assert sdist_pkg.sdist.path == "/abs/dist/localsdist-1.1.tar.gz"
        assert sdist_pkg.sdist.filename == "localsdist-1.1.tar.gz" and sdist_pkg.sdist.sha256 == SHA_B

    def test_url_sources(self, all_sources: t.Any) -> None:
        wheel_pkg = all_sources.find_unique("urlpkg")
        assert wheel_pkg.source_kind == "url"
        assert wheel_pkg.wheels[0].url == "https://files.index.invalid/direct/urlpkg-4.0-py3-none-any.whl"
        sdist_pkg = all_sources.find_unique("urlsdist")
        assert sdist_pkg.sdist.url == "https://files.index.invalid/direct/urlsdist-5.0.tar.gz"
        assert sdist_pkg.sdist.filename == "urlsdist-5.0.tar.gz" and sdist_pkg.subdirectory == "sub"

    def test_local_trees(self, all_sources: t.Any) -> None:
        lock_dir = os.path.dirname(all_sources.path)
        for name, kind, rel in [
            ("dirlib", "directory", "libs/dirlib"),
            ("member", "editable", "packages/member"),
            ("virt", "virtual", "tools/virt"),
        ]:
            pkg = all_sources.find_unique(name)
            assert pkg.source_kind == kind and pkg.is_local_tree
            assert pkg.local_path == os.path.join(lock_dir, rel)
            assert pkg.wheels == () and pkg.sdist is None

    def test_dependencies_resolve(self, all_sources: t.Any) -> None:
        app = all_sources.project
        names = sorted(all_sources.resolve(d, app).name for d in app.dependencies)
        assert names == sorted(["dirlib", "gitpkg", "localwheel", "member", "reg-pkg", "urlpkg", "urlsdist", "localsdist", "flpkg"])


class TestErrors:
    def test_missing_file(self, tmp_path: t.Any) -> None:
        path = str(tmp_path / "uv.lock")
        with pytest.raises(LockError, match=r"uv\.lock: no such file.*uv lock"):
            load_lock(path)

    def test_newer_version_refused(self, write_lock: t.Callable[..., str]) -> None:
        path = write_lock('version = 2\nrevision = 0\nrequires-python = ">=3.9"\n')
        with pytest.raises(LockError) as info:
            load_lock(path)
        message = str(info.value)
        assert path in message and "newer uv" in message and "upgrade airgap.uv" in message and "re-lock" in message

    def test_not_a_lock(self, write_lock: t.Callable[..., str]) -> None:
        with pytest.raises(LockError, match="not a uv.lock"):
            load_lock(write_lock('[project]\nname = "x"\n'))

    def test_malformed_toml(self, write_lock: t.Callable[..., str]) -> None:
        path = write_lock('version = 1\n<<<<<<< HEAD\n[[package]]\nname = "x"\n')
        with pytest.raises(LockError) as info:
            load_lock(path)
        assert path in str(info.value) and "not valid TOML" in str(info.value) and "line" in str(info.value)

    def test_not_utf8(self, tmp_path: t.Any) -> None:
        path = tmp_path / "uv.lock"
        path.write_bytes(b"version = 1\n\xff\xfe\n")
        with pytest.raises(LockError, match="UTF-8"):
            load_lock(str(path))

    @pytest.mark.parametrize(
        "entry",
        [
            '{ url = "https://files.index.invalid/x/..%2F..%2Fevil-1.0-py3-none-any.whl", hash = "sha256:' + SHA_A + '" }',
            '{ url = "https://files.index.invalid/x/evil%5Cx-1.0-py3-none-any.whl" }',
            '{ url = "https://files.index.invalid/x/a%00b-1.0-py3-none-any.whl" }',
            '{ url = "https://files.index.invalid/x/" }',
            '{ filename = "../evil-1.0-py3-none-any.whl", hash = "sha256:' + SHA_A + '" }',
            '{ path = "sub/..", filename = "..\\\\evil-1.0-py3-none-any.whl" }',
        ],
    )
    def test_path_traversal_refused(self, write_lock: t.Callable[..., str], entry: str) -> None:
        text = package("evil", "wheels = [\n    %s,\n]" % entry, version="1.0", header="version = 1\nrevision = 3\n\n")
        with pytest.raises(LockError, match="evil|empty"):
            load_lock(write_lock(text))

    def test_local_path_keeps_only_the_basename(self, write_lock: t.Callable[..., str]) -> None:
        text = package("p", 'wheels = [{ path = "sub/../p-1.0-py3-none-any.whl" }]', version="1.0", source='source = { registry = "wh" }')
        lock = load_lock(write_lock(text))
        (art,) = lock.find_unique("p").wheels
        assert art.filename == "p-1.0-py3-none-any.whl"
        assert art.path == os.path.join(os.path.dirname(lock.path), "wh", "p-1.0-py3-none-any.whl")

    def test_filename_validator(self) -> None:
        assert validate_filename("pkg-1.0-py3-none-any.whl", "x") == "pkg-1.0-py3-none-any.whl"
        for bad in ["", "..", ".", "a/b.whl", "a\\b.whl", "a\x00.whl", "..evil.whl", " x.whl", "C:x.whl", None]:
            with pytest.raises(LockError):
                validate_filename(bad, "x")

    @pytest.mark.parametrize("text, refusal", [
        (package("p", 'wheels = [{ url = "https://files.index.invalid/p-1-py3-none-any.whl", hash = "sha256:xyz" }]'),
         "malformed sha256"),
        (package("p", 'wheels = [{ url = "https://files.index.invalid/p-1.tar.gz" }]'), r"\.whl"),
        (package("p", source='source = { teleport = "x" }'), "unknown source"),
        (package("p", 'dependencies = [{ name = "ghost" }]', source=VIRTUAL), r"ghost.*no \[\[package\]\]"),
        (package("p", 'dependencies = [{ name = "q" }]', source=VIRTUAL) + registry("q==1", "q==2"), "several"),
        ('version = 1\nrequires-python = "~=banana"\n', "requires-python"),
    ], ids=["bad hash", "wheel not .whl", "unknown source kind", "dangling dependency", "ambiguous dependency",
            "bad requires-python"])
    def test_refused(self, write_lock: t.Callable[..., str], text: str, refusal: str) -> None:
        with pytest.raises(LockError, match=refusal):
            load_lock(write_lock(text))


FORKED = """
version = 1
revision = 5
requires-python = ">=3.9"
resolution-markers = [
    "python_full_version >= '3.10'",
    "python_full_version < '3.10'",
]
conflicts = [[
    { package = "proj", extra = "cpu" },
    { package = "proj", extra = "gpu" },
], [
    { package = "proj", group = "dev" },
    { package = "proj", group = "old" },
]]

""" + forked("numpy", "1.26.4", "2.2.6") + """

[[package]]
name = "proj"
version = "0.1.0"
source = { virtual = "." }
default-groups = ["dev", "lint"]
dependencies = [
    { name = "numpy", version = "1.26.4", source = { registry = "https://index.invalid/simple" }, marker = "python_full_version < '3.10'" },
    { name = "numpy", version = "2.2.6", source = { registry = "https://index.invalid/simple" }, marker = "python_full_version >= '3.10'" },
]

[package.optional-dependencies]
cpu = [{ name = "numpy", version = "1.26.4", source = { registry = "https://index.invalid/simple" }, extra = ["Fast_Math"] }]

[package.dev-dependencies]
dev = [{ name = "numpy", version = "2.2.6", source = { registry = "https://index.invalid/simple" } }]

[package.metadata]
requires-dist = [{ name = "numpy" }]
provides-extras = ["cpu", "gpu"]

[package.metadata.requires-dev]
dev = [{ name = "numpy" }]
docs = []
"""


def test_forked_entries_and_metadata(write_lock: t.Callable[..., str]) -> None:
    lock = load_lock(write_lock(FORKED))
    assert [p.version for p in lock.packages_named("numpy")] == ["1.26.4", "2.2.6"]
    assert lock.packages_named("numpy")[0].resolution_markers == ("python_full_version < '3.10'",)
    proj = lock.project
    assert proj.source_kind == "virtual"
    assert [lock.resolve(d, proj).version for d in proj.dependencies] == ["1.26.4", "2.2.6"]
    assert proj.optional_dependencies["cpu"][0].extras == ("fast-math",)
    assert proj.extras == ("cpu", "gpu")  # gpu has no locked edge but is declared
    assert proj.groups == ("dev", "docs")
    assert proj.default_groups == ("dev", "lint")
    assert lock.conflicts == (
        (ConflictItem("proj", "extra", "cpu"), ConflictItem("proj", "extra", "gpu")),
        (ConflictItem("proj", "group", "dev"), ConflictItem("proj", "group", "old")),
    )
    assert lock.resolution_markers == ("python_full_version >= '3.10'", "python_full_version < '3.10'")


def test_dynamic_version_and_future_revision(write_lock: t.Callable[..., str]) -> None:
    text = """
version = 1
revision = 9

[[package]]
name = "dyn"
source = { editable = "." }
dependencies = [{ name = "idna" }]

[[package]]
name = "idna"
version = "3.10"
source = { registry = "https://index.invalid/simple" }
"""
    lock = load_lock(write_lock(text))
    assert lock.revision == 9 and lock.requires_python is None
    assert lock.project.version is None and str(lock.project) == "dyn"
    assert lock.workspace_members == ("dyn",)


@pytest.mark.parametrize("url", [
    "https://files.index.invalid/packages/ab/cd/click-8.1.7-py3-none-any.whl",
    "http://index.invalid:8080/simple/pkg/pkg-1.0.tar.gz",
    "https://index.invalid/packages/name%2Bplus-1.0-py3-none-any.whl",
    "https://index.invalid/packages/pkg-1.0.whl?token=x#sha256=00",
    "https://index.invalid/packages/pkg-1.0.whl#frag",
    "https://index.invalid",
    "https://index.invalid/",
    "file:///srv/wheels/pkg-1.0-py3-none-any.whl",
])
def test_url_basename_fast_path_agrees_with_urlsplit(url):
    from urllib.parse import unquote, urlsplit

    from ansible_collections.airgap.uv.plugins.plugin_utils._lock import _url_basename

    assert _url_basename(url) == unquote(urlsplit(url).path.rsplit("/", 1)[-1])
