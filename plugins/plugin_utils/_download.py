# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Content-addressed artifact store on the controller, filled by verified, parallel downloads.

Every file is stored once under its sha256 and only ever appears there complete and
verified: bytes stream into a temporary file in the same directory while being hashed, and
the rename happens only after the digest matched. A lock that changed downloads only the
files the store does not hold yet; a warm run opens no connection at all.

Private indexes: each request carries the ``Authorization`` header that
:class:`~._credentials.CredentialProvider` finds for its URL in the user's uv, netrc and
environment configuration. Redirects are followed here, not by urllib, so a header only
ever goes to the origin its credentials were configured for. No credential reaches a
message, a progress line, a result or a file: URLs are shown without userinfo and the
text of lower-level errors passes through :meth:`CredentialProvider.redact`.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import queue
import shutil
import socket
import ssl
import tempfile
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
import typing as t
from typing import Callable, Iterable, Optional
from urllib.error import HTTPError, URLError
from urllib.parse import urljoin, urlsplit

from ansible.module_utils.urls import open_url

from ansible_collections.airgap.uv.plugins.plugin_utils._credentials import CredentialProvider, strip_userinfo
from ansible_collections.airgap.uv.plugins.plugin_utils._os_errors import disk_full_message, is_disk_full, with_path
from ansible_collections.airgap.uv.plugins.plugin_utils._verify import FileVerifier, file_sha256

_CHUNK = 1024 * 1024
_RETRYABLE_HTTP = {408, 425, 429, 500, 502, 503, 504}
_AUTH_HTTP = {401, 403}
_REDIRECT_HTTP = {301, 302, 303, 307, 308}
_MAX_REDIRECTS = 10


class DownloadError(Exception):
    """A file could not be fetched or did not match its recorded hash.

    ``errors`` lists one message per failed file (the text is them joined by "; "), so callers
    that ran several batches can report them together.
    """

    def __init__(self, message: str, errors: Optional[list] = None) -> None:
        super().__init__(message)
        self.errors = list(errors) if errors is not None else [message]


class StreamConsumer(t.Protocol):
    """Sees a download's bytes as they arrive (``FileRequest.consumer``), for work that can overlap it.

    Called in this order per attempt: ``feed`` with each block from byte 0, from a thread of
    the attempt's own (_ConsumerThread); then, from the download's thread once every fed block
    was consumed, ``finish()`` when the whole file matched its sha256 and is in the store, or
    ``abort()`` when the attempt failed (then a retry feeds it again from byte 0) or was
    cancelled, or the file did not match. Until ``finish`` the bytes are untrusted. The
    consumer's own errors never fail the download: it is aborted and the download goes on.
    """

    def feed(self, block: bytes) -> None:
        """The next bytes of the file."""

    def finish(self) -> None:
        """The file is complete, verified and stored."""

    def abort(self) -> None:
        """Forget what was fed."""


@dataclass(frozen=True)
class FileRequest:
    """One artifact to have in the store."""

    filename: str
    sha256: str
    url: Optional[str] = None
    path: Optional[str] = None
    label: str = ""
    # Fed while the file downloads; not fed when the store has the file or copies a local path.
    consumer: Optional[StreamConsumer] = field(default=None, compare=False, repr=False)


def redact_url(url: str) -> str:
    """Drop userinfo from a URL so credentials never reach a message or a log."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, tail = rest.partition("/")
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    return scheme + sep + netloc + slash + tail


def write_atomically(path: str, fill: Callable[[t.BinaryIO], None], mode: int = 0o644) -> None:
    """Write PATH through FILL into a temporary file beside it, then rename: never half-written."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".incoming-")
    try:
        with os.fdopen(fd, "wb") as out:
            fill(out)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        _unlink(tmp)
        named = with_path(exc, path)  # a full disk is then reported with its directory
        if named is not None:
            raise named from None
        raise
    except BaseException:
        _unlink(tmp)
        raise


