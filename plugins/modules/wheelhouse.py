#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# The work happens in the action plugin of the same name, on the controller; this file
# carries the documentation.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: wheelhouse
short_description: Build a per-host offline wheelhouse from a uv project's uv.lock
version_added: 0.1.0
description:
  - Runs on the controller, which needs network access to the package index; the hosts do not.
  - Reads the project's C(uv.lock) and, for every distinct target among O(targets), selects the
    packages uv would install there (markers evaluated in the host's own marker environment,
    groups and extras in uv's vocabulary) and the exact file uv would pick (wheel tag priority
    for the host's Python, CPU and C library).
  - Downloads each file once into a content-addressed cache, streaming and checking the sha256
    recorded in the lock, retrying timeouts and server errors, and never leaves a partial file.
  - Builds what is not a wheel (the project itself, workspace members, path dependencies,
    sdist-only packages) into a wheel on the controller with uv.
  - Fetches the uv binary for each host's platform from the package index (its wheel is found
    by locking a throw-away project that requires C(uv==VERSION)) and unpacks C(uv) and C(uvx).
  - Writes under O(dest) one directory per target, C(targets/<id>/), holding exactly that
    target's C(bin/uv), C(wheelhouse/*.whl), a hash-pinned C(requirements.txt) and a
    C(manifest.json); M(airgap.uv.sync) installs from it on the host with no network.
  - The wheelhouse changes only by renames of complete files and directories, so a failed run
    leaves the previous one usable.
author:
  - airgap.uv maintainers (@airgap-uv)
