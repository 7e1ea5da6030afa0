# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to the airgap.uv collection
from __future__ import annotations

import pytest
from packaging.tags import Tag

from ansible_collections.airgap.uv.plugins.plugin_utils._lock import Artifact
from ansible_collections.airgap.uv.plugins.plugin_utils._tags import (
    TagError,
    choose_wheel,
    normalize_arch,
    target_platforms,
    target_tags,
    wheel_priority,
)


def wheel(filename: str) -> Artifact:
    return Artifact(filename=filename, url="https://index.invalid/f/" + filename, path=None, sha256=None, size=None, is_wheel=True)


def pick(filenames: list[str], tags: list[Tag]) -> str | None:
    chosen = choose_wheel([wheel(f) for f in filenames], tags)
    return chosen.filename if chosen else None


GLIBC_236_X86 = target_platforms("linux", "x86_64", "glibc", "2.36")
GLIBC_236_ARM = target_platforms("linux", "aarch64", "glibc", "2.36")
MUSL_12_X86 = target_platforms("linux", "x86_64", "musl", "1.2")
MAC_14_ARM = target_platforms("darwin", "arm64", None, None, "14.0")
WIN_AMD64 = target_platforms("windows", "AMD64", None, None)


class TestPlatforms:
    def test_glibc_x86_64(self) -> None:
        plats = GLIBC_236_X86
        assert plats[0] == "manylinux_2_36_x86_64"
        assert plats[-1] == "linux_x86_64"
        assert plats[-3:] == ["manylinux_2_5_x86_64", "manylinux1_x86_64", "linux_x86_64"]
        i17 = plats.index("manylinux_2_17_x86_64")
        assert plats[i17 + 1] == "manylinux2014_x86_64"
        i12 = plats.index("manylinux_2_12_x86_64")
        assert plats[i12 + 1] == "manylinux2010_x86_64"
        # 2_36 .. 2_5 plus three aliases plus linux_x86_64
        assert len(plats) == 32 + 3 + 1
        assert len(set(plats)) == len(plats)

    def test_glibc_aarch64(self) -> None:
        plats = GLIBC_236_ARM
        assert plats[0] == "manylinux_2_36_aarch64"
        assert plats[-3:] == ["manylinux_2_17_aarch64", "manylinux2014_aarch64", "linux_aarch64"]
        assert not any("manylinux1" in p or "manylinux2010" in p for p in plats)

    def test_glibc_older_than_arch_minimum(self) -> None:
        assert target_platforms("linux", "aarch64", "glibc", "2.12") == ["linux_aarch64"]

    def test_riscv_has_no_legacy_alias(self) -> None:
        plats = target_platforms("linux", "riscv64", "glibc", "2.39")
        assert plats == ["manylinux_2_39_riscv64", "manylinux_2_38_riscv64", "manylinux_2_37_riscv64",
                         "manylinux_2_36_riscv64", "manylinux_2_35_riscv64", "manylinux_2_34_riscv64",
                         "manylinux_2_33_riscv64", "manylinux_2_32_riscv64", "manylinux_2_31_riscv64", "linux_riscv64"]

    def test_musl(self) -> None:
        assert MUSL_12_X86 == ["musllinux_1_2_x86_64", "musllinux_1_1_x86_64", "musllinux_1_0_x86_64", "linux_x86_64"]

    def test_macos_arm64(self) -> None:
        plats = MAC_14_ARM
        assert plats[:8] == [
            "macosx_14_0_arm64", "macosx_14_0_universal2", "macosx_13_0_arm64", "macosx_13_0_universal2",
            "macosx_12_0_arm64", "macosx_12_0_universal2", "macosx_11_0_arm64", "macosx_11_0_universal2",
        ]
        assert plats[8] == "macosx_10_16_universal2"
        assert plats[-1] == "macosx_10_4_universal2"
        assert not any(p.endswith("x86_64") for p in plats)

    def test_macos_x86_64(self) -> None:
        plats = target_platforms("macos", "x86_64", None, None, "14.5")
        assert plats[:6] == [
            "macosx_14_0_x86_64", "macosx_14_0_intel", "macosx_14_0_fat64",
            "macosx_14_0_fat32", "macosx_14_0_universal2", "macosx_14_0_universal",
        ]
        assert "macosx_10_9_x86_64" in plats
        old = target_platforms("darwin", "x86_64", None, None, "10.15")
        assert old[0] == "macosx_10_15_x86_64" and old[-1] == "macosx_10_4_universal"

    @pytest.mark.parametrize(
        "arch, expected",
        [("AMD64", ["win_amd64"]), ("x86_64", ["win_amd64"]), ("x86", ["win32"]), ("ARM64", ["win_arm64"])],
    )
    def test_windows(self, arch: str, expected: list[str]) -> None:
        assert target_platforms("windows", arch, None, None) == expected
        assert target_platforms("win32", arch, None, None) == expected

    def test_arch_aliases(self) -> None:
        assert normalize_arch("AMD64") == "x86_64"
        assert normalize_arch("arm64") == "aarch64"
        assert normalize_arch("i386") == "i686"

    @pytest.mark.parametrize(
        "args",
        [
            ("linux", "x86_64", None, None),
            ("linux", "x86_64", "glibc", None),
            ("linux", "x86_64", "musl", ""),
            ("linux", "x86_64", "bionic", "1.0"),
            ("darwin", "arm64", None, None),
            ("windows", "s390x", None, None),
            ("plan9", "x86_64", None, None),
            ("linux", "", "glibc", "2.36"),
        ],
    )
    def test_refuses_incomplete_targets(self, args: tuple) -> None:
        with pytest.raises(TagError):
            target_platforms(*args)