class ArtifactStore:
    """Files keyed by sha256 under ``root/sha256/ab/abcdef...``."""

    def __init__(self, root: str, workers: int = 8, retries: int = 3, timeout: float = 60.0,
                 backoff: float = 0.5, progress: Optional[Callable[[str], None]] = None,
                 credentials: Optional[CredentialProvider] = None, verifier: Optional[FileVerifier] = None,
                 offline: bool = False) -> None:
        self.root = root
        # A stored file counts as present only once its content matched its name (_verify).
        self.verifier = verifier if verifier is not None else FileVerifier(None)
        # UV_OFFLINE: what the store lacks is reported, never fetched.
        self.offline = offline
        # Store files found corrupt, removed and fetched again: one message each.
        self.repaired: list[str] = []
        # Without a provider: the environment, the user's uv.toml and netrc (no project indexes).
        self.credentials = credentials if credentials is not None else CredentialProvider()
        self.workers = max(1, workers)
        self.retries = max(0, retries)
        self.timeout = timeout
        self.backoff = backoff
        self._progress = progress
        self._lock = threading.Lock()
        self._keepalive = _KeepAlive(timeout)
        self._cancelled = threading.Event()
        self.requests_made = 0

    def path_for(self, sha256: str) -> str:
        return os.path.join(self.root, "sha256", sha256[:2], sha256)

    def has(self, sha256: str) -> bool:
        return os.path.isfile(self.path_for(sha256))

    def has_verified(self, sha256: str, label: str = "") -> bool:
        """Whether the store holds SHA256's file with that content; a file that does not match is
        removed (and noted in ``repaired``), so the caller fetches it again."""
        path = self.path_for(sha256)
        if not os.path.isfile(path):
            return False
        if self.verifier.matches(path, sha256):
            return True
        self.verifier.forget(path)
        _unlink(path)
        message = ("controller store file %s%s did not match its sha256 (the name it is stored under, from "
                   "uv.lock); it was removed and is fetched again" % (path, " (%s)" % label if label else ""))
        with self._lock:
            self.repaired.append(message)
        self._say(message)
        return False

    def add_file(self, source: str, sha256: Optional[str] = None) -> str:
        """Put a local file into the store (verifying it when a hash is expected); return its hash."""
        actual = file_sha256(source)
        if sha256 and actual != sha256:
            raise DownloadError("%s has sha256 %s but %s was expected; the file changed after locking, "
                                "re-run 'uv lock' or restore the file." % (source, actual, sha256))
        final = self.path_for(actual)
        if not self.has_verified(actual, os.path.basename(source)):
            os.makedirs(os.path.dirname(final), exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(final), prefix=".incoming-")
            os.close(fd)
            try:
                shutil.copyfile(source, tmp)
                os.chmod(tmp, 0o644)
                os.replace(tmp, final)
            except BaseException:
                _unlink(tmp)
                raise
        return actual

    def cancel(self) -> None:
        """Stop every running and queued fetch soon (between two blocks); they fail as cancelled.

        For a caller that learned meanwhile that the files are not needed (the lock is stale).
        """
        self._cancelled.set()

    def ensure(self, requests: Iterable[FileRequest]) -> dict[str, str]:
        """Make every requested file present; return {sha256: 'reused'|'downloaded'|'copied'}.

        Fetches start in the order given (callers put the largest first). All downloads are
        attempted even when one fails, so a single run reports every broken artifact; then
        the failures are raised together.
        """
        outcome: dict[str, str] = {}
        pending: dict[str, FileRequest] = {}
        for request in requests:
            if request.sha256 in outcome or request.sha256 in pending:
                continue
            if self.has_verified(request.sha256, request.label or request.filename):
                outcome[request.sha256] = "reused"
            else:
                pending[request.sha256] = request
        if not pending:
            return outcome
        if self.offline:
            self._refuse_offline([r for r in pending.values() if not r.path])
        errors: list[str] = []
        with ThreadPoolExecutor(max_workers=min(self.workers, len(pending))) as pool:
            futures = {pool.submit(self._fetch, request): request for request in pending.values()}
            done = 0
            for future in as_completed(futures):
                request = futures[future]
                done += 1
                try:
                    outcome[request.sha256] = future.result()
                    self._say("[%d/%d] %s" % (done, len(pending), request.filename))
                except DownloadError as exc:
                    errors.append(str(exc))
        if errors:
            raise DownloadError("; ".join(sorted(errors)), errors=sorted(errors))
        return outcome

    def _refuse_offline(self, missing: list) -> None:
        """UV_OFFLINE: fail naming every file the store lacks (local paths are still copied)."""
        if not missing:
            return
        # One remedy for all (the callers join and de-duplicate the errors of several batches).
        errors = ["UV_OFFLINE is set, so the controller downloads nothing, and its store %s lacks what follows; "
                  "run once with network access (unset UV_OFFLINE or set it to 0) to fill the store" % self.root]
        errors += sorted("%s: %s is not in the store (uv.lock: %s)"
                         % (r.label or r.filename, r.filename, redact_url(r.url or "no URL")) for r in missing)
        raise DownloadError("; ".join(errors), errors=errors)

    def _say(self, message: str) -> None:
        if self._progress:
            self._progress(message)

    def _check_cancelled(self, request: FileRequest) -> None:
        if self._cancelled.is_set():
            raise DownloadError("%s: cancelled" % (request.label or request.filename))

    def _fetch(self, request: FileRequest) -> str:
        try:
            return self._fetch_once_or_retried(request)
        except OSError as exc:
            if is_disk_full(exc):
                # One message for every file (the caller joins them without repeats).
                raise DownloadError(disk_full_message(self.root, exc.strerror or "No space left on device")) from None
            raise

    def _fetch_once_or_retried(self, request: FileRequest) -> str:
        self._check_cancelled(request)
        if request.path:
            if not os.path.isfile(request.path):
                raise DownloadError("%s: local file %s does not exist; restore it or re-run 'uv lock'."
                                    % (request.label or request.filename, request.path))
            self.add_file(request.path, request.sha256)
            return "copied"
        if not request.url:
            raise DownloadError("%s: the lock gives neither a URL nor a path." % (request.label or request.filename))
        attempt = 0
        while True:
            try:
                self._download(request)
                return "downloaded"
            except _Retryable as exc:
                attempt += 1
                if attempt > self.retries:
                    raise DownloadError("%s: download of %s failed after %d attempts: %s"
                                        % (request.label or request.filename, redact_url(request.url),
                                           attempt, self.credentials.redact(str(exc)))) from None
                self._cancelled.wait(self.backoff * (2 ** (attempt - 1)))
                self._check_cancelled(request)

    def _download(self, request: FileRequest) -> None:
        final = self.path_for(request.sha256)
        directory = os.path.dirname(final)
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".incoming-")
        digest = hashlib.sha256()
        consumer = _ConsumerThread(request.consumer) if request.consumer is not None else None
        try:
            with self._lock:
                self.requests_made += 1
            try:
                response = self._open(request)
            except HTTPError as exc:
                _close_quietly(exc)
                if exc.code in _RETRYABLE_HTTP:
                    raise _Retryable("HTTP %d" % exc.code) from None
                raise DownloadError(self._http_error_message(request, exc.code)) from None
            except (URLError, OSError) as exc:
                raise _Retryable(self.credentials.redact(str(getattr(exc, "reason", exc)))) from None
            except DownloadError:
                raise
            except Exception as exc:  # pylint: disable=broad-except
                # open_url's own errors (TLS, proxy, a malformed URL): not transient.
                raise DownloadError("%s: download of %s failed: %s"
                                    % (request.label or request.filename, redact_url(request.url),
                                       self.credentials.redact(str(exc)))) from None
            try:
                with os.fdopen(fd, "wb") as out:
                    fd = -1
                    while True:
                        self._check_cancelled(request)
                        try:
                            block = response.read(_CHUNK)
                        except OSError as exc:
                            raise _Retryable(self.credentials.redact(str(exc))) from None
                        if not block:
                            break
                        digest.update(block)
                        out.write(block)
                        if consumer is not None:
                            consumer.feed(block)
            finally:
                response.close()
            actual = digest.hexdigest()
            if actual != request.sha256:
                raise DownloadError("%s: %s has sha256 %s but uv.lock records %s; the file was discarded. "
                                    "The index serves different bytes than when the lock was made: "
                                    "check the index or re-lock."
                                    % (request.label or request.filename, redact_url(request.url),
                                       actual, request.sha256))
            # mkstemp makes 0600; stored files end up in wheelhouses other users read.
            os.chmod(tmp, 0o644)
            os.replace(tmp, final)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            _unlink(tmp)
            if consumer is not None:
                consumer.abort()
            raise
        if consumer is not None:
            consumer.finish()

    def _open(self, request: FileRequest):
        """The response for REQUEST's URL; each hop gets the credentials of its own origin."""
        url = request.url or ""
        for dummy in range(_MAX_REDIRECTS + 1):
            authorization = self.credentials.authorization(url)
            try:
                if not _uses_proxy(url):
                    response = self._keepalive.get(strip_userinfo(url), {"Authorization": authorization}
                                                   if authorization else {})
                    if response.status >= 300:
                        # The same HTTPError open_url raises, so both paths share the handling below.
                        response.close()
                        raise HTTPError(strip_userinfo(url), response.status, response.reason, response.headers, None)
                    return response
                return open_url(strip_userinfo(url), timeout=self.timeout, http_agent="airgap.uv",
                                headers={"Authorization": authorization} if authorization else None,
                                unredirected_headers=["Authorization"], use_netrc=False,
                                follow_redirects="none")
            except HTTPError as exc:
                location = exc.headers.get("Location") if exc.code in _REDIRECT_HTTP and exc.headers else None
                if not location:
                    raise
                _close_quietly(exc)
                url = urljoin(strip_userinfo(url), location)
                if urlsplit(url).scheme not in ("http", "https"):
                    raise DownloadError("%s: %s redirects to a non-HTTP URL; check the index."
                                        % (request.label or request.filename, redact_url(request.url))) from None
        raise DownloadError("%s: %s redirects more than %d times; check the index."
                            % (request.label or request.filename, redact_url(request.url), _MAX_REDIRECTS))

    def _http_error_message(self, request: FileRequest, code: int) -> str:
        label = request.label or request.filename
        url = redact_url(request.url or "")
        if code in _AUTH_HTTP:
            sent = self.credentials.credentials_for(request.url or "")
            if sent is None:
                return ("%s: %s answered HTTP %d: the index requires credentials and none are configured for it; "
                        "%s, then run again." % (label, url, code, self.credentials.missing_hint(request.url or "")))
            return ("%s: %s answered HTTP %d with the credentials from %s; check that they are current and may "
                    "read this index." % (label, url, code, sent.source))
        return ("%s: %s answered HTTP %d; check the index and its credentials or re-run 'uv lock'."
                % (label, url, code))


