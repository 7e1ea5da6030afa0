# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Wheelhouse uv release stage: the uv wheel for each target's platform, learnt from the index,
fetched beside the packages, and its uv and uvx unpacked once into the controller's cache
(``cache_dir/uv-binaries/<wheel sha256>``, with their SHA256SUMS) for the publish stage."""

from __future__ import annotations

import os
import shutil
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Mapping, Optional

from ansible_collections.airgap.uv.plugins.plugin_utils._download import ArtifactStore, DownloadError, FileRequest
from ansible_collections.airgap.uv.plugins.plugin_utils._lock import load_lock
from ansible_collections.airgap.uv.plugins.plugin_utils._lock_types import Artifact, Lock, LockError
from ansible_collections.airgap.uv.plugins.plugin_utils._tags import choose_wheel, target_platforms, target_tags
from ansible_collections.airgap.uv.plugins.plugin_utils._target import Target
from ansible_collections.airgap.uv.plugins.plugin_utils._target_files import Binary, TargetPlan
from ansible_collections.airgap.uv.plugins.plugin_utils._uv_tool import (
    UvBinaryStream,
    UvError,
    extract_uv_binaries,
    lock_uv_release,
)
from ansible_collections.airgap.uv.plugins.plugin_utils._verify import FileVerifier
from ansible_collections.airgap.uv.plugins.plugin_utils._wheelhouse_common import WheelhouseError, write_text
from ansible_collections.airgap.uv.plugins.plugin_utils._wheelhouse_select import group_targets

# Beside the uv binaries: their sha256, written when they are unpacked.
SUMS = "SHA256SUMS"


class UvRelease:
    """The uv release every target gets: its wheels, their fetch, and the binaries unpacked."""

    def __init__(self, uv: str, cache_dir: str, dest: str, store: ArtifactStore, verifier: FileVerifier,
                 offline: bool) -> None:
        self.uv = uv
        self.cache_dir = cache_dir
        self.dest = dest
        self.store = store
        self.verifier = verifier
        self.offline = offline
        self._lock: Optional[Lock] = None

    def wheel_for(self, version: str, target: Target, plan: TargetPlan) -> Artifact:
        if self._lock is None:
            try:
                self._lock = load_lock(lock_uv_release(self.uv, version, self.cache_dir))
            except (UvError, LockError) as exc:
                hint = (" UV_OFFLINE is set and the controller has not locked uv %s before (%s); run once with "
                        "network access." % (version, os.path.join(self.cache_dir, "uv-releases", version))
                        if self.offline else "")
                raise WheelhouseError("Cannot learn the uv %s wheels from the index: %s%s"
                                      % (version, exc, hint)) from None
        package = next((p for p in self._lock.packages if p.name == "uv"), None)
        platforms = target_platforms(target.os, target.arch, target.libc_family, target.libc_version,
                                     target.macos_version)
        # uv wheels are tagged py3-none-<platform>: any Python version selects them.
        wheel = choose_wheel(package.wheels if package else (), target_tags("3.8", "cpython", platforms))
        if wheel is None or not wheel.sha256:
            raise WheelhouseError("uv %s publishes no binary for target %s (hosts %s); choose another uv version "
                                  "with uv_version (role variable uv_deploy_uv_version)."
                                  % (version, target.id, ", ".join(plan.hosts)))
        return wheel

    def resolve(self, version: Future, targets: Mapping[str, Mapping]) -> tuple:
        """(version, {target id: uv wheel}, None), or with the first error and its target's index:
        (version, wheels, (i, exc)).

        Runs beside reading the lock and the planning; the orchestrator puts its error where a
        sequential run would have met it. When the version or the targets are wrong there is
        nothing to do: the main thread meets and reports that itself.
        """
        try:
            version = version.result()
            plans = group_targets(targets)
        except Exception:  # pylint: disable=broad-except
            return None, {}, None
        wheels = {}
        for index, (target_id, plan) in enumerate(plans.items()):
            try:
                wheels[target_id] = self.wheel_for(version, plan.target, plan)
            except Exception as exc:  # pylint: disable=broad-except
                return version, wheels, (index, exc)
        return version, wheels, None

    def fetch(self, resolved: Future) -> tuple:
        """Fetch every platform's uv wheel and unpack its binaries as soon as it is verified.

        Returns ({sha256: state}, [download errors]). Unpacking goes to the cache (binaries()),
        never to dest, and a failure there is left for the publish stage to meet and report.
        """
        version, wheels, error = resolved.result()
        if error is not None:
            return {}, []
        unique = {}
        for wheel in wheels.values():
            unique.setdefault(wheel.sha256, wheel)
        outcome, errors = {}, []
        if unique:
            with ThreadPoolExecutor(max_workers=len(unique)) as pool:
                for states, failures in pool.map(lambda wheel: self._fetch_one(version, wheel), list(unique.values())):
                    outcome.update(states)
                    errors += failures
        return outcome, errors

    def _fetch_one(self, version: str, wheel: Artifact) -> tuple:
        wanted = not self.in_dest(version, wheel)
        # uv and uvx inflate while the wheel downloads (into a staging directory, trusted only
        # once the wheel matched the lock: binaries()); a wheel the store has is unzipped.
        stream = (UvBinaryStream(os.path.dirname(self.binaries_dir(wheel)))
                  if wanted and not self.binaries_ready(wheel) else None)
        request = FileRequest(filename=wheel.filename, sha256=wheel.sha256, url=wheel.url, path=wheel.path,
                              label="uv %s" % version, consumer=stream)
        try:
            try:
                outcome = self.store.ensure([request])
            except DownloadError as exc:
                return {}, exc.errors
            if wanted:
                try:
                    self.binaries(wheel, stream)
                except Exception:  # pylint: disable=broad-except
                    pass
            return outcome, []
        finally:
            if stream is not None:
                stream.abort()  # whatever was not taken over

    def dest_dir(self, version: str, wheel: Artifact) -> str:
        return os.path.join(self.dest, "uv", version, wheel.filename[:-4])

    def in_dest(self, version: str, wheel: Artifact) -> bool:
        return binaries_intact(self.dest_dir(version, wheel), self.verifier)

    def binaries_dir(self, wheel: Artifact) -> str:
        return os.path.join(self.cache_dir, "uv-binaries", wheel.sha256)

    def binaries_ready(self, wheel: Artifact) -> bool:
        return binaries_intact(self.binaries_dir(wheel), self.verifier)

    def binaries(self, wheel: Artifact, streamed: Optional[UvBinaryStream] = None) -> str:
        """``cache_dir/uv-binaries/<wheel sha256>``: uv and uvx of WHEEL and their SHA256SUMS, unpacked once.

        The publish stage links them into dest; the sums spare hashing the 40 MB binary for every
        manifest. With STREAMED (fed while the wheel downloaded), its files are used once they agree
        with the wheel's central directory; else, or when anything streamed is in doubt, the wheel
        is unzipped.
        """
        directory = self.binaries_dir(wheel)
        if self.binaries_ready(wheel):
            return directory
        os.makedirs(os.path.dirname(directory), exist_ok=True)
        wheel_path = self.store.path_for(wheel.sha256)
        digests: dict = {}
        staging = streamed.verified(wheel_path, digests) if streamed is not None else None
        try:
            if staging is None:
                digests = {}
                staging = tempfile.mkdtemp(dir=os.path.dirname(directory), prefix=".uv-")
                os.chmod(staging, 0o755)
                extract_uv_binaries(wheel_path, staging, digests=digests)
            else:
                os.chmod(staging, 0o755)
            write_text(os.path.join(staging, SUMS), format_sums(digests))
            if os.path.isdir(directory):
                shutil.rmtree(directory, ignore_errors=True)  # left without its sums: unpack afresh
            try:
                os.replace(staging, directory)
            except OSError:
                if not os.path.isfile(os.path.join(directory, SUMS)):
                    raise
                # A concurrent run placed the same binaries first.
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
        return directory

    def binaries_of(self, version: str, plan: TargetPlan, check_mode: bool) -> list:
        """[Binary] of PLAN's uv wheel: from dest, the cache, or unpacked into the cache now; in check
        mode, when the controller has not fetched the wheel, named by platform with no sha256 or size."""
        wheel = plan.uv_wheel
        if self.in_dest(version, wheel):
            directory = self.dest_dir(version, wheel)
        elif self.binaries_ready(wheel):
            directory = self.binaries_dir(wheel)
        elif not check_mode or self.verifier.matches(self.store.path_for(wheel.sha256), wheel.sha256):
            directory = self.binaries(wheel)  # the cache only, as the real run would
        else:
            names = ("uv.exe", "uvx.exe") if plan.target.os == "windows" else ("uv", "uvx")
            return [Binary(name, None, None) for name in names]
        return [Binary(name, digest, os.path.getsize(os.path.join(directory, name)))
                for name, digest in sorted(read_sums(directory).items())]


def binaries_intact(directory: str, verifier: FileVerifier) -> bool:
    """Whether DIRECTORY holds uv (or uv.exe) and each binary its SHA256SUMS lists, with that sha256."""
    sums = read_sums(directory)
    if "uv" not in sums and "uv.exe" not in sums:
        return False
    return all(verifier.matches(os.path.join(directory, name), digest) for name, digest in sums.items())


def format_sums(digests: Mapping[str, str]) -> str:
    return "".join("%s  %s\n" % (digest, name) for name, digest in sorted(digests.items()))


def read_sums(directory: str) -> dict:
    """{name: sha256} from DIRECTORY's SHA256SUMS; empty when there is none."""
    sums = {}
    try:
        with open(os.path.join(directory, SUMS), encoding="utf-8") as handle:
            for line in handle:
                digest, sep, name = line.rstrip("\n").partition("  ")
                if sep and len(digest) == 64:
                    sums[name] = digest
    except OSError:
        pass
    return sums