requirements:
  - uv on the controller (found on C(PATH), next to the controller's Python, or O(uv_executable))
  - the Python library C(packaging) on the controller
  - C(tomli) on the controller when it runs Python older than 3.11
options:
  project:
    description: Directory of the uv project (holding C(pyproject.toml) and C(uv.lock)) on the controller.
    type: path
    required: true
  dest:
    description: Wheelhouse directory on the controller. Created when missing.
    type: path
    required: true
  targets:
    description:
      - Map of host name to that host's C(airgap_uv_target) fact from M(airgap.uv.target_facts).
      - "For a host the controller cannot reach, a short description works too, for example
        C({python: 3.12.3, os: linux, arch: aarch64, libc: glibc, libc_version: '2.35'})
        (C(macos_version) on C(darwin); C(os) is one of C(linux), C(darwin), C(windows))."
      - Hosts with equal targets share one install file.
    type: dict
    required: true
  groups:
    description: Dependency groups to include, like C(uv sync --group).
    type: list
    elements: str
    default: []
  only_groups:
    description: Install only these groups and not the project's dependencies, like C(uv sync --only-group).
    type: list
    elements: str
    default: []
  all_groups:
    description: Include every dependency group, like C(uv sync --all-groups).
    type: bool
    default: false
  no_default_groups:
    description: Leave out the default groups (C(tool.uv.default-groups), C(dev) when unset), like C(uv sync --no-default-groups).
    type: bool
    default: false
  no_dev:
    description: Leave out the C(dev) group, like C(uv sync --no-dev).
    type: bool
    default: false
  extras:
    description: Optional dependencies (extras) to include, like C(uv sync --extra).
    type: list
    elements: str
    default: []
  all_extras:
    description: Include every extra, like C(uv sync --all-extras).
    type: bool
    default: false
  package:
    description: Deploy one workspace member instead of the whole workspace, like C(uv sync --package).
    type: str
  uv_version:
    description: Version of the uv binary to ship to the hosts. Default is the controller's uv version.
    type: str
  uv_executable:
    description: uv to run on the controller.
    type: path
  cache_dir:
    description:
      - Controller cache of downloaded and built files, keyed by sha256; a changed lock downloads only new files.
      - Default is C(~/.cache/airgap-uv).
    type: path
  workers:
    description: Parallel downloads.
    type: int
    default: 8
  retries:
    description: Retries of a download after a timeout, a connection error or an HTTP 408/429/5xx answer, with exponential backoff.
    type: int
    default: 3
  timeout:
    description: Seconds to wait on a stalled download connection.
    type: int
    default: 60
  check_lock:
    description: Fail when C(uv lock --check) says C(uv.lock) is out of date with C(pyproject.toml). The result is cached per file state.
    type: bool
    default: true
  lock_check_python:
    description:
      - Python on the controller for the O(check_lock) check, as a path or a version request uv
        understands (V(3.12), V(cpython@3.12)); uv needs one inside the project's C(requires-python)
        even to check a lock.
      - By default the controller's own Python when it is inside C(requires-python), else the
        interpreter uv is told by E(UV_PYTHON), else the newest CPython inside it among uv-managed,
        pyenv and asdf installs, found by their paths (not through version-manager shims, which fail
        to run a version that is not selected).
      - The role sets it from C(uv_deploy_lock_check_python).
    type: str
  prune:
    description: Remove files from O(dest) that no target needs any more.
    type: bool
    default: true
  editable:
    description:
      - Install the project, the workspace members and the path dependencies marked C(editable) in
        editable mode on the hosts, as C(uv sync) does by default. Each is shipped as its sdist,
        with the build requirements of its backend's editable hook (PEP 660; hatchling asks for
        C(editables), for example) pinned for each target in C(build-constraints.txt), and
        M(airgap.uv.sync) unpacks it inside the new release and installs it editable, offline.
      - When false (the default), they are built into wheels on the controller, like
        C(uv sync --no-editable).
    type: bool
    default: false
  host_builds:
    description:
      - Names of packages to ship as sdists, with their build requirements, for the hosts to build
        offline, instead of wheels. For packages that must be compiled on the host itself (against
        its own libraries, say); the hosts need what those builds need (a compiler, headers).
      - The same happens without being asked when a package has no wheel for a target and builds
        into a platform-specific wheel that the controller cannot make for that target (another
        CPU, libc or OS, or no Python of the target's version on the controller).
      - The build requirements are the sdist's C(build-system.requires) plus what its build backend's
        C(get_requires_for_build_wheel) hook asks for, resolved with C(uv lock) (using the project's
        index settings and its lock's C(exclude-newer)), then pinned with their sha256 for each
        target in its C(build-constraints.txt); resolving needs a CPython of the target's minor
        version or newer on the controller.
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - airgap.uv.action_plugin
attributes:
  check_mode:
    support: full
    details:
      - Plans and reports what would be downloaded or built, and writes nothing under O(dest). Wheels
        the real run would build (the project, sdists, ...) are built into the controller's cache
        (O(cache_dir)), so that the predicted install files and RV(hosts) carry their real sha256,
        and the real run reuses them.
      - C(changed) is what the real run would report.
  diff_mode:
    support: none
notes:
  - Credentials for a private index come from the configuration uv itself reads on the controller
    (C(UV_INDEX_<NAME>_USERNAME)/C(UV_INDEX_<NAME>_PASSWORD), credentials in C(UV_INDEX), C(UV_DEFAULT_INDEX),
    C(UV_INDEX_URL), C(UV_EXTRA_INDEX_URL), the project's and the user's C(uv.toml) index tables, then
    C(~/.netrc)). They are read from the environment of the C(ansible-playbook) process (a task's
    C(environment) keyword does not reach an action plugin), sent only to the origin they belong to,
    never logged, and never written into the wheelhouse or the result.
  - When the project sets C(tool.uv.required-version), O(uv_version) must satisfy it.
  - "Every controller file is checked against the sha256 it must have (from C(uv.lock), or the uv
    wheel's) before it is published: a record of size, mtime, ctime and inode made when a file was last
    hashed spares re-hashing unchanged files. A file that no longer matches is removed, fetched (or
    unpacked) again and named in RV(repaired) and a warning; the run goes on."
  - "An entry of C(uv.lock) that points outside the project (an absolute path, a C(file:) URL, a C(..)
    path, a symbolic link) is refused unless a C(pyproject.toml) or C(uv.toml) of the workspace (or
    C(UV_FIND_LINKS)/C(UV_INDEX)-style variables) points at that location, as uv's own
    C(tool.uv.sources) paths, C(name @ file:) requirements, find-links and local indexes do."
  - "uv's boolean environment variables (C(UV_OFFLINE), C(UV_NO_CONFIG), ...) are read by uv's rules:
    C(y yes t true on 1) or C(n no f false off 0), any case; any other value, the empty one too, fails
    the task before uv runs. With C(UV_OFFLINE) true, only the controller's cache is used and a missing
    file fails the task, naming it."
  - "Run it once for all hosts, for example with C(run_once) and C(delegate_to=localhost)."
  - "C(changed) is true only when a file that ships was added, replaced or removed: a file of C(files/),
    a uv binary or a target directory. The top-level C(manifest.json), which names the hosts and the lock,
    is rewritten without counting as a change."
seealso:
  - module: airgap.uv.target_facts
  - module: airgap.uv.sync
"""

EXAMPLES = r"""
- name: Describe each host
  airgap.uv.target_facts:

- name: Build the wheelhouse for every host of the play, once
  airgap.uv.wheelhouse:
    project: "{{ playbook_dir }}/../app"
    dest: /var/cache/airgap-uv/app
    targets: "{{ dict(ansible_play_hosts | zip(ansible_play_hosts | map('extract', hostvars, 'airgap_uv_target'))) }}"
    extras: [postgres]
    no_dev: true
  run_once: true
  delegate_to: localhost
  register: app_wheelhouse
"""

RETURN = r"""
dest:
  description: Absolute path of the wheelhouse.
  returned: always
  type: str
hosts:
  description:
    - For each host, its target id (C(target)), the directory to copy to it (C(path)) and that
      directory's files (C(files)).
    - C(files) maps each file's path relative to C(path) (C(wheelhouse/<file>), C(bin/uv), C(bin/uvx),
      C(requirements.txt), C(build-constraints.txt), C(manifest.json)) to its C(sha256), C(size) and
      C(mode) (permission bits, as an integer), the way M(airgap.uv.push) describes a directory. In
      check mode it describes what the directory would hold; C(sha256) and C(size) are V(null) only
      when they cannot be known without fetching (the uv binaries of a uv wheel the controller has
      not fetched, and then the C(manifest.json) that lists them).
    - What is in C(path) depends only on what the host installs (it names no lock hash, run or host).
  returned: always
  type: dict
  sample: {"web1": {"target": "cpython3.11.2-linux-x86_64-glibc2.36", "path": "/var/cache/airgap-uv/app/targets/cpython3.11.2-linux-x86_64-glibc2.36",
                    "files": {"requirements.txt": {"sha256": "9f2c...", "size": 1520, "mode": 420},
                              "bin/uv": {"sha256": "5d1e...", "size": 41231848, "mode": 493}}}}
