# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""WheelhouseBuilder against artifacts served on loopback (and the real uv for the uv binary)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import re
import shutil
import subprocess
import threading

import pytest

from ansible_collections.airgap.uv.plugins.module_utils._selection import SelectionOptions
from ansible_collections.airgap.uv.plugins.module_utils._wheelhouse import (
    WheelhouseBuilder,
    WheelhouseError,
    WheelhouseOptions,
)

from test_target import facts  # same directory: pytest puts it on sys.path

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.realpath(__file__)), "..", "..", "..", ".."))
UV = shutil.which("uv") or os.path.join(REPO, ".venv", "bin", "uv")
ALPHA = b"alpha wheel " * 1000
BETA = b"beta wheel " * 1000


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    (root / "alpha-1.0-py3-none-any.whl").write_bytes(ALPHA)
    (root / "beta-2.0-py3-none-any.whl").write_bytes(BETA)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield "http://127.0.0.1:%d" % httpd.server_address[1], root
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def uv_cache(tmp_path_factory):
    """One controller cache for the module, so the real uv wheel is fetched once."""
    return str(tmp_path_factory.mktemp("airgap-cache"))


def make_project(directory, base, beta_sha=None, beta_name="beta-2.0-py3-none-any.whl"):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "pyproject.toml").write_text(
        '[project]\nname = "demo"\nversion = "0.1.0"\nrequires-python = ">=3.9"\n'
        'dependencies = ["alpha", "beta"]\n[tool.uv]\npackage = false\n')
    (directory / "uv.lock").write_text(f'''version = 1
revision = 3
requires-python = ">=3.9"

[[package]]
name = "alpha"
version = "1.0"
source = {{ registry = "{base}/simple" }}
wheels = [
    {{ url = "{base}/alpha-1.0-py3-none-any.whl", hash = "sha256:{sha(ALPHA)}", size = {len(ALPHA)} }},
]

[[package]]
name = "beta"
version = "2.0"
source = {{ registry = "{base}/simple" }}
wheels = [
    {{ url = "{base}/{beta_name}", hash = "sha256:{beta_sha or sha(BETA)}", size = {len(BETA)} }},
]

[[package]]
name = "demo"
version = "0.1.0"
source = {{ virtual = "." }}
dependencies = [
    {{ name = "alpha" }},
    {{ name = "beta" }},
]
''')
    return directory


def build(project, dest, cache, check_mode=False):
    options = WheelhouseOptions(project=str(project), dest=str(dest), targets={"web1": facts(), "web2": facts()},
                                selection=SelectionOptions(), cache_dir=cache, check_lock=False, retries=0)
    return WheelhouseBuilder(options, uv=UV, check_mode=check_mode).run()


def snapshot(directory):
    result = {}
    for root, dummy, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                result[os.path.relpath(path, directory)] = sha(handle.read())
    return result


def test_build_noop_and_check_mode(served, uv_cache, tmp_path):
    base, dummy = served
    project = make_project(tmp_path / "project", base)
    dest = tmp_path / "wheelhouse"
    first = build(project, dest, uv_cache)
    assert first.changed
    target = "cpython3.11.2-linux-x86_64-glibc2.36"
    assert first.hosts == {"web1": {"target": target, "path": str(dest / "targets" / target)},
                           "web2": {"target": target, "path": str(dest / "targets" / target)}}
    requirements = (dest / "targets" / target / "requirements.txt").read_text()
    assert "alpha==1.0 \\\n    --hash=sha256:%s" % sha(ALPHA) in requirements
    assert os.access(dest / "targets" / target / "bin" / "uv", os.X_OK)
    manifest = json.loads((dest / "manifest.json").read_text())
    expected = {"sha256": sha(BETA), "size": len(BETA), "targets": [target]}
    assert manifest["files"]["beta-2.0-py3-none-any.whl"] == expected
    before = snapshot(dest)
    again = build(project, dest, uv_cache)
    assert not again.changed and again.requests == 0 and again.downloaded == 0
    assert snapshot(dest) == before
    # Check mode on a changed lock: reports the change, writes nothing.
    changed_project = make_project(tmp_path / "project2", base, beta_name="beta-2.0-py3-none-any.whl")
    (changed_project / "uv.lock").write_text((changed_project / "uv.lock").read_text().replace(
        '{ name = "beta" },\n]', ']'))
    predicted = build(changed_project, dest, uv_cache, check_mode=True)
    assert predicted.changed
    assert snapshot(dest) == before


