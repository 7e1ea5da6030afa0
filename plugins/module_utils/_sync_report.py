# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Switches that no run reported: recorded on the host until the controller has the result.

Runs on the TARGET: standard library only (Python 3.9+).

A run that puts a release in service writes a record of it into the state file at once.
The controller acknowledges the record (airgap.uv.sync's action plugin calls the module
again with ``acknowledge``) only after it received the result. A record (state file key
``_sync_store.UNREPORTED``) still there on the next run means the run that switched never
reported, say because ansible-playbook was killed during the sync: the next run reports that
switch, with ``changed`` so handlers run.
"""

from __future__ import annotations

import os
import time
import typing as t


def new_record(release: str, version: t.Optional[str], previous: t.Optional[str]) -> t.Dict[str, t.Any]:
    return {"id": os.urandom(8).hex(), "release": release, "version": version, "previous_release": previous,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def is_record(value: t.Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("id"), str) and isinstance(value.get("release"), str)


def earlier_message(record: t.Mapping[str, t.Any]) -> str:
    return ("An earlier run put release %s%s into service at %s and had not reported it to the controller when "
            "this run started (it was interrupted, or is reporting it right now): reported here too, as changed, "
            "so that handlers run."
            % (record["release"], " (version %s)" % record["version"] if record.get("version") else "",
               record.get("at", "an unknown time")))


def report(result: t.Dict[str, t.Any], earlier: t.Any, current: t.Any, check_mode: bool) -> t.Dict[str, t.Any]:
    """RESULT with the switch records: EARLIER (found at the start) and CURRENT (at the end).

    EARLIER unreported means this run is the first to tell of it: ``changed`` then. Outside
    check mode, ``switch_id`` is what the controller acknowledges once it has the result.
    """
    if is_record(earlier):
        result["unreported_switch"] = {k: earlier.get(k) for k in ("release", "version", "previous_release", "at")}
        result["changed"] = True
    if is_record(current) and not check_mode:
        result["switch_id"] = current["id"]
    return result
