# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Wheelhouse stage 4, fetch: the downloads into the content-addressed store, and the fixed costs
that run beside the planning (the uv version and release, ``uv lock --check``), with their errors
put in the order a sequential run would have met them."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Mapping, Optional

from ansible_collections.airgap.uv.plugins.plugin_utils._download import DownloadError, FileRequest


class Background:
    """What runs beside the planning: uv lock --check, the uv release's wheels, the downloads."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=5, thread_name_prefix="airgap-uv")
        self.version: Optional[Future] = None
        self.lock_check: Optional[Future] = None
        self.uv_wheels: Optional[Future] = None
        self.uv_fetch: Optional[Future] = None
        self.downloads: Optional[Future] = None
        # Which target the main thread plans (-1: none yet), for earlier_error().
        self.position = -1

    def submit(self, function: Callable, *args) -> Future:
        return self._pool.submit(function, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def earlier_error(self) -> Optional[BaseException]:
        """The error a sequential run would have raised before the one at hand, if any: a stale lock
        comes before everything after the check, a target's uv wheel before the next target's plan."""
        if self.lock_check is not None:
            error = self.lock_check.exception()
            if error is not None:
                return error
        if self.uv_wheels is not None and self.position >= 0:
            dummy, dummy2, uv_error = self.uv_wheels.result()
            if uv_error is not None and uv_error[0] < self.position:
                return uv_error[1]
        return None

    def downloaded(self) -> dict:
        """Wait for the package and uv downloads: {sha256: state}; their failures raised together."""
        outcome, errors = {}, []
        try:
            outcome.update(self.downloads.result())
        except DownloadError as exc:
            errors += exc.errors
        uv_outcome, uv_errors = self.uv_fetch.result()
        for sha256, state in uv_outcome.items():
            if outcome.get(sha256, "reused") == "reused":
                outcome[sha256] = state
        errors = sorted(set(errors + uv_errors))
        if errors:
            raise DownloadError("; ".join(errors), errors=errors)
        return outcome


def download_order(requests: Mapping[str, FileRequest], sizes: Mapping[str, Optional[int]]) -> list:
    """Largest first, so the long transfers start at once and small ones fill in around them.

    Sizes come from the lock where it records them; else platform wheels (mostly the big
    ones) go before pure wheels and sdists. Equal estimates keep the lock's order.
    """
    def estimate(request: FileRequest) -> int:
        size = sizes.get(request.sha256)
        if size:
            return size
        name = request.filename
        return 4000000 if name.endswith(".whl") and not name.endswith("-any.whl") else 200000

    return sorted(requests.values(), key=estimate, reverse=True)