def test_hash_mismatch_keeps_previous_wheelhouse(served, uv_cache, tmp_path):
    base, dummy = served
    dest = tmp_path / "wheelhouse"
    build(make_project(tmp_path / "good", base), dest, uv_cache)
    before = snapshot(dest)
    bad = make_project(tmp_path / "bad", base, beta_sha=sha(b"something else"))
    with pytest.raises(WheelhouseError, match=r"beta 2\.0: .*uv\.lock records .*discarded"):
        build(bad, dest, uv_cache)
    assert snapshot(dest) == before


@pytest.mark.parametrize("evil", ["..%2F..%2Fbeta-2.0-py3-none-any.whl", "..", "%2E%2E"])
def test_path_traversal_in_lock_is_refused(served, uv_cache, tmp_path, evil):
    base, dummy = served
    project = make_project(tmp_path / "evil", base, beta_name=evil)
    dest = tmp_path / "wheelhouse"
    with pytest.raises(WheelhouseError, match="beta"):
        build(project, dest, uv_cache)
    assert not os.path.exists(dest / "files")


def test_disk_full_midway_leaves_no_partial_files(served, uv_cache, tmp_path):
    if os.geteuid() != 0:
        pytest.fail("mounting the small file system for this test needs root")
    base, dummy = served
    project = make_project(tmp_path / "project", base)
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], check=True)
    try:
        dest = small / "wheelhouse"
        # The uv binary (tens of MB) cannot fit: publishing fails part way.
        with pytest.raises(WheelhouseError, match=r"No space left on device.*previous wheelhouse is unchanged"):
            build(project, dest, uv_cache)
        leftovers = [name for name in snapshot(dest) if ".incoming-" in name or "/." in "/" + name]
        assert leftovers == []
    finally:
        subprocess.run(["umount", str(small)], check=True)


@pytest.mark.parametrize("required, ok", [("==0.13.8", True), ("0.13.8", True), (">=0.14", False),
                                          ("<0.13", False)])
def test_required_version_is_honoured(served, uv_cache, tmp_path, required, ok):
    base, dummy = served
    project = make_project(tmp_path / "project", base)
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + 'required-version = "%s"\n' % required)
    options = WheelhouseOptions(project=str(project), dest=str(tmp_path / "wh"), targets={"web1": facts()},
                                cache_dir=uv_cache, check_lock=False, uv_version="0.13.8")
    builder = WheelhouseBuilder(options, uv=UV)
    if ok:
        assert builder.run().uv_version == "0.13.8"
    else:
        with pytest.raises(WheelhouseError, match=r"required-version '%s', so uv 0\.13\.8 would refuse" % re.escape(required)):
            builder.run()


@pytest.mark.uv_lock
def test_lock_made_with_exclude_newer_on_the_command_line_is_current(uv_cache, tmp_path):
    """uv lock --check must use the cut-off the lock records, or a current lock looks stale."""
    project = tmp_path / "cutoff"
    project.mkdir()
    (project / "pyproject.toml").write_text('[project]\nname = "cutoff"\nversion = "0"\nrequires-python = ">=3.9"\n'
                                            'dependencies = ["six"]\n[tool.uv]\npackage = false\n')
    subprocess.run([UV, "lock", "--quiet", "--exclude-newer", "2024-01-01T00:00:00Z", "--directory", str(project)],
                   check=True)
    options = WheelhouseOptions(project=str(project), dest=str(tmp_path / "wh"), targets={"web1": facts()},
                                cache_dir=uv_cache, check_lock=True, uv_version="0.13.8")
    result = WheelhouseBuilder(options, uv=UV).run()
    assert result.targets["cpython3.11.2-linux-x86_64-glibc2.36"]["packages"] == ["six==1.16.0"]
    # A pyproject change the lock does not reflect is still caught.
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('["six"]', '["six", "idna"]'))
    with pytest.raises(WheelhouseError, match=r"does not match pyproject\.toml"):
        WheelhouseBuilder(options, uv=UV).run()
