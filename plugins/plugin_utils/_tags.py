# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to the airgap.uv collection
"""Wheel compatibility tags for ONE target host, computed on the controller.

Nothing in here probes the machine it runs on: the target is described by
explicit arguments (OS, architecture, libc, Python version), and the tag
priority order reproduces the one uv uses when it installs from uv.lock:

1. ``cpXY-cpXY-<platform>`` for every platform, best platform first;
2. ``cpXY-abi3-<platform>``, then ``cpXY-none-<platform>``, then
   ``cpXW-abi3-<platform>`` for every older minor version down to 3.2;
3. ``pyXY-none-<platform>``, ``py3-none-<platform>``, ``pyXW-none-<platform>`` ...;
4. ``cpXY-none-any``, ``pyXY-none-any``, ``py3-none-any``, ``pyXW-none-any`` ...

The platform list is ordered best first: ``manylinux_2_M`` down to the
architecture's oldest manylinux (legacy aliases right after 2_17 / 2_12 / 2_5),
then ``linux_ARCH``; ``musllinux_1_M`` down to ``musllinux_1_0``, then
``linux_ARCH``; macOS from the target's major version down to 11 then the
10.x ``universal2``-style tags; Windows has one tag.
"""

from __future__ import annotations

import traceback
import typing as t

try:
    from packaging.tags import Tag
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename
except ImportError:  # pragma: no cover - exercised only without packaging
    HAS_PACKAGING = False
    PACKAGING_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    HAS_PACKAGING = True
    PACKAGING_IMPORT_ERROR = None

from ansible_collections.airgap.uv.plugins.module_utils._platform import normalize_arch as platform_arch

if t.TYPE_CHECKING:  # pragma: no cover
    from ansible_collections.airgap.uv.plugins.plugin_utils._lock_types import Artifact

__all__ = [
    "HAS_PACKAGING",
    "PACKAGING_IMPORT_ERROR",
    "TagError",
    "normalize_arch",
    "target_platforms",
    "target_tags",
    "choose_wheel",
    "wheel_priority",
]


class TagError(ValueError):
    """The target description cannot be turned into wheel tags."""


# Oldest manylinux_2_M per architecture (PEP 600 / uv). Architectures not in this
# table get only ``linux_ARCH``.
_MANYLINUX_MIN_MINOR = {
    "x86_64": 5,
    "i686": 5,
    "aarch64": 17,
    "armv7l": 17,
    "ppc64": 17,
    "ppc64le": 17,
    "s390x": 17,
    "riscv64": 31,
    "loongarch64": 36,
}

# Legacy aliases existed only for these architectures.
_LEGACY_ALIASES = {
    17: ("manylinux2014", {"x86_64", "i686", "aarch64", "armv7l", "ppc64", "ppc64le", "s390x"}),
    12: ("manylinux2010", {"x86_64", "i686"}),
    5: ("manylinux1", {"x86_64", "i686"}),
}

_MAC_BINARY_FORMATS = {
    "arm64": ("arm64", "universal2"),
    "x86_64": ("x86_64", "intel", "fat64", "fat32", "universal2", "universal"),
}


def normalize_arch(arch: str) -> str:
    """Return the Linux spelling of a machine name (``AMD64`` -> ``x86_64``)."""
    value = platform_arch(arch)
    if not value:
        raise TagError("The target architecture is empty; gather it from the target (platform.machine()).")
    return value


def _parse_two(version: str, what: str) -> tuple[int, int]:
    parts = str(version).strip().split(".")
    try:
        major = int(parts[0])
        minor = int(parts[1]) if len(parts) > 1 and parts[1] != "" else 0
    except (ValueError, IndexError):
        raise TagError("Cannot parse the %s version %r: expected MAJOR.MINOR." % (what, version)) from None
    return major, minor


def _linux_glibc(arch: str, libc_version: str | None) -> list[str]:
    if not libc_version:
        raise TagError(
            "The target's glibc version is unknown; it decides which manylinux wheels uv accepts "
            "(gather it from the target, e.g. os.confstr('CS_GNU_LIBC_VERSION'))."
        )
    major, minor = _parse_two(libc_version, "glibc")
    if major != 2:
        raise TagError("Unsupported glibc version %r: expected 2.x." % libc_version)
    platforms: list[str] = []
    min_minor = _MANYLINUX_MIN_MINOR.get(arch)
    if min_minor is not None:
        for m in range(minor, min_minor - 1, -1):
            platforms.append("manylinux_2_%d_%s" % (m, arch))
            alias = _LEGACY_ALIASES.get(m)
            if alias is not None and arch in alias[1]:
                platforms.append("%s_%s" % (alias[0], arch))
    platforms.append("linux_%s" % arch)
    return platforms


