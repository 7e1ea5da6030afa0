# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""uv.lock entries may point only inside the workspace or where its configuration points (_lock_paths)."""

from __future__ import annotations

import os
import re

import pytest

from ansible_collections.airgap.uv.plugins.plugin_utils._lock import LockError, load_lock
from ansible_collections.airgap.uv.plugins.plugin_utils._lock_paths import declared_locations, file_url_path

SHA = "a" * 64
PYPROJECT = '[project]\nname = "app"\nversion = "0.1.0"\nrequires-python = ">=3.9"\ndependencies = [%s]\n'


def lock_text(entry: str) -> str:
    return ('version = 1\nrevision = 3\nrequires-python = ">=3.9"\n\n'
            '[[package]]\nname = "app"\nversion = "0.1.0"\nsource = { virtual = "." }\n'
            'dependencies = [{ name = "evil" }]\n\n'
            '[[package]]\nname = "evil"\nversion = "1.0"\n' + entry + "\n")


WHEEL = '\nwheels = [{ filename = "evil-1.0-py3-none-any.whl", hash = "sha256:%s" }]' % SHA

# id, the package's lock lines ({out} = a directory beside the workspace), pyproject extras
# (requirement strings, [tool.uv...] text), environment, and None (accepted) or the refusal's
# expected text ({ws} = the workspace).
CASES = [
    ("absolute-path", 'source = { path = "/etc/evil-1.0-py3-none-any.whl" }' + WHEEL, "", "", {},
     "its source /etc/evil-1.0-py3-none-any.whl is outside the workspace {ws}"),
    ("absolute-path-declared", 'source = { path = "{out}/evil-1.0-py3-none-any.whl" }' + WHEEL,
     '"evil @ file://{out}/evil-1.0-py3-none-any.whl"', "", {}, None),
    ("file-url-artifact", 'source = { registry = "https://index.invalid/simple" }\n'
     'wheels = [{ url = "file:///etc/evil-1.0-py3-none-any.whl", hash = "sha256:%s" }]' % SHA, "", "", {},
     "its wheel evil-1.0-py3-none-any.whl /etc/evil-1.0-py3-none-any.whl is outside the workspace {ws}"),
    ("dotdot-directory", 'source = { directory = "../out/evil" }', "", "", {},
     "its source ../out/evil ({out}/evil) is outside the workspace {ws}"),
    ("dotdot-directory-declared", 'source = { directory = "../out/evil" }', "",
     '[tool.uv.sources]\nevil = { path = "../out/evil" }\n', {}, None),
    ("dotdot-declared-in-a-member", 'source = { directory = "../out/evil" }', "", "", {}, None),
    ("dotdot-inside", 'source = { directory = "libs/../libs/evil" }', "", "", {}, None),
    ("registry-dir-outside", 'source = { registry = "../out/wheels" }\n'
     'wheels = [{ path = "evil-1.0-py3-none-any.whl", hash = "sha256:%s" }]' % SHA, "", "", {},
     "its source ../out/wheels ({out}/wheels) is outside the workspace {ws}"),
    ("registry-dir-find-links", 'source = { registry = "../out/wheels" }\n'
     'wheels = [{ path = "evil-1.0-py3-none-any.whl", hash = "sha256:%s" }]' % SHA, "",
     '[tool.uv]\nfind-links = ["../out/wheels"]\n', {}, None),
    ("registry-dir-env", 'source = { registry = "{out}/wheels" }\n'
     'wheels = [{ path = "evil-1.0-py3-none-any.whl", hash = "sha256:%s" }]' % SHA, "", "",
     {"UV_FIND_LINKS": "https://index.invalid/links,{out}/wheels"}, None),
    ("artifact-escapes-registry", 'source = { registry = "wheels" }\n'
     'wheels = [{ path = "../../etc/evil-1.0-py3-none-any.whl", hash = "sha256:%s" }]' % SHA, "", "", {},
     "its wheel evil-1.0-py3-none-any.whl {parent}/etc/evil-1.0-py3-none-any.whl is outside the workspace {ws}"),
    ("git-file-url", 'source = { git = "file://{out}/repo?rev=v1#%s" }' % ("b" * 40), "", "", {},
     "its source file://{out}/repo?rev=v1#%s ({out}/repo) is outside the workspace {ws}" % ("b" * 40)),
    ("git-file-url-declared", 'source = { git = "file://{out}/repo?rev=v1#%s" }' % ("b" * 40),
     '"evil @ git+file://{out}/repo@v1"', "", {}, None),
    ("url-file-sdist", 'source = { url = "file://{out}/evil-1.0.tar.gz" }\nsdist = { hash = "sha256:%s" }' % SHA,
     "", "", {}, "its source file://{out}/evil-1.0.tar.gz ({out}/evil-1.0.tar.gz) is outside the workspace {ws}"),
    ("windows-absolute", 'source = { path = "C:\\\\\\\\evil\\\\\\\\evil-1.0-py3-none-any.whl" }' + WHEEL, "", "", {},
     "is an absolute Windows path"),
    ("https-registry", 'source = { registry = "https://index.invalid/simple" }\n'
     'wheels = [{ url = "https://files.index.invalid/evil-1.0-py3-none-any.whl", hash = "sha256:%s" }]' % SHA,
     "", "", {}, None),
]


