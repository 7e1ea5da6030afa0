# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to the airgap.uv collection
"""Each action plugin's ARGUMENT_SPEC and its module's DOCUMENTATION describe the same options.

An action plugin validates its arguments itself, so ansible-test's validate-modules never sees
its spec: this test is what keeps the documented types, defaults and choices true.
"""

from __future__ import annotations

import typing as t

import pytest
import yaml

from ansible_collections.airgap.uv.plugins.action import bundle as bundle_action
from ansible_collections.airgap.uv.plugins.action import bundle_import as bundle_import_action
from ansible_collections.airgap.uv.plugins.action import push as push_action
from ansible_collections.airgap.uv.plugins.action import targets_file as targets_file_action
from ansible_collections.airgap.uv.plugins.action import wheelhouse as wheelhouse_action
from ansible_collections.airgap.uv.plugins.modules import bundle as bundle_module
from ansible_collections.airgap.uv.plugins.modules import bundle_import as bundle_import_module
from ansible_collections.airgap.uv.plugins.modules import push as push_module
from ansible_collections.airgap.uv.plugins.modules import targets_file as targets_file_module
from ansible_collections.airgap.uv.plugins.modules import wheelhouse as wheelhouse_module

PLUGINS = {
    "wheelhouse": (wheelhouse_action.ARGUMENT_SPEC, wheelhouse_module.DOCUMENTATION),
    "push": (push_action.ARGUMENT_SPEC, push_module.DOCUMENTATION),
    "targets_file": (targets_file_action.ARGUMENT_SPEC, targets_file_module.DOCUMENTATION),
    "bundle": (bundle_action.ARGUMENT_SPEC, bundle_module.DOCUMENTATION),
    "bundle_import": (bundle_import_action.ARGUMENT_SPEC, bundle_import_module.DOCUMENTATION),
}


def described(option: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """What validation makes of an option, the same whether read from a spec or from the docs."""
    return {
        "type": option.get("type", "str"),
        "elements": option.get("elements"),
        "required": bool(option.get("required", False)),
        "default": option.get("default"),
        "choices": option.get("choices"),
        "aliases": sorted(option.get("aliases", ())),
    }


def internal(option: t.Mapping[str, t.Any]) -> bool:
    """An option the action sets for its module and refuses from a task (push: files, archive)."""
    description = option.get("description")
    first = description[0] if isinstance(description, list) else description
    return str(first).startswith("Internal, set by the action plugin")


@pytest.mark.parametrize("plugin", sorted(PLUGINS))
def test_documentation_matches_the_argument_spec(plugin: str) -> None:
    spec, documentation = PLUGINS[plugin]
    documented = yaml.safe_load(documentation)["options"]
    assert sorted(name for name in documented if not internal(documented[name])) == sorted(spec)
    assert {name: described(documented[name]) for name in spec} == {name: described(spec[name]) for name in spec}


def test_wheelhouse_options_take_the_spec_defaults() -> None:
    from ansible_collections.airgap.uv.plugins.plugin_utils._wheelhouse_args import ARGUMENT_SPEC, DEFAULT_CACHE_DIR
    from ansible_collections.airgap.uv.plugins.plugin_utils._wheelhouse_common import WheelhouseOptions

    args = {name: option.get("default") for name, option in ARGUMENT_SPEC.items()}
    args.update(project="/p", dest="/d", targets={})
    assert WheelhouseOptions.from_args(args) == WheelhouseOptions(project="/p", dest="/d", targets={})
    assert WheelhouseOptions.from_args(args).cache_dir == DEFAULT_CACHE_DIR
