# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Running the controller's uv, and learning where the uv binary for another platform lives.

The index is never named here: uv and the user's own configuration choose it. To find
the uv wheel for every platform we lock a throw-away project that requires ``uv==VERSION``;
the lock then lists each platform's wheel with its URL and sha256.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from typing import TYPE_CHECKING, Optional, Sequence

from ansible_collections.airgap.uv.plugins.plugin_utils._download import write_atomically
from ansible_collections.airgap.uv.plugins.plugin_utils._zipstream import ZipStream

if TYPE_CHECKING:  # annotations only: this module imports without packaging
    from packaging.specifiers import SpecifierSet

_UV_VERSION_RE = re.compile(r"^uv (\d+\.\d+\.\d+\S*)")


class UvError(Exception):
    """uv could not be found or a uv command failed."""


def find_uv(explicit: Optional[str] = None) -> str:
    """The uv to run on the controller: the given path, ``uv`` on PATH, or the one next to this Python."""
    if explicit:
        if not (os.path.isfile(explicit) and os.access(explicit, os.X_OK)):
            raise UvError("uv_executable %s is not an executable file." % explicit)
        return explicit
    found = shutil.which("uv") or shutil.which("uv", path=os.path.dirname(sys.executable))
    if not found:
        raise UvError("uv was not found on the controller; install it beside ansible-playbook (for example "
                      "'pip install uv' in the Python that runs Ansible) or put it on ansible-playbook's PATH "
                      "(the airgap.uv.wheelhouse module also takes its path as uv_executable).")
    return found


