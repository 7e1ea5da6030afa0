# -*- coding: utf-8 -*-
# Copyright (c) airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One spelling for platforms: operating system, CPU and C library names as wheel tags use them.

Standard library only (Python 3.9+): ``airgap.uv.target_facts`` uses it on the host, and the
controller's targets, tags and builds use it too, so both sides name a platform alike.
"""

from __future__ import annotations

import typing as t

# Machine names as uname, Python, Windows and package managers spell them -> the Linux
# spelling wheel platform tags use.
ARCH_ALIASES = {
    "amd64": "x86_64",
    "x64": "x86_64",
    "x86-64": "x86_64",
    "em64t": "x86_64",
    "arm64": "aarch64",
    "aarch64_be": "aarch64_be",
    "i386": "i686",
    "i486": "i686",
    "i586": "i686",
    "x86": "i686",
    "armv7": "armv7l",
    "armv7hl": "armv7l",
    "armhf": "armv7l",
    "ppc64el": "ppc64le",
    "powerpc64le": "ppc64le",
    "powerpc64": "ppc64",
    "loong64": "loongarch64",
}


def normalize_arch(machine: str) -> str:
    """The Linux spelling of a machine name (``AMD64`` -> ``x86_64``); empty stays empty."""
    value = (machine or "").strip().lower()
    return ARCH_ALIASES.get(value, value)


def normalize_os(name: str) -> str:
    """``linux``, ``darwin``, ``windows`` (or the name as given, lowercased)."""
    value = (name or "").lower()
    if value in ("darwin", "macos", "macosx", "osx"):
        return "darwin"
    if value in ("windows", "win32", "win", "nt", "cygwin"):
        return "windows"
    return value


def normalize_libc(family: t.Optional[str]) -> t.Optional[str]:
    """``glibc``, ``musl``, another name lowercased, or None."""
    value = (family or "").lower()
    if value in ("glibc", "gnu", "manylinux", "libc"):
        return "glibc"
    if value in ("musl", "musllinux"):
        return "musl"
    return value or None