class TestTags:
    def test_cpython_order(self) -> None:
        tags = target_tags("3.12.1", "cpython", ["manylinux_2_17_x86_64", "linux_x86_64"])
        rendered = [str(x) for x in tags]
        assert rendered[:6] == [
            "cp312-cp312-manylinux_2_17_x86_64",
            "cp312-cp312-linux_x86_64",
            "cp312-abi3-manylinux_2_17_x86_64",
            "cp312-abi3-linux_x86_64",
            "cp312-none-manylinux_2_17_x86_64",
            "cp312-none-linux_x86_64",
        ]
        assert rendered[6] == "cp311-abi3-manylinux_2_17_x86_64"
        assert "cp32-abi3-linux_x86_64" in rendered and "cp31-abi3-linux_x86_64" not in rendered
        i = rendered.index("py312-none-manylinux_2_17_x86_64")
        assert rendered[i:i + 4] == [
            "py312-none-manylinux_2_17_x86_64", "py312-none-linux_x86_64",
            "py3-none-manylinux_2_17_x86_64", "py3-none-linux_x86_64",
        ]
        assert rendered[-15:-12] == ["cp312-none-any", "py312-none-any", "py3-none-any"]
        assert rendered[-1] == "py30-none-any"
        assert len(rendered) == len(set(rendered))

    def test_matches_packaging_for_cpython(self) -> None:
        from packaging.tags import compatible_tags, cpython_tags

        plats = GLIBC_236_X86
        expected = list(cpython_tags((3, 11), abis=["cp311"], platforms=plats)) + list(
            compatible_tags((3, 11), "cp311", plats)
        )
        assert target_tags("3.11", "cpython", plats) == expected

    def test_free_threaded_has_no_abi3(self) -> None:
        tags = target_tags("3.13.0", "cpython", ["win_amd64"], abi_flags="t")
        rendered = [str(x) for x in tags]
        assert rendered[0] == "cp313-cp313t-win_amd64"
        assert not any("abi3" in r for r in rendered)
        assert "cp313-none-win_amd64" in rendered

    def test_pypy(self) -> None:
        tags = target_tags("3.10.14", "pypy", ["manylinux_2_17_x86_64"], implementation_version="7.3.17")
        rendered = [str(x) for x in tags]
        assert rendered[0] == "pp310-pypy310_pp73-manylinux_2_17_x86_64"
        assert "cp310-none-any" not in rendered and "py3-none-any" in rendered
        with pytest.raises(TagError):
            target_tags("3.10", "pypy", ["linux_x86_64"])

    def test_refuses_python2_and_unknown_impl(self) -> None:
        with pytest.raises(TagError):
            target_tags("2.7", "cpython", ["linux_x86_64"])
        with pytest.raises(TagError):
            target_tags("3.12", "jython", ["linux_x86_64"])


