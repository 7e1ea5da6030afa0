# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to the airgap.uv collection
"""Selection on small hand-written locks shaped like the ones uv 0.13 writes."""

from __future__ import annotations

import typing as t

import pytest

from ansible_collections.airgap.uv.plugins.plugin_utils._lock import load_lock
from ansible_collections.airgap.uv.plugins.plugin_utils._selection import (
    SelectionError,
    SelectionOptions,
    evaluate_marker,
    read_default_groups,
    resolve_groups,
    select_packages,
)
from ansible_collections.airgap.uv.tests.unit.plugins.plugin_utils.lock_text import REG, forked, registry


def env(python: str = "3.12.1", system: str = "linux", machine: str = "x86_64") -> dict[str, str]:
    minor = ".".join(python.split(".")[:2])
    base = {
        "implementation_name": "cpython",
        "implementation_version": python,
        "platform_python_implementation": "CPython",
        "python_full_version": python,
        "python_version": minor,
        "platform_release": "",
        "platform_version": "",
        "platform_machine": machine,
    }
    if system == "linux":
        base.update(os_name="posix", platform_system="Linux", sys_platform="linux")
    elif system == "win32":
        base.update(os_name="nt", platform_system="Windows", sys_platform="win32", platform_machine="AMD64")
    elif system == "darwin":
        base.update(os_name="posix", platform_system="Darwin", sys_platform="darwin", platform_machine="arm64")
    return base


# Conflict atoms as uv encodes them for package `proj`.
CPU = "extra == 'extra-4-proj-cpu'"
NOT_CPU = "extra != 'extra-4-proj-cpu'"
GPU = "extra == 'extra-4-proj-gpu'"
DEV = "extra == 'group-4-proj-dev'"
DEV_AND_OLD = "(extra == 'group-4-proj-dev' and extra == 'group-4-proj-old')"

LINUX312 = env()
LINUX39 = env("3.9.18")
WIN313 = env("3.13.0", "win32")
MAC312 = env("3.12.1", "darwin")


def names(selected: t.Iterable[t.Any]) -> list[str]:
    return ["%s==%s" % (s.package.name, s.package.version) for s in selected]


# A lock shaped like `uv lock` output for a project with a win32-only dependency,
# a Python-version fork, extras, dependency groups, and two conflict sets.
PROJ = f"""
version = 1
revision = 5
requires-python = ">=3.9"
conflicts = [[
    {{ package = "proj", extra = "cpu" }},
    {{ package = "proj", extra = "gpu" }},
], [
    {{ package = "proj", group = "dev" }},
    {{ package = "proj", group = "old" }},
]]

{registry("colorama==0.4.6")}

[[package]]
name = "dateutil"
version = "2.9.0"
{REG}
dependencies = [
    {{ name = "six", version = "1.16.0", {REG}, marker = "{CPU} or {DEV_AND_OLD}" }},
    {{ name = "six", version = "1.17.0", {REG}, marker = "{NOT_CPU} or {GPU} or {DEV_AND_OLD}" }},
]

{registry("idna==3.10", "iniconfig==2.0.0")}

{forked("iniconfig", "2.1.0", "2.3.0")}

{forked("numpy", "1.26.4", "2.2.6")}

[[package]]
name = "proj"
version = "0.1.0"
source = {{ virtual = "." }}
dependencies = [
    {{ name = "colorama", marker = "sys_platform == 'win32'" }},
    {{ name = "dateutil" }},
    {{ name = "numpy", version = "1.26.4", {REG}, marker = "python_full_version < '3.10'" }},
    {{ name = "numpy", version = "2.2.6", {REG}, marker = "python_full_version >= '3.10'" }},
]

[package.optional-dependencies]
cpu = [
    {{ name = "idna" }},
    {{ name = "six", version = "1.16.0", {REG} }},
]
gpu = [
    {{ name = "six", version = "1.17.0", {REG} }},
]
socks = [
    {{ name = "requests", extra = ["socks"] }},
]

[package.dev-dependencies]
dev = [
    {{ name = "iniconfig", version = "2.1.0", {REG}, marker = "(python_full_version < '3.10' and {DEV}) or {DEV_AND_OLD}" }},
    {{ name = "iniconfig", version = "2.3.0", {REG}, marker = "(python_full_version >= '3.10' and {DEV}) or {DEV_AND_OLD}" }},
]
lint = [
    {{ name = "tomli", marker = "python_full_version < '3.11'" }},
]
old = [
    {{ name = "iniconfig", version = "2.0.0", {REG} }},
]

[package.metadata]
provides-extras = ["cpu", "gpu", "socks", "empty"]

[package.metadata.requires-dev]
dev = [{{ name = "iniconfig" }}]
docs = []
lint = [{{ name = "tomli", marker = "python_full_version < '3.11'" }}]
old = [{{ name = "iniconfig", specifier = "==2.0.0" }}]

{registry("pysocks==1.7.1")}

[[package]]
name = "requests"
version = "2.32.0"
{REG}
dependencies = [
    {{ name = "idna" }},
]

[package.optional-dependencies]
socks = [
    {{ name = "pysocks" }},
    {{ name = "win-inet-pton", marker = "python_full_version < '3.10' and sys_platform == 'win32'" }},
]

{registry("six==1.16.0", "six==1.17.0", "tomli==2.2.1", "win-inet-pton==1.1.0")}
"""


