#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: target_facts
short_description: Describe a host as a target for Python wheels
version_added: 0.1.0
description:
  - Gathers what decides which Python artifacts a host can install, measured on the host
    itself with the interpreter that will run the virtual environment. Nothing is guessed
    from tables on the controller.
  - Returns the PEP 508 marker environment (the keys of C(packaging.markers.default_environment())
    computed without C(packaging)), the C library family and version, the CPU, the Python
    interpreter and the version of uv already installed, if any.
  - The result feeds M(airgap.uv.wheelhouse) on the controller.
  - Uses only the Python standard library, so it runs on minimal hosts without pip or venv.
author:
  - airgap.uv maintainers (@airgap-uv)
options:
  python:
    description:
      - Interpreter the project will run with, as a path or a command name on the host's C(PATH).
      - Default is the interpreter that runs this module (C(ansible_python_interpreter)).
    type: str
  uv:
    description:
      - Path of a uv binary whose version to report, normally C(ROOT/bin/uv) of a deployment.
      - Such a binary is never run. Its version is read from the C(manifest.json) of its
        deployment root (C(ROOT/manifest.json)), and only when the binary's sha256 and size match
        what that manifest lists for it; otherwise the version is V(null) and RV(ansible_facts.airgap_uv_target.uv.verified)
        is V(false).
      - When unset, C(uv) is looked up on C(PATH) and run with C(--version), as root only when it
        and every directory above it can be changed by root alone.
    type: path
  venv:
    description:
      - The environment of a deployment made by M(airgap.uv.sync) (the symbolic link to its release in
        service). When set, the release in service and the deployed project's version in it are returned
        as RV(ansible_facts.airgap_uv_release), read from the release's record without running anything.
      - The deployment roles pass it so that a fleet report can name the release every host ran before
        the deployment, including hosts a stopped rollout never reached.
    type: path
  root:
    description:
      - A deployment root (the O(airgap.uv.push#module:dest) of a later push). Whether it exists is
        returned as RV(ansible_facts.airgap_uv_root), so that a first deploy's push can send every
        file without asking the host what it lacks (O(airgap.uv.push#module:dest_absent)).
    type: path
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.facts
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  facts:
    support: full
  platform:
    platforms: posix
notes:
  - Gathering runs the chosen interpreter once with a short probe script; it writes nothing.
"""

EXAMPLES = r"""
- name: Describe the host for the wheelhouse
  airgap.uv.target_facts:

- name: Describe the host for a project that runs on another interpreter
  airgap.uv.target_facts:
    python: /opt/python3.12/bin/python3.12
    uv: /opt/airgap-uv/demo/bin/uv

- name: Show the marker environment
  ansible.builtin.debug:
    var: airgap_uv_target.marker_environment
"""

RETURN = r"""
ansible_facts:
  description: Facts added to the host.
  returned: always
  type: dict
  contains:
    airgap_uv_target:
      description: The host described as a target for Python artifacts.
      type: dict
      returned: always
      contains:
        marker_environment:
          description: PEP 508 marker environment of the interpreter.
          type: dict
          returned: always
          sample:
            implementation_name: cpython
            implementation_version: 3.11.2
            os_name: posix
            platform_machine: x86_64
            platform_python_implementation: CPython
            platform_release: 6.1.0-28-amd64
            platform_system: Linux
            platform_version: "#1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22)"
            python_full_version: 3.11.2
            python_version: "3.11"
            sys_platform: linux
        os:
          description: Operating system family as used in wheel platform tags.
          type: str
          returned: always
          sample: linux
        arch:
          description: CPU architecture as used in wheel platform tags.
          type: str
          returned: always
          sample: x86_64
        libc:
          description: C library of the interpreter; V(null) values on systems without one that matters.
          type: dict
          returned: always
          contains:
            family:
              description: C(glibc), C(musl) or V(null).
              type: str
              sample: glibc
            version:
              description: Version of the C library.
              type: str
              sample: "2.36"
        macos_version:
          description: macOS release, only on macOS.
          type: str
          returned: when on macOS
          sample: "14.4"
        python:
          description: The interpreter.
          type: dict
          returned: always
          contains:
            executable:
              description: Resolved path of the interpreter.
              type: str
              sample: /usr/bin/python3.11
            version:
              description: Full Python version.
              type: str
              sample: 3.11.2
            implementation:
              description: Interpreter implementation name.
              type: str
              sample: cpython
            abiflags:
              description: ABI flags, for example C(t) for a free-threaded build.
              type: str
              sample: ""
            soabi:
              description: The interpreter's SOABI.
              type: str
              sample: cpython-311-x86_64-linux-gnu
            has_venv:
              description: Whether the standard library C(venv) module and C(ensurepip) are usable (uv does not need them).
              type: bool
        uv:
          description: The uv already on the host, or V(null).
          type: dict
          returned: always
          contains:
            path:
              description: Path of the uv binary.
              type: str
            version:
              description: Its version, V(null) when it could not be learned without running an unverified binary.
              type: str
              sample: 0.13.8
            verified:
              description:
                - V(true) when the version was read from the deployment's manifest after the binary's sha256
                  matched it, or from a uv on C(PATH) that only root can change; V(false) when the binary
                  was not trusted and so not run.
              type: bool
    airgap_uv_release:
      description:
        - The release in service in O(venv) when O(venv) is set, else not returned.
      returned: when O(venv) is set
      type: dict
      contains:
        venv:
          description: O(venv).
          type: str
        release:
          description: The release directory O(venv) points at, V(null) when it is not a deployment's link.
          type: str
          sample: /opt/airgap-uv/demo/.venv.releases/20250101T120000.123456Z-a1b2c3
        version:
          description: The deployed project's version in that release, V(null) when its record does not name it.
          type: str
          sample: 1.4.0
    airgap_uv_root:
      description:
        - The deployment root O(root) when O(root) is set, else not returned.
      returned: when O(root) is set
      type: dict
      contains:
        path:
          description: O(root).
          type: str
        exists:
          description: Whether O(root) exists on the host (as anything, a file or link there counts too).
          type: bool
"""

import json
import os
import re
import shutil
import sys

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.airgap.uv.plugins.module_utils._hashing import sha256_file
from ansible_collections.airgap.uv.plugins.module_utils._host_safety import UnsafePath, read_text, require_root_only
from ansible_collections.airgap.uv.plugins.module_utils._platform import normalize_arch
from ansible_collections.airgap.uv.plugins.module_utils._sync_packages import canonical_name
from ansible_collections.airgap.uv.plugins.module_utils._sync_store import RELEASE_META as RELEASE_RECORD

# Runs inside the interpreter being described, which may differ from the one running
# Ansible, so it is plain source executed with `python -c` and prints one JSON document.
_PROBE = r"""
import json, os, platform, sys, sysconfig

def _full(info):
    version = "{0.major}.{0.minor}.{0.micro}".format(info)
    if info.releaselevel != "final":
        version += info.releaselevel[0] + str(info.serial)
    return version

def _elf_interpreter(path):
    # The ELF program interpreter names the C library the binary was linked against
    # (ld-musl-* for musl); it is read from the headers, no tool needed.
    try:
        import struct
        with open(path, "rb") as handle:
            ident = handle.read(16)
            if ident[:4] != b"\x7fELF":
                return None
            is64 = ident[4] == 2
            endian = "<" if ident[5] == 1 else ">"
            if is64:
                handle.seek(32); phoff, = struct.unpack(endian + "Q", handle.read(8))
                handle.seek(54); phentsize, phnum = struct.unpack(endian + "HH", handle.read(4))
            else:
                handle.seek(28); phoff, = struct.unpack(endian + "I", handle.read(4))
                handle.seek(42); phentsize, phnum = struct.unpack(endian + "HH", handle.read(4))
            for index in range(phnum):
                handle.seek(phoff + index * phentsize)
                header = handle.read(phentsize)
                p_type, = struct.unpack(endian + "I", header[:4])
                if p_type != 3:
                    continue
                if is64:
                    offset, = struct.unpack(endian + "Q", header[8:16])
                    size, = struct.unpack(endian + "Q", header[32:40])
                else:
                    offset, = struct.unpack(endian + "I", header[4:8])
                    size, = struct.unpack(endian + "I", header[16:20])
                handle.seek(offset)
                return handle.read(size).rstrip(b"\0").decode("ascii", "replace")
    except (OSError, ValueError):
        return None
    return None

def _libc():
    try:
        value = os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):
        value = None
    if value and value.startswith("glibc "):
        return {"family": "glibc", "version": value.split()[1]}
    loader = _elf_interpreter(sys.executable)
    if loader and "musl" in loader:
        import subprocess
        try:
            proc = subprocess.run([loader], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for line in proc.stderr.decode("utf-8", "replace").splitlines():
                if line.startswith("Version "):
                    return {"family": "musl", "version": line.split()[1]}
        except OSError:
            pass
        return {"family": "musl", "version": None}
    return {"family": None, "version": None}

def _has_venv():
    try:
        import ensurepip, venv  # noqa: F401
        return True
    except ImportError:
        return False

env = {
    "implementation_name": sys.implementation.name,
    "implementation_version": _full(sys.implementation.version),
    "os_name": os.name,
    "platform_machine": platform.machine(),
    "platform_release": platform.release(),
    "platform_system": platform.system(),
    "platform_version": platform.version(),
    "python_full_version": platform.python_version(),
    "platform_python_implementation": platform.python_implementation(),
    "python_version": ".".join(platform.python_version_tuple()[:2]),
    "sys_platform": sys.platform,
}
out = {
    "marker_environment": env,
    "libc": _libc() if sys.platform.startswith("linux") else {"family": None, "version": None},
    "python": {
        "executable": os.path.realpath(sys.executable),
        "version": env["python_full_version"],
        "implementation": sys.implementation.name,
        "abiflags": getattr(sys, "abiflags", ""),
        "soabi": sysconfig.get_config_var("SOABI") or "",
        "has_venv": _has_venv(),
    },
}
if sys.platform == "darwin":
    out["macos_version"] = platform.mac_ver()[0]
print(json.dumps(out))
"""


def _normalize_arch(machine: str, os_family: str) -> str:
    # macOS wheel tags spell Apple silicon arm64; elsewhere the Linux spelling (_platform).
    if os_family == "darwin" and machine.lower() in ("arm64", "aarch64"):
        return "arm64"
    return normalize_arch(machine)


def _deployed_uv_version(path: str) -> dict:
    """The version of a deployment's uv, from its manifest, without running it (it may be tampered)."""
    found = {"path": path, "version": None, "verified": False}
    root = os.path.dirname(os.path.dirname(path))
    try:
        with open(os.path.join(root, "manifest.json"), encoding="utf-8") as handle:
            manifest = json.load(handle)
        relpath = os.path.relpath(path, root)
        entry = next(e for e in manifest["files"] if isinstance(e, dict) and e.get("filename") == relpath)
        if os.stat(path).st_size == int(entry["size"]) and sha256_file(path) == str(entry["sha256"]).lower():
            found.update(version=str(manifest["uv_version"]), verified=True)
    except (OSError, ValueError, KeyError, TypeError, StopIteration):
        pass
    return found


def _release_in_service(venv: str) -> dict:
    """The release VENV points at and the project's version in it, from the release's record (run nothing)."""
    found = {"venv": venv, "release": None, "version": None}
    try:
        release = os.path.normpath(os.path.join(os.path.dirname(venv), os.readlink(venv)))
    except OSError:
        return found
    found["release"] = release
    try:
        # The release may belong to its owner: read_text follows no link planted there.
        meta = json.loads(read_text(os.path.join(release, RELEASE_RECORD)))
        name = canonical_name(str(meta["project"]["name"]))
        found["version"] = str(meta["packages"][name]["version"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return found


def _uv_version(module: AnsibleModule, uv_path: str | None) -> dict | None:
    if uv_path:
        return _deployed_uv_version(uv_path) if os.path.isfile(uv_path) else None
    path = shutil.which("uv")
    if not path or not os.access(path, os.X_OK):
        return None
    if os.geteuid() == 0:
        try:
            require_root_only(os.path.realpath(path), "the uv on PATH")
        except UnsafePath:
            return {"path": path, "version": None, "verified": False}
    rc, out, dummy = module.run_command([path, "--version"])
    match = re.match(r"uv (\S+)", out or "")
    if rc != 0 or not match:
        return None
    return {"path": path, "version": match.group(1), "verified": True}


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            python=dict(type="str"),
            uv=dict(type="path"),
            venv=dict(type="path"),
            root=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    python = module.params["python"]
    if python:
        interpreter = python if os.sep in python else shutil.which(python)
        if not interpreter or not os.access(interpreter, os.X_OK):
            module.fail_json(msg="Python interpreter %r was not found on the host; install it or set "
                             "'python' to an existing interpreter path." % python)
    else:
        interpreter = sys.executable

    rc, out, err = module.run_command([interpreter, "-c", _PROBE])
    if rc != 0:
        module.fail_json(msg="Probing Python interpreter %s failed (rc=%d): %s" % (interpreter, rc, err.strip()))
    facts = json.loads(out)
    env = facts["marker_environment"]
    system = env["platform_system"]
    os_family = {"Linux": "linux", "Darwin": "darwin", "Windows": "windows"}.get(system, system.lower())
    facts["os"] = os_family
    facts["arch"] = _normalize_arch(env["platform_machine"], os_family)
    facts["uv"] = _uv_version(module, module.params["uv"])
    found = {"airgap_uv_target": facts}
    if module.params["venv"]:
        found["airgap_uv_release"] = _release_in_service(module.params["venv"])
    if module.params["root"]:
        found["airgap_uv_root"] = {"path": module.params["root"], "exists": os.path.lexists(module.params["root"])}
    module.exit_json(changed=False, ansible_facts=found)


if __name__ == "__main__":
    main()