class TestChooseWheel:
    PY312_GLIBC = target_tags("3.12", "cpython", GLIBC_236_X86)

    def test_newest_manylinux_wins(self) -> None:
        files = [
            "pkg-1.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
            "pkg-1.0-cp312-cp312-manylinux_2_28_x86_64.whl",
            "pkg-1.0-cp312-cp312-manylinux_2_34_x86_64.whl",
            "pkg-1.0-cp312-cp312-manylinux_2_39_x86_64.whl",
            "pkg-1.0-cp312-cp312-musllinux_1_2_x86_64.whl",
        ]
        assert pick(files, self.PY312_GLIBC) == "pkg-1.0-cp312-cp312-manylinux_2_34_x86_64.whl"

    def test_only_too_new_glibc(self) -> None:
        assert pick(["pkg-1.0-cp312-cp312-manylinux_2_39_x86_64.whl"], self.PY312_GLIBC) is None

    def test_abi3_when_no_exact(self) -> None:
        files = [
            "pkg-1.0-cp39-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
            "pkg-1.0-cp313-cp313-manylinux_2_17_x86_64.whl",
            "pkg-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
        ]
        assert pick(files, self.PY312_GLIBC) == files[0]

    def test_newer_abi3_beats_older_abi3(self) -> None:
        files = [
            "pkg-1.0-cp37-abi3-manylinux_2_28_x86_64.whl",
            "pkg-1.0-cp39-abi3-manylinux_2_28_x86_64.whl",
        ]
        assert pick(files, self.PY312_GLIBC) == files[1]

    def test_abi3_future_version_incompatible(self) -> None:
        assert pick(["pkg-1.0-cp313-abi3-manylinux_2_28_x86_64.whl"], self.PY312_GLIBC) is None

    def test_platform_wheel_beats_pure(self) -> None:
        files = ["pkg-1.0-py3-none-any.whl", "pkg-1.0-cp312-cp312-manylinux_2_17_x86_64.whl"]
        assert pick(files, self.PY312_GLIBC) == files[1]

    def test_pure_fallback(self) -> None:
        files = ["pkg-1.0-cp312-cp312-win_amd64.whl", "pkg-1.0-py2.py3-none-any.whl"]
        assert pick(files, self.PY312_GLIBC) == files[1]

    def test_build_tag_breaks_ties(self) -> None:
        files = ["pkg-1.0-py3-none-any.whl", "pkg-1.0-2-py3-none-any.whl", "pkg-1.0-10-py3-none-any.whl"]
        assert pick(files, self.PY312_GLIBC) == "pkg-1.0-10-py3-none-any.whl"

    def test_first_listed_wins_full_tie(self) -> None:
        files = ["pkg-1.0-py3-none-any.whl", "pkg-1.0-py2.py3-none-any.whl"]
        assert pick(files, self.PY312_GLIBC) == files[0]

    def test_musl_target(self) -> None:
        tags = target_tags("3.11", "cpython", MUSL_12_X86)
        files = [
            "pkg-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
            "pkg-1.0-cp311-cp311-musllinux_1_1_x86_64.whl",
            "pkg-1.0-cp311-cp311-musllinux_1_2_x86_64.whl",
        ]
        assert pick(files, tags) == files[2]
        assert pick(files[:1], tags) is None

    def test_macos_version_matters(self) -> None:
        files = ["pkg-1.0-cp312-cp312-macosx_11_0_arm64.whl", "pkg-1.0-cp312-cp312-macosx_14_0_arm64.whl"]
        assert pick(files, target_tags("3.12", "cpython", MAC_14_ARM)) == files[1]
        mac13 = target_platforms("darwin", "arm64", None, None, "13.6")
        assert pick(files, target_tags("3.12", "cpython", mac13)) == files[0]
        universal = ["pkg-1.0-cp312-cp312-macosx_10_9_universal2.whl", "pkg-1.0-cp312-cp312-macosx_10_9_x86_64.whl"]
        assert pick(universal, target_tags("3.12", "cpython", MAC_14_ARM)) == universal[0]

    def test_windows(self) -> None:
        tags = target_tags("3.13", "cpython", WIN_AMD64)
        files = ["pkg-1.0-cp313-cp313-win32.whl", "pkg-1.0-cp313-cp313-win_amd64.whl", "pkg-1.0-cp313-cp313-win_arm64.whl"]
        assert pick(files, tags) == files[1]

    def test_none_abi_ordering_matches_uv(self) -> None:
        # cpXY-abi3 on any platform ranks before cpXY-none (verified against uv 0.13.8).
        files = ["pkg-1.0-cp312-none-manylinux_2_17_x86_64.whl", "pkg-1.0-cp312-abi3-manylinux_2_34_x86_64.whl"]
        assert pick(files, self.PY312_GLIBC) == files[1]
        files = ["pkg-1.0-cp312-none-manylinux_2_17_x86_64.whl", "pkg-1.0-cp310-abi3-manylinux_2_34_x86_64.whl"]
        assert pick(files, self.PY312_GLIBC) == files[0]

    def test_invalid_filenames_are_skipped(self) -> None:
        assert wheel_priority("not-a-wheel.whl", self.PY312_GLIBC) is None
        assert pick(["garbage.whl", "pkg-1.0-py3-none-any.whl"], self.PY312_GLIBC) == "pkg-1.0-py3-none-any.whl"


