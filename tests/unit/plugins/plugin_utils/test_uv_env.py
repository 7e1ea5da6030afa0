# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""uv's boolean environment variables, parsed by uv's rules (checked against uv 0.13.8)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from ansible_collections.airgap.uv.plugins.plugin_utils._credentials import CredentialProvider
from ansible_collections.airgap.uv.plugins.plugin_utils._uv_env import (
    UV_BOOLEAN_VARIABLES,
    UvEnvironmentError,
    check_uv_environment,
    env_flag,
    uv_offline,
)

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.realpath(__file__)), "..", "..", "..", ".."))
UV = shutil.which("uv") or os.path.join(REPO, ".venv", "bin", "uv")

VALID = [(value, True) for value in ("y", "yes", "t", "true", "on", "1", "TRUE", "Yes", "oN", "Y")] + \
        [(value, False) for value in ("n", "no", "f", "false", "off", "0", "FALSE", "No", "OFF", "N")]
INVALID = ["", " 1", "1 ", "2", "hello", "enable", "tru", "-1", "on\n"]


@pytest.mark.parametrize("value, expected", VALID)
def test_accepted_values(value, expected):
    assert env_flag("UV_OFFLINE", {"UV_OFFLINE": value}) is expected
    assert uv_offline({"UV_OFFLINE": value}) is expected


def test_unset_is_none_and_not_offline():
    assert env_flag("UV_OFFLINE", {}) is None
    assert uv_offline({}) is False


@pytest.mark.parametrize("value", INVALID)
def test_refused_values_name_variable_value_and_accepted_values(value):
    with pytest.raises(UvEnvironmentError) as caught:
        env_flag("UV_OFFLINE", {"UV_OFFLINE": value})
    message = str(caught.value)
    assert "UV_OFFLINE=%r" % value in message
    assert "y, yes, t, true, on, 1" in message and "n, no, f, false, off, 0" in message


@pytest.mark.parametrize("name", UV_BOOLEAN_VARIABLES)
def test_check_names_the_first_bad_variable(name):
    with pytest.raises(UvEnvironmentError, match="%s='hello'" % name):
        check_uv_environment({"UV_OFFLINE": "1", name: "hello"} if name != "UV_OFFLINE" else {name: "hello"})
    check_uv_environment({name: "off"})


@pytest.mark.parametrize("value", ["", "hello", "TRUE", "off", " 1"])
def test_same_verdict_as_uv(value, tmp_path):
    """The real uv accepts exactly what env_flag accepts (UV_OFFLINE, on `uv lock --check --offline`)."""
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "p"\nversion = "0"\nrequires-python = ">=3.8"\n'
                                             '[tool.uv]\npackage = false\n')
    env = dict(os.environ, UV_OFFLINE=value, UV_CACHE_DIR=str(tmp_path / "cache"))
    proc = subprocess.run([UV, "lock", "--quiet", "--directory", str(tmp_path)], env=env, capture_output=True,
                          text=True, check=False)
    try:
        env_flag("UV_OFFLINE", {"UV_OFFLINE": value})
        ours = True
    except UvEnvironmentError:
        ours = False
    assert (proc.returncode == 0) is ours, proc.stderr
    if not ours:
        assert "UV_OFFLINE" in proc.stderr


def test_credentials_read_uv_no_config_by_the_same_rules(tmp_path):
    config = tmp_path / "xdg" / "uv"
    config.mkdir(parents=True)
    (config / "uv.toml").write_text('[[index]]\nname = "corp"\nurl = "https://index.invalid/simple"\n')
    base = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path)}

    def names(**env):
        provider = CredentialProvider(environ=dict(base, **env), home=str(tmp_path))
        return [index.name for index in provider.indexes()]

    assert names() == ["corp"]
    assert names(UV_NO_CONFIG="T") == []
    assert names(UV_NO_CONFIG="off") == ["corp"]
    with pytest.raises(UvEnvironmentError, match="UV_NO_CONFIG='maybe'"):
        names(UV_NO_CONFIG="maybe")
