# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to the airgap.uv collection
"""Files a host fetches itself from the index inside the air gap (airgap.uv.uv_mirror), for airgap.uv.push.

Runs on the TARGET: standard library and ansible.module_utils only (Python 3.9+). The link is plain HTTP: what arrives is
trusted only after its sha256 matches the one the controller sent (the caller checks it while
writing), so integrity never depends on the link.

The uv binaries travel in one zip per set of binaries, named by their content
(``uv_container_name``: ``airgap_uv_binaries-0+<digest>-py3-none-any.whl``, a name pypiserver
serves), holding each binary under its own name (``uv``, ``uvx``). The controller that feeds the
mirror makes it from the binaries it has (a wheelhouse's or a bundle's), the controller that
deploys names it from the binaries' sha256, and the host checks each binary it extracts against
that sha256: the zip itself is only a carrier.
"""

from __future__ import annotations

import hashlib
import posixpath
import typing as t
import urllib.error
import urllib.parse

# The files a host may take from the mirror: the wheelhouse's files, and the uv binaries (bin/*,
# from their zip); the install files and the manifest still come from the controller.
PULLED_PREFIX = "wheelhouse/"
BINARIES_PREFIX = "bin/"
UV_CONTAINER_PROJECT = "airgap_uv_binaries"
TIMEOUT = 30
FEED_HINT = ("feed it (ansible-playbook airgap.uv.mirror with uv_mirror_wheelhouses, or uv_mirror_bundle inside the "
             "air gap)")


class MirrorError(Exception):
    """The mirror could not give a file: the message names the URL and what to do."""


def _flat(relpath: str, prefix: str) -> bool:
    return relpath.startswith(prefix) and "/" not in relpath[len(prefix):] and len(relpath) > len(prefix)


def binaries(names: t.Iterable[str]) -> t.List[str]:
    """The uv binaries (bin/<name>) among NAMES."""
    return sorted(n for n in names if _flat(n, BINARIES_PREFIX))


def pulled(names: t.Iterable[str], with_uv: bool = False) -> t.List[str]:
    """The names among NAMES a host fetches from the mirror (the uv binaries too WITH_UV)."""
    return [n for n in names if _flat(n, PULLED_PREFIX) or (with_uv and _flat(n, BINARIES_PREFIX))]


def uv_container_name(files: t.Mapping[str, t.Mapping[str, t.Any]]) -> t.Optional[str]:
    """The mirror's file name of the zip holding FILES' uv binaries (bin/*), from their sha256;
    None when FILES has no binary or one's sha256 is not known (check mode)."""
    names = binaries(files)
    if not names or any(not files[n].get("sha256") for n in names):
        return None
    digest = hashlib.sha256("".join("%s %s\n" % (n[len(BINARIES_PREFIX):], files[n]["sha256"])
                                    for n in names).encode("utf-8")).hexdigest()
    return "%s-0+%s-py3-none-any.whl" % (UV_CONTAINER_PROJECT, digest[:32])


def file_url(base: str, relpath: str) -> str:
    """Where pypiserver (and any server of a flat package directory) serves RELPATH's file."""
    return "%s/packages/%s" % (base.rstrip("/"), urllib.parse.quote(posixpath.basename(relpath), safe="+"))


def open_file(base: str, relpath: str) -> t.IO[bytes]:
    """A stream of RELPATH's file from the mirror at BASE; MirrorError when it cannot be had."""
    # Imported here: every push and sync imports this file, few fetch (ansible.module_utils.urls costs
    # about 30 ms of imports on the host).
    from ansible.module_utils.urls import ConnectionError as UrlsConnectionError
    from ansible.module_utils.urls import open_url

    url = file_url(base, relpath)
    try:
        # No proxy: a host inside the air gap talks to the mirror directly, whatever its environment says.
        return t.cast(t.IO[bytes], open_url(url, timeout=TIMEOUT, use_proxy=False, follow_redirects="safe"))
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise MirrorError("the mirror %s does not have %s (HTTP 404 for %s): %s"
                              % (base, relpath, url, FEED_HINT)) from None
        raise MirrorError("the mirror %s answered HTTP %d for %s" % (base, exc.code, url)) from None
    except (urllib.error.URLError, UrlsConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise MirrorError("cannot reach the mirror %s (%s, for %s): is it up? (ansible-playbook airgap.uv.mirror "
                          "starts it)" % (base, reason, url)) from None