def _linux_musl(arch: str, libc_version: str | None) -> list[str]:
    if not libc_version:
        raise TagError(
            "The target's musl version is unknown; it decides which musllinux wheels uv accepts "
            "(gather it from the target's loader, e.g. `ldd --version`)."
        )
    major, minor = _parse_two(libc_version, "musl")
    if major != 1:
        raise TagError("Unsupported musl version %r: expected 1.x." % libc_version)
    platforms = ["musllinux_%d_%d_%s" % (major, m, arch) for m in range(minor, -1, -1)]
    platforms.append("linux_%s" % arch)
    return platforms


def _macos(arch: str, macos_version: str | None) -> list[str]:
    if not macos_version:
        raise TagError("The target's macOS version is unknown; gather it from the target (platform.mac_ver()).")
    if arch in ("aarch64", "arm64"):
        mac_arch = "arm64"
    elif arch == "x86_64":
        mac_arch = "x86_64"
    else:
        raise TagError("Unsupported macOS architecture %r (expected arm64 or x86_64)." % arch)
    major, minor = _parse_two(macos_version, "macOS")
    formats = _MAC_BINARY_FORMATS[mac_arch]
    platforms: list[str] = []
    if major >= 11:
        for mj in range(major, 10, -1):
            platforms.extend("macosx_%d_0_%s" % (mj, fmt) for fmt in formats)
        minors = range(16, 3, -1)
    elif major == 10 and mac_arch == "x86_64":
        minors = range(minor, 3, -1)
    else:
        raise TagError("Unsupported macOS version %r for %s." % (macos_version, mac_arch))
    if mac_arch == "arm64":
        platforms.extend("macosx_10_%d_universal2" % m for m in minors)
    else:
        for m in minors:
            platforms.extend("macosx_10_%d_%s" % (m, fmt) for fmt in formats)
    return platforms


def _windows(arch: str) -> list[str]:
    if arch == "x86_64":
        return ["win_amd64"]
    if arch == "i686":
        return ["win32"]
    if arch == "aarch64":
        return ["win_arm64"]
    raise TagError("Unsupported Windows architecture %r (expected AMD64, x86 or ARM64)." % arch)


def target_platforms(
    os_name: str,
    arch: str,
    libc_family: str | None,
    libc_version: str | None,
    macos_version: str | None = None,
) -> list[str]:
    """Return the target's platform tags, best first, as uv orders them.

    ``os_name``: ``linux``, ``darwin``/``macos`` or ``windows``/``win32``.
    ``arch``: the target's machine name (``x86_64``, ``AMD64``, ``aarch64``, ``arm64`` ...).
    ``libc_family``: ``glibc`` (or ``gnu``/``manylinux``) or ``musl`` for Linux, else ignored.
    ``libc_version``: e.g. ``2.36`` (glibc) or ``1.2`` (musl).
    ``macos_version``: e.g. ``14.5`` for macOS.
    """
    os_key = (os_name or "").strip().lower()
    norm_arch = normalize_arch(arch)
    if os_key == "linux":
        family = (libc_family or "").strip().lower()
        if family in ("glibc", "gnu", "manylinux", "libc"):
            return _linux_glibc(norm_arch, libc_version)
        if family in ("musl", "musllinux"):
            return _linux_musl(norm_arch, libc_version)
        raise TagError(
            "Unknown libc family %r for a Linux target: expected 'glibc' or 'musl' "
            "(gather it from the target, e.g. platform.libc_ver())." % (libc_family,)
        )
    if os_key in ("darwin", "macos", "macosx", "osx"):
        return _macos(norm_arch, macos_version)
    if os_key in ("windows", "win32", "win", "nt", "cygwin"):
        return _windows(norm_arch)
    raise TagError("Unsupported target operating system %r (expected linux, darwin or windows)." % (os_name,))


def _interpreter_abbrev(implementation: str) -> str:
    impl = (implementation or "").strip().lower()
    if impl in ("cpython", "cp"):
        return "cp"
    if impl in ("pypy", "pp"):
        return "pp"
    raise TagError("Unsupported Python implementation %r (expected cpython or pypy)." % (implementation,))