@pytest.fixture
def proj(write_lock: t.Callable[..., str]) -> t.Any:
    return load_lock(write_lock(PROJ))


class TestProject:
    def test_default_linux(self, proj: t.Any) -> None:
        result = select_packages(proj, LINUX312, SelectionOptions())
        assert names(result) == ["dateutil==2.9.0", "iniconfig==2.3.0", "numpy==2.2.6", "proj==0.1.0", "six==1.17.0"]
        roots = [s for s in result if s.is_root]
        assert [s.package.name for s in roots] == ["proj"] and roots[0].package.source_kind == "virtual"

    def test_win32_only_package(self, proj: t.Any) -> None:
        assert "colorama==0.4.6" not in names(select_packages(proj, LINUX312, SelectionOptions()))
        assert "colorama==0.4.6" not in names(select_packages(proj, MAC312, SelectionOptions()))
        assert "colorama==0.4.6" in names(select_packages(proj, WIN313, SelectionOptions()))

    def test_fork_picks_the_named_entry(self, proj: t.Any) -> None:
        old = names(select_packages(proj, LINUX39, SelectionOptions()))
        assert "numpy==1.26.4" in old and "iniconfig==2.1.0" in old
        assert not any(n.startswith("numpy==2") for n in old)

    def test_extra_pulls_transitive_extra(self, proj: t.Any) -> None:
        result = names(select_packages(proj, LINUX312, SelectionOptions(extras=("socks",))))
        assert "requests==2.32.0" in result and "pysocks==1.7.1" in result and "idna==3.10" in result
        assert "win-inet-pton==1.1.0" not in result
        win39 = env("3.9.18", "win32")
        assert "win-inet-pton==1.1.0" in names(select_packages(proj, win39, SelectionOptions(extras=("socks",))))

    def test_conflict_marker_follows_active_extra(self, proj: t.Any) -> None:
        cpu = names(select_packages(proj, LINUX312, SelectionOptions(extras=("cpu",))))
        assert "six==1.16.0" in cpu and "six==1.17.0" not in cpu and "idna==3.10" in cpu
        gpu = names(select_packages(proj, LINUX312, SelectionOptions(extras=("gpu",))))
        assert "six==1.17.0" in gpu and "six==1.16.0" not in gpu

    def test_conflicting_extras_refused(self, proj: t.Any) -> None:
        with pytest.raises(SelectionError, match="extra `cpu` of `proj`.*extra `gpu` of `proj`.*conflicting"):
            select_packages(proj, LINUX312, SelectionOptions(extras=("cpu", "gpu")))
        with pytest.raises(SelectionError, match="conflicting"):
            select_packages(proj, LINUX312, SelectionOptions(all_extras=True))
        # --no-extra lifts the clash
        result = names(select_packages(proj, LINUX312, SelectionOptions(all_extras=True, no_extras=("gpu",))))
        assert "six==1.16.0" in result and "pysocks==1.7.1" in result

    def test_conflicting_groups_refused(self, proj: t.Any) -> None:
        # `dev` is a default group, so asking for `old` clashes with it.
        with pytest.raises(SelectionError, match="group `dev`.*group `old`"):
            select_packages(proj, LINUX312, SelectionOptions(groups=("old",)))
        with pytest.raises(SelectionError, match="conflicting"):
            select_packages(proj, LINUX312, SelectionOptions(all_groups=True))
        ok = names(select_packages(proj, LINUX312, SelectionOptions(groups=("old",), no_default_groups=True)))
        assert "iniconfig==2.0.0" in ok and "iniconfig==2.3.0" not in ok

    def test_groups(self, proj: t.Any) -> None:
        no_dev = names(select_packages(proj, LINUX312, SelectionOptions(no_dev=True)))
        assert not any(n.startswith("iniconfig") for n in no_dev)
        lint39 = names(select_packages(proj, LINUX39, SelectionOptions(groups=("lint",))))
        assert "tomli==2.2.1" in lint39 and "iniconfig==2.1.0" in lint39
        assert "tomli==2.2.1" not in names(select_packages(proj, LINUX312, SelectionOptions(groups=("lint",))))
        # an empty declared group is known, and selects nothing
        assert names(select_packages(proj, LINUX312, SelectionOptions(groups=("docs",), no_dev=True))) == names(
            select_packages(proj, LINUX312, SelectionOptions(no_dev=True))
        )

    def test_only_group_skips_the_project(self, proj: t.Any) -> None:
        result = select_packages(proj, LINUX39, SelectionOptions(only_groups=("lint",)))
        assert names(result) == ["tomli==2.2.1"]
        assert not any(s.is_root for s in result)

    def test_default_groups_argument(self, proj: t.Any) -> None:
        result = names(select_packages(proj, LINUX39, SelectionOptions(), default_groups=("lint",)))
        assert "tomli==2.2.1" in result and not any(n.startswith("iniconfig") for n in result)
        with pytest.raises(SelectionError, match="conflicting"):
            select_packages(proj, LINUX39, SelectionOptions(), default_groups="all")
        assert names(select_packages(proj, LINUX39, SelectionOptions(), default_groups=())) == [
            "dateutil==2.9.0", "numpy==1.26.4", "proj==0.1.0", "six==1.17.0"]

    def test_unknown_extra_and_group(self, proj: t.Any) -> None:
        with pytest.raises(SelectionError) as info:
            select_packages(proj, LINUX312, SelectionOptions(extras=("gpus",)))
        assert "`gpus`" in str(info.value) and "`cpu`, `empty`, `gpu`, `socks`" in str(info.value)
        with pytest.raises(SelectionError) as info:
            select_packages(proj, LINUX312, SelectionOptions(groups=("tests",)))
        assert "`tests`" in str(info.value) and "`dev`, `docs`, `lint`, `old`" in str(info.value)
        with pytest.raises(SelectionError, match="`nope`"):
            select_packages(proj, LINUX312, SelectionOptions(only_groups=("nope",)))

    def test_declared_extra_without_edges(self, proj: t.Any) -> None:
        assert names(select_packages(proj, LINUX312, SelectionOptions(extras=("Empty",)))) == names(
            select_packages(proj, LINUX312, SelectionOptions())
        )

    def test_requires_python(self, proj: t.Any) -> None:
        with pytest.raises(SelectionError) as info:
            select_packages(proj, env("3.8.18"), SelectionOptions())
        assert "3.8.18" in str(info.value) and ">=3.9" in str(info.value)
        # pre-releases of a matching version are accepted, as uv does
        select_packages(proj, env("3.14.0rc2"), SelectionOptions())

    def test_marker_env_must_be_complete(self, proj: t.Any) -> None:
        partial = dict(LINUX312)
        del partial["sys_platform"]
        with pytest.raises(SelectionError, match="sys_platform"):
            select_packages(proj, partial, SelectionOptions())

    @pytest.mark.parametrize(
        "options",
        [
            SelectionOptions(only_groups=("dev",), groups=("lint",)),
            SelectionOptions(only_groups=("dev",), all_groups=True),
            SelectionOptions(only_groups=("dev",), extras=("cpu",)),
            SelectionOptions(all_extras=True, extras=("cpu",)),
            SelectionOptions(package="proj", all_packages=True),
        ],
    )
    def test_clashing_options(self, proj: t.Any, options: SelectionOptions) -> None:
        with pytest.raises(SelectionError, match="cannot be used with"):
            select_packages(proj, LINUX312, options)

    def test_result_is_sorted_and_unique(self, proj: t.Any) -> None:
        result = select_packages(proj, WIN313, SelectionOptions(extras=("socks",), groups=("lint",)))
        keys = [(s.package.name, s.package.version) for s in result]
        assert keys == sorted(keys) and len(set(keys)) == len(keys)