# ---------------------------------------------------------------------------
# Comparison with the real uv on fake wheels (needs uv and local Pythons, no network)
# ---------------------------------------------------------------------------

import dataclasses  # noqa: E402
import os  # noqa: E402
import textwrap  # noqa: E402
import typing as t  # noqa: E402

from ansible_collections.airgap.uv.plugins.plugin_utils._lock import load_lock  # noqa: E402
from ansible_collections.airgap.uv.tests.unit.plugins.plugin_utils import uvlock_helpers as H  # noqa: E402

_PYS = ("cp39", "cp311", "cp312", "cp313")


def _fake_wheel_names() -> list[str]:
    names = []
    for py in _PYS:
        for plat in (
            "manylinux_2_17_x86_64.manylinux2014_x86_64", "manylinux_2_28_x86_64", "manylinux_2_34_x86_64",
            "manylinux_2_39_x86_64", "musllinux_1_1_x86_64", "musllinux_1_2_x86_64",
            "manylinux_2_17_aarch64.manylinux2014_aarch64", "manylinux_2_31_aarch64", "musllinux_1_1_aarch64",
        ):
            names.append("fk_linux-1.0-%s-%s-%s.whl" % (py, py, plat))
        for plat in ("macosx_11_0_arm64", "macosx_14_0_arm64", "macosx_15_0_arm64", "macosx_10_9_universal2", "macosx_10_13_x86_64", "macosx_10_9_x86_64"):
            names.append("fk_mac-1.0-%s-%s-%s.whl" % (py, py, plat))
        for plat in ("win_amd64", "win32", "win_arm64"):
            names.append("fk_win-1.0-%s-%s-%s.whl" % (py, py, plat))
    names += ["fk_linux-1.0-py3-none-any.whl", "fk_mac-1.0-py3-none-any.whl", "fk_win-1.0-py3-none-win_amd64.whl", "fk_win-1.0-py3-none-any.whl"]
    names += [
        "fk_abi-1.0-cp37-abi3-manylinux2014_x86_64.whl", "fk_abi-1.0-cp310-abi3-manylinux_2_28_x86_64.whl",
        "fk_abi-1.0-cp311-none-manylinux_2_17_x86_64.whl", "fk_abi-1.0-cp39-cp39-manylinux_2_17_x86_64.whl",
        "fk_abi-1.0-py3-none-manylinux1_x86_64.whl", "fk_abi-1.0-cp39-abi3-win_amd64.whl", "fk_abi-1.0-cp312-abi3-win_amd64.whl",
        "fk_abi-1.0-cp38-abi3-macosx_11_0_arm64.whl", "fk_abi-1.0-cp310-abi3-macosx_10_9_universal2.whl",
        "fk_abi-1.0-cp38-abi3-musllinux_1_2_aarch64.whl", "fk_abi-1.0-py3-none-musllinux_1_1_aarch64.whl",
        "fk_abi-1.0-py3-none-any.whl",
        "fk_build-1.0-1-py3-none-any.whl", "fk_build-1.0-7-py3-none-any.whl", "fk_build-1.0-py3-none-any.whl",
        "fk_build-1.0-2-cp312-cp312-win_amd64.whl", "fk_build-1.0-cp312-cp312-win_amd64.whl",
        "fk_pure-1.0-py2.py3-none-any.whl", "fk_pure-1.0-py311-none-any.whl", "fk_pure-1.0-cp311-none-any.whl",
        "fk_pure-1.0-py38-none-any.whl", "fk_pure-1.0-py3-none-any.whl",
    ]
    return names


