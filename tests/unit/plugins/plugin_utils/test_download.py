# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""ArtifactStore against a real HTTP server on loopback."""

from __future__ import annotations

import hashlib
import http.server
import os
import threading
import time

import pytest

from ansible_collections.airgap.uv.plugins.plugin_utils._download import (
    ArtifactStore,
    DownloadError,
    FileRequest,
    redact_url,
)

PAYLOAD = b"wheel bytes " * 50000
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    # path -> list of status codes to answer before serving (consumed per request)
    script: dict = {}
    hits: dict = {}

    def do_GET(self):  # noqa: N802 (http.server API)
        self.hits[self.path] = self.hits.get(self.path, 0) + 1
        queue = self.script.get(self.path, [])
        if queue:
            code = queue.pop(0)
            self.send_response(code)
            self.end_headers()
            return
        body = b"tampered" + PAYLOAD[8:] if self.path.startswith("/bad") else PAYLOAD
        if self.path.startswith("/missing"):
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    _Handler.script = {}
    _Handler.hits = {}
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def _leftovers(root):
    return [name for d, dummy, files in os.walk(root) for name in files if name.startswith(".incoming-")]


def test_download_verifies_and_caches(server, tmp_path):
    store = ArtifactStore(str(tmp_path), workers=4, backoff=0.01)
    request = FileRequest(filename="a-1-py3-none-any.whl", sha256=PAYLOAD_SHA, url=server + "/ok/a.whl")
    assert store.ensure([request]) == {PAYLOAD_SHA: "downloaded"}
    with open(store.path_for(PAYLOAD_SHA), "rb") as handle:
        assert handle.read() == PAYLOAD
    # Warm: no request at all.
    again = ArtifactStore(str(tmp_path))
    assert again.ensure([request]) == {PAYLOAD_SHA: "reused"}
    assert again.requests_made == 0
    assert _Handler.hits == {"/ok/a.whl": 1}


def test_hash_mismatch_discards_file(server, tmp_path):
    store = ArtifactStore(str(tmp_path), backoff=0.01)
    request = FileRequest(filename="b.whl", sha256=PAYLOAD_SHA, url=server + "/bad/b.whl", label="b 1.0")
    with pytest.raises(DownloadError, match=r"b 1\.0: .*uv.lock records .*discarded"):
        store.ensure([request])
    assert not store.has(PAYLOAD_SHA)
    assert _leftovers(str(tmp_path)) == []


def test_retries_5xx_then_succeeds(server, tmp_path):
    _Handler.script["/flaky/c.whl"] = [503, 502]
    store = ArtifactStore(str(tmp_path), retries=3, backoff=0.01)
    store.ensure([FileRequest(filename="c.whl", sha256=PAYLOAD_SHA, url=server + "/flaky/c.whl")])
    assert _Handler.hits["/flaky/c.whl"] == 3


def test_gives_up_after_retries(server, tmp_path):
    _Handler.script["/down/d.whl"] = [503] * 10
    store = ArtifactStore(str(tmp_path), retries=2, backoff=0.01)
    with pytest.raises(DownloadError, match="after 3 attempts"):
        store.ensure([FileRequest(filename="d.whl", sha256=PAYLOAD_SHA, url=server + "/down/d.whl")])
    assert _Handler.hits["/down/d.whl"] == 3
    assert _leftovers(str(tmp_path)) == []


def test_404_is_not_retried_and_names_the_file(server, tmp_path):
    store = ArtifactStore(str(tmp_path), retries=3, backoff=0.01)
    with pytest.raises(DownloadError, match=r"e 2\.0: .*HTTP 404"):
        store.ensure([FileRequest(filename="e.whl", sha256=PAYLOAD_SHA, url=server + "/missing/e.whl",
                                  label="e 2.0")])
    assert _Handler.hits["/missing/e.whl"] == 1