# A workspace whose root is not a project (groups live in [manifest]), with a member
# depending on another member's extra, member-level default groups, and a conflict
# between two extras of a member that only a transitive `lib[cpu]` edge activates.
WORKSPACE = f"""
version = 1
revision = 5
requires-python = ">=3.10"
conflicts = [[
    {{ package = "lib", extra = "cpu" }},
    {{ package = "lib", extra = "gpu" }},
]]

[manifest]
members = ["app", "lib", "tool"]
default-groups = ["dev", "lint"]

[manifest.dependency-groups]
dev = [{{ name = "iniconfig" }}]
lint = [{{ name = "pysocks", marker = "sys_platform == 'linux'" }}]

[[package]]
name = "app"
version = "1.0"
source = {{ editable = "packages/app" }}
dependencies = [{{ name = "dateutil" }}]

[package.optional-dependencies]
withcpu = [{{ name = "lib", extra = ["cpu"] }}]
withgpu = [{{ name = "lib", extra = ["gpu"] }}]

[package.dev-dependencies]
dev = [{{ name = "colorama" }}]

[package.metadata]
provides-extras = ["withcpu", "withgpu"]

[[package]]
name = "lib"
version = "1.0"
source = {{ editable = "packages/lib" }}
default-groups = ["lint"]

[package.optional-dependencies]
cpu = [{{ name = "six", version = "1.16.0", {REG} }}]
gpu = [{{ name = "six", version = "1.17.0", {REG} }}]

[package.dev-dependencies]
dev = [{{ name = "idna" }}]
lint = [{{ name = "tomli" }}]

[package.metadata]
provides-extras = ["cpu", "gpu"]

[[package]]
name = "tool"
version = "1.0"
source = {{ editable = "packages/tool" }}

{registry("colorama==0.4.6")}

[[package]]
name = "dateutil"
version = "2.9.0"
{REG}
dependencies = [
    {{ name = "six", version = "1.16.0", {REG}, marker = "extra == 'extra-3-lib-cpu'" }},
    {{ name = "six", version = "1.17.0", {REG}, marker = "extra != 'extra-3-lib-cpu' or extra == 'extra-3-lib-gpu'" }},
]

{registry("idna==3.10", "iniconfig==2.3.0", "pysocks==1.7.1", "six==1.16.0", "six==1.17.0", "tomli==2.2.1")}
"""


@pytest.fixture
def workspace(write_lock: t.Callable[..., str]) -> t.Any:
    return load_lock(write_lock(WORKSPACE))