@pytest.fixture(scope="session")
def fake_wheel_project(uv_bin: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    root = str(tmp_path_factory.mktemp("fakewheels"))
    wheelhouse = os.path.join(root, "wheelhouse")
    project = os.path.join(root, "project")
    os.makedirs(wheelhouse)
    os.makedirs(project)
    for name in _fake_wheel_names():
        H.make_fake_wheel(wheelhouse, name)
    with open(os.path.join(project, "pyproject.toml"), "w", encoding="utf-8") as handle:
        handle.write(textwrap.dedent("""
            [project]
            name = "fake-consumer"
            version = "0.1.0"
            requires-python = ">=3.9"
            dependencies = ["fk-linux", "fk-mac", "fk-win", "fk-abi", "fk-build", "fk-pure"]
            [tool.uv]
            find-links = ["../wheelhouse"]
            no-index = true
        """))
    H.run_uv(uv_bin, ["lock", "--offline"], project, env={"UV_CACHE_DIR": os.path.join(root, "cache")})
    return project


@pytest.mark.uv_lock
def test_choose_wheel_matches_uv_on_fake_wheels(fake_wheel_project: str, uv_bin: str, tmp_path: t.Any) -> None:
    lock = load_lock(os.path.join(fake_wheel_project, "uv.lock"))
    packages = [p for p in lock.packages if p.name.startswith("fk-")]
    assert len(packages) == 6
    diffs, count = [], 0
    for target in H.TARGETS + H.EXTRA_TAG_TARGETS:
        python = H.find_python(target.python)
        if python is None:
            continue
        target = dataclasses.replace(target, python=H.python_full_version(python))
        venv = str(tmp_path / target.name)
        env = {"UV_CACHE_DIR": str(tmp_path / "cache"), "UV_PROJECT_ENVIRONMENT": venv}
        env.update(target.env)
        H.run_uv(uv_bin, ["sync", "--frozen", "--offline", "--python-platform", target.uv_platform, "--python", python], fake_wheel_project, env=env)
        tags = H.target_tags_for(target)
        for package in packages:
            module = package.name.replace("-", "_")
            theirs = H.installed_fake_wheel(venv, module)
            chosen = choose_wheel(package.wheels, tags)
            ours = chosen.filename if chosen else None
            count += 1
            if os.environ.get("AIRGAP_UV_TEST_VERBOSE"):
                print(target.name, ours, theirs)
            if ours != theirs:
                diffs.append((target.name, package.name, ours, theirs))
    print("fake wheels: %d comparisons, %d differences" % (count, len(diffs)))
    assert count >= 36
    assert not diffs, diffs
