# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The boundary between host and controller code.

Everything in plugins/modules/ and plugins/module_utils/ runs on the hosts: standard library
only (Python 3.9+), plus Ansible's own module_utils and this collection's module_utils.
Controller code lives in plugins/plugin_utils/ and may use packaging and tomli; a host file
that imported it (or any other library) would fail on a minimal host.
"""

from __future__ import annotations

import ast
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOST_DIRS = ("plugins/modules", "plugins/module_utils")
ALLOWED_PREFIXES = ("ansible.module_utils", "ansible_collections.airgap.uv.plugins.module_utils")


def host_files() -> list[str]:
    found = []
    for directory in HOST_DIRS:
        for root, dirs, files in os.walk(os.path.join(REPO, directory)):
            dirs[:] = [name for name in dirs if name != "__pycache__"]
            found.extend(os.path.relpath(os.path.join(root, name), REPO) for name in files if name.endswith(".py"))
    return sorted(found)


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import, wherever it is (functions, try blocks, TYPE_CHECKING)."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                names.append((node.lineno, "." * node.level + (node.module or "")))
            else:
                # `from pkg import mod` may name a module: check pkg.mod as well as pkg.
                names.extend((node.lineno, node.module + "." + alias.name) for alias in node.names)
    return names


def refusal(name: str) -> str | None:
    if name.startswith("."):
        return "relative import (Ansible ships module_utils by absolute name)"
    if name == "__future__" or name.split(".")[0] in sys.stdlib_module_names:
        return None
    if any(name == prefix or name.startswith(prefix + ".") for prefix in ALLOWED_PREFIXES):
        return None
    if name.startswith("ansible_collections.airgap.uv.plugins.plugin_utils"):
        return "controller code (plugins/plugin_utils) on a host"
    return "neither the standard library nor host code"


def test_there_are_host_files():
    assert "plugins/modules/sync.py" in host_files()
    assert any(path.startswith("plugins/module_utils/") for path in host_files())


@pytest.mark.parametrize("path", host_files())
def test_host_file_imports_only_stdlib_and_host_code(path):
    with open(os.path.join(REPO, path), encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), path)
    bad = ["%s:%d imports %s: %s" % (path, line, name, refusal(name))
           for line, name in imported_modules(tree) if refusal(name)]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("source, reason", [
    ("import packaging.version", "neither the standard library"),
    ("from packaging.utils import canonicalize_name", "neither the standard library"),
    ("from ansible_collections.airgap.uv.plugins.plugin_utils._lock import load_lock", "controller code"),
    ("from ansible_collections.airgap.uv.plugins.plugin_utils import _lock", "controller code"),
    ("def f():\n    import tomli\n", "neither the standard library"),
    ("from ansible.plugins.action import ActionBase", "neither the standard library"),
    ("from . import _sync", "relative import"),
    ("import json, os", None),
    ("from ansible.module_utils.basic import AnsibleModule", None),
    ("from ansible_collections.airgap.uv.plugins.module_utils._sync import SyncRunner", None),
])
def test_the_check_itself(source, reason):
    reasons = [refusal(name) for dummy, name in imported_modules(ast.parse(source))]
    found = [r for r in reasons if r]
    if reason is None:
        assert not found
    else:
        assert found and found[0].startswith(reason)


COLLECTION_PREFIX = "ansible_collections.airgap.uv."


def import_graph() -> dict[str, set[str]]:
    """Which collection module imports which (any import: top level, function, TYPE_CHECKING)."""
    paths = {}
    for directory in ("plugins/module_utils", "plugins/plugin_utils", "plugins/modules", "plugins/action"):
        for name in os.listdir(os.path.join(REPO, directory)):
            if name.endswith(".py") and name != "__init__.py":
                module = COLLECTION_PREFIX + (directory + "/" + name[:-3]).replace("/", ".")
                paths[module] = os.path.join(REPO, directory, name)
    graph = {}
    for module, path in paths.items():
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read(), path)
        found = set()
        for dummy, name in imported_modules(tree):
            # `from pkg.mod import Name` is recorded as pkg.mod.Name: keep the longest module prefix.
            while name and name not in paths:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
        graph[module] = found
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> list[str] | None:
        if node in visiting:
            return visiting[visiting.index(node):] + [node]
        if node in done:
            return None
        visiting.append(node)
        for other in sorted(graph.get(node, ())):
            cycle = visit(other)
            if cycle:
                return cycle
        visiting.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start)
        if cycle:
            return cycle
    return None


def test_no_import_cycle():
    graph = import_graph()
    assert COLLECTION_PREFIX + "plugins.module_utils._sync_change" in graph[COLLECTION_PREFIX + "plugins.module_utils._sync"]
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(name.rpartition(".")[2] for name in cycle)


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


# What runs on the controller inside the air gap (deploy_offline from a bundle, the targets
# playbook): ansible-core and this collection only, so no packaging or tomli.
INSIDE_ACTIONS = ("bundle_import", "push", "sync", "targets_file")
INSIDE_ALLOWED = ("ansible", "yaml", "jinja2", "ansible_collections.airgap.uv")


def reachable(graph: dict[str, set[str]], starts: list[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(starts)
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(graph.get(module, ()))
    return seen


def test_inside_controller_code_needs_no_library_beyond_ansible():
    graph = import_graph()
    starts = [COLLECTION_PREFIX + "plugins.action." + name for name in INSIDE_ACTIONS]
    assert all(start in graph for start in starts)
    bad = []
    for module in sorted(reachable(graph, starts)):
        path = os.path.join(REPO, *module[len(COLLECTION_PREFIX):].split(".")) + ".py"
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read(), path)
        for line, name in imported_modules(tree):
            top = name.split(".")[0]
            if name.startswith(".") or top == "__future__" or top in sys.stdlib_module_names:
                continue
            if not any(name == allowed or name.startswith(allowed + ".") for allowed in INSIDE_ALLOWED):
                bad.append("%s:%d imports %s" % (os.path.relpath(path, REPO), line, name))
    assert not bad, "\n".join(bad)