class TestWorkspace:
    def test_virtual_root_installs_all_members_and_root_groups(self, workspace: t.Any) -> None:
        result = select_packages(workspace, LINUX312, SelectionOptions())
        assert names(result) == [
            "app==1.0", "colorama==0.4.6", "dateutil==2.9.0", "idna==3.10", "iniconfig==2.3.0",
            "lib==1.0", "pysocks==1.7.1", "six==1.17.0", "tomli==2.2.1", "tool==1.0",
        ]
        assert {s.package.name for s in result if s.is_root} == {"app", "lib", "tool"}
        assert "pysocks==1.7.1" not in names(select_packages(workspace, WIN313, SelectionOptions()))

    def test_caller_default_groups_override_the_lock(self, workspace: t.Any) -> None:
        result = names(select_packages(workspace, LINUX312, SelectionOptions(), default_groups=("dev",)))
        assert "iniconfig==2.3.0" in result and "pysocks==1.7.1" not in result and "tomli==2.2.1" not in result

    def test_package_uses_member_default_groups(self, workspace: t.Any) -> None:
        # lib's own default-groups is ["lint"]; the workspace root's do not apply.
        assert names(select_packages(workspace, LINUX312, SelectionOptions(package="lib"))) == ["lib==1.0", "tomli==2.2.1"]
        # app has no default-groups: "dev"; root groups are not applied by default
        assert names(select_packages(workspace, LINUX312, SelectionOptions(package="app"), default_groups=("lint",))) == [
            "app==1.0", "colorama==0.4.6", "dateutil==2.9.0", "six==1.17.0"]

    def test_package_with_root_groups(self, workspace: t.Any) -> None:
        # explicitly requested root groups apply when the member has no group of that name
        lint = names(select_packages(workspace, LINUX312, SelectionOptions(package="app", groups=("lint",))))
        assert "pysocks==1.7.1" in lint
        dev = names(select_packages(workspace, LINUX312, SelectionOptions(package="app", groups=("dev",))))
        assert "iniconfig==2.3.0" not in dev and "colorama==0.4.6" in dev
        only = names(select_packages(workspace, LINUX312, SelectionOptions(package="tool", only_groups=("dev",))))
        assert only == ["iniconfig==2.3.0"]

    def test_unknown_package(self, workspace: t.Any) -> None:
        with pytest.raises(SelectionError) as info:
            select_packages(workspace, LINUX312, SelectionOptions(package="nope"))
        assert "`nope`" in str(info.value) and "`app`, `lib`, `tool`" in str(info.value)

    def test_transitive_extra_activates_conflict_marker(self, workspace: t.Any) -> None:
        result = names(select_packages(workspace, LINUX312, SelectionOptions(package="app", extras=("withcpu",))))
        assert "six==1.16.0" in result and "six==1.17.0" not in result and "lib==1.0" in result

    def test_transitive_conflict_refused(self, workspace: t.Any) -> None:
        with pytest.raises(SelectionError, match="extra `cpu` of `lib`.*extra `gpu` of `lib`"):
            select_packages(workspace, LINUX312, SelectionOptions(package="app", extras=("withcpu", "withgpu")))
        with pytest.raises(SelectionError, match="conflicting"):
            select_packages(workspace, LINUX312, SelectionOptions(all_packages=True, extras=("withcpu", "gpu")))

    def test_extras_validated_across_members(self, workspace: t.Any) -> None:
        result = names(select_packages(workspace, LINUX312, SelectionOptions(all_packages=True, extras=("gpu",))))
        assert "six==1.17.0" in result
        with pytest.raises(SelectionError, match="`gpu`"):
            select_packages(workspace, LINUX312, SelectionOptions(package="app", extras=("gpu",)))


ENVIRONMENTS = f"""
version = 1
revision = 5
requires-python = ">=3.11"
supported-markers = ["sys_platform == 'linux'", "sys_platform == 'darwin'"]

[[package]]
name = "solo"
version = "1.0"
source = {{ editable = "." }}
dependencies = [{{ name = "idna" }}]

{registry("idna==3.10")}
"""


def test_supported_environments(write_lock: t.Callable[..., str]) -> None:
    lock = load_lock(write_lock(ENVIRONMENTS))
    selected = select_packages(lock, LINUX312, SelectionOptions())
    assert [(s.package.name, s.is_root) for s in selected] == [("idna", False), ("solo", True)]
    with pytest.raises(SelectionError, match="environments"):
        select_packages(lock, WIN313, SelectionOptions())


def test_marker_evaluation() -> None:
    assert evaluate_marker(None, LINUX312)
    assert evaluate_marker("sys_platform == 'linux' and python_full_version >= '3.12'", LINUX312)
    assert not evaluate_marker("extra == 'extra-3-foo-cpu'", LINUX312)
    assert evaluate_marker("extra == 'extra-3-foo-cpu'", LINUX312, {"extra-3-foo-cpu"})
    assert evaluate_marker("extra != 'extra-3-foo-cpu'", LINUX312, {"group-3-foo-dev"})
    assert evaluate_marker("'group-3-foo-dev' == extra and sys_platform == 'linux'", LINUX312, {"group-3-foo-dev"})
    assert not evaluate_marker("extra == 'extra-3-foo-cpu' and extra == 'extra-3-foo-gpu'", LINUX312, {"extra-3-foo-cpu"})


def test_bad_marker_in_lock() -> None:
    with pytest.raises(SelectionError, match="Invalid marker"):
        evaluate_marker("sys_platform === 'linux' and", LINUX312)


