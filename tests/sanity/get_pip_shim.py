# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Stand-in for the pip bootstrap script that ansible-test downloads from a host this
machine cannot reach. ansible-test runs it as ``get_pip.py <pip install arguments>``;
like the original, it imports pip from a pip wheel and runs ``pip install`` with them.
The wheel comes from the package index through the ordinary pip, into the same cache.
"""

from __future__ import annotations

import glob
import os
import runpy
import subprocess
import sys

VERSION = os.path.basename(__file__)[len("get_pip_"):-len(".py")].replace("_", ".")
CACHE = os.path.dirname(os.path.abspath(__file__))


def pip_wheel() -> str:
    pattern = os.path.join(CACHE, "pip-%s-py3-none-any.whl" % VERSION)
    found = glob.glob(pattern)
    if not found:
        subprocess.check_call([os.environ.get("AIRGAP_UV_HOST_PYTHON", "python3"), "-m", "pip", "download",
                               "--quiet", "--no-deps", "--only-binary", ":all:", "-d", CACHE, "pip==%s" % VERSION])
        found = glob.glob(pattern)
    return found[0]


if __name__ == "__main__":
    sys.path.insert(0, pip_wheel())
    # get-pip's own flags: without them it also installs setuptools and wheel.
    args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
    args += [name for name in ("setuptools", "wheel") if "--no-%s" % name not in sys.argv[1:]]
    sys.argv = ["pip", "install"] + args
    runpy.run_module("pip", run_name="__main__", alter_sys=True)
