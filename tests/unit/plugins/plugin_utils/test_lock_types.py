# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to the airgap.uv collection
"""The objects a uv.lock is read into (_lock_types), built by hand: no file, no parser."""

from __future__ import annotations

import pytest

from ansible_collections.airgap.uv.plugins.plugin_utils._lock_types import (
    ConflictItem,
    Dependency,
    Lock,
    LockError,
    Package,
)

REG = "https://index.invalid/simple"


def package(name: str, version: str | None = "1.0", kind: str = "registry", source: str = REG, **kw) -> Package:
    return Package(name=name, version=version, source_kind=kind, source=source, **kw)


def lock(*packages: Package, members: tuple[str, ...] = ()) -> Lock:
    return Lock(path="/w/uv.lock", version=1, revision=3, requires_python=None, packages=list(packages), members=members)


@pytest.mark.parametrize("item, encoded, text", [
    (ConflictItem("proj", "extra", "cpu"), "extra-4-proj-cpu", "extra `cpu` of `proj`"),
    (ConflictItem("proj", "group", "old"), "group-4-proj-old", "group `old` of `proj`"),
    (ConflictItem("proj", "project"), "project-4-proj", "package `proj`"),
])
def test_conflict_item(item: ConflictItem, encoded: str, text: str) -> None:
    assert item.encoded == encoded and str(item) == text


def test_package_extras_groups_and_key() -> None:
    pkg = package(
        "proj", kind="virtual", source=".",
        optional_dependencies={"cpu": (Dependency("numpy"),)}, provides_extras=("gpu",),
        dev_dependencies={"dev": ()}, declared_groups=("docs",),
    )
    assert pkg.extras == ("cpu", "gpu") and pkg.groups == ("dev", "docs")
    assert pkg.is_local_tree and pkg.key == ("proj", "1.0", "virtual", ".")
    assert str(pkg) == "proj==1.0" and str(package("dyn", None)) == "dyn"


def test_packages_are_hashable() -> None:
    assert len({package("a"), package("a"), package("a", "2.0"), package("b")}) == 3


def test_resolve_and_find_unique() -> None:
    old, new, app = package("q", "1"), package("q", "2"), package("app", kind="editable", source=".")
    found = lock(old, new, app)
    assert found.resolve(Dependency("q", version="2"), app) is new
    assert found.packages_named("Q") == [old, new] and found.find_unique("app") is app
    assert found.find_unique("ghost") is None
    with pytest.raises(LockError, match="several entries for `q`"):
        found.find_unique("q")
    with pytest.raises(LockError, match=r"`q`.*\(required by app==1.0\).*several"):
        found.resolve(Dependency("q"), app)
    with pytest.raises(LockError, match="`ghost` points at no"):
        found.resolve(Dependency("ghost"))


def test_project_and_workspace_members() -> None:
    root = package("root", kind="virtual", source="./")
    member = package("lib", kind="editable", source="packages/lib")
    assert lock(root, member).project is root and lock(root, member).workspace_members == ("root",)
    assert lock(member, members=("lib",)).project is None
    assert lock(member, members=("lib",)).workspace_members == ("lib",)
    assert lock(member).workspace_members == ()
    assert lock(root).directory == "/w"