def test_resolve_groups() -> None:
    known = {"dev", "lint", "docs"}
    assert resolve_groups(SelectionOptions(), known) == (True, frozenset({"dev"}))
    assert resolve_groups(SelectionOptions(no_dev=True, groups=("dev", "lint")), known) == (True, frozenset({"lint"}))
    assert resolve_groups(SelectionOptions(all_groups=True, no_groups=("docs",)), known) == (True, frozenset({"dev", "lint"}))
    assert resolve_groups(SelectionOptions(only_groups=("lint",)), known) == (False, frozenset({"lint"}))
    assert resolve_groups(SelectionOptions(), known, "all") == (True, frozenset(known))
    assert resolve_groups(SelectionOptions(no_default_groups=True), known, "all") == (True, frozenset())


@pytest.mark.parametrize(
    "body, expected",
    [
        ("[project]\nname = 'x'\n", ("dev",)),
        ("[tool.uv]\ndefault-groups = ['Lint', 'dev']\n", ("lint", "dev")),
        ("[tool.uv]\ndefault-groups = 'all'\n", "all"),
        ("[tool.uv]\ndefault-groups = []\n", ()),
    ],
)
def test_read_default_groups(tmp_path: t.Any, body: str, expected: t.Any) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text(body, encoding="utf-8")
    assert read_default_groups(str(path)) == expected


def test_read_default_groups_errors(tmp_path: t.Any) -> None:
    with pytest.raises(SelectionError, match="no such file"):
        read_default_groups(str(tmp_path / "missing.toml"))
    bad = tmp_path / "pyproject.toml"
    bad.write_text("[tool.uv]\ndefault-groups = 3\n", encoding="utf-8")
    with pytest.raises(SelectionError, match="default-groups"):
        read_default_groups(str(bad))
    bad.write_text("[tool.uv\n", encoding="utf-8")
    with pytest.raises(SelectionError, match="TOML"):
        read_default_groups(str(bad))


# An older lock (uv 0.5: no revision, no provides-extras, no default-groups) of a
# workspace whose members declare their own default groups.
OLD_WORKSPACE = f"""
version = 1
requires-python = ">=3.9"

[manifest]
members = ["alpha", "beta"]

[[package]]
name = "alpha"
version = "1.0"
source = {{ editable = "packages/alpha" }}

[package.optional-dependencies]
x = [{{ name = "idna" }}]

[package.dev-dependencies]
dev = [{{ name = "six", version = "1.17.0", {REG} }}]
lint = [{{ name = "tomli" }}]

[[package]]
name = "beta"
version = "1.0"
source = {{ editable = "packages/beta" }}
dependencies = [{{ name = "alpha", extra = ["x"] }}]

{registry("idna==3.10", "six==1.17.0", "tomli==2.2.1")}
"""


class TestOlderLocks:
    def test_member_gets_root_default_groups(self, write_lock: t.Callable[..., str]) -> None:
        lock = load_lock(write_lock(OLD_WORKSPACE))
        assert lock.revision == 0
        # uv 0.13 applies the workspace root's default groups to --package X when the lock
        # does not record X's own (locks written before uv 0.12).
        result = names(select_packages(lock, LINUX312, SelectionOptions(package="alpha"), default_groups=("dev", "lint")))
        assert result == ["alpha==1.0", "six==1.17.0", "tomli==2.2.1"]
        assert names(select_packages(lock, LINUX312, SelectionOptions(package="alpha"))) == ["alpha==1.0", "six==1.17.0"]

    def test_extras_not_validated_without_provides_extras(self, write_lock: t.Callable[..., str]) -> None:
        lock = load_lock(write_lock(OLD_WORKSPACE))
        result = names(select_packages(lock, LINUX312, SelectionOptions(package="alpha", extras=("x", "nope"))))
        assert "idna==3.10" in result

    def test_recorded_defaults_win_for_an_explicit_package(self, write_lock: t.Callable[..., str]) -> None:
        text = f"""
version = 1
revision = 5
requires-python = ">=3.9"

[[package]]
name = "solo"
version = "1.0"
source = {{ editable = "." }}
default-groups = ["lint"]

[package.dev-dependencies]
dev = [{{ name = "six", version = "1.17.0", {REG} }}]
lint = [{{ name = "tomli" }}]

{registry("six==1.17.0", "tomli==2.2.1")}
"""
        lock = load_lock(write_lock(text))
        # Without --package the caller's (pyproject) value wins; with it, the lock's.
        assert names(select_packages(lock, LINUX312, SelectionOptions(), default_groups=("dev",))) == ["six==1.17.0", "solo==1.0"]
        assert names(select_packages(lock, LINUX312, SelectionOptions())) == ["solo==1.0", "tomli==2.2.1"]
        assert names(select_packages(lock, LINUX312, SelectionOptions(package="solo"), default_groups=("dev",))) == [
            "solo==1.0", "tomli==2.2.1"]


