# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Build a wheelhouse for a set of targets from a uv project: the pipeline's orchestrator.

Stages, each a module that hands the next explicit data::

    unchanged run   _wheelhouse_unchanged  nothing changed since the last run: its recorded result
    1 read, check   _wheelhouse_inputs     uv.lock (Lock), required-version, uv lock --check
    2 select        _wheelhouse_select     hosts -> targets (TargetPlan), packages per target
    3 plan          _wheelhouse_plan       each target's files (PackageFile) and where they come from (FileSources)
    4 fetch         _wheelhouse_fetch      downloads, and what runs beside the planning (Background)
    5 build         _wheelhouse_build      what is not a wheel: built here or shipped for the host to build
      uv release    _wheelhouse_uv         the uv wheel per platform, its binaries unpacked once
    6 publish       _wheelhouse_publish    the tree under dest, the manifest and the result

Layout written under ``dest``::

    files/<artifact>                every file any target needs, once
    uv/<version>/<platform wheel>/  uv and uvx for each target platform
    targets/<target id>/            exactly what one host gets, hard links into files/:
        bin/uv, bin/uvx
        wheelhouse/<artifact>
        requirements.txt            name==version with --hash, markers already decided
        manifest.json
    manifest.json                   every file, its sha256, size and targets

The dest tree only ever changes by renames of complete files and directories, so a failed
run leaves the previous wheelhouse usable.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Optional

from ansible_collections.airgap.uv.plugins.plugin_utils._closure import ClosureResolver
from ansible_collections.airgap.uv.plugins.plugin_utils._credentials import CredentialProvider
from ansible_collections.airgap.uv.plugins.plugin_utils._download import ArtifactStore, DownloadError
from ansible_collections.airgap.uv.plugins.plugin_utils._os_errors import describe as describe_os_error
from ansible_collections.airgap.uv.plugins.plugin_utils._uv_env import UvEnvironmentError, check_uv_environment, uv_offline
from ansible_collections.airgap.uv.plugins.plugin_utils._uv_tool import uv_version
from ansible_collections.airgap.uv.plugins.plugin_utils._verify import FileVerifier
from ansible_collections.airgap.uv.plugins.plugin_utils._wheelhouse_build import SourceBuilder
from ansible_collections.airgap.uv.plugins.plugin_utils._wheelhouse_common import (  # noqa: F401  (the API)
    WheelhouseError,
    WheelhouseOptions,
    WheelhouseResult,
)
from ansible_collections.airgap.uv.plugins.plugin_utils._wheelhouse_fetch import Background, download_order
from ansible_collections.airgap.uv.plugins.plugin_utils._wheelhouse_inputs import ProjectInputs
from ansible_collections.airgap.uv.plugins.plugin_utils._wheelhouse_plan import FileSources, TargetPlanner
from ansible_collections.airgap.uv.plugins.plugin_utils._wheelhouse_publish import Publisher, needed_files
from ansible_collections.airgap.uv.plugins.plugin_utils._wheelhouse_select import group_targets, select_per_target
from ansible_collections.airgap.uv.plugins.plugin_utils._wheelhouse_unchanged import UnchangedRun
from ansible_collections.airgap.uv.plugins.plugin_utils._wheelhouse_uv import UvRelease