def test_every_failure_is_reported(server, tmp_path):
    store = ArtifactStore(str(tmp_path), retries=0, backoff=0.01)
    other = hashlib.sha256(b"x").hexdigest()
    with pytest.raises(DownloadError) as info:
        store.ensure([FileRequest(filename="f.whl", sha256=other, url=server + "/missing/f.whl", label="f"),
                      FileRequest(filename="g.whl", sha256=PAYLOAD_SHA, url=server + "/bad/g.whl", label="g")])
    assert "f: " in str(info.value) and "g: " in str(info.value)


def test_local_path_is_copied_and_verified(tmp_path):
    source = tmp_path / "h-1.0-py3-none-any.whl"
    source.write_bytes(PAYLOAD)
    store = ArtifactStore(str(tmp_path / "store"))
    assert store.ensure([FileRequest(filename=source.name, sha256=PAYLOAD_SHA, path=str(source))]) == {
        PAYLOAD_SHA: "copied"}
    source.write_bytes(b"changed")
    fresh = ArtifactStore(str(tmp_path / "store2"))
    with pytest.raises(DownloadError, match="changed after locking"):
        fresh.ensure([FileRequest(filename=source.name, sha256=PAYLOAD_SHA, path=str(source))])


def test_credentials_are_redacted():
    assert redact_url("https://user:secret@index.invalid/simple/x.whl") == "https://***@index.invalid/simple/x.whl"
    assert redact_url("https://index.invalid/x.whl") == "https://index.invalid/x.whl"


class _KeepAliveHandler(http.server.BaseHTTPRequestHandler):
    """HTTP/1.1 server that serves b"file N" for /N and counts connections."""

    protocol_version = "HTTP/1.1"
    connections = 0

    def setup(self):
        type(self).connections += 1
        super().setup()

    def do_GET(self):  # noqa: N802 (http.server API)
        body = ("file %s" % self.path.strip("/")).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_one_connection_serves_many_files(tmp_path):
    _KeepAliveHandler.connections = 0
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _KeepAliveHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        base = "http://127.0.0.1:%d" % httpd.server_address[1]
        requests = [FileRequest(filename="f%d.whl" % n, sha256=hashlib.sha256(b"file %d" % n).hexdigest(),
                                url="%s/%d" % (base, n)) for n in range(6)]
        store = ArtifactStore(str(tmp_path), workers=1)
        assert set(store.ensure(requests).values()) == {"downloaded"}
        assert store.requests_made == 6
        assert _KeepAliveHandler.connections == 1
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_failures_are_listed_one_by_one(server, tmp_path):
    store = ArtifactStore(str(tmp_path), retries=0, backoff=0.01)
    other = hashlib.sha256(b"x").hexdigest()
    with pytest.raises(DownloadError) as info:
        store.ensure([FileRequest(filename="f.whl", sha256=other, url=server + "/missing/f.whl", label="f"),
                      FileRequest(filename="g.whl", sha256=PAYLOAD_SHA, url=server + "/bad/g.whl", label="g")])
    assert len(info.value.errors) == 2 and str(info.value) == "; ".join(info.value.errors)
    assert [e.split(":")[0] for e in info.value.errors] == ["f", "g"]


def test_cancel_stops_fetches_and_leaves_nothing(server, tmp_path):
    store = ArtifactStore(str(tmp_path), workers=2, backoff=0.01)
    store.cancel()
    with pytest.raises(DownloadError, match=r"h 1\.0: cancelled"):
        store.ensure([FileRequest(filename="h.whl", sha256=PAYLOAD_SHA, url=server + "/ok/h.whl", label="h 1.0")])
    assert not store.has(PAYLOAD_SHA) and _leftovers(str(tmp_path)) == []
    assert _Handler.hits == {}


