# -*- coding: utf-8 -*-
# Copyright (c) airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The error every part of airgap.uv.sync raises for the user.

Runs on the TARGET: standard library only (Python 3.9+).
"""

from __future__ import annotations

import typing as t


class SyncError(Exception):
    """An error with a message for the user (what is wrong and what to do)."""

    def __init__(self, msg: str, **details: t.Any) -> None:
        super().__init__(msg)
        self.msg = msg
        self.details = details
