# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to the airgap.uv collection
"""The bundle's software bill of materials: a CycloneDX 1.6 JSON document, built from plain data.

An auditor inside the air gap must learn what a bundle carries without unpacking it or trusting
the tool that made it: every file is a component with its name, version, package URL and
sha256. The document is a pure function of its inputs (no clock, no random UUID) so that the
same bundle always gets the same SBOM, byte for byte once serialised with sorted keys, and a
signature over it stays reproducible. Standard library only: the controller may lack the
CycloneDX library; the tests validate the output against the schema with it.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Dict, List, Mapping, Optional, Sequence
from urllib.parse import quote

SPEC_VERSION = "1.6"
SCHEMA_URL = "http://cyclonedx.org/schema/bom-%s.schema.json" % SPEC_VERSION
TOOL_NAME = "airgap.uv"
KINDS = ("wheel", "sdist", "uv-binary")
# Our properties' namespace (CycloneDX reserves ``cdx:``; others name their own).
PROPERTY_PREFIX = "airgap.uv:"
# Fixed, so that the same seed always names the same serial number.
_SERIAL_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:airgap.uv:sbom")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# RFC 3339, what the schema's date-time format accepts.
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


@dataclass(frozen=True)
class BundleComponent:
    """One file the bundle carries.

    ``kind`` is ``wheel``, ``sdist`` or ``uv-binary`` (the uv executable for one platform,
    named ``uv``, unpacked from uv's wheel). ``filename`` names the file inside the bundle and
    is unique per kind: wheels and sdists sit once under ``files/``, so uv binaries need a
    per-platform name from the caller.
    """

    name: str
    version: str
    filename: str
    sha256: str
    size: int
    kind: str


def purl_name(name: str) -> str:
    """The PyPI package URL spelling of a distribution name: lowercase, ``_`` becomes ``-``.

    The purl spec's pypi rule, not PEP 503's (dots stay), so that our purls equal those of
    other tools (uv, packageurl-python) for the same package.
    """
    return name.lower().replace("_", "-")


def _quote(value: str) -> str:
    """Percent-encode a purl segment or qualifier value (``+`` of local versions included)."""
    return quote(value, safe=":")


def component_purl(component: BundleComponent) -> str:
    """``pkg:pypi/<name>@<version>``, with ``?file_name=`` naming the distribution file.

    The uv binary is not a PyPI file but comes from the ``uv`` release on PyPI: its purl names
    that release, without a file name qualifier that would point at no PyPI file.
    """
    purl = "pkg:pypi/%s@%s" % (_quote(purl_name(component.name)), _quote(component.version))
    if component.kind == "uv-binary":
        return purl
    return "%s?file_name=%s" % (purl, _quote(component.filename))


def bom_ref(component: BundleComponent) -> str:
    """The component's reference inside the document: one per file, never the purl (which a
    package's wheel and sdist, or the uv binaries of two platforms, can share)."""
    return "%s:%s" % (component.kind, component.filename)


def serial_number(serial_seed: str) -> str:
    """A UUID URN derived from the seed (e.g. the bundle's manifest digest), never random."""
    return "urn:uuid:%s" % uuid.uuid5(_SERIAL_NAMESPACE, serial_seed)


def timestamp_from_epoch(seconds: int) -> str:
    """An ISO 8601 UTC timestamp for ``metadata.timestamp``, e.g. from ``SOURCE_DATE_EPOCH``."""
    return datetime.fromtimestamp(int(seconds), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_timestamp(timestamp: str) -> None:
    """Refuse what the schema's date-time format would: another spelling, a date without a zone,
    or an impossible date."""
    valid = isinstance(timestamp, str) and bool(_RFC3339.match(timestamp))
    if valid:
        try:
            datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
        except ValueError:
            valid = False
    if not valid:
        raise ValueError("SBOM timestamp %r is not an RFC 3339 date-time (e.g. 2026-01-31T12:00:00Z)" % (timestamp,))


def _check_component(component: BundleComponent) -> None:
    """Refuse a component the schema would accept but an auditor could not use."""
    if component.kind not in KINDS:
        raise ValueError("component %r: kind %r is not one of %s" % (component.filename, component.kind, ", ".join(KINDS)))
    if not component.name or not component.version or not component.filename:
        raise ValueError("component %r: name, version and file name are required" % (component,))
    if not _SHA256.match(component.sha256):
        raise ValueError("component %r: sha256 %r is not 64 lowercase hex digits" % (component.filename, component.sha256))
    if isinstance(component.size, bool) or not isinstance(component.size, int) or component.size < 0:
        raise ValueError("component %r: size %r is not a byte count" % (component.filename, component.size))


def _unique(components: Sequence[BundleComponent]) -> List[BundleComponent]:
    """The components once each, sorted; the same file listed by two targets counts once, two
    different files under one reference are the caller's error."""
    by_ref: Dict[str, BundleComponent] = {}
    for component in components:
        _check_component(component)
        ref = bom_ref(component)
        seen = by_ref.setdefault(ref, component)
        if seen != component:
            raise ValueError("two different files share the SBOM reference %r: %r and %r" % (ref, seen, component))
    return sorted(by_ref.values(), key=lambda c: (purl_name(c.name), c.version, c.kind, c.filename))


def component_entry(component: BundleComponent) -> Dict[str, Any]:
    """One file as a CycloneDX component."""
    return {
        "type": "application" if component.kind == "uv-binary" else "library",
        "bom-ref": bom_ref(component),
        "name": component.name,
        "version": component.version,
        "purl": component_purl(component),
        "hashes": [{"alg": "SHA-256", "content": component.sha256}],
        "properties": [
            {"name": PROPERTY_PREFIX + "kind", "value": component.kind},
            {"name": PROPERTY_PREFIX + "file-name", "value": component.filename},
            {"name": PROPERTY_PREFIX + "size", "value": str(component.size)},
        ],
    }


def _project_entry(project: Mapping[str, Any]) -> Dict[str, Any]:
    """The project the bundle deploys, as ``metadata.component``."""
    name = project.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError("the project needs a name for the SBOM, got %r" % (name,))
    entry: Dict[str, Any] = {"type": "application", "bom-ref": "project:%s" % name, "name": name}
    version = project.get("version")
    if version:
        entry["version"] = str(version)
    return entry


def sbom_document(project: Mapping[str, Any], components: Sequence[BundleComponent], serial_seed: str,
                  timestamp: str, tool_version: Optional[str] = None) -> Dict[str, Any]:
    """The CycloneDX document of a bundle: ``project`` (``name``, optional ``version``) and the
    files it carries; the same inputs give an equal document.

    ``serial_seed`` names this bundle (e.g. the digest of its manifests) and ``timestamp`` is
    the bundle's fixed creation time: passed in, so that nothing here reads the clock.
    """
    _check_timestamp(timestamp)
    tool: Dict[str, Any] = {"type": "application", "name": TOOL_NAME}
    if tool_version:
        tool["version"] = tool_version
    return {
        "$schema": SCHEMA_URL,
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": serial_number(serial_seed),
        "version": 1,
        "metadata": {
            "timestamp": timestamp,
            "tools": {"components": [tool]},
            "component": _project_entry(project),
        },
        "components": [component_entry(c) for c in _unique(components)],
    }