class _Retryable(Exception):
    pass


class _ConsumerThread:
    """Runs one attempt's StreamConsumer.feed calls in a thread beside the network reads.

    A consumer that inflates (the uv wheel's binaries) costs about as much CPU as the download
    takes time; in the reading thread the two add up, here they overlap (zlib, TLS and file
    writes release the GIL). At most _DEPTH blocks wait, so memory stays bounded: a slow
    consumer slows the download instead. finish() and abort() first wait until every fed block
    was consumed (or dropped, once the consumer failed or the attempt was aborted).
    """

    _DEPTH = 16
    _END = object()

    def __init__(self, consumer: StreamConsumer) -> None:
        self._consumer = consumer
        self._blocks: queue.Queue = queue.Queue(self._DEPTH)
        self._failed = False
        self._dropping = False
        self._thread = threading.Thread(target=self._work, name="airgap-uv-consumer", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            block = self._blocks.get()
            if block is self._END:
                return
            if not (self._failed or self._dropping):
                self._failed = not _notify(self._consumer.feed, block)

    def feed(self, block: bytes) -> None:
        self._blocks.put(block)

    def _drain(self) -> None:
        if self._thread.is_alive():
            self._blocks.put(self._END)
            self._thread.join()

    def finish(self) -> None:
        self._drain()
        if self._failed or not _notify(self._consumer.finish):
            _notify(self._consumer.abort)

    def abort(self) -> None:
        self._dropping = True
        self._drain()
        _notify(self._consumer.abort)


class _KeepAlive:
    """HTTP/1.1 connections kept open per worker thread and origin, with one TLS context.

    A wheelhouse is hundreds of files from one or two hosts; a new connection (DNS, TCP,
    TLS) per file costs more than the transfer of most of them. Requests that a proxy
    setting applies to go through open_url instead (see ArtifactStore._open).

    Each host name is looked up once for all the threads' connections (_Resolver): a slow
    resolver then delays a run once, not once per connection.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._local = threading.local()
        self._tls = ssl.create_default_context()
        self._resolver = _Resolver()

    def _connections(self) -> dict:
        if not hasattr(self._local, "connections"):
            self._local.connections = {}
        return self._local.connections

    def get(self, url: str, headers: dict):
        """Send GET; return the response of any status. The caller reads or closes it."""
        parts = urlsplit(url)
        origin = (parts.scheme, parts.hostname, parts.port)
        target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
        headers = dict(headers, **{"User-Agent": "airgap.uv", "Accept-Encoding": "identity"})
        connections = self._connections()
        for attempt in (1, 2):
            connection = connections.get(origin)
            reused = connection is not None
            if connection is None:
                if parts.scheme == "https":
                    connection = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=self.timeout,
                                                             context=self._tls)
                else:
                    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=self.timeout)
                # http.client's connect() opens its socket through this attribute; TLS still
                # verifies (and sends SNI for) the host name.
                connection._create_connection = self._resolver.create_connection  # pylint: disable=protected-access
                connections[origin] = connection
            try:
                connection.request("GET", target, headers=headers)
                return _PooledResponse(connection.getresponse(), connection, connections, origin)
            except (http.client.HTTPException, OSError):
                connection.close()
                connections.pop(origin, None)
                # A kept-alive connection the server has closed meanwhile: one fresh try.
                if not reused or attempt == 2:
                    raise
        raise AssertionError("unreachable")


class _Resolver:
    """getaddrinfo once per (host, port), shared by every connection of a store."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict = {}
        self._answers: dict = {}

    def _addresses(self, host: str, port: int) -> list:
        key = (host, port)
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        # Threads that connect at once wait for the first one's lookup instead of each asking.
        with lock:
            if key not in self._answers:
                self._answers[key] = [info[4] for info in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)]
            return self._answers[key]

    def create_connection(self, address: tuple, timeout: Optional[float] = None,
                          source_address: Optional[tuple] = None) -> socket.socket:
        """socket.create_connection for http.client (which always passes its timeout)."""
        host, port = address[0], address[1]
        error: Optional[OSError] = None
        for sockaddr in self._addresses(host, port):
            try:
                return socket.create_connection(sockaddr[:2], timeout, source_address)
            except OSError as exc:
                error = exc
        # Every address failed: the next connection looks the name up again.
        with self._guard:
            self._answers.pop((host, port), None)
        raise error if error is not None else OSError("no address for %s" % host)


class _PooledResponse:
    """A response that hands its connection back only when it was read to the end."""

    def __init__(self, response, connection, connections: dict, origin: tuple) -> None:
        self._response = response
        self._connection = connection
        self._connections = connections
        self._origin = origin
        self.status = response.status
        self.reason = response.reason
        self.headers = response.headers

    def read(self, size: int = -1) -> bytes:
        return self._response.read(size)

    def close(self) -> None:
        finished = self._response.isclosed()
        self._response.close()
        if not finished or self._response.will_close:
            self._connection.close()
            if self._connections.get(self._origin) is self._connection:
                del self._connections[self._origin]


def _uses_proxy(url: str) -> bool:
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    return parts.scheme in proxies and not urllib.request.proxy_bypass(parts.hostname or "")


def _notify(call: Callable, *args) -> bool:
    """Call a StreamConsumer method; False when it failed (its errors are its own, never the download's)."""
    try:
        call(*args)
        return True
    except Exception:  # pylint: disable=broad-except
        return False


def _close_quietly(response) -> None:
    try:
        response.close()
    except Exception:  # pylint: disable=broad-except
        pass


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
