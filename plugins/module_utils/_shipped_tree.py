# -*- coding: utf-8 -*-
# Copyright (c) airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The contract of the tree that goes to a host (``targets/<id>/`` on the controller, the
deployment root on the host): its file names and the version of its manifest's schema.

Standard library only (Python 3.9+): the controller writes this tree, the host reads it, and
both import the names from here.

The manifest (``manifest.json``) is a JSON object: ``format`` (MANIFEST_FORMAT), ``target``,
``files`` (each ``filename``, ``sha256``, ``size``, and for packages ``name``, ``version``; a
name with a slash, such as ``bin/uv``, is relative to the manifest, others are in the
wheelhouse), ``editable`` (packages installed editable from a shipped sdist), ``project``
(``name``, ``version``), ``uv_version``, ``uv_wheel``, ``uv_wheel_sha256``.
"""

from __future__ import annotations

MANIFEST_FORMAT = 1
MANIFEST = "manifest.json"
REQUIREMENTS = "requirements.txt"
BUILD_CONSTRAINTS = "build-constraints.txt"
WHEELHOUSE = "wheelhouse"
UV_BINARY = "bin/uv"
# Where airgap.uv.push stages a set for airgap.uv.sync to land (never a file of the tree).
INCOMING = ".incoming"
