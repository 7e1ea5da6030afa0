# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Paths and the ansible-playbook environment shared by the tests that use the offline test bed."""

from __future__ import annotations

import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESTBED = os.path.join(REPO, "tests", "testbed", "offline-hosts")
VENV_BIN = os.path.join(REPO, ".venv", "bin")
EXAMPLE = os.path.join(REPO, "examples", "hello-airgap")


def ansible_env(**extra: str) -> dict:
    """The caller's environment plus the dev venv and this collection, plain output."""
    env = dict(os.environ)
    env["PATH"] = VENV_BIN + os.pathsep + env.get("PATH", "")
    env["ANSIBLE_COLLECTIONS_PATH"] = os.path.join(REPO, ".venv", "collections")
    env["ANSIBLE_PIPELINING"] = "true"
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env["ANSIBLE_NOCOLOR"] = "1"
    env.update(extra)
    return env