def target_tags(
    python_version: str,
    implementation: str,
    platforms: list[str],
    abi_flags: str = "",
    implementation_version: str | None = None,
) -> list[Tag]:
    """Return the target interpreter's supported tags, best first (uv's order).

    ``python_version``: ``3.12`` or ``3.12.1``. ``implementation``: ``cpython`` or
    ``pypy`` (``sys.implementation.name``). ``abi_flags``: ``sys.abiflags`` of the
    target (``t`` marks a free-threaded build; ``d``/``m`` are ignored like uv does).
    ``implementation_version``: PyPy's own version (``7.3``), required for PyPy.
    """
    if not HAS_PACKAGING:
        raise TagError("The Python library 'packaging' is required on the controller: %s" % PACKAGING_IMPORT_ERROR)
    major, minor = _parse_two(python_version, "Python")
    if major != 3:
        raise TagError("Unsupported Python version %r: only Python 3 targets are supported." % python_version)
    plats = list(platforms)
    abbrev = _interpreter_abbrev(implementation)
    tags: list[Tag] = []
    if abbrev == "cp":
        freethreaded = "t" in (abi_flags or "")
        interp = "cp3%d" % minor
        abi = interp + ("t" if freethreaded else "") + ("m" if minor <= 7 else "")
        tags.extend(Tag(interp, abi, p) for p in plats)
        for m in range(minor, 1, -1):
            if not freethreaded:
                tags.extend(Tag("cp3%d" % m, "abi3", p) for p in plats)
            if m == minor:
                tags.extend(Tag(interp, "none", p) for p in plats)
    else:
        if not implementation_version:
            raise TagError("PyPy targets need the PyPy version (sys.implementation.version), e.g. 7.3.")
        impl_major, impl_minor = _parse_two(implementation_version, "PyPy")
        interp = "pp3%d" % minor
        abi = "pypy3%d_pp%d%d" % (minor, impl_major, impl_minor)
        tags.extend(Tag(interp, abi, p) for p in plats)
    # Generic, "no ABI" tags for a platform.
    for m in range(minor, -1, -1):
        tags.extend(Tag("py3%d" % m, "none", p) for p in plats)
        if m == minor:
            tags.extend(Tag("py3", "none", p) for p in plats)
    # Pure wheels.
    if abbrev == "cp":
        tags.append(Tag("cp3%d" % minor, "none", "any"))
    for m in range(minor, -1, -1):
        tags.append(Tag("py3%d" % m, "none", "any"))
        if m == minor:
            tags.append(Tag("py3", "none", "any"))
    return tags


def priority_map(tags: t.Sequence[Tag]) -> dict[Tag, int]:
    """{tag: rank}, 0 the best, for repeated choices against the same target."""
    ranks: dict[Tag, int] = {}
    for index, tag in enumerate(tags):
        ranks.setdefault(tag, index)
    return ranks


def wheel_priority(filename: str, tags: t.Sequence[Tag] | t.Mapping[Tag, int]) -> int | None:
    """Return the rank (0 = best) of the wheel's best tag in ``tags``, or None if incompatible."""
    ranks = tags if isinstance(tags, dict) else priority_map(t.cast("t.Sequence[Tag]", tags))
    try:
        _name, _version, _build, wheel_tags = parse_wheel_filename(filename)
    except InvalidWheelFilename:
        return None
    best: int | None = None
    for tag in wheel_tags:
        rank = ranks.get(tag)
        if rank is not None and (best is None or rank < best):
            best = rank
    return best


def choose_wheel(wheels: t.Iterable[Artifact], tags: t.Sequence[Tag] | t.Mapping[Tag, int]) -> Artifact | None:
    """Return the wheel uv would install for ``tags`` (best tag; ties: higher build tag, then first listed).

    ``tags`` may also be the rank map of :func:`priority_map`, which callers choosing for many
    packages build once.
    """
    if not HAS_PACKAGING:
        raise TagError("The Python library 'packaging' is required on the controller: %s" % PACKAGING_IMPORT_ERROR)
    ranks = tags if isinstance(tags, dict) else priority_map(t.cast("t.Sequence[Tag]", tags))
    best: Artifact | None = None
    best_key: tuple[int, tuple[int, ...] | tuple[int, str] | tuple[()]] | None = None
    for wheel in wheels:
        rank = wheel_priority(wheel.filename, ranks)
        if rank is None:
            continue
        build = parse_wheel_filename(wheel.filename)[2]
        # Lower rank is better; a higher build tag wins a tie; the first listed wins a full tie.
        key = (-rank, build)
        if best_key is None or key > best_key:
            best, best_key = wheel, key
    return best
