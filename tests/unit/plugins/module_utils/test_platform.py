# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of plugins/module_utils/_platform.py: host facts and controller tags name a platform alike."""

from __future__ import annotations

import pytest

from ansible_collections.airgap.uv.plugins.module_utils._platform import normalize_arch, normalize_libc, normalize_os
from ansible_collections.airgap.uv.plugins.modules.target_facts import _normalize_arch as facts_arch
from ansible_collections.airgap.uv.plugins.plugin_utils._tags import normalize_arch as tags_arch


@pytest.mark.parametrize("machine, linux", [("AMD64", "x86_64"), ("x86_64", "x86_64"), ("arm64", "aarch64"),
                                            ("armhf", "armv7l"), ("i386", "i686"), ("ppc64el", "ppc64le"),
                                            ("riscv64", "riscv64")])
def test_the_host_and_the_controller_spell_a_cpu_alike(machine, linux):
    assert normalize_arch(machine) == facts_arch(machine, "linux") == tags_arch(machine) == linux


def test_apple_silicon_keeps_its_macos_name_on_the_host():
    assert facts_arch("arm64", "darwin") == facts_arch("aarch64", "darwin") == "arm64"


def test_os_and_libc_names():
    assert [normalize_os(n) for n in ("Darwin", "win32", "Linux")] == ["darwin", "windows", "linux"]
    assert [normalize_libc(n) for n in ("gnu", "musllinux", None, "")] == ["glibc", "musl", None, None]