targets:
  description:
    - Per target, its hosts, file count, bytes, built count, package list, uv wheel and directory.
    - C(host_built) counts the packages shipped as sdists for the host to build.
    - C(install_file) holds what the target directory's install files will say (C(requirements),
      C(build_constraints)) and its wheelhouse's file names (C(wheels)), also in check mode;
      M(airgap.uv.sync) takes it as O(airgap.uv.sync#module:pending).
  returned: always
  type: dict
files:
  description: Number of distinct files in the wheelhouse.
  returned: always
  type: int
bytes:
  description: Total size of those files.
  returned: always
  type: int
downloaded:
  description: Files fetched (or copied from local paths) in this run.
  returned: always
  type: int
reused:
  description: Files already in the controller cache.
  returned: always
  type: int
built:
  description: Wheels built from source for the targets (the project, path dependencies, sdists).
  returned: always
  type: int
requests:
  description: HTTP requests made for downloads in this run (0 when everything was cached).
  returned: always
  type: int
uv_version:
  description: Version of the uv binary shipped.
  returned: always
  type: str
  sample: 0.13.8
lock_sha256:
  description: sha256 of the uv.lock the wheelhouse was built from.
  returned: always
  type: str
repaired:
  description: One message per controller file found corrupt in this run (where it was), removed and fetched again.
  returned: always
  type: list
  elements: str
"""
