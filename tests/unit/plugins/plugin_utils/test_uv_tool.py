# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import platform
import sys

from packaging.specifiers import SpecifierSet

from ansible_collections.airgap.uv.plugins.plugin_utils._uv_tool import controller_python_args


def test_uv_is_pointed_at_the_running_interpreter(monkeypatch):
    monkeypatch.delenv("UV_PYTHON", raising=False)
    assert controller_python_args() == ["--python", sys.executable]
    assert controller_python_args(SpecifierSet(">=3.8")) == ["--python", sys.executable]


def test_uv_searches_itself_when_the_running_interpreter_is_outside_requires_python(monkeypatch):
    monkeypatch.delenv("UV_PYTHON", raising=False)
    major, minor = platform.python_version_tuple()[:2]
    assert controller_python_args(SpecifierSet(">%s.%s.999" % (major, minor))) == []


def test_the_users_uv_python_wins(monkeypatch):
    monkeypatch.setenv("UV_PYTHON", "/opt/python3.12/bin/python3")
    assert controller_python_args() == []