class WheelhouseBuilder:
    """Plans and publishes a wheelhouse; ``check_mode`` plans and reports without writing."""

    def __init__(self, options: WheelhouseOptions, uv: str, check_mode: bool = False,
                 progress: Optional[Callable[[str], None]] = None) -> None:
        self.options, self.uv, self.check_mode = options, uv, check_mode
        say = progress or (lambda message: None)
        # uv's boolean variables are checked before anything runs uv (as uv itself would refuse them).
        try:
            check_uv_environment()
            offline = uv_offline()
        except UvEnvironmentError as exc:
            raise WheelhouseError(str(exc)) from None
        self.project_dir, self.dest = os.path.abspath(options.project), os.path.abspath(options.dest)
        # Store, wheelhouse and uv binaries count only once their content matched (see _verify).
        self.verifier = FileVerifier(os.path.join(options.cache_dir, "verified.json"))
        self.store = ArtifactStore(os.path.join(options.cache_dir, "store"), workers=options.workers,
                                   retries=options.retries, timeout=options.timeout, progress=say,
                                   credentials=CredentialProvider(project_dir=self.project_dir),
                                   verifier=self.verifier, offline=offline)
        self.project = ProjectInputs(self.project_dir, options.cache_dir)
        # The lock's exclude-newer is set once the lock is read.
        closures = ClosureResolver(uv, options.cache_dir, self.project_dir, progress=say)
        self.builds = SourceBuilder(uv, options.cache_dir, self.project_dir, self.store, offline, closures, say)
        self.git = self.builds.git
        self.uv_release = UvRelease(uv, options.cache_dir, self.dest, self.store, self.verifier, offline)
        self.unchanged = UnchangedRun(options, uv, self.project, self.dest, self.store, self.verifier,
                                      self.builds.source_digest)
        self.offline = offline

    @property
    def builds_run(self) -> int:
        return self.builds.builds_run

    def run(self) -> WheelhouseResult:
        try:
            self.project.forget()
            # Nothing changed since the run that published dest: its recorded result is the answer,
            # without reading the lock. Only reads, so check mode takes it too.
            return self.unchanged.result() or self._run_stages()
        except OSError as exc:
            # Met writing the controller's cache (dest is guarded by the publish stage): a full disk says so.
            raise WheelhouseError("Writing the controller's cache %s failed: %s"
                                  % (self.options.cache_dir, describe_os_error(exc, self.options.cache_dir))) from None
        finally:
            if not self.check_mode:
                self.verifier.save()  # what was hashed this run is not hashed again next run

    def _run_stages(self) -> WheelhouseResult:
        # The fixed costs run beside the planning and the downloads: finding (and fetching and
        # unpacking) the uv release starts now, `uv lock --check` once the lock is read; both wait
        # on the index in subprocesses. Nothing under dest is written before the check passed.
        background = Background()
        try:
            background.version = background.submit(lambda: self.options.uv_version or uv_version(self.uv))
            background.uv_wheels = background.submit(self.uv_release.resolve, background.version, self.options.targets)
            if not self.check_mode:
                background.uv_fetch = background.submit(self.uv_release.fetch, background.uv_wheels)
            return self._plan_fetch_publish(background)
        except BaseException:
            self.store.cancel()
            earlier = background.earlier_error()
            if earlier is not None:
                raise earlier
            raise
        finally:
            background.close()

    def _read_and_select(self, background: Background) -> tuple:
        """Stages 1 and 2: (lock, plans, selections); the lock check starts beside what follows."""
        lock = self.project.load_lock()
        # Build requirements resolve with the project's own cut-off, like its packages.
        exclude_newer = lock.options.get("exclude-newer")
        self.builds.closures.exclude_newer = exclude_newer if isinstance(exclude_newer, str) else None
        plans = group_targets(self.options.targets)
        # Selection first: a target outside requires-python or a bad group is the clearer error.
        selections = select_per_target(lock, plans, self.options.selection, self.project.pyproject)
        if self.options.check_lock:
            background.lock_check = background.submit(
                self.project.check_lock_current, self.uv, lock, lambda: self.builds.interpreters.interpreters,
                self.options.lock_check_python, self.offline, self.check_mode)
        return lock, plans, selections

    def _plan_fetch_publish(self, background: Background) -> WheelhouseResult:
        lock, plans, selections = self._read_and_select(background)
        version = background.version.result()
        self.project.check_required_version(version)
        sources = FileSources()
        planner = TargetPlanner(self.builds, sources, self.options.editable, self.options.host_builds)
        for target_id, plan in plans.items():
            background.position += 1  # which target an error here belongs to (Background.earlier_error)
            planner.plan(plan, selections[target_id])
        built = sum(plan.built for plan in plans.values())
        background.position = len(plans)
        # The packages, largest first; the uv wheels are on their way already (UvRelease.fetch).
        if not self.check_mode:
            background.downloads = background.submit(self.store.ensure, download_order(sources.requests, sources.sizes))
        if background.lock_check is not None:
            background.lock_check.result()
        dummy, uv_wheels, uv_error = background.uv_wheels.result()
        if uv_error is not None:
            raise uv_error[1]
        for target_id, plan in plans.items():
            plan.uv_wheel = uv_wheels[target_id]
            sources.request(plan.uv_wheel, "uv %s" % version, replace=False)
        publisher = Publisher(self.dest, self.store, self.verifier, self.uv_release, self.options.prune,
                              self.check_mode, sources)
        if self.check_mode:
            # A store file that no longer matches counts as missing: the real run fetches it again.
            missing = [r for r in sources.requests.values()
                       if not self.verifier.matches(self.store.path_for(r.sha256), r.sha256)]
            return publisher.result(plans, publisher.would_change(plans, version), lock.sha256, version,
                                    downloaded=len(missing), reused=len(sources.requests) - len(missing), built=built)
        try:
            outcome = background.downloaded()
            for sha256, path in sources.local.items():
                self.store.add_file(path, sha256)
        except DownloadError as exc:
            raise WheelhouseError(str(exc)) from None
        downloaded = sum(1 for state in outcome.values() if state != "reused")
        result = publisher.result(plans, publisher.publish(plans, version), lock.sha256, version,
                                  downloaded=downloaded, reused=len(outcome) - downloaded, built=built)
        # What a run with nothing changed returns (UnchangedRun.result); dest/manifest.json keeps it.
        recorded = (dataclasses.replace(result, changed=False, downloaded=0, reused=len(outcome)),
                    sorted(sources.requests), dict(sources.local))

        def write_manifest():
            inputs = self.unchanged.record(plans, needed_files(plans), version, self.uv_release, recorded,
                                           self.builds.tree_keys)
            publisher.write_manifest(plans, lock.sha256, version, inputs)

        # Rewritten when it differs, but it never ships: not a change.
        publisher.guarded(self.dest, write_manifest)
        return result