def test_package_conflicts(write_lock: t.Callable[..., str]) -> None:
    text = f"""
version = 1
revision = 5
requires-python = ">=3.9"
conflicts = [[
    {{ package = "a" }},
    {{ package = "b" }},
]]

[manifest]
members = ["a", "b", "root"]

[[package]]
name = "a"
version = "1.0"
source = {{ editable = "packages/a" }}
dependencies = [
    {{ name = "dateutil", marker = "extra == 'project-1-a'" }},
    {{ name = "six", version = "1.16.0", {REG}, marker = "extra == 'project-1-a'" }},
]

[[package]]
name = "b"
version = "1.0"
source = {{ editable = "packages/b" }}
dependencies = [
    {{ name = "dateutil", marker = "extra == 'project-1-b'" }},
    {{ name = "six", version = "1.17.0", {REG}, marker = "extra == 'project-1-b'" }},
]

[[package]]
name = "dateutil"
version = "2.9.0"
{REG}
dependencies = [
    {{ name = "six", version = "1.16.0", {REG}, marker = "extra == 'project-1-a'" }},
    {{ name = "six", version = "1.17.0", {REG}, marker = "extra != 'project-1-a' or extra == 'project-1-b'" }},
]

[[package]]
name = "root"
version = "0.1"
source = {{ virtual = "." }}
dependencies = [{{ name = "dateutil" }}]

{registry("six==1.16.0", "six==1.17.0")}
"""
    lock = load_lock(write_lock(text))
    assert names(select_packages(lock, LINUX312, SelectionOptions())) == ["dateutil==2.9.0", "root==0.1", "six==1.17.0"]
    assert names(select_packages(lock, LINUX312, SelectionOptions(package="a"))) == ["a==1.0", "dateutil==2.9.0", "six==1.16.0"]
    assert names(select_packages(lock, LINUX312, SelectionOptions(package="b"))) == ["b==1.0", "dateutil==2.9.0", "six==1.17.0"]
    with pytest.raises(SelectionError, match="package `a`.*package `b`"):
        select_packages(lock, LINUX312, SelectionOptions(all_packages=True))


def test_group_that_requires_the_project_itself(write_lock: t.Callable[..., str]) -> None:
    text = f"""
version = 1
revision = 5
requires-python = ">=3.9"

[[package]]
name = "selfref"
version = "0.1.0"
source = {{ editable = "." }}
dependencies = [{{ name = "idna" }}]

[package.optional-dependencies]
socks = [{{ name = "pysocks" }}]

[package.dev-dependencies]
dev = [
    {{ name = "selfref", extra = ["socks"] }},
    {{ name = "six", version = "1.17.0", {REG} }},
]

{registry("idna==3.10", "pysocks==1.7.1", "six==1.17.0")}
"""
    lock = load_lock(write_lock(text))
    everything = ["idna==3.10", "pysocks==1.7.1", "selfref==0.1.0", "six==1.17.0"]
    assert names(select_packages(lock, LINUX312, SelectionOptions())) == everything
    # --only-group: the project is installed anyway because the group requires it
    only = select_packages(lock, LINUX312, SelectionOptions(only_groups=("dev",)))
    assert names(only) == everything and [s.package.name for s in only if s.is_root] == ["selfref"]
    assert names(select_packages(lock, LINUX312, SelectionOptions(no_dev=True))) == ["idna==3.10", "selfref==0.1.0"]


# ---------------------------------------------------------------------------
# Comparisons with the real uv (generated at test time; need uv and the index)
# ---------------------------------------------------------------------------

import dataclasses  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import textwrap  # noqa: E402

from ansible_collections.airgap.uv.plugins.plugin_utils._tags import choose_wheel  # noqa: E402
from ansible_collections.airgap.uv.tests.unit.plugins.plugin_utils import uvlock_helpers as H  # noqa: E402

COMPARE_PROJECTS: dict[str, dict[str, str]] = {
    # win32-only dependency, Python-version fork, an extra, dev and lint groups.
    "main": {
        "pyproject.toml": """
            [project]
            name = "cmp-main"
            version = "0.1.0"
            requires-python = ">=3.9"
            dependencies = [
                "requests",
                "colorama; sys_platform == 'win32'",
                "numpy>=2; python_version >= '3.10'",
                "numpy<2; python_version < '3.10'",
            ]
            [project.optional-dependencies]
            socks = ["requests[socks]"]
            [dependency-groups]
            dev = ["iniconfig"]
            lint = ["tomli; python_version < '3.11'", {include-group = "dev"}]
        """,
    },
    # Two conflicting extras and two conflicting groups; a shared transitive dependency
    # (python-dateutil -> six) gets conflict markers.
    "conflict": {
        "pyproject.toml": """
            [project]
            name = "cmp-conflict"
            version = "0.1.0"
            requires-python = ">=3.9"
            dependencies = ["python-dateutil", "charset-normalizer; sys_platform != 'win32'"]
            [project.optional-dependencies]
            cpu = ["six==1.16.0", "idna"]
            gpu = ["six==1.17.0"]
            [dependency-groups]
            dev = ["iniconfig>2.0.0"]
            old = ["iniconfig==2.0.0"]
            [tool.uv]
            conflicts = [[{extra = "cpu"}, {extra = "gpu"}], [{group = "dev"}, {group = "old"}]]
        """,
    },
    # A workspace whose root is not a project; members depend on each other's extras.
    "workspace": {
        "pyproject.toml": """
            [tool.uv.workspace]
            members = ["packages/*"]
            [tool.uv]
            default-groups = ["dev", "lint"]
            [dependency-groups]
            dev = ["iniconfig"]
            lint = ["pysocks"]
        """,
        "packages/alpha/pyproject.toml": """
            [project]
            name = "alpha"
            version = "1.0"
            requires-python = ">=3.9"
            dependencies = ["certifi"]
            [project.optional-dependencies]
            x = ["idna"]
            [dependency-groups]
            dev = ["six"]
            lint = ["tomli"]
            [tool.uv]
            default-groups = ["lint"]
            [build-system]
            requires = ["uv_build>=0.8,<0.14"]
            build-backend = "uv_build"
        """,
        "packages/alpha/src/alpha/__init__.py": "",
        "packages/beta/pyproject.toml": """
            [project]
            name = "beta"
            version = "1.0"
            requires-python = ">=3.9"
            dependencies = ["alpha[x]", "colorama; os_name == 'nt'"]
            [dependency-groups]
            dev = ["packaging"]
            [tool.uv.sources]
            alpha = { workspace = true }
            [build-system]
            requires = ["uv_build>=0.8,<0.14"]
            build-backend = "uv_build"
        """,
        "packages/beta/src/beta/__init__.py": "",
    },
}

