# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Wheelhouse stage 2, select per target: hosts grouped into targets, and the packages uv would
install on each (uv's rules, in _selection) with the wheel tags it accepts."""

from __future__ import annotations

from typing import Mapping

from ansible_collections.airgap.uv.plugins.plugin_utils._lock_types import Lock, LockError
from ansible_collections.airgap.uv.plugins.plugin_utils._selection import (
    SelectionError,
    SelectionOptions,
    read_default_groups,
    select_packages,
)
from ansible_collections.airgap.uv.plugins.plugin_utils._tags import TagError, priority_map, target_platforms, target_tags
from ansible_collections.airgap.uv.plugins.plugin_utils._target import Target, TargetError
from ansible_collections.airgap.uv.plugins.plugin_utils._target_files import TargetPlan
from ansible_collections.airgap.uv.plugins.plugin_utils._wheelhouse_common import WheelhouseError


def group_targets(targets: Mapping[str, Mapping]) -> dict[str, TargetPlan]:
    """{target id: an empty plan naming its hosts}, from each host's airgap_uv_target facts."""
    plans: dict[str, TargetPlan] = {}
    if not targets:
        raise WheelhouseError("No targets given; pass the airgap_uv_target facts of each host as 'targets'.")
    for host, facts in sorted(targets.items()):
        try:
            target = Target.from_facts(facts, host)
        except TargetError as exc:
            raise WheelhouseError(str(exc)) from None
        plan = plans.setdefault(target.id, TargetPlan(target=target, hosts=[]))
        plan.hosts.append(host)
    return plans


def select_per_target(lock: Lock, plans: Mapping[str, TargetPlan], selection: SelectionOptions,
                      pyproject: str) -> dict:
    """{target id: the lock's packages selected for it}."""
    try:
        default_groups = read_default_groups(pyproject)
    except (SelectionError, LockError) as exc:
        raise WheelhouseError(str(exc)) from None
    selections = {}
    for target_id, plan in plans.items():
        try:
            selections[target_id] = select_packages(lock, plan.target.marker_environment, selection, default_groups)
        except SelectionError as exc:
            raise WheelhouseError("Target %s (hosts %s): %s" % (target_id, ", ".join(plan.hosts), exc)) from None
    return selections


def tags_for(target: Target) -> dict:
    """The wheel tags TARGET accepts, by priority."""
    try:
        platforms = target_platforms(target.os, target.arch, target.libc_family, target.libc_version,
                                     target.macos_version)
        return priority_map(target_tags(target.python_version, target.implementation, platforms, target.abiflags))
    except TagError as exc:
        raise WheelhouseError("Target %s: %s" % (target.id, exc)) from None