def run_uv(uv: str, args: Sequence[str], cwd: Optional[str] = None, what: str = "uv",
           env: Optional[dict] = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([uv, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=env, check=False)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise UvError("%s failed (uv %s, rc=%d):\n%s" % (what, " ".join(args), proc.returncode, tail))
    return proc


def controller_python_args(requires_python: Optional[SpecifierSet] = None) -> list[str]:
    """``--python`` naming the interpreter running this code, for uv commands that only need *a* Python.

    Without it uv searches PATH and queries what it finds; behind a pyenv shim, and with the
    empty uv cache of a fresh controller, that search alone took 0.1-0.2 s per command here.
    Nothing is passed when the user chose an interpreter for uv (UV_PYTHON) or when this one is
    outside REQUIRES_PYTHON: then uv's own search decides, as before.
    """
    if os.environ.get("UV_PYTHON") or not sys.executable or not os.path.isfile(sys.executable):
        return []
    if requires_python is not None and not requires_python.contains(platform.python_version(), prereleases=True):
        return []
    return ["--python", sys.executable]


def uv_version(uv: str) -> str:
    proc = run_uv(uv, ["--version"], what="uv --version")
    match = _UV_VERSION_RE.match(proc.stdout.strip())
    if not match:
        raise UvError("Cannot read uv's version from %r." % proc.stdout.strip())
    return match.group(1)


_BINARY_PROJECT = """\
[project]
name = "airgap-uv-binary"
version = "0"
requires-python = ">=3.8"
dependencies = ["uv=={version}"]

[tool.uv]
package = false

# uv's wheels declare no dependencies, and only their binaries are shipped: saying so here
# spares uv fetching a wheel's metadata from the index (a second request, about 0.2 s cold).
[[tool.uv.dependency-metadata]]
name = "uv"
version = "{version}"
requires-dist = []
"""


def lock_uv_release(uv: str, version: str, cache_dir: str) -> str:
    """Path of a uv.lock listing every platform's wheel of uv VERSION (cached per version)."""
    if not re.match(r"^\d+\.\d+\.\d+([.\w+-]*)$", version):
        raise UvError("uv version %r is not a release version such as 0.13.8." % version)
    directory = os.path.join(cache_dir, "uv-releases", version)
    lock_path = os.path.join(directory, "uv.lock")
    if os.path.isfile(lock_path):
        return lock_path
    os.makedirs(os.path.dirname(directory), exist_ok=True)
    work = tempfile.mkdtemp(dir=os.path.dirname(directory), prefix=".lock-")
    try:
        with open(os.path.join(work, "pyproject.toml"), "w", encoding="utf-8") as handle:
            handle.write(_BINARY_PROJECT.format(version=version))
        run_uv(uv, ["lock", "--quiet", "--directory", work, *controller_python_args()],
               what="Locking uv==%s to find its wheels" % version)
        try:
            os.replace(work, directory)
        except OSError:
            # Another run won the race; its lock is as good as ours.
            shutil.rmtree(work, ignore_errors=True)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return lock_path


_UV_SCRIPTS = ("uv", "uvx", "uv.exe", "uvx.exe")


def uv_script_name(member: str) -> Optional[str]:
    """``uv`` for a wheel member ``*.data/scripts/uv`` (likewise uvx and the .exe names), else None."""
    parts = member.split("/")
    if len(parts) == 3 and parts[0].endswith(".data") and parts[1] == "scripts" and parts[2] in _UV_SCRIPTS:
        return parts[2]
    return None


def extract_uv_binaries(wheel_path: str, destination: str, digests: Optional[dict] = None) -> list[str]:
    """Unpack ``uv`` and ``uvx`` from a uv wheel's scripts into DESTINATION; return their paths.

    The members are looked up by exact name, so a crafted wheel cannot write elsewhere.
    Windows wheels carry ``uv.exe``/``uvx.exe``. With DIGESTS, each written name's sha256 is
    stored there, computed while writing (so nobody has to read the 40 MB binary again).
    """
    written: list[str] = []
    os.makedirs(destination, exist_ok=True)
    with zipfile.ZipFile(wheel_path) as archive:
        scripts = {}
        for member in archive.namelist():
            name = uv_script_name(member)
            if name is not None:
                scripts[name] = member
        names = [n for n in _UV_SCRIPTS if n in scripts]
        if not any(n in ("uv", "uv.exe") for n in names):
            raise UvError("%s holds no uv binary under *.data/scripts/." % os.path.basename(wheel_path))
        for name in names:
            target = os.path.join(destination, name)
            digest = hashlib.sha256()

            def fill(out, member=scripts[name], digest=digest):
                with archive.open(member) as src:
                    while True:
                        block = src.read(1024 * 1024)
                        if not block:
                            break
                        digest.update(block)
                        out.write(block)

            write_atomically(target, fill, mode=0o755)
            if digests is not None:
                digests[name] = digest.hexdigest()
            written.append(target)
    return written


class UvBinaryStream(ZipStream):
    """uv and uvx unpacked from a uv wheel while it downloads (a ``FileRequest.consumer``).

    Written to a staging directory under PARENT; :meth:`verified` hands it over only once the
    caller knows the wheel matched its lock and the central directory agrees with what streamed.
    """

    def __init__(self, parent: str) -> None:
        super().__init__(uv_script_name, parent, prefix=".uv-")

    def verified(self, wheel_path: str, digests: dict) -> Optional[str]:
        """The staging directory holding exactly what extract_uv_binaries would write, or None.

        Call only once WHEEL_PATH (the complete, hash-checked file) is in place. Every uv script
        member the central directory lists must have streamed from the same local header with
        the same method, sizes and CRC-32; then DIGESTS gets their sha256. Otherwise (or if
        anything could not stream) the staging directory is removed and None returned.
        """
        members = dict(self.members)
        staging = self.take()
        if staging is None:
            return None
        try:
            agrees = _streamed_as_listed(wheel_path, staging, members)
        except Exception:  # pylint: disable=broad-except
            agrees = False  # an unreadable central directory: unzipping the wheel will say why
        if not agrees:
            shutil.rmtree(staging, ignore_errors=True)
            return None
        for name, streamed in members.items():
            digests[name] = streamed.sha256
        return staging


def _streamed_as_listed(wheel_path: str, staging: str, members: dict) -> bool:
    """Whether the central directory lists exactly the uv scripts that streamed, as they streamed."""
    with zipfile.ZipFile(wheel_path) as archive:
        listed = {}
        for info in archive.infolist():
            name = uv_script_name(info.filename)
            if name is not None:
                listed[name] = info  # the last of a repeated name, as ZipFile.getinfo() answers
    if set(listed) != set(members) or not any(n in ("uv", "uv.exe") for n in listed):
        return False
    if sorted(os.listdir(staging)) != sorted(members):
        return False
    for name, info in listed.items():
        streamed = members[name]
        if ((info.filename, info.header_offset, info.compress_type, info.compress_size, info.file_size, info.CRC)
                != (streamed.name, streamed.header_offset, streamed.method, streamed.compressed_size,
                    streamed.file_size, streamed.crc32)):
            return False
    return True
