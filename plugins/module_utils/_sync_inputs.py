# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The pushed set as airgap.uv.sync sees it: landing it, checking it is this run's, pruning it.

Runs on the TARGET: standard library only (Python 3.9+). Everything here runs under the
lock of the environment being synced, so a deployment's push (staged by airgap.uv.push)
and its sync are one step for any other deployment of the same environment.
"""

from __future__ import annotations

import os
import stat
import typing as t

from ansible_collections.airgap.uv.plugins.module_utils._hashing import sha256_file
from ansible_collections.airgap.uv.plugins.module_utils._host_safety import UnsafePath
from ansible_collections.airgap.uv.plugins.module_utils._push_files import PushError, land


class InputsError(Exception):
    """The pushed set cannot be used; the message says what happened and what to do."""


def land_staged(staged: str) -> t.List[str]:
    """Put the staged push STAGED in place; the relative paths landed."""
    try:
        return land(staged)
    except (PushError, UnsafePath) as exc:
        raise InputsError(str(exc))
    except OSError as exc:
        raise InputsError("Putting the staged push %s in place failed: %s. Files already moved are whole; the "
                          "install files are replaced last, so the previous set is still consistent. Run the "
                          "deployment again." % (staged, exc))


def require_manifest(manifest: t.Optional[str], expected: str, in_service: t.Callable[[], str]) -> None:
    """Fail unless MANIFEST has the sha256 EXPECTED: the set this run pushed is the one in place.

    Another deployment of the same host that landed its own set after this run's push
    would otherwise be synced (and reported) by this run. IN_SERVICE names the release in
    service, asked only for the message.
    """
    try:
        actual = sha256_file(manifest) if manifest else None
    except OSError:
        actual = None
    if actual == expected:
        return
    raise InputsError(
        "The files in place are not the ones this run pushed: %s has sha256 %s, this run pushed %s. Another "
        "deployment of this host replaced them after this run's push (two runs at once?). This run changed "
        "nothing; in service: %s. Run the deployment again to put this run's set in service."
        % (manifest, actual or "(missing)", expected, in_service()))


def wheelhouse_files(document: t.Optional[t.Mapping[str, t.Any]]) -> t.Optional[t.List[str]]:
    """The wheelhouse file names a manifest DOCUMENT lists (uv's binaries, named bin/..., are not)."""
    if not isinstance(document, dict) or not isinstance(document.get("files"), list):
        return None
    names = {entry.get("filename") for entry in document["files"] if isinstance(entry, dict)}
    return sorted(name for name in names if isinstance(name, str) and "/" not in name)


def prune_wheelhouse(wheelhouse: str, needed_by_releases: t.Iterable[t.Optional[t.Iterable[str]]],
                     in_place: t.Iterable[str]) -> t.Tuple[t.List[str], int]:
    """Remove wheelhouse files no kept release and not the set in place names; (names, bytes).

    NEEDED_BY_RELEASES holds, for each kept release, the files it was built from, or None
    when that is not known (a release made before this was recorded): nothing is removed
    then. Hidden entries (temporary files of a push) and directories are left alone.
    """
    keep = set(in_place)
    for names in needed_by_releases:
        if names is None:
            return [], 0
        keep.update(names)
    removed, freed = [], 0
    try:
        entries = sorted(os.listdir(wheelhouse))
    except OSError:
        return [], 0
    for name in entries:
        if name in keep or name.startswith("."):
            continue
        path = os.path.join(wheelhouse, name)
        try:
            st = os.lstat(path)
            if stat.S_ISDIR(st.st_mode):
                continue
            os.unlink(path)
        except OSError:
            continue
        removed.append(name)
        freed += st.st_size if stat.S_ISREG(st.st_mode) else 0
    return removed, freed