@pytest.mark.parametrize("entry, requirements, tool, env, refusal", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_lock_places(tmp_path, request, entry, requirements, tool, env, refusal):
    workspace, out = tmp_path / "ws", tmp_path / "out"
    (workspace / "libs" / "evil").mkdir(parents=True)
    (out / "evil").mkdir(parents=True)

    def fill(text):
        return text.replace("{out}", str(out)).replace("{ws}", str(workspace)).replace("{parent}", str(tmp_path))

    (workspace / "pyproject.toml").write_text(fill(PYPROJECT % requirements + tool))
    if request.node.callspec.id == "dotdot-declared-in-a-member":
        member = workspace / "packages" / "member"
        member.mkdir(parents=True)
        (member / "pyproject.toml").write_text(
            '[project]\nname = "member"\nversion = "0"\n[tool.uv.sources]\nevil = { path = "../../../out/evil" }\n')
    (workspace / "uv.lock").write_text(fill(lock_text(entry)))
    environ = {key: fill(value) for key, value in env.items()}
    declared = declared_locations(str(workspace), environ)
    if refusal is None:
        lock = load_lock(str(workspace / "uv.lock"), declared=declared)
        assert lock.find_unique("evil").version == "1.0"
        return
    with pytest.raises(LockError) as caught:
        load_lock(str(workspace / "uv.lock"), declared=declared)
    message = str(caught.value)
    assert message.startswith(str(workspace / "uv.lock") + ": package `evil` 1.0: "), message
    assert fill(refusal) in message, message
    assert "re-create it with `uv lock`" in message and "declare its location" in message


def test_a_symbolic_link_inside_the_workspace_does_not_lead_outside(tmp_path):
    workspace = tmp_path / "ws"
    (workspace / "vendor").mkdir(parents=True)
    secret = tmp_path / "secret-1.0-py3-none-any.whl"
    secret.write_bytes(b"not yours")
    os.symlink(secret, workspace / "vendor" / "evil-1.0-py3-none-any.whl")
    (workspace / "pyproject.toml").write_text(PYPROJECT % "")
    (workspace / "uv.lock").write_text(lock_text('source = { path = "vendor/evil-1.0-py3-none-any.whl" }' + WHEEL))
    with pytest.raises(LockError, match=r"package `evil` 1\.0: its source vendor/evil-1\.0-py3-none-any\.whl \(.*\) "
                                        r"leads through a symbolic link to %s" % re.escape(str(secret))):
        load_lock(str(workspace / "uv.lock"), declared=declared_locations(str(workspace), {}))


def test_by_default_the_workspace_declares(tmp_path):
    (tmp_path / "uv.lock").write_text(lock_text('source = { directory = "/" }'))
    with pytest.raises(LockError, match=r"its source / is outside the workspace"):
        load_lock(str(tmp_path / "uv.lock"))


@pytest.mark.parametrize("url, path", [
    ("file:///srv/repo", "/srv/repo"),
    ("git+file:///srv/repo@v1.0", "/srv/repo"),
    ("git+file:///srv/repo@v1.0#subdirectory=python", "/srv/repo"),
    ("file:///srv/repo?rev=v1#" + "b" * 40, "/srv/repo"),
    ("file:///srv/a%20b/x.whl", "/srv/a b/x.whl"),
    ("file:///srv/user@host/x.whl", "/srv/user@host/x.whl"),
])
def test_file_url_path(url, path):
    assert file_url_path(url) == path


def test_without_declared_the_parser_reads_the_workspace_configuration(tmp_path):
    workspace, out = tmp_path / "ws", tmp_path / "out"
    (out / "evil").mkdir(parents=True)
    workspace.mkdir()
    (workspace / "uv.lock").write_text(lock_text('source = { directory = "../out/evil" }'))
    (workspace / "pyproject.toml").write_text(PYPROJECT % "")
    with pytest.raises(LockError, match=r"its source \.\./out/evil .* is outside the workspace"):
        load_lock(str(workspace / "uv.lock"))
    (workspace / "pyproject.toml").write_text(PYPROJECT % "" + '[tool.uv.sources]\nevil = { path = "../out/evil" }\n')
    assert load_lock(str(workspace / "uv.lock")).find_unique("evil").local_path == str(out / "evil")