S = SelectionOptions
EXPORT_CASES: dict[str, list[SelectionOptions]] = {
    "main": [S(), S(extras=("socks",)), S(all_groups=True), S(only_groups=("lint",)), S(no_dev=True, all_extras=True)],
    "conflict": [
        S(), S(extras=("cpu",)), S(extras=("gpu",)), S(groups=("old",)), S(no_default_groups=True, groups=("old",), extras=("cpu",)),
        S(only_groups=("old",)), S(extras=("cpu", "gpu")), S(all_groups=True),
    ],
    "workspace": [
        S(), S(package="alpha"), S(package="beta", groups=("lint",)), S(package="beta", groups=("dev",)),
        S(all_packages=True, no_default_groups=True, extras=("x",)), S(only_groups=("dev",)),
    ],
}
SYNC_CASES: dict[str, list[SelectionOptions]] = {
    "main": [S(extras=("socks",), groups=("lint",))],
    "conflict": [S(extras=("cpu",)), S(extras=("gpu",), no_default_groups=True, groups=("old",))],
    "workspace": [S(package="beta", groups=("lint",))],
}


def _write_project(root: str, files: dict[str, str]) -> None:
    for rel, body in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(textwrap.dedent(body).lstrip("\n"))


@pytest.fixture(scope="session")
def compare_projects(uv_bin: str, uv_cache: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = str(tmp_path_factory.mktemp("compare"))
    out = {}
    for name, files in COMPARE_PROJECTS.items():
        directory = os.path.join(root, name)
        _write_project(directory, files)
        proc = H.run_uv(uv_bin, ["lock", "--exclude-newer", H.EXCLUDE_NEWER], directory, env={"UV_CACHE_DIR": uv_cache}, check=False)
        if proc.returncode != 0:
            pytest.fail("uv lock failed (no access to the package index?): %s" % proc.stderr.strip()[-500:])
        out[name] = directory
    return out


@pytest.fixture(scope="session")
def targets() -> list[H.Target]:
    found = []
    for target in H.TARGETS:
        python = H.find_python(target.python)
        if python is None:
            continue
        found.append(dataclasses.replace(target, python=H.python_full_version(python)))
    if not found:
        pytest.fail("no Python interpreters for the comparison targets")
    return found


def _outcome(fn: t.Callable[[], t.Any]) -> t.Any:
    try:
        return fn()
    except SelectionError as exc:
        return ("error", str(exc))


def _error_line(stderr: str) -> tuple[str, str]:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return ("error", lines[-1] if lines else "")


@pytest.mark.uv_lock
@pytest.mark.parametrize("project", sorted(EXPORT_CASES))
def test_package_sets_match_uv_export(
    project: str, compare_projects: dict[str, str], targets: list[H.Target], uv_bin: str, uv_cache: str
) -> None:
    """Our package set == `uv export` filtered by evaluating its markers for the target."""
    directory = compare_projects[project]
    lock = load_lock(os.path.join(directory, "uv.lock"))
    diffs, count = [], 0
    for options in EXPORT_CASES[project]:
        proc = H.run_uv(
            uv_bin,
            ["export", "--frozen", "--no-hashes", "--no-annotate", "--no-header", "--no-emit-workspace"] + H.uv_option_args(options),
            directory,
            env={"UV_CACHE_DIR": uv_cache},
            check=False,
        )
        entries = H.parse_export(proc.stdout) if proc.returncode == 0 else None
        for target in targets:
            marker_env = target.marker_env()
            in_range = lock.requires_python is None or lock.requires_python.contains(target.python, prereleases=True)
            ours = _outcome(lambda: {
                (s.package.name, s.package.version) for s in select_packages(lock, marker_env, options) if not s.is_root
            })
            if entries is None:
                theirs: t.Any = _error_line(proc.stderr)
            elif not in_range:
                theirs = ("error", "requires-python")  # uv export is universal; uv sync refuses this Python
            else:
                theirs = H.export_packages(entries, marker_env, lock)
            count += 1
            same = (isinstance(ours, tuple) and isinstance(theirs, tuple)) or ours == theirs
            if not same:
                diffs.append((options, target.name, ours, theirs))
    print("%s: %d export comparisons, %d differences" % (project, count, len(diffs)))
    assert not diffs, diffs


def _expected_files(lock: t.Any, selected: t.Iterable[t.Any], tags: list[t.Any]) -> set[str]:
    files = set()
    for item in selected:
        package = item.package
        if item.is_root or package.is_local_tree:
            continue
        chosen = choose_wheel(package.wheels, tags)
        if chosen is None:
            chosen = package.sdist
        assert chosen is not None, "no artifact for %s" % package
        files.add(chosen.filename)
    return files


@pytest.mark.uv_lock
@pytest.mark.parametrize("project", sorted(SYNC_CASES))
def test_files_match_uv_sync(
    project: str,
    compare_projects: dict[str, str],
    targets: list[H.Target],
    uv_bin: str,
    artifact_proxy: t.Any,
    tmp_path: t.Any,
) -> None:
    """Our packages and chosen files == what `uv sync --frozen --python-platform` downloads and installs."""
    source = compare_projects[project]
    lock = load_lock(os.path.join(source, "uv.lock"))
    work = str(tmp_path / "proj")
    shutil.copytree(source, work, ignore=shutil.ignore_patterns(".venv", "uv.lock"))
    with open(os.path.join(source, "uv.lock"), encoding="utf-8") as handle:
        rewritten = artifact_proxy.rewrite_lock(handle.read())
    with open(os.path.join(work, "uv.lock"), "w", encoding="utf-8") as handle:
        handle.write(rewritten)
    diffs, count = [], 0
    for options in SYNC_CASES[project]:
        for target in targets:
            run_dir = tmp_path / ("run-%d" % count)
            env = {"UV_CACHE_DIR": str(run_dir / "cache"), "UV_PROJECT_ENVIRONMENT": str(run_dir / "venv")}
            env.update(target.env)
            artifact_proxy.take_requests()
            proc = H.run_uv(
                uv_bin,
                ["sync", "--frozen", "--no-install-workspace", "--python-platform", target.uv_platform,
                 "--python", H.find_python(target.python)] + H.uv_option_args(options),
                work,
                env=env,
                check=False,
            )
            fetched = set(artifact_proxy.take_requests())
            if os.environ.get("AIRGAP_UV_TEST_VERBOSE"):
                print(target.name, options, proc.returncode, sorted(fetched))
            installed = H.parse_installed(proc.stderr)
            selected = _outcome(lambda: select_packages(lock, target.marker_env(), options))
            count += 1
            if proc.returncode != 0 or isinstance(selected, tuple):
                if not (proc.returncode != 0 and isinstance(selected, tuple)):
                    diffs.append((options, target.name, selected, proc.stderr[-800:]))
                continue
            ours = {(s.package.name, s.package.version) for s in selected if not s.is_root}
            if ours != installed:
                diffs.append((options, target.name, "packages", sorted(ours ^ installed)))
            files = _expected_files(lock, selected, H.target_tags_for(target))
            if files != fetched:
                diffs.append((options, target.name, "files", sorted(files - fetched), sorted(fetched - files)))
            shutil.rmtree(run_dir, ignore_errors=True)
    print("%s: %d sync comparisons, %d differences" % (project, count, len(diffs)))
    assert not diffs, diffs


# Locks written by older uv releases (older revisions); AIRGAP_UV_TEST_OLD_UVS picks others.
OLD_UV_VERSIONS = os.environ.get("AIRGAP_UV_TEST_OLD_UVS", "0.5.31 0.11.33").split()


@pytest.mark.uv_lock
@pytest.mark.parametrize("old_uv", OLD_UV_VERSIONS)
def test_locks_from_older_uv(
    old_uv: str, uv_bin: str, uv_cache: str, targets: list[H.Target], tmp_path: t.Any
) -> None:
    """Locks written by an older uv (older revisions): our selection == uv 0.13's `uv sync --dry-run`."""
    cases = {"conflict": EXPORT_CASES["conflict"], "workspace": EXPORT_CASES["workspace"]}
    diffs, count = [], 0
    for project, options_list in cases.items():
        directory = str(tmp_path / project)
        _write_project(directory, COMPARE_PROJECTS[project])
        H.run_uv(
            uv_bin,
            ["tool", "run", "--from", "uv==%s" % old_uv, "uv", "lock", "--exclude-newer", H.EXCLUDE_NEWER],
            directory,
            env={"UV_CACHE_DIR": uv_cache},
        )
        lock = load_lock(os.path.join(directory, "uv.lock"))
        defaults = read_default_groups(os.path.join(directory, "pyproject.toml"))
        for options in options_list:
            for target in targets:
                proc = H.run_uv(
                    uv_bin,
                    ["sync", "--frozen", "--dry-run", "--python-platform", target.uv_platform,
                     "--python", H.find_python(target.python)] + H.uv_option_args(options),
                    directory,
                    env=dict(target.env, UV_CACHE_DIR=uv_cache, UV_PROJECT_ENVIRONMENT=str(tmp_path / "venv")),
                    check=False,
                )
                theirs: t.Any = _error_line(proc.stderr) if proc.returncode else {
                    line.split()[1].split("==")[0].replace("_", "-").lower()
                    for line in proc.stderr.splitlines() if line.startswith(" + ")
                }
                ours = _outcome(lambda: {
                    s.package.name for s in select_packages(lock, target.marker_env(), options, defaults)
                    if s.package.source_kind != "virtual"
                })
                count += 1
                if not ((isinstance(ours, tuple) and isinstance(theirs, tuple)) or ours == theirs):
                    diffs.append((project, options, target.name, ours, theirs))
    print("uv %s locks: %d comparisons, %d differences" % (old_uv, count, len(diffs)))
    assert not diffs, diffs
