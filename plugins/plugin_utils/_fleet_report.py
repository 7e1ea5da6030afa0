# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fleet report (issue 14): one summary of every host of a deployment, as a table and as JSON.

Pure functions of plain data (what each host's tasks registered), standard library only, so the
report runs on a controller inside the air gap as well.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Optional, Sequence

REPORT_FORMAT = 1

# What happened to a host, in the order the table's summary line counts them.
STATUSES = ("changed", "unchanged", "would change", "would not change", "rolled back", "failed", "not reached")


class FleetReportError(Exception):
    """A report that cannot be made (a bad batch size, an unwritable path)."""


@dataclass(frozen=True)
class HostFacts:
    """What a host's tasks left behind, as the action plugin finds them in its host variables."""

    before: Optional[Mapping[str, Any]] = None  # airgap_uv_release: the release in service before the run
    sync: Optional[Mapping[str, Any]] = None  # the sync task's result (also when it failed)
    rollback: Optional[Mapping[str, Any]] = None  # the rollback task's result, when it ran
    push: Optional[Mapping[str, Any]] = None  # the push task's result
    error: Optional[str] = None  # the failure that sent the host to the rescue
    started: Optional[float] = None
    ended: Optional[float] = None


@dataclass
class HostOutcome:
    """One row of the report."""

    host: str
    status: str
    batch: Optional[int] = None
    release: Optional[str] = None
    version: Optional[str] = None
    release_before: Optional[str] = None
    version_before: Optional[str] = None
    release_attempted: Optional[str] = None
    installed: int = 0
    removed: int = 0
    upgraded: int = 0
    downgraded: int = 0
    network: Optional[str] = None
    bytes_sent: int = 0  # by the controller to the host
    bytes_pulled: int = 0  # by the host from the mirror
    check: Optional[str] = None  # passed, failed (rc N), not run
    duration: Optional[float] = None
    error: Optional[str] = None
    changes: dict = field(default_factory=dict)
    changes_attempted: dict = field(default_factory=dict)


def _release_id(path: Any) -> Optional[str]:
    return os.path.basename(str(path).rstrip("/")) if path else None


def _count(sync: Mapping[str, Any], key: str) -> int:
    value = sync.get(key)
    return len(value) if isinstance(value, (list, tuple)) else 0


def _check_state(sync: Mapping[str, Any], check_mode: bool) -> Optional[str]:
    check = sync.get("check")
    if isinstance(check, Mapping) and "rc" in check:
        return "passed" if check["rc"] == 0 else "failed (rc %s)" % check["rc"]
    return "not run (check mode)" if check_mode else None


def _ran(sync: Optional[Mapping[str, Any]]) -> bool:
    return isinstance(sync, Mapping) and not sync.get("skipped") and "release" in sync


def _status(facts: HostFacts, check_mode: bool) -> str:
    sync = facts.sync if _ran(facts.sync) else None
    rolled_back = isinstance(facts.rollback, Mapping) and not facts.rollback.get("skipped") \
        and not facts.rollback.get("failed") and facts.rollback.get("release")
    if rolled_back:
        return "rolled back"
    if facts.error is not None or (sync is not None and sync.get("failed")):
        return "failed"
    if sync is None:
        return "not reached"
    if check_mode:
        return "would change" if sync.get("changed") else "would not change"
    return "changed" if sync.get("changed") else "unchanged"


def host_outcome(host: str, facts: HostFacts, check_mode: bool, batch: Optional[int] = None) -> HostOutcome:
    """The report's row for HOST."""
    before = facts.before if isinstance(facts.before, Mapping) else {}
    out = HostOutcome(host=host, status=_status(facts, check_mode), batch=batch,
                      release_before=_release_id(before.get("release")), version_before=before.get("version"))
    sync = facts.sync if _ran(facts.sync) else None
    if sync is not None:
        out.release, out.version = _release_id(sync.get("release")), sync.get("version")
        for key in ("installed", "removed", "upgraded", "downgraded"):
            setattr(out, key, _count(sync, key))
        out.changes = {key: list(sync.get(key) or []) for key in ("installed", "removed", "upgraded", "downgraded")}
        out.network = sync.get("network_used") or ("offline" if sync.get("changed") else None)
        out.check = _check_state(sync, check_mode)
    if out.status == "rolled back":
        # The host ends with no change: what the failed release held is kept apart.
        out.changes_attempted, out.changes = out.changes, {}
        out.installed = out.removed = out.upgraded = out.downgraded = 0
        out.release_attempted = out.release
        out.release = _release_id(facts.rollback.get("release"))  # type: ignore[union-attr]
        out.version = facts.rollback.get("version") or out.version_before  # type: ignore[union-attr]
    elif sync is None:
        out.release, out.version = out.release_before, out.version_before
    if isinstance(facts.push, Mapping) and not facts.push.get("failed"):
        out.bytes_sent = int(facts.push.get("bytes_sent") or 0)
        out.bytes_pulled = int(facts.push.get("bytes_pulled") or 0)
    if facts.started is not None and facts.ended is not None:
        out.duration = round(max(0.0, float(facts.ended) - float(facts.started)), 2)
    if out.status in ("failed", "rolled back"):
        out.error = (facts.error or str((facts.sync or {}).get("msg") or "")).strip().splitlines()[0][:300] or None
    return out


def batch_sizes(serial: Any, total: int) -> list[int]:
    """Ansible's batch sizes for SERIAL (a number, a percentage, or a list of them; 0 or empty: one batch)."""
    steps = serial if isinstance(serial, (list, tuple)) else [serial]
    sizes = []
    for step in steps:
        text = str(step).strip() if step is not None else ""
        try:
            if text.endswith("%"):
                # Ansible rounds down, and a percentage gives at least one host.
                size = max(1, int(math.floor(total * float(text[:-1]) / 100.0)))
            else:
                size = int(text or 0)
        except ValueError:
            raise FleetReportError("uv_deploy_serial is %s; give a number of hosts, a percentage such as "
                                   "'25%%', or a list of them" % json.dumps(step)) from None
        sizes.append(size if size > 0 else total)
    return [max(1, s) for s in sizes] or [max(1, total)]


def batch_numbers(hosts: Sequence[str], serial: Any) -> dict[str, int]:
    """The batch (from 1) of each host, as Ansible splits HOSTS for SERIAL (the last size repeats)."""
    sizes = batch_sizes(serial, len(hosts))
    numbers: dict[str, int] = {}
    index = 0
    batch = 0
    while index < len(hosts):
        size = sizes[min(batch, len(sizes) - 1)]
        batch += 1
        for host in hosts[index:index + size]:
            numbers[host] = batch
        index += size
    return numbers


def rollout_stopped(outcomes: Sequence[HostOutcome], batch: Sequence[str], max_fail_percentage: Optional[float]) -> bool:
    """Whether Ansible stops the play after BATCH: every host of it failed, or more than the threshold did.

    Ansible counts the failures of the whole run against the batch's size.
    """
    bad = [o for o in outcomes if o.status in ("failed", "rolled back")]
    in_batch = [o for o in bad if o.host in batch]
    if batch and len(in_batch) == len(batch):
        return True
    if max_fail_percentage is None or not batch:
        return False
    return len(bad) / len(batch) > float(max_fail_percentage) / 100.0


def summary(outcomes: Sequence[HostOutcome]) -> dict[str, int]:
    counts = {status: 0 for status in STATUSES}
    for outcome in outcomes:
        counts[outcome.status] += 1
    return {status: count for status, count in counts.items() if count}


def build_report(outcomes: Sequence[HostOutcome], *, name: str, check_mode: bool, serial: Any,
                 max_fail_percentage: Optional[float], stopped: bool, generated_at: str) -> dict[str, Any]:
    """The JSON document."""
    return {
        "format": REPORT_FORMAT,
        "deployment": name,
        "generated_at": generated_at,
        "check_mode": check_mode,
        "serial": serial,
        "max_fail_percentage": max_fail_percentage,
        "rollout_stopped": stopped,
        "summary": summary(outcomes),
        "hosts": {o.host: {k: v for k, v in asdict(o).items() if k != "host"} for o in outcomes},
    }


def _cell(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return "-" if value in (None, "") else str(value)


def render_table(report: Mapping[str, Any]) -> list[str]:
    """A short table of REPORT, one line per host, then the summary."""
    header = ("host", "batch", "status", "release", "version", "+inst", "-rem", "^upg", "network", "check", "secs")
    rows = [header]
    for host, row in report["hosts"].items():
        cells = (host, row["batch"], row["status"], row["release"], row["version"], row["installed"], row["removed"],
                 row["upgraded"] + row["downgraded"], row["network"], row["check"], row["duration"])
        rows.append(tuple(_cell(v) for v in cells))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip() for r in rows]
    counts = ", ".join("%d %s" % (n, status) for status, n in report["summary"].items())
    title = "%s%s: %d hosts: %s" % (report["deployment"], " (check mode)" if report["check_mode"] else "",
                                    len(report["hosts"]), counts)
    if report["rollout_stopped"]:
        title += "; the rollout stopped (uv_deploy_max_fail_percentage %s)" % _cell(report["max_fail_percentage"])
    return [title] + lines


def write_report(path: str, report: Mapping[str, Any]) -> None:
    """Write REPORT as JSON to PATH by one rename (a reader never sees half a report)."""
    directory = os.path.dirname(path) or "."
    tmp = os.path.join(directory, ".%s.%d.tmp" % (os.path.basename(path), os.getpid()))
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=1, sort_keys=False)
            handle.write("\n")
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise FleetReportError("cannot write the fleet report to %s: %s" % (path, exc.strerror or exc)) from None
