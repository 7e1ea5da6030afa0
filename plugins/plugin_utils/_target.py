# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A host seen as a target for Python artifacts, built from airgap.uv.target_facts results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

MARKER_KEYS = (
    "implementation_name", "implementation_version", "os_name", "platform_machine", "platform_release",
    "platform_system", "platform_version", "python_full_version", "platform_python_implementation",
    "python_version", "sys_platform",
)


class TargetError(ValueError):
    """Target facts are incomplete or inconsistent."""


@dataclass(frozen=True)
class Target:
    """What decides which packages and files a host gets.

    Kernel release and build string (platform_release, platform_version) are kept for marker
    evaluation but left out of the identity: hosts that differ only by kernel share one
    install file.
    """

    os: str
    arch: str
    implementation: str
    python_version: str
    abiflags: str
    libc_family: Optional[str]
    libc_version: Optional[str]
    macos_version: Optional[str]
    marker_environment: Mapping[str, str] = field(compare=False, hash=False)

    @classmethod
    def from_facts(cls, facts: Mapping[str, Any], host: str = "") -> "Target":
        where = " for host %s" % host if host else ""
        if not isinstance(facts, Mapping):
            raise TargetError("Target facts%s must be a dict as returned by airgap.uv.target_facts." % where)
        if "marker_environment" not in facts and isinstance(facts.get("python"), str):
            facts = facts_from_spec(facts, where)
        env = facts.get("marker_environment")
        if not isinstance(env, Mapping) or any(key not in env for key in MARKER_KEYS):
            missing = [key for key in MARKER_KEYS if not isinstance(env, Mapping) or key not in env]
            raise TargetError("Target facts%s lack marker_environment keys %s; gather them with "
                              "airgap.uv.target_facts." % (where, ", ".join(missing)))
        python = facts.get("python") or {}
        libc = facts.get("libc") or {}
        try:
            return cls(
                os=str(facts["os"]),
                arch=str(facts["arch"]),
                implementation=str(python.get("implementation") or env["implementation_name"]),
                python_version=str(python.get("version") or env["python_full_version"]),
                abiflags=str(python.get("abiflags") or ""),
                libc_family=libc.get("family"),
                libc_version=libc.get("version"),
                macos_version=facts.get("macos_version"),
                marker_environment={key: str(env[key]) for key in MARKER_KEYS},
            )
        except KeyError as exc:
            raise TargetError("Target facts%s lack %s; gather them with airgap.uv.target_facts." % (where, exc)) from None

    @property
    def id(self) -> str:
        """Readable and unique: cpython3.11.2-linux-x86_64-glibc2.36."""
        parts = ["%s%s%s" % (self.implementation, self.python_version, self.abiflags), self.os, self.arch]
        if self.libc_family:
            parts.append("%s%s" % (self.libc_family, self.libc_version or ""))
        if self.macos_version:
            parts.append("macos%s" % self.macos_version)
        return "-".join(parts)

    @property
    def python_minor(self) -> str:
        return ".".join(self.python_version.split(".")[:2])


_SYSTEMS = {
    # os: (os_name, platform_system, sys_platform)
    "linux": ("posix", "Linux", "linux"),
    "darwin": ("posix", "Darwin", "darwin"),
    "windows": ("nt", "Windows", "win32"),
}
# What platform.machine() reports there for each wheel-tag architecture.
_WINDOWS_MACHINES = {"x86_64": "AMD64", "amd64": "AMD64", "aarch64": "ARM64", "arm64": "ARM64", "x86": "x86"}


def facts_from_spec(spec: Mapping[str, Any], where: str = "") -> dict:
    """Facts for a host that cannot be reached from the controller, from a short description.

    ``{python: "3.12.3", os: linux, arch: aarch64, libc: glibc, libc_version: "2.35"}``
    (``macos_version`` on darwin). Kernel release and version are unknown and left empty; only
    markers that test them could tell the difference.
    """
    try:
        python = str(spec["python"])
        os_family = str(spec.get("os", "linux")).lower()
        arch = str(spec["arch"])
    except KeyError as exc:
        raise TargetError("Explicit target%s needs %s (python, os, arch, and libc/libc_version on Linux)."
                          % (where, exc)) from None
    if os_family not in _SYSTEMS:
        raise TargetError("Explicit target%s: os %r is not one of %s." % (where, os_family, ", ".join(sorted(_SYSTEMS))))
    if len(python.split(".")) != 3:
        raise TargetError("Explicit target%s: python %r must be a full version such as 3.12.3 (markers compare "
                          "python_full_version)." % (where, python))
    implementation = str(spec.get("implementation", "cpython"))
    os_name, system, sys_platform = _SYSTEMS[os_family]
    machine = _WINDOWS_MACHINES.get(arch, arch) if os_family == "windows" else arch
    env = {
        "implementation_name": implementation, "implementation_version": python, "os_name": os_name,
        "platform_machine": machine, "platform_release": "", "platform_system": system, "platform_version": "",
        "python_full_version": python,
        "platform_python_implementation": {"cpython": "CPython", "pypy": "PyPy"}.get(implementation, implementation),
        "python_version": ".".join(python.split(".")[:2]), "sys_platform": sys_platform,
    }
    facts = {"marker_environment": env, "os": os_family, "arch": arch,
             "libc": {"family": spec.get("libc"), "version": spec.get("libc_version")},
             "python": {"version": python, "implementation": implementation, "abiflags": str(spec.get("abiflags", ""))}}
    if os_family == "linux" and not (spec.get("libc") and spec.get("libc_version")):
        raise TargetError("Explicit target%s on Linux needs libc (glibc or musl) and libc_version: wheel choice "
                          "depends on them." % where)
    if os_family == "darwin":
        facts["macos_version"] = spec.get("macos_version")
    return facts
