# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""End to end: a uv project locked against a password-protected pypiserver on loopback.

The wheelhouse must fetch the private wheel with the credentials the user already gave uv
(UV_INDEX_<NAME>_* variables, a netrc file, an index URL), fail clearly without them, and
never write or report the username or password anywhere.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import http.server
import json
import os
import re
import subprocess
import threading

import pytest

from ansible_collections.airgap.uv.plugins.plugin_utils._credentials import CredentialProvider
from ansible_collections.airgap.uv.plugins.plugin_utils._download import ArtifactStore, DownloadError, FileRequest
from ansible_collections.airgap.uv.plugins.plugin_utils._selection import SelectionOptions
from ansible_collections.airgap.uv.plugins.plugin_utils._wheelhouse import (
    WheelhouseBuilder,
    WheelhouseError,
    WheelhouseOptions,
)

TARGET = "cpython3.11.2-linux-x86_64-glibc2.36"
PRIVATE_PACKAGE = "airgap-private-demo"

pytestmark = pytest.mark.usefixtures("isolated_index_env")


def sha256_of(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


@pytest.fixture(scope="module")
def project(private_index, uv_executable, tmp_path_factory) -> str:
    """A uv project needing airgap-private-demo (private only) and markupsafe, idna; locked with env credentials."""
    server = private_index.server
    assert private_index.package == PRIVATE_PACKAGE
    directory = tmp_path_factory.mktemp("consumer")
    (directory / "pyproject.toml").write_text(
        '[project]\nname = "airgap-consumer"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
        'dependencies = ["%s", "markupsafe", "idna"]\n\n[tool.uv]\npackage = false\n\n'
        '[[tool.uv.index]]\nname = "private"\nurl = "%s"\n' % (PRIVATE_PACKAGE, server.simple_url),
        encoding="utf-8")
    proc = subprocess.run([uv_executable, "lock", "--directory", str(directory)], env=server.uv_env("private"),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    assert proc.returncode == 0, proc.stdout
    lock = (directory / "uv.lock").read_text(encoding="utf-8")
    assert server.url + "packages/airgap_private_demo-1.0.0-py3-none-any.whl" in lock
    # uv itself keeps credentials out of the lock.
    assert server.username not in lock and server.password not in lock
    return str(directory)


def make_builder(project, dest, cache, facts, uv, check_lock=True, progress=None) -> WheelhouseBuilder:
    options = WheelhouseOptions(project=project, dest=dest, targets={"web1": facts}, cache_dir=cache,
                                selection=SelectionOptions(no_default_groups=True), check_lock=check_lock,
                                retries=1, workers=4)
    builder = WheelhouseBuilder(options, uv=uv, progress=progress)
    if builder.store.credentials.project_dir is None:
        # What _wheelhouse.py does once it hands the project to the store (see _credentials.py):
        # the project's [[tool.uv.index]] entries name the index for UV_INDEX_PRIVATE_*.
        builder.store.credentials = CredentialProvider(project_dir=builder.project_dir)
    return builder


def assert_no_secret_in_tree(root: str, *secrets: str) -> int:
    """Every file under ROOT is free of every secret (bytes, also base64 of user:password); returns files read."""
    needles = [s.encode() for s in secrets]
    needles.append(base64.b64encode(("%s:%s" % secrets[:2]).encode()))
    count = 0
    for directory, dummy, files in os.walk(root):
        for name in files:
            path = os.path.join(directory, name)
            if os.path.islink(path):
                continue
            with open(path, "rb") as handle:
                data = handle.read()
            count += 1
            for needle in needles:
                assert needle not in data, "a credential was written into %s" % path
            for secret in secrets:
                assert secret not in name
    return count


def run_and_check(private_index, project, tmp_path, cache, facts, uv, check_lock=True):
    server = private_index.server
    messages = []
    dest = str(tmp_path / "dest")
    result = make_builder(project, dest, cache, facts, uv, check_lock=check_lock, progress=messages.append).run()

    demo = private_index.wheels[PRIVATE_PACKAGE]
    name = os.path.basename(demo)
    expected = sha256_of(demo)
    for path in (os.path.join(dest, "files", name), os.path.join(dest, "targets", TARGET, "wheelhouse", name)):
        assert sha256_of(path) == expected
    manifest = json.loads(open(os.path.join(dest, "targets", TARGET, "manifest.json"), encoding="utf-8").read())
    assert {(f.get("name"), f["sha256"]) for f in manifest["files"]} >= {(PRIVATE_PACKAGE, expected)}
    requirements = open(os.path.join(dest, "targets", TARGET, "requirements.txt"), encoding="utf-8").read()
    assert "%s==1.0.0 \\\n    --hash=sha256:%s" % (PRIVATE_PACKAGE, expected) in requirements
    assert sorted(result.targets[TARGET]["packages"]) == sorted(
        ["%s==1.0.0" % PRIVATE_PACKAGE, "idna==%s" % _version(private_index, "idna"),
         "markupsafe==%s" % _version(private_index, "markupsafe"), "six==1.17.0"])
    # six, idna, markupsafe and the demo came from the private server; uv was seeded.
    assert result.downloaded == 4 and result.changed

    secrets = (server.username, server.password)
    assert assert_no_secret_in_tree(dest, *secrets) > 5
    assert_no_secret_in_tree(cache, *secrets)
    text = repr(result) + json.dumps(dataclasses.asdict(result)) + "\n".join(messages)
    for secret in secrets:
        assert secret not in text
    return result


def _version(private_index, name):
    return os.path.basename(private_index.wheels[name]).split("-")[1]


def test_credentials_from_index_env_vars(private_index, project, tmp_path, wheelhouse_cache, linux_x86_64_facts,
                                         uv_executable, monkeypatch):
    monkeypatch.setenv("UV_INDEX_PRIVATE_USERNAME", private_index.server.username)
    monkeypatch.setenv("UV_INDEX_PRIVATE_PASSWORD", private_index.server.password)
    run_and_check(private_index, project, tmp_path, wheelhouse_cache, linux_x86_64_facts, uv_executable)


@pytest.mark.parametrize("where", ["NETRC", "HOME"])
def test_credentials_from_netrc(where, private_index, project, tmp_path, wheelhouse_cache, linux_x86_64_facts,
                                uv_executable, monkeypatch):
    if where == "NETRC":
        path = tmp_path / "my-netrc"
        monkeypatch.setenv("NETRC", str(path))
    else:
        # Keep uv on its warm cache although HOME moves.
        uv_cache = subprocess.run([uv_executable, "cache", "dir"], stdout=subprocess.PIPE, text=True,
                                  check=True).stdout.strip()
        home = tmp_path / "home"
        home.mkdir()
        path = home / ".netrc"
        monkeypatch.delenv("NETRC")
        monkeypatch.setenv("HOME", str(home))
        monkeypatch.setenv("UV_CACHE_DIR", uv_cache)
    path.write_text(private_index.server.netrc_entry())
    path.chmod(0o600)
    run_and_check(private_index, project, tmp_path, wheelhouse_cache, linux_x86_64_facts, uv_executable)


def test_credentials_in_index_url_from_uv_index(private_index, project, tmp_path, wheelhouse_cache,
                                                linux_x86_64_facts, uv_executable, monkeypatch):
    server = private_index.server
    monkeypatch.setenv("UV_INDEX", "private=http://%s:%s@127.0.0.1:%d/simple/"
                       % (server.username, server.password, server.port))
    run_and_check(private_index, project, tmp_path, wheelhouse_cache, linux_x86_64_facts, uv_executable)


def test_without_credentials_fails_clearly_and_leaves_nothing(private_index, project, tmp_path, wheelhouse_cache,
                                                              linux_x86_64_facts, uv_executable):
    dest = str(tmp_path / "dest")
    demo_sha = sha256_of(private_index.wheels[PRIVATE_PACKAGE])
    builder = make_builder(project, dest, wheelhouse_cache, linux_x86_64_facts, uv_executable, check_lock=False)
    with pytest.raises(WheelhouseError) as caught:
        builder.run()
    message = str(caught.value)
    assert "%s 1.0.0" % PRIVATE_PACKAGE in message
    assert "HTTP 401" in message and "credentials" in message
    assert "UV_INDEX_PRIVATE_USERNAME" in message and "netrc" in message
    store = os.path.join(wheelhouse_cache, "store")
    leftovers = [name for d, dummy, files in os.walk(store) for name in files if name.startswith(".incoming-")]
    assert leftovers == []
    assert not builder.store.has(demo_sha)
    assert not os.path.exists(os.path.join(dest, "files"))
    assert not os.path.exists(os.path.join(dest, "targets"))


def test_wrong_password_names_the_source_not_the_secret(private_index, project, tmp_path, wheelhouse_cache,
                                                        linux_x86_64_facts, uv_executable, monkeypatch):
    server = private_index.server
    wrong = "wrong-" + server.password[::-1]
    monkeypatch.setenv("UV_INDEX_PRIVATE_USERNAME", server.username)
    monkeypatch.setenv("UV_INDEX_PRIVATE_PASSWORD", wrong)
    builder = make_builder(project, str(tmp_path / "dest"), wheelhouse_cache, linux_x86_64_facts, uv_executable,
                           check_lock=False)
    with pytest.raises(WheelhouseError) as caught:
        builder.run()
    message = str(caught.value)
    # pypiserver answers 403 to wrong credentials.
    assert re.search(r"answered HTTP 40[13] with the credentials from "
                     r"UV_INDEX_PRIVATE_USERNAME/UV_INDEX_PRIVATE_PASSWORD", message), message
    for secret in (server.username, wrong, server.password):
        assert secret not in message


# -- credentials follow their origin across redirects -----------------------------------------


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Records the Authorization header of each request; redirects per the server's ``routes``."""

    def do_GET(self):  # noqa: N802 (http.server API)
        self.server.seen.append((self.path, self.headers.get("Authorization")))
        target = self.server.routes.get(self.path)
        if target:
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture()
def recorders():
    servers = []

    def start(routes):
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
        httpd.routes, httpd.seen = routes, []
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return httpd, "http://127.0.0.1:%d" % httpd.server_address[1]

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def test_each_redirect_hop_gets_only_its_own_origins_credentials(private_index, recorders, tmp_path):
    server = private_index.server
    six = private_index.wheels["six"]
    mirror, mirror_url = recorders({})
    mirror.routes["/packages/six.whl"] = server.url + "packages/" + os.path.basename(six)
    provider = CredentialProvider(environ={
        "UV_INDEX": "mirror=%s/simple/ private=%s" % (mirror_url, server.simple_url),
        "UV_INDEX_MIRROR_USERNAME": "mirror-user", "UV_INDEX_MIRROR_PASSWORD": "mirror-pw",
        "UV_INDEX_PRIVATE_USERNAME": server.username, "UV_INDEX_PRIVATE_PASSWORD": server.password,
    }, home=str(tmp_path))
    store = ArtifactStore(str(tmp_path / "store"), credentials=provider, retries=0)
    store.ensure([FileRequest(filename="six.whl", sha256=sha256_of(six), url=mirror_url + "/packages/six.whl")])
    assert store.has(sha256_of(six))
    # The mirror got its own credentials; the private server's stayed off the mirror.
    assert mirror.seen == [("/packages/six.whl", "Basic " + base64.b64encode(b"mirror-user:mirror-pw").decode())]


def test_redirect_to_an_unconfigured_origin_sends_no_credentials(private_index, recorders, tmp_path):
    server = private_index.server
    elsewhere, elsewhere_url = recorders({})
    mirror, mirror_url = recorders({"/f.whl": elsewhere_url + "/f.whl"})
    provider = CredentialProvider(environ={"UV_INDEX": "http://%s:%s@%s/simple/" % (
        server.username, server.password, mirror_url.split("//", 1)[1])}, home=str(tmp_path))
    store = ArtifactStore(str(tmp_path / "store"), credentials=provider, retries=0)
    with pytest.raises(DownloadError) as caught:
        store.ensure([FileRequest(filename="f.whl", sha256="0" * 64, url=mirror_url + "/f.whl", label="demo 1")])
    assert "HTTP 404" in str(caught.value)
    assert mirror.seen[0][1] is not None
    assert elsewhere.seen == [("/f.whl", None)]
    assert server.password not in str(caught.value) and server.username not in str(caught.value)
