# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""uv's environment variables, read on the controller the way uv reads them.

uv (0.9.23 and later; checked with 0.13.8) takes a boolean variable as true when it is one of
``y yes t true on 1`` and false when it is one of ``n no f false off 0``, compared without
regard to case and without trimming; anything else, the empty string included, makes every uv
command fail. The controller reads some of these itself (``UV_OFFLINE`` for its own downloader,
``UV_NO_CONFIG`` for credentials) and hands the rest to the uv it runs, so it checks them all
at once, before the first uv call, and names the variable, its value and the accepted values
instead of leaving uv's parse error to surface in the middle of ``uv lock --check``.

Standard library only.
"""

from __future__ import annotations

import os
from typing import Mapping, Optional

TRUE_VALUES = ("y", "yes", "t", "true", "on", "1")
FALSE_VALUES = ("n", "no", "f", "false", "off", "0")

#: Boolean variables uv 0.13.8 parses when the controller runs ``uv lock`` or ``uv build``
#: (each checked: a value such as ``hello`` makes those commands fail).
UV_BOOLEAN_VARIABLES = (
    "UV_OFFLINE", "UV_NO_CONFIG", "UV_NO_CACHE", "UV_NATIVE_TLS", "UV_PREVIEW", "UV_FROZEN", "UV_LOCKED",
    "UV_NO_PROGRESS", "UV_ISOLATED", "UV_NO_MANAGED_PYTHON", "UV_MANAGED_PYTHON", "UV_NO_BUILD_ISOLATION",
    "UV_NO_BUILD", "UV_NO_BINARY", "UV_NO_SOURCES", "UV_NO_INSTALLER_METADATA", "UV_NO_EDITABLE", "UV_NO_DEV",
    "UV_NO_SYNC", "UV_NO_ENV_FILE", "UV_SHOW_RESOLUTION",
)


class UvEnvironmentError(ValueError):
    """A uv environment variable holds a value uv refuses; the message names it and the fix."""


def env_flag(name: str, environ: Optional[Mapping[str, str]] = None) -> Optional[bool]:
    """The boolean value of the variable NAME by uv's rules; None when it is not set.

    Raises UvEnvironmentError for a value uv would refuse (an empty one too).
    """
    env = os.environ if environ is None else environ
    value = env.get(name)
    if value is None:
        return None
    folded = value.lower()
    if folded in TRUE_VALUES:
        return True
    if folded in FALSE_VALUES:
        return False
    raise UvEnvironmentError(
        "The environment variable %s=%r is not a boolean uv accepts: use one of %s for true or %s for false "
        "(any case), or unset it. It comes from the environment of the controller's ansible-playbook process."
        % (name, value, ", ".join(TRUE_VALUES), ", ".join(FALSE_VALUES)))


def check_uv_environment(environ: Optional[Mapping[str, str]] = None) -> None:
    """Raise UvEnvironmentError for the first of uv's boolean variables that holds an invalid value."""
    for name in UV_BOOLEAN_VARIABLES:
        env_flag(name, environ)


def uv_offline(environ: Optional[Mapping[str, str]] = None) -> bool:
    """Whether UV_OFFLINE asks for no network access (uv's own default: false)."""
    return bool(env_flag("UV_OFFLINE", environ))
