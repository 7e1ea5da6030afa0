# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Wheelhouse stage 3, plan each target's files: for every selected package the file the target
installs (the lock's wheel uv would pick, else what the build stage makes of its source), and the
wheels pinned for what hosts build. Fills the target's TargetPlan and the run's FileSources."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping

try:
    from packaging.utils import canonicalize_name
except ImportError:  # reported by the action plugin through _lock's HAS_PACKAGING check
    pass

from ansible_collections.airgap.uv.plugins.plugin_utils._build import BuildError
from ansible_collections.airgap.uv.plugins.plugin_utils._closure import ClosureError
from ansible_collections.airgap.uv.plugins.plugin_utils._download import FileRequest, file_sha256
from ansible_collections.airgap.uv.plugins.plugin_utils._lock_types import Artifact, Package
from ansible_collections.airgap.uv.plugins.plugin_utils._selection import SelectionError, SelectionOptions, select_packages
from ansible_collections.airgap.uv.plugins.plugin_utils._tags import choose_wheel
from ansible_collections.airgap.uv.plugins.plugin_utils._target import Target
from ansible_collections.airgap.uv.plugins.plugin_utils._target_files import PackageFile, TargetPlan
from ansible_collections.airgap.uv.plugins.plugin_utils._wheelhouse_build import (
    ChosenFile,
    NeedsHostBuild,
    SourceBuilder,
    sdist_version,
    wheel_version,
)
from ansible_collections.airgap.uv.plugins.plugin_utils._wheelhouse_common import WheelhouseError
from ansible_collections.airgap.uv.plugins.plugin_utils._wheelhouse_select import tags_for


@dataclass
class FileSources:
    """Where each planned file (by sha256) comes from: downloaded, or built on the controller."""

    requests: dict = field(default_factory=dict)  # sha256 -> FileRequest
    local: dict = field(default_factory=dict)  # sha256 -> path of a file built on the controller
    sizes: dict = field(default_factory=dict)  # sha256 -> size uv.lock records (download order, check mode)

    def request(self, artifact: Artifact, label: str, replace: bool = True) -> None:
        """Download ARTIFACT (LABEL names it in progress and errors; unless REPLACE, the first label stays)."""
        if artifact.size:
            self.sizes[artifact.sha256] = artifact.size
        if replace or artifact.sha256 not in self.requests:
            self.requests[artifact.sha256] = FileRequest(filename=artifact.filename, sha256=artifact.sha256,
                                                         url=artifact.url, path=artifact.path, label=label)


class TargetPlanner:
    """Plans the files of one target after another into their TargetPlans and SOURCES."""

    def __init__(self, builds: SourceBuilder, sources: FileSources, editable: bool, host_builds) -> None:
        self.builds = builds
        self.sources = sources
        self.editable = editable
        self.host_builds = {canonicalize_name(name) for name in host_builds}

    def plan(self, plan: TargetPlan, selection: list) -> None:
        """Decide the file PLAN's target installs for each selected package (building what is not a
        wheel), and its build requirements."""
        tags = tags_for(plan.target)
        for item in selection:
            package = item.package
            if package.source_kind == "virtual":
                continue
            if self.editable and (item.is_root or package.source_kind == "editable"):
                chosen = self.builds.ship_editable(package, item.is_root, plan.target, plan)
                self.sources.local[chosen.sha256] = chosen.local
                plan.editable_entries.append(PackageFile(package.name, package.version or sdist_version(chosen.filename),
                                                         chosen.filename, chosen.sha256))
                if item.is_root and plan.project is None:
                    plan.project = plan.editable_entries[-1][:2]
                continue
            chosen = self.artifact_for(package, item.is_root, plan.target, tags, plan)
            if chosen.local:
                self.sources.local[chosen.sha256] = chosen.local
                plan.built += 1
            else:
                self.sources.request(chosen.artifact, "%s %s" % (package.name, package.version))
            # A dynamic version (not in uv.lock) is the one the built wheel carries.
            plan.entries.append(PackageFile(package.name, package.version or wheel_version(chosen.filename),
                                            chosen.filename, chosen.sha256))
            if item.is_root and plan.project is None:
                plan.project = plan.entries[-1][:2]
        self.resolve_build_closure(plan, tags)

    def artifact_for(self, package: Package, is_root: bool, target: Target, tags: Mapping,
                     plan: TargetPlan) -> ChosenFile:
        """What TARGET installs for PACKAGE: the lock's wheel, or a file built from its source."""
        label = ("%s %s" % (package.name, package.version or "")).strip()
        on_host = canonicalize_name(package.name) in self.host_builds
        if not is_root and package.wheels and not on_host:
            wheel = choose_wheel(package.wheels, tags)
            if wheel is not None:
                if not wheel.sha256:
                    raise WheelhouseError("%s: uv.lock records no sha256 for %s; hashes are required for an "
                                          "offline install. Re-lock with a registry that serves hashes."
                                          % (label, wheel.filename))
                return ChosenFile(wheel.filename, wheel.sha256, artifact=wheel)
        try:
            source = self.builds.source_for(package, is_root, target, plan, label)
            if on_host:
                return self.builds.ship_source(source, target, plan, "host_builds names it")
            try:
                wheel_path = self.builds.wheel_for_target(source, target, tags, plan)
            except NeedsHostBuild as needed:
                try:
                    return self.builds.ship_source(source, target, plan, str(needed))
                except (BuildError, ClosureError) as exc:
                    raise WheelhouseError("%s\nShipping its source with its build requirements to build on the "
                                          "host failed too: %s" % (needed, exc)) from None
        except (BuildError, ClosureError) as exc:
            raise WheelhouseError(str(exc)) from None
        return ChosenFile(os.path.basename(wheel_path), file_sha256(wheel_path), local=wheel_path)

    def resolve_build_closure(self, plan: TargetPlan, tags: Mapping) -> None:
        """Pin, for the target, every wheel the host's builds need (plan.build_entries) and request them."""
        if not plan.build_requires:
            return
        target = plan.target
        for package in self._build_closure(plan):
            wheel = choose_wheel(package.wheels, tags)
            if wheel is None or not wheel.sha256:
                raise WheelhouseError(
                    "Target %s (hosts %s): the build requirement %s %s has no wheel for the target%s, so the host "
                    "could not install it to build the packages shipped as source (%s). Build the wheel on a "
                    "builder host like the target and publish it to your index, or pin a build requirement that "
                    "publishes one." % (target.id, ", ".join(plan.hosts), package.name, package.version,
                                        "" if wheel is None else " with a sha256",
                                        ", ".join(plan.build_requires)))
            entry = PackageFile(package.name, package.version or "", wheel.filename, wheel.sha256)
            other = plan.conflicting_file(entry)
            if other is not None:
                raise WheelhouseError(
                    "Target %s (hosts %s): the build requirement %s %s is the file %s with sha256 %s, but %s %s "
                    "is a file of that name with sha256 %s; one wheelhouse cannot hold both. Make the project's "
                    "index settings resolve both from one index, then re-lock."
                    % (target.id, ", ".join(plan.hosts), package.name, package.version, wheel.filename,
                       wheel.sha256, other.name, other.version, other.sha256))
            self.sources.request(wheel, "%s %s (build requirement)" % (package.name, package.version), replace=False)
            plan.build_entries.append(entry)

    def _build_closure(self, plan: TargetPlan) -> list:
        """The packages of the lock of the target's build requirements, selected for it."""
        target = plan.target
        python = self.builds.controller_python(target, exact=False)
        try:
            lock = self.builds.closures.lock(plan.build_requires, target.python_minor, python.path if python else None)
            selected = select_packages(lock, target.marker_environment, SelectionOptions(), ())
        except (ClosureError, SelectionError) as exc:
            remedy = ("" if python else "no CPython %s or newer was found on the controller to resolve them; install "
                      "one (for example `uv python install %s`). " % (target.python_minor, target.python_minor))
            raise WheelhouseError("Target %s (hosts %s): %s must be built on the host, but its build requirements "
                                  "(%s) cannot be resolved for it: %sAlternatively build the wheel on a builder host "
                                  "like the target and publish it to your index, then re-lock.\n%s"
                                  % (target.id, ", ".join(plan.hosts), ", ".join(plan.host_built),
                                     ", ".join(plan.build_requires), remedy, exc)) from None
        return [item.package for item in selected if item.package.source_kind != "virtual"]
