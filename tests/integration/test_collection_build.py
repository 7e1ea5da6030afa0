# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The built collection holds the collection only, and works once installed.

A copy of the checkout is dirtied the way the test suite, the demo, ansible-test, ansible-lint
and editors dirty a contributor's tree (a ``.pytest_cache`` holding a whole uv cache, virtual
environments, the generated ``examples/*/uv.lock``, ``__pycache__``, ``tests/output``, an
earlier tarball, ...), plus a placeholder at every path git reports as ignored in the real
checkout at that moment, so the test does not depend on running after the others.
``ansible-galaxy collection build`` of that copy must give a small tarball of source files
only; it is then installed with ``ansible-galaxy collection install`` into a fresh collections
path, and ``ansible-doc`` renders every plugin and the role from there alone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile

import pytest

from testbed_env import REPO, VENV_BIN, ansible_env  # same directory, on sys.path

MAX_TARBALL_BYTES = 1000 * 1000

# (path, size): what the suite and the usual tools leave in a checkout. Random bytes, so a
# tarball that took any of the big ones would be over the size limit.
JUNK = [
    (".pytest_cache/v/cache/lastfailed", 200),
    (".pytest_cache/d/airgap-uv-corpus/uv-cache/archive-v0/abc123/uv", 1_500_000),
    (".pytest_cache/d/airgap-uv-corpus/uv-cache/wheels-v5/pypi/numpy/numpy-2.0.0-cp311-cp311-manylinux_2_17_x86_64.whl",
     300_000),
    (".venv/bin/python3", 64),
    (".venv/lib/python3.11/site-packages/ansible/__init__.py", 1_200_000),
    (".venv/collections/ansible_collections/airgap/placeholder", 10),
    ("examples/hello-airgap/uv.lock", 2000),
    ("examples/hello-airgap/.venv/pyvenv.cfg", 100),
    ("examples/hello-airgap/dist/hello_airgap-0.1.0-py3-none-any.whl", 3000),
    ("examples/hello-airgap/src/hello_airgap.egg-info/PKG-INFO", 100),
    ("plugins/modules/__pycache__/sync.cpython-311.pyc", 5000),
    ("plugins/plugin_utils/_lock.cpython-311.pyc", 100),
    ("tests/unit/__pycache__/conftest.cpython-311-pytest-8.3.3.pyc", 500),
    ("tests/integration/.pytest_cache/v/cache/nodeids", 100),
    ("tests/output/.tmp/sanity/result.json", 100),
    ("tests/output/junit/python3.11-sanity.xml", 100),
    (".ansible/roles/placeholder", 10),
    (".cache/ansible-compat/abc/collections/placeholder", 10),
    (".ruff_cache/0.6.0/cache", 100),
    (".mypy_cache/3.11/cache.db", 100),
    (".tox/py311/placeholder", 10),
    (".coverage", 100),
    ("htmlcov/index.html", 100),
    ("build/lib/placeholder.py", 10),
    ("dist/airgap_uv-0.1.0.tar.gz", 100),
    ("airgap-uv-0.1.0.tar.gz", 200_000),
    ("roles/uv_deploy/tasks/.main.yml.swp", 100),
    ("roles/uv_deploy/tasks/main.yml~", 100),
    ("playbooks/deploy_offline.retry", 10),
    (".idea/workspace.xml", 100),
    (".vscode/settings.json", 10),
    (".DS_Store", 10),
]

# A file the collection must carry, for each kind of content.
REQUIRED = ["README.md", "MANIFEST.json", "FILES.json", "meta/runtime.yml", "plugins/modules/sync.py",
            "plugins/action/wheelhouse.py", "plugins/plugin_utils/_lock.py", "roles/uv_deploy/tasks/main.yml",
            "roles/uv_deploy/meta/argument_specs.yml", "playbooks/deploy_offline.yml",
            "examples/hello-airgap/pyproject.toml", "changelogs/changelog.yaml"]

# Directories of the checkout that are tooling, not collection.
NOT_COLLECTION_DIRS = ("bench", ".ci", "tests/output")
JUNK_NAMES = {".venv", "venv", "__pycache__", "htmlcov", "build", "dist"}


def _git(*argv: str) -> str:
    return subprocess.run(["git", "-C", REPO, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, check=True).stdout


def _source_files() -> list[str]:
    """The checkout's files that git does not ignore: tracked plus new, not deleted."""
    names = _git("ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    return sorted({name for name in names if name and os.path.isfile(os.path.join(REPO, name))})


def _ignored_paths() -> list[str]:
    """Paths git reports as ignored in the real checkout now (directories end with /)."""
    out = _git("status", "--porcelain=v1", "-z", "--ignored=matching", "--untracked-files=all")
    return sorted(entry[3:] for entry in out.split("\0") if entry.startswith("!! "))


def _plant(root: str, relpath: str, size: int) -> None:
    path = os.path.join(root, relpath)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(os.urandom(size))


def _forbidden(name: str) -> str:
    """Why NAME (a tarball member) is not collection content, or ''."""
    parts = name.split("/")
    if any(part.startswith(".") for part in parts):
        return "dotfile"
    if any(part in JUNK_NAMES or part.endswith(".egg-info") for part in parts):
        return "cache, virtualenv or build output"
    if name.endswith((".pyc", ".pyo", ".tar.gz", ".whl", ".retry", ".swp", "~")):
        return "compiled, built or editor file"
    if parts[-1] == "uv.lock":
        return "generated lock"
    if any(name == top or name.startswith(top + "/") for top in NOT_COLLECTION_DIRS):
        return "tooling directory"
    return ""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(tarball path, member names, planted junk paths, source files) of a build from a dirty copy."""
    base = tmp_path_factory.mktemp("collection-build")
    tree = base / "tree"
    sources = _source_files()
    for name in sources:
        target = tree / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.join(REPO, name), str(target))
    planted = []
    for relpath, size in JUNK:
        _plant(str(tree), relpath, size)
        planted.append(relpath)
    for relpath in _ignored_paths():
        if relpath.endswith("/"):
            relpath += "placeholder-from-the-real-checkout"
        if not os.path.lexists(tree / relpath):
            _plant(str(tree), relpath, 16)
            planted.append(relpath)
    out = base / "out"
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible-galaxy"), "collection", "build", "--output-path", str(out),
                           str(tree)], env=ansible_env(), cwd=str(base), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stdout
    tarballs = [name for name in os.listdir(out) if name.endswith(".tar.gz")]
    assert tarballs == ["airgap-uv-0.1.0.tar.gz"], (tarballs, proc.stdout)
    tarball = str(out / tarballs[0])
    with tarfile.open(tarball) as archive:
        members = [member.name[2:] if member.name.startswith("./") else member.name
                   for member in archive.getmembers() if member.isfile()]
    return tarball, members, planted, sources


def test_tarball_holds_the_collection_only(built):
    tarball, members, planted, sources = built
    size = os.path.getsize(tarball)
    assert size < MAX_TARBALL_BYTES, "%s is %d bytes:\n%s" % (tarball, size, "\n".join(sorted(members)))
    bad = {name: _forbidden(name) for name in members if _forbidden(name)}
    assert not bad, bad
    leaked = sorted(name for name in members for junk in planted if name == junk or name.startswith(junk + "/"))
    assert not leaked, leaked
    # Nothing but the checkout's own files (and the two manifests the build writes).
    strangers = sorted(set(members) - set(sources) - {"MANIFEST.json", "FILES.json"})
    assert not strangers, strangers
    missing = sorted(set(REQUIRED) - set(members))
    assert not missing, missing
    # Every source file that is collection content made it in (galaxy.yml becomes MANIFEST.json).
    dropped = sorted(name for name in sources
                     if not _forbidden(name) and name not in members and name != "galaxy.yml")
    assert not dropped, dropped


def _plugins(root: str) -> dict[str, list[str]]:
    """{ansible-doc type: sorted plugin names} found in the installed collection's plugins/."""
    found: dict[str, set] = {}
    plugins_dir = os.path.join(root, "plugins")
    for kind in sorted(os.listdir(plugins_dir)):
        # Doc fragments are read into the modules' docs, not documented by themselves.
        if kind in ("module_utils", "plugin_utils", "doc_fragments") or not os.path.isdir(os.path.join(plugins_dir, kind)):
            continue
        # Action plugins are documented as modules (plugins/modules/<name>.py holds the doc).
        doc_type = "module" if kind in ("modules", "action") else kind
        for name in os.listdir(os.path.join(plugins_dir, kind)):
            if name.endswith(".py") and not name.startswith("_") and name != "__init__.py":
                found.setdefault(doc_type, set()).add(name[:-3])
    return {key: sorted(value) for key, value in found.items()}


def test_installed_tarball_documents_every_plugin_and_role(built, tmp_path):
    tarball = built[0]
    collections = tmp_path / "collections"
    # Only the fresh path: the dev venv's link to this checkout must not answer instead.
    config = tmp_path / "ansible.cfg"
    config.write_text("[defaults]\n", encoding="utf-8")
    env = ansible_env(ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
                      ANSIBLE_CONFIG=str(config))
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible-galaxy"), "collection", "install", "--offline",
                           "-p", str(collections), tarball], env=env, cwd=str(tmp_path),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stdout
    installed = collections / "ansible_collections" / "airgap" / "uv"
    assert (installed / "MANIFEST.json").is_file(), proc.stdout

    def doc(*argv: str) -> str:
        run = subprocess.run([os.path.join(VENV_BIN, "ansible-doc"), *argv], env=env, cwd=str(tmp_path),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False, timeout=60)
        # ansible-doc exits 0 for a plugin it cannot find or load: its warnings say so.
        assert run.returncode == 0 and not run.stderr.strip(), (argv, run.stdout[-2000:], run.stderr)
        return run.stdout

    plugins = _plugins(str(installed))
    assert set(plugins) == {"module"}, plugins
    assert plugins["module"] == ["bundle", "bundle_import", "fleet_report", "mirror_feed", "push", "sync", "target_facts",
                                 "targets_file", "wheelhouse", "workstation_cache", "workstation_seed"], plugins
    listed = doc("-t", "module", "-l", "airgap.uv")
    assert sorted(line.split()[0] for line in listed.splitlines() if line.strip()) == \
        ["airgap.uv." + name for name in plugins["module"]], listed
    for doc_type, names in plugins.items():
        for name in names:
            text = doc("-t", doc_type, "airgap.uv." + name)
            header = text.replace("*", "").splitlines()[0] if text else ""
            assert header.startswith("> %s airgap.uv.%s (%s/" % (doc_type.upper(), name, installed)), text[:500]
            assert "EXAMPLES" in text and "OPTIONS" in text.upper(), text[:2000]
    # The action plugins' shared attributes come from the collection's doc fragment, installed with it.
    assert "bypass_host_loop" in doc("-t", "module", "airgap.uv.bundle")

    roles = sorted(os.listdir(installed / "roles"))
    assert roles == ["uv_deploy", "uv_mirror", "uv_workstation"], roles
    for role in roles:
        text = doc("-t", "role", "airgap.uv." + role)
        # Without colour, ansible-doc marks bold text with asterisks.
        plain = text.replace("*", "")
        assert plain.startswith("> ROLE: airgap.uv.%s (%s)" % (role, installed)), text[:500]
        assert "ENTRY POINT: main - " in plain, text[:3000]
    text = doc("-t", "role", "airgap.uv.uv_deploy").replace("*", "")
    for entry_point in ("main", "wheelhouse", "install", "rollback"):
        assert "ENTRY POINT: %s - " % entry_point in text, text[:3000]
    assert "uv_deploy_keep_releases" in text and "uv_deploy_network" in text, text[:3000]
    assert "uv_workstation_tools" in doc("-t", "role", "airgap.uv.uv_workstation")