def test_cancel_during_a_download_discards_the_partial_file(tmp_path):
    class Slow(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server API)
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD) * 8))
            self.end_headers()
            for dummy in range(8):
                self.wfile.write(PAYLOAD)
                time.sleep(0.2)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        store = ArtifactStore(str(tmp_path), retries=0)
        threading.Timer(0.3, store.cancel).start()
        started = time.monotonic()
        with pytest.raises(DownloadError, match="cancelled"):
            store.ensure([FileRequest(filename="i.whl", sha256=PAYLOAD_SHA,
                                      url="http://127.0.0.1:%d/i.whl" % httpd.server_address[1], label="i")])
        assert time.monotonic() - started < 1.2
        assert _leftovers(str(tmp_path)) == []
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_host_name_is_looked_up_once_for_all_connections(tmp_path, monkeypatch):
    import socket

    _KeepAliveHandler.connections = 0
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _KeepAliveHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    lookups = []
    original = socket.getaddrinfo

    def counting(host, *args, **kwargs):
        if host == "localhost":
            lookups.append(host)
        return original(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", counting)
    try:
        base = "http://localhost:%d" % httpd.server_address[1]
        requests = [FileRequest(filename="f%d.whl" % n, sha256=hashlib.sha256(b"file %d" % n).hexdigest(),
                                url="%s/%d" % (base, n)) for n in range(12)]
        store = ArtifactStore(str(tmp_path), workers=4)
        assert set(store.ensure(requests).values()) == {"downloaded"}
        assert _KeepAliveHandler.connections >= 2  # several threads, several connections ...
        assert lookups == ["localhost"]  # ... one lookup
    finally:
        httpd.shutdown()
        httpd.server_close()


class _Recorder:
    """A FileRequest.consumer that notes every call."""

    def __init__(self, fail_on_feed: bool = False) -> None:
        self.calls: list = []
        self.data = bytearray()
        self.fail_on_feed = fail_on_feed

    def feed(self, block):
        self.calls.append("feed")
        self.data += block
        if self.fail_on_feed:
            raise ValueError("consumer bug")

    def finish(self):
        self.calls.append("finish")

    def abort(self):
        self.calls.append("abort")
        self.data = bytearray()


def _compact(calls):
    out = []
    for call in calls:
        if not (out and out[-1] == call == "feed"):
            out.append(call)
    return out


def test_a_consumer_sees_the_bytes_then_finish(server, tmp_path):
    store = ArtifactStore(str(tmp_path), backoff=0.01)
    consumer = _Recorder()
    request = FileRequest(filename="a.whl", sha256=PAYLOAD_SHA, url=server + "/ok/a.whl", consumer=consumer)
    assert store.ensure([request]) == {PAYLOAD_SHA: "downloaded"}
    assert bytes(consumer.data) == PAYLOAD and _compact(consumer.calls) == ["feed", "finish"]
    assert request == FileRequest(filename="a.whl", sha256=PAYLOAD_SHA, url=server + "/ok/a.whl")
    # A file the store holds already is not fed.
    again = _Recorder()
    assert store.ensure([FileRequest(filename="a.whl", sha256=PAYLOAD_SHA, url=server + "/ok/a.whl",
                                     consumer=again)]) == {PAYLOAD_SHA: "reused"}
    assert again.calls == []


def test_a_consumer_is_aborted_on_a_hash_mismatch(server, tmp_path):
    store = ArtifactStore(str(tmp_path), backoff=0.01, retries=0)
    consumer = _Recorder()
    with pytest.raises(DownloadError, match="uv.lock records"):
        store.ensure([FileRequest(filename="b.whl", sha256=PAYLOAD_SHA, url=server + "/bad/b.whl", consumer=consumer)])
    # Blocks not consumed yet when the mismatch shows are dropped: the consumer may see none.
    assert _compact(consumer.calls) in (["feed", "abort"], ["abort"]) and consumer.data == b""


def test_a_retry_feeds_the_consumer_from_byte_0(server, tmp_path, monkeypatch):
    store = ArtifactStore(str(tmp_path), backoff=0.01, retries=2)
    original = ArtifactStore._open
    attempts = []

    class Broken:
        """The first attempt's connection drops after one block."""

        def __init__(self, response):
            self.response, self.reads = response, 0

        def read(self, size=-1):
            self.reads += 1
            if self.reads == 2:
                raise ConnectionResetError("reset by peer")
            return self.response.read(size)

        def close(self):
            self.response.close()

    def opening(self, request):
        attempts.append(1)
        response = original(self, request)
        return Broken(response) if len(attempts) == 1 else response

    monkeypatch.setattr(ArtifactStore, "_open", opening)
    consumer = _Recorder()
    store.ensure([FileRequest(filename="c.whl", sha256=PAYLOAD_SHA, url=server + "/ok/c.whl", consumer=consumer)])
    assert len(attempts) == 2
    # The first attempt's block may be dropped unconsumed by its abort; the retry starts over.
    assert _compact(consumer.calls) in (["feed", "abort", "feed", "finish"], ["abort", "feed", "finish"])
    assert bytes(consumer.data) == PAYLOAD


def test_a_failing_consumer_does_not_fail_the_download(server, tmp_path):
    store = ArtifactStore(str(tmp_path), backoff=0.01)
    consumer = _Recorder(fail_on_feed=True)
    request = FileRequest(filename="a.whl", sha256=PAYLOAD_SHA, url=server + "/ok/a.whl", consumer=consumer)
    assert store.ensure([request]) == {PAYLOAD_SHA: "downloaded"}
    assert consumer.calls == ["feed", "abort"] and store.has(PAYLOAD_SHA)


def test_cancel_removes_what_a_consumer_staged(tmp_path):
    import io
    import zipfile

    from ansible_collections.airgap.uv.plugins.plugin_utils._uv_tool import UvBinaryStream

    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("uv-1.0.data/scripts/uv", PAYLOAD * 8)
    wheel = sink.getvalue()
    parts = [wheel[:len(wheel) // 2], wheel[len(wheel) // 2:]]  # more than one 1 MiB block each

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server API)
            self.send_response(200)
            self.send_header("Content-Length", str(len(wheel)))
            self.end_headers()
            self.wfile.write(parts[0])
            self.wfile.flush()
            time.sleep(0.8)
            self.wfile.write(parts[1])

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        store = ArtifactStore(str(tmp_path / "store"), retries=0)
        consumer = UvBinaryStream(str(tmp_path / "staging"))
        staged = []

        def cancel():
            staged.extend(os.listdir(tmp_path / "staging"))
            store.cancel()

        threading.Timer(0.3, cancel).start()
        with pytest.raises(DownloadError, match="cancelled"):
            store.ensure([FileRequest(filename="uv-1.0-py3-none-any.whl", sha256=hashlib.sha256(wheel).hexdigest(),
                                      url="http://127.0.0.1:%d/uv.whl" % httpd.server_address[1], consumer=consumer)])
        assert len(staged) == 1  # uv was being written ...
        assert os.listdir(tmp_path / "staging") == []  # ... and is gone
        assert _leftovers(str(tmp_path)) == []
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_slow_consumer_runs_beside_the_download_and_sees_every_block_before_finish(server, tmp_path):
    class Slow(_Recorder):
        def __init__(self):
            super().__init__()
            self.threads = set()
            self.complete_at_finish = None

        def feed(self, block):
            self.threads.add(threading.get_ident())
            time.sleep(0.01)
            super().feed(block)

        def finish(self):
            self.complete_at_finish = bytes(self.data) == PAYLOAD
            super().finish()

    store = ArtifactStore(str(tmp_path), backoff=0.01, workers=1)
    consumer = Slow()
    downloading = set()
    original = ArtifactStore._download

    def noting(self, request):
        downloading.add(threading.get_ident())
        return original(self, request)

    store._download = noting.__get__(store)  # pylint: disable=attribute-defined-outside-init
    store.ensure([FileRequest(filename="a.whl", sha256=PAYLOAD_SHA, url=server + "/ok/a.whl", consumer=consumer)])
    assert consumer.complete_at_finish is True and _compact(consumer.calls) == ["feed", "finish"]
    assert consumer.threads and not consumer.threads & downloading
