# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import pytest

from ansible_collections.airgap.uv.plugins.plugin_utils._target import Target, TargetError


def facts(**overrides):
    env = {
        "implementation_name": "cpython", "implementation_version": "3.11.2", "os_name": "posix",
        "platform_machine": "x86_64", "platform_release": "6.1.0", "platform_system": "Linux",
        "platform_version": "#1 SMP", "python_full_version": "3.11.2",
        "platform_python_implementation": "CPython", "python_version": "3.11", "sys_platform": "linux",
    }
    result = {"marker_environment": env, "os": "linux", "arch": "x86_64",
              "libc": {"family": "glibc", "version": "2.36"},
              "python": {"version": "3.11.2", "implementation": "cpython", "abiflags": ""}}
    result.update(overrides)
    return result


def test_id_and_identity_ignore_kernel():
    one = Target.from_facts(facts())
    other_kernel = facts()
    other_kernel["marker_environment"] = dict(other_kernel["marker_environment"], platform_release="6.9")
    assert one.id == "cpython3.11.2-linux-x86_64-glibc2.36"
    assert Target.from_facts(other_kernel) == one


def test_musl_and_freethreaded_ids():
    target = Target.from_facts(facts(libc={"family": "musl", "version": "1.2.4"},
                                     python={"version": "3.13.0", "implementation": "cpython", "abiflags": "t"}))
    assert target.id == "cpython3.13.0t-linux-x86_64-musl1.2.4"


def test_missing_marker_keys_are_named():
    broken = facts()
    del broken["marker_environment"]["sys_platform"]
    with pytest.raises(TargetError, match="host web1 lack marker_environment keys sys_platform"):
        Target.from_facts(broken, "web1")


def test_not_a_dict():
    with pytest.raises(TargetError, match="must be a dict"):
        Target.from_facts("linux", "web1")


def test_explicit_target_spec_matches_gathered_facts():
    spec = Target.from_facts({"python": "3.11.2", "os": "linux", "arch": "x86_64", "libc": "glibc",
                              "libc_version": "2.36"}, "edge-1")
    gathered = Target.from_facts(facts())
    assert spec == gathered and spec.id == gathered.id
    env = spec.marker_environment
    assert env["sys_platform"] == "linux" and env["python_version"] == "3.11" and env["platform_system"] == "Linux"


def test_explicit_windows_and_macos_targets():
    win = Target.from_facts({"python": "3.13.1", "os": "windows", "arch": "x86_64"})
    assert win.marker_environment["platform_machine"] == "AMD64" and win.marker_environment["os_name"] == "nt"
    mac = Target.from_facts({"python": "3.12.8", "os": "darwin", "arch": "arm64", "macos_version": "14.0"})
    assert mac.id == "cpython3.12.8-darwin-arm64-macos14.0"


@pytest.mark.parametrize("spec, message", [
    ({"python": "3.12", "os": "linux", "arch": "x86_64", "libc": "glibc", "libc_version": "2.36"}, "full version"),
    ({"python": "3.12.1", "os": "linux", "arch": "x86_64"}, "needs libc"),
    ({"python": "3.12.1", "os": "plan9", "arch": "x86_64"}, "os 'plan9'"),
    ({"python": "3.12.1", "os": "linux"}, "needs 'arch'"),
])
def test_explicit_target_errors(spec, message):
    with pytest.raises(TargetError, match=message):
        Target.from_facts(spec, "edge-1")
