# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to the airgap.uv collection
"""Files a host fetches itself from the index inside the air gap (airgap.uv.uv_mirror), for airgap.uv.push.

Runs on the TARGET: standard library and ansible.module_utils only (Python 3.9+). The link is plain HTTP: what arrives is
trusted only after its sha256 matches the one the controller sent (the caller checks it while
writing), so integrity never depends on the link.
"""

from __future__ import annotations

import posixpath
import typing as t
import urllib.error
import urllib.parse

from ansible.module_utils.urls import ConnectionError as UrlsConnectionError
from ansible.module_utils.urls import open_url

# The wheelhouse files a host may take from the mirror; everything else (uv, the install files,
# the manifest) still comes from the controller.
PULLED_PREFIX = "wheelhouse/"
TIMEOUT = 30


class MirrorError(Exception):
    """The mirror could not give a file: the message names the URL and what to do."""


def pulled(names: t.Iterable[str]) -> t.List[str]:
    """The names among NAMES a host fetches from the mirror."""
    return [n for n in names if n.startswith(PULLED_PREFIX) and "/" not in n[len(PULLED_PREFIX):]]


def file_url(base: str, relpath: str) -> str:
    """Where pypiserver (and any server of a flat package directory) serves RELPATH's file."""
    return "%s/packages/%s" % (base.rstrip("/"), urllib.parse.quote(posixpath.basename(relpath)))


def open_file(base: str, relpath: str) -> t.IO[bytes]:
    """A stream of RELPATH's file from the mirror at BASE; MirrorError when it cannot be had."""
    url = file_url(base, relpath)
    try:
        # No proxy: a host inside the air gap talks to the mirror directly, whatever its environment says.
        return t.cast(t.IO[bytes], open_url(url, timeout=TIMEOUT, use_proxy=False, follow_redirects="safe"))
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise MirrorError("the mirror %s does not have %s (HTTP 404 for %s): feed it the wheelhouse's files "
                              "(ansible-playbook airgap.uv.mirror with uv_mirror_feed)" % (base, relpath, url)) from None
        raise MirrorError("the mirror %s answered HTTP %d for %s" % (base, exc.code, url)) from None
    except (urllib.error.URLError, UrlsConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise MirrorError("cannot reach the mirror %s (%s, for %s): is it up? (ansible-playbook airgap.uv.mirror "
                          "starts it)" % (base, reason, url)) from None
