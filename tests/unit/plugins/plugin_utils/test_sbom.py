# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of plugins/plugin_utils/_sbom.py, checked by the CycloneDX library's own schema
validator and package URL parser (cyclonedx-python-lib, packageurl-python)."""

from __future__ import annotations

import copy
import json

import pytest
from cyclonedx.model.bom import Bom
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL

from ansible_collections.airgap.uv.plugins.plugin_utils._sbom import (
    SPEC_VERSION,
    BundleComponent,
    component_purl,
    sbom_document,
    timestamp_from_epoch,
)

PROJECT = {"name": "demo-app", "version": "1.4.0"}
WHEN = "2026-01-31T12:00:00Z"
SHA_A, SHA_B, SHA_C, SHA_D = ("%02x" % n * 32 for n in (1, 2, 3, 4))
COMPONENTS = [
    BundleComponent("Requests", "2.31.0", "requests-2.31.0-py3-none-any.whl", SHA_A, 62574, "wheel"),
    BundleComponent("typing_extensions", "4.9.0", "typing_extensions-4.9.0-py3-none-any.whl", SHA_B, 32809, "wheel"),
    BundleComponent("torch", "2.1.0+cpu", "torch-2.1.0+cpu-cp311-cp311-linux_x86_64.whl", SHA_C, 10, "wheel"),
    BundleComponent("pyyaml", "6.0.1", "PyYAML-6.0.1.tar.gz", SHA_D, 125201, "sdist"),
    BundleComponent("uv", "0.13.8", "uv/x86_64-unknown-linux-gnu/uv", SHA_A, 40000000, "uv-binary"),
    BundleComponent("uv", "0.13.8", "uv/aarch64-unknown-linux-gnu/uv", SHA_B, 38000000, "uv-binary"),
]


def document(**overrides):
    args = {"project": PROJECT, "components": COMPONENTS, "serial_seed": "bundle-manifest-digest",
            "timestamp": WHEN, "tool_version": "1.2.3"}
    args.update(overrides)
    return sbom_document(**args)


def schema_errors(doc):
    """The first schema error of ``doc``, or None: what a CycloneDX consumer would say."""
    validator = JsonStrictValidator(SchemaVersion.from_version(SPEC_VERSION))
    return validator.validate_str(json.dumps(doc))


def test_document_is_valid_cyclonedx():
    doc = document()
    assert doc["specVersion"] == "1.6"
    assert schema_errors(doc) is None
    bom = Bom.from_json(doc)  # the library's own model reads it back
    assert len(bom.components) == len(COMPONENTS)
    assert bom.metadata.component.name == "demo-app"


def test_document_is_deterministic():
    first = document()
    assert first == document(components=list(reversed(COMPONENTS)))
    assert json.dumps(first, sort_keys=True) == json.dumps(document(), sort_keys=True)
    assert first["serialNumber"].startswith("urn:uuid:")
    assert document(serial_seed="another bundle")["serialNumber"] != first["serialNumber"]
    assert first["metadata"]["timestamp"] == WHEN


def test_components_name_each_file_with_purl_and_hash():
    by_ref = {c["bom-ref"]: c for c in document()["components"]}
    assert len(by_ref) == len(COMPONENTS)
    requests = by_ref["wheel:requests-2.31.0-py3-none-any.whl"]
    assert requests["type"] == "library" and requests["name"] == "Requests"
    assert requests["purl"] == "pkg:pypi/requests@2.31.0?file_name=requests-2.31.0-py3-none-any.whl"
    assert requests["hashes"] == [{"alg": "SHA-256", "content": SHA_A}]
    assert {"name": "airgap.uv:size", "value": "62574"} in requests["properties"]
    assert by_ref["wheel:typing_extensions-4.9.0-py3-none-any.whl"]["purl"].startswith("pkg:pypi/typing-extensions@4.9.0?")
    assert by_ref["sdist:PyYAML-6.0.1.tar.gz"]["purl"] == "pkg:pypi/pyyaml@6.0.1?file_name=PyYAML-6.0.1.tar.gz"
    uv = by_ref["uv-binary:uv/x86_64-unknown-linux-gnu/uv"]
    assert uv["type"] == "application" and uv["purl"] == "pkg:pypi/uv@0.13.8"
    names = [c["name"].lower() for c in document()["components"]]
    assert names == sorted(names)


@pytest.mark.parametrize("component", COMPONENTS, ids=lambda c: c.filename)
def test_purls_are_what_packageurl_writes(component):
    purl = component_purl(component)
    parsed = PackageURL.from_string(purl)
    assert parsed.type == "pypi" and parsed.version == component.version
    qualifiers = {} if component.kind == "uv-binary" else {"file_name": component.filename}
    assert parsed.qualifiers == qualifiers
    assert purl == PackageURL("pypi", name=component.name, version=component.version, qualifiers=qualifiers).to_string()


def test_metadata_names_the_project_and_the_tool():
    metadata = document()["metadata"]
    assert metadata["component"] == {"type": "application", "bom-ref": "project:demo-app", "name": "demo-app",
                                     "version": "1.4.0"}
    assert metadata["tools"] == {"components": [{"type": "application", "name": "airgap.uv", "version": "1.2.3"}]}
    bare = document(project={"name": "x"}, tool_version=None, components=[])
    assert "version" not in bare["metadata"]["component"] and schema_errors(bare) is None


def _tamper_alg(doc):
    doc["components"][0]["hashes"][0]["alg"] = "SHA-257"


def _tamper_hash(doc):
    doc["components"][0]["hashes"][0]["content"] = "not-hex"


def _drop_name(doc):
    del doc["components"][0]["name"]


def _bad_serial(doc):
    doc["serialNumber"] = "bundle-1"


def _bad_type(doc):
    doc["components"][0]["type"] = "wheel"


def _bad_timestamp(doc):
    doc["metadata"]["timestamp"] = "yesterday"


@pytest.mark.parametrize("tamper", [_tamper_alg, _tamper_hash, _drop_name, _bad_serial, _bad_type, _bad_timestamp])
def test_the_validator_catches_a_tampered_document(tamper):
    doc = copy.deepcopy(document())
    tamper(doc)
    assert schema_errors(doc) is not None


def test_the_same_file_twice_counts_once():
    assert document(components=COMPONENTS + COMPONENTS[:2]) == document()


@pytest.mark.parametrize("overrides, message", [
    ({"components": [COMPONENTS[0], BundleComponent("requests", "2.31.0", COMPONENTS[0].filename, SHA_B, 1, "wheel")]},
     "two different files"),
    ({"components": [BundleComponent("a", "1", "a-1-py3-none-any.whl", "AB" * 32, 1, "wheel")]}, "sha256"),
    ({"components": [BundleComponent("a", "1", "a-1-py3-none-any.whl", SHA_A, 1, "egg")]}, "kind"),
    ({"components": [BundleComponent("a", "1", "a-1-py3-none-any.whl", SHA_A, -1, "wheel")]}, "size"),
    ({"components": [BundleComponent("", "1", "a-1-py3-none-any.whl", SHA_A, 1, "wheel")]}, "required"),
    ({"project": {"version": "1"}}, "name"),
    ({"timestamp": "2026-01-31 12:00:00"}, "RFC 3339"),
    ({"timestamp": "2026-02-30T12:00:00Z"}, "RFC 3339"),
])
def test_refuses_bad_input(overrides, message):
    with pytest.raises(ValueError, match=message):
        document(**overrides)


def test_timestamp_from_epoch_is_valid():
    assert timestamp_from_epoch(0) == "1970-01-01T00:00:00Z"
    assert schema_errors(document(timestamp=timestamp_from_epoch(1767225600))) is None
