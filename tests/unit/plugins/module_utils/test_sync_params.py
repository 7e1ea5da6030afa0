# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of plugins/module_utils/_sync_params.py: the options and the mode option's parser."""

from __future__ import annotations

import pytest

from ansible_collections.airgap.uv.plugins.module_utils._sync_error import SyncError
from ansible_collections.airgap.uv.plugins.module_utils._sync_params import parse_mode


# ---------------------------------------------------------------------------
# mode option
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, mode",
    [(None, None), ("", None), ("0750", 0o750), ("750", 0o750), ("0o750", 0o750), (" 2770 ", 0o2770),
     ("0700", 0o700), (0o755, 0o755), (493, 0o755)],
)
def test_parse_mode(value, mode):
    assert parse_mode(value) == mode


@pytest.mark.parametrize(
    "value, fragment",
    [
        ("u=rwx,g=rx", "symbolic modes"),
        ("0759", "not an octal mode"),
        ("0x1ed", "not an octal mode"),
        ("17777", "out of range"),
        ("0644", "must give the owner rwx"),  # a file mode on a directory
        ("0500", "must give the owner rwx"),
        (755, "the number 1363 in octal; quote octal modes"),  # YAML's unquoted 755 is decimal
        (True, "octal string"),
    ],
)
def test_parse_mode_refuses(value, fragment):
    with pytest.raises(SyncError) as exc:
        parse_mode(value)
    assert fragment in exc.value.msg
