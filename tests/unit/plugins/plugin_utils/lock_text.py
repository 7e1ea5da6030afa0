# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to the airgap.uv collection
"""uv.lock text for the controller tests: the pieces every hand-written lock repeats."""

from __future__ import annotations

#: The source of a package from the (never contacted) test index.
REG = 'source = { registry = "https://index.invalid/simple" }'


def registry(*pins: str) -> str:
    """``[[package]]`` tables of plain registry packages, one per ``name==version``, in the order given."""
    return "\n\n".join(
        '[[package]]\nname = "%s"\nversion = "%s"\n%s' % (name, version, REG)
        for name, version in (pin.split("==", 1) for pin in pins)
    )


def package(name: str, *lines: str, version: str = "1", source: str = REG, header: str = "version = 1\n") -> str:
    """A lock (HEADER, then one ``[[package]]``) whose entry has the given extra LINES."""
    return "%s[[package]]\nname = \"%s\"\nversion = \"%s\"\n%s\n%s" % (
        header, name, version, source, "".join(line + "\n" for line in lines))


#: The Python fork of the hand-written locks: below 3.10, and from 3.10 on.
FORK = ("python_full_version < '3.10'", "python_full_version >= '3.10'")


def forked(name: str, before: str, after: str) -> str:
    """Two ``[[package]]`` tables of registry package NAME, version BEFORE and AFTER the FORK."""
    return "\n\n".join(
        '[[package]]\nname = "%s"\nversion = "%s"\n%s\nresolution-markers = ["%s"]' % (name, version, REG, marker)
        for version, marker in zip((before, after), FORK)
    )
