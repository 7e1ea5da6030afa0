#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sync
short_description: Sync a virtual environment from a shipped wheelhouse with uv, offline and atomically
version_added: 0.1.0
description:
  - Turns a virtual environment on the host into exactly the package set of a hash-pinned
    requirements file, installing only from a local wheelhouse with a shipped C(uv) binary.
    By default the network is never used and nothing from the host's or user's uv/pip
    configuration can re-enable it.
  - The environment users point at (O(venv)) is a symlink to a release directory
    C(.NAME.releases/ID) beside it (NAME being the last component of O(venv)). When
    packages must change, a new release is built (C(uv venv) plus C(uv pip sync) from the
    wheelhouse), smoke-checked, and the symlink is switched with one atomic rename. The release that was in service is kept
    for O(state=rollback); a failure at any step leaves it in service and removes the
    half-built release.
  - A run with nothing to do costs one C(uv pip sync --dry-run) against the release in service.
  - Two runs on the same O(venv) serialize on a lock file next to the releases directory.
  - The files the controller ships are expected in this layout (see the C(airgap.uv) roles)
    C(ROOT/bin/uv), C(ROOT/wheelhouse/*.whl), C(ROOT/requirements.txt) and
    C(ROOT/manifest.json).
author:
  - airgap.uv maintainers (@airgap-uv)
attributes:
  check_mode:
    support: full
    description:
      - Predicts the change with C(uv pip sync --dry-run) against the release in service (or
        against an empty throw-away environment in Ansible's temporary directory when there is
        none) and creates nothing on the host, not even the lock file or the uv cache (uv may
        refresh entries of an existing cache).
  diff_mode:
    support: full
    description:
      - The diff shows the package list (C(name==version) per line) before and after.
  platform:
    support: full
    platforms: posix
    description:
      - Linux and other POSIX hosts (symlinks, C(fcntl) locks).
requirements:
  - The C(uv) binary given in O(uv) (no pip, C(ensurepip) or C(venv) module is needed on the host).
  - A Python interpreter on the host for the environment (see O(python)).
options:
  uv:
    description:
      - Path of the C(uv) binary on the host, normally C(ROOT/bin/uv) of the shipped bundle.
      - Required when O(state=present).
    type: path
  wheelhouse:
    description:
      - Directory with the wheels this host needs (C(ROOT/wheelhouse)); the only package source
        when O(network=offline).
      - Required when O(state=present).
    type: path
  requirements:
    description:
      - Hash-pinned requirements file (C(ROOT/requirements.txt)) with one
        C(name==version --hash=sha256:...) entry per package. Markers must already be evaluated
        for the host; options (index URLs and the like) are refused.
      - Required when O(state=present).
    type: path
  build_constraints:
    description:
      - The bundle's C(build-constraints.txt) (C(ROOT/build-constraints.txt)), which pins for this
        host the build requirements of packages shipped as sdists because the controller could not build
        them for this host (or because M(airgap.uv.wheelhouse) was told to with O(airgap.uv.wheelhouse#module:host_builds)).
      - When it lists any package, uv may build those sdists on the host, offline, with exactly these
        build requirements from O(wheelhouse) (C(--build-constraint)); the host then needs what the
        builds need (a C compiler and headers for C extensions). Otherwise, and when this option is
        not set, uv builds nothing (C(--no-build)).
      - The files it names are checked like the wheels when O(manifest) is given.
    type: path
  manifest:
    description:
      - The bundle's C(manifest.json). Its C(editable) list (from
        O(airgap.uv.wheelhouse#module:editable)) names the packages installed in editable mode; each
        one's sdist is unpacked into C(src/) inside the new release and installed with C(-e), built
        offline with the pinned O(build_constraints); without a manifest nothing is installed editable.
      - When given, every file it lists is checked for existence,
        size and sha256 before uv runs, and a missing or corrupt file fails the task naming it.
      - Bare file names are looked up in O(wheelhouse); names containing C(/) are relative to
        the manifest's directory.
      - sha256 results are cached in a state file next to the releases directory, keyed by the
        file's path, size, mtime, ctime and inode, so unchanged files are not hashed again.
      - A warning is shown when the manifest's C(uv_version) differs from the version of O(uv).
    type: path
  venv:
    description:
      - Path of the virtual environment users and services point at. The module manages it as a
        symlink to the release in service.
      - If it exists as a real directory the task fails unless O(adopt=true).
    type: path
    required: true
  releases_dir:
    description:
      - Directory holding the releases. Must be on the same filesystem as O(venv) for O(adopt).
      - The lock file C(<releases_dir>.lock) and the state file C(<releases_dir>.state.json) live next to it.
      - Defaults to C(.NAME.releases) in the directory of O(venv), NAME being the last component of O(venv).
    type: path
  python:
    description:
      - Interpreter for the environment, passed to C(uv venv --python) (a path such as
        C(/usr/bin/python3.11) or a version request such as C(3.11)). uv never downloads a Python.
      - Defaults to the interpreter running this module (the real path of C(sys.executable)),
        that is C(ansible_python_interpreter).
      - When the value differs from the one the release in service was built with, a new
        release is built.
    type: str
  cache_dir:
    description:
      - uv cache directory. Kept warm between runs so that building a new release only links
        files. Must be writable by the user running the module.
      - Defaults to C(cache) beside the O(wheelhouse) directory, that is C(ROOT/cache).
    type: path
  network:
    description:
      - V(offline) runs uv with C(--offline --no-index --find-links WHEELHOUSE) and C(UV_OFFLINE=1).
      - V(online) uses the index (O(index_url) or uv's default) plus C(--find-links WHEELHOUSE).
      - V(fallback) tries like V(online) first and, when that fails (for example because the
        index cannot be reached), repeats the step offline; RV(network_used) tells which one worked.
      - In every mode uv runs with C(--no-config), C(UV_NO_CONFIG=1), C(UV_PYTHON_DOWNLOADS=never),
        its own C(UV_CACHE_DIR), and without any C(UV_*) or C(PIP_*) variable of the calling
        environment (C(HOME) is kept).
    type: str
    choices: [offline, fallback, online]
    default: offline
  index_url:
    description:
      - Package index for O(network=online) and O(network=fallback). Ignored when offline.
    type: str
  http_timeout:
    description:
      - Seconds uv waits for the index (C(UV_HTTP_TIMEOUT)) in the online attempts of
        O(network=online) and O(network=fallback). Not used offline.
    type: int
  http_retries:
    description:
      - How often uv retries a failed request to the index (C(UV_HTTP_RETRIES), uv 0.7 and later)
        in the online attempts. V(0) makes O(network=fallback) give up on an unreachable index at once.
    type: int
  refresh:
    description:
      - Pass C(--refresh) to uv to revalidate cached data. uv refuses it offline, so
        O(refresh=true) with O(network=offline) fails before uv runs; in O(network=fallback) the
        offline retry runs without it.
    type: bool
    default: false
  compile_bytecode:
    description:
      - Compile the installed packages to bytecode (C(uv pip sync --compile-bytecode)) while
        building a release. Useful when the application user cannot write C(__pycache__).
    type: bool
    default: false
  state:
    description:
      - V(present) makes O(venv) hold exactly the packages of O(requirements). When packages must
        change and a kept release already holds exactly them (for example the release a
        V(rollback) switched away from), O(venv) is switched back to that release instead of
        building a new one (roll forward, see the notes).
      - V(rollback) switches O(venv) back to the release that was in service before the current
        one (fails when there is none); always reports a change.
    type: str
    choices: [present, rollback]
    default: present
  adopt:
    description:
      - When O(venv) is a real directory (for example made by an older deployment), move it into
        the releases directory and manage it from then on; it becomes the previous release and a
        fresh release is built from the wheelhouse. Without this the task fails and leaves the
        directory alone.
    type: bool
    default: false
  owner:
    description:
      - User (name or uid) to own a new release and the uv cache. Requires running as root.
      - Root never runs what this user can change. Every command that executes code of an
        environment (C(uv), which starts the releases' interpreters, the smoke check, O(check_command))
        runs as this user, with O(group) (else the user's primary group) and its supplementary groups.
        Root keeps the releases directory, the O(venv) symlink, the lock file and the state file
        (mode C(0600)); inside the user's releases it follows no symlink. Releases before 0.5 handed
        those to the owner; root takes them back.
      - Running as root, the module refuses to work in a directory another user can change (O(venv)'s
        directory, the releases', the cache's, the uv binary's and the wheelhouse's, and every
        directory above them); to deploy into a user's own tree, run the module as that user
        (C(become_user)) instead.
    type: str
  group:
    description:
      - Group (name or gid) to own a new release, like O(owner). Without O(owner), a mode that lets
        the group (or others) write the release's top directory is refused when running as root.
    type: str
  mode:
    description:
      - Permissions of the environment's top directory, that is of the release directory O(venv)
        points at, as an octal string such as V('0750') (also V('750') or V('0o750')). Quote it in
        YAML; an unquoted number is taken as the mode's value itself, like M(ansible.builtin.file)
        does (V(0750) works, V(750) does not). Symbolic modes (V(u=rwx,g=rx)) are not supported.
      - Not recursive. What uv installs inside keeps the modes uv gives it (C(0755) and C(0644)
        less the umask), so V('0750') with O(group) keeps other users out of the whole environment.
      - Applied to the release put in service by O(state=present), whether newly built, switched
        back to, or already in service. In the last case, only a mode that differs is fixed, and the
        run reports a change with RV(reason) C(mode of RELEASE changed from OLD to NEW); check mode predicts
        it. Other kept releases, the releases directory and the O(venv) symlink are not changed.
        O(state=rollback) does not apply it (a malformed value fails all the same).
      - The owner needs C(rwx) (for example V('0700'), V('0750'), V('0755')); other modes are refused.
      - When not set, a new release directory gets C(0755) less the umask and an existing one is left as it is.
    type: raw
  keep_releases:
    description:
      - How many complete releases to keep, counting the one in service. The release replaced by
        the current one is always kept first (the rollback target). Half-built leftovers of
        interrupted runs are removed.
    type: int
    default: 2
  check_command:
    description:
      - A command to run in the environment once it is in service, as an argv list, for example
        V([myapp, --version]). A first element without C(/) names a script of the environment
        (C(VENV/bin/NAME)); C(VENV/bin) comes first on C(PATH) and C(VIRTUAL_ENV) is set.
      - It runs on every run, no-op runs included, but not in check mode, and as O(owner) (with O(group))
        when the module runs as root and an owner is set, never as root then (it is code of the
        environment, which the owner can change).
      - A non-zero exit fails the task; the result (RV(check)) still tells what the run changed and
        which release is in service, and the message names the release to roll back to.
    type: list
    elements: str
  check_retries:
    description:
      - Times to run O(check_command) again after it fails, O(check_delay) seconds apart, before the task
        fails. For a service the deployment restarts, which may need a moment to answer.
    type: int
    default: 0
  check_delay:
    description:
      - Seconds between two runs of O(check_command) (see O(check_retries)).
    type: float
    default: 2
  check_timeout:
    description:
      - Seconds one run of O(check_command) may take. A run that takes longer is killed with every
        process it started and counts as failed (rc V(124)); V(0) sets no limit.
    type: int
    default: 600
  lock_timeout:
    description:
      - Seconds to wait for another run on the same O(venv) to finish before failing.
    type: int
    default: 600
  incoming:
    description:
      - A push staged by M(airgap.uv.push) with O(airgap.uv.push#module:stage=true) (its RV(airgap.uv.push#module:staged)
        path, C(ROOT/.incoming/ID)). It is put in place under this environment's lock before anything
        else, files first and the install files and manifest last, so the push and the sync of one
        deployment are one step for any other run on the same O(venv).
      - Ignored in check mode (the push stages nothing then).
    type: path
  manifest_sha256:
    description:
      - The sha256 of the C(manifest.json) this deployment pushed (RV(airgap.uv.push#module:manifest_sha256)).
        When O(manifest) has another one under the lock, another deployment replaced the files after
        this run's push, and the run fails without changing anything, naming the release in service,
        instead of syncing (and reporting) the other deployment's set.
      - Not checked in check mode with O(pending).
    type: str
  prune_wheelhouse:
    description:
      - After a run that puts a release in service, remove the files of O(wheelhouse) that neither
        O(manifest) nor any kept release (see O(keep_releases)) was built from, so the host does not
        keep every version ever shipped. Removed files are listed in RV(pruned_files).
      - Needs O(manifest). Nothing is removed while a kept release predates this record (made by an
        older version of this module) or when the module runs without a manifest.
    type: bool
    default: true
  acknowledge:
    description:
      - Internal, set by the action plugin; do not set it. The RV(switch_id) of a result the controller
        received.
    type: str
  pending:
    description:
      - Only used in check mode, where a preceding copy of a new install file and wheelhouse did not
        happen. The prediction then runs against these instead of the files on the host, so it shows
        what the real run will do after the copy.
      - Ignored outside check mode. The M(airgap.uv.wheelhouse) output directory has what it needs.
    type: dict
    suboptions:
      requirements:
        description: Text of the install file the copy would write.
        type: str
        required: true
      wheels:
        description: File names of the wheels (and sdists) the copy would put in O(wheelhouse).
        type: list
        elements: str
        required: true
      build_constraints:
        description: Text of the build constraints file the copy would write (see O(build_constraints)).
        type: str
      editable:
        description: The packages the bundle installs editable (the C(editable) list of its manifest).
        type: list
        elements: dict
        default: []
      project:
        description: The deployed project's C(name) and C(version) (the C(project) of its manifest), for RV(version).
        type: dict
notes:
  - Every switch is recorded on the host until the controller has received the result that reports it
    (the action plugin acknowledges it with a second, short module call after a run that switched).
    When a run that switched never reported, for example because C(ansible-playbook) was killed during
    the sync, the next run reports it in RV(unreported_switch), with C(changed) so that handlers run.
  - No-op runs are fast; a change links files from the warm cache into a fresh directory.
  - Executables installed into a release start with the release's own path in their shebang,
    so a running program keeps using the release it started from until it restarts.
  - uv does not notice a wheel that was rebuilt without a version change; this module records the
    hashes each release was built from and builds a new release when they change (RV(reinstalled)).
  - Roll forward. When packages must change, a kept release is switched back to (RV(reason) ends with
    C(switched to existing release ID)) instead of building a new one, when it is complete, was built
    from a wheelhouse (not adopted) for the same O(python), recorded exactly the wanted package names,
    versions and sha256 hashes (a wheel rebuilt without a version change never matches), still runs,
    and holds exactly those packages according to C(uv pip list). No C(uv pip sync) runs; O(owner),
    O(group) and O(mode) are applied to it, and a later O(state=rollback) returns to the release it
    replaced. Check mode predicts the switch. Otherwise a new release is built.
  - The switch is atomic (one C(rename) of a symlink), and a new release is made durable before it.
    On Linux one C(syncfs) of its file system flushes every file uv wrote (elsewhere each file is
    fsynced), then its metadata, its directory and the releases directory are fsynced, and after
    the rename the directory holding O(venv). A no-op run flushes nothing.
seealso:
  - name: uv pip sync
    description: The uv command this module drives.
    link: https://docs.astral.sh/uv/reference/cli/#uv-pip-sync
"""

EXAMPLES = r"""
- name: Sync the application environment from the shipped bundle (no network)
  airgap.uv.sync:
    uv: /opt/airgap-uv/myapp/bin/uv
    wheelhouse: /opt/airgap-uv/myapp/wheelhouse
    requirements: /opt/airgap-uv/myapp/requirements.txt
    manifest: /opt/airgap-uv/myapp/manifest.json
    venv: /srv/myapp/venv
    python: /usr/bin/python3.11
    owner: myapp
    group: myapp
  register: myapp_sync

- name: Restart the service only when packages changed
  ansible.builtin.service:
    name: myapp
    state: restarted
  when: myapp_sync is changed

- name: Prefer the internal index, fall back to the wheelhouse when it cannot be reached
  airgap.uv.sync:
    uv: /opt/airgap-uv/myapp/bin/uv
    wheelhouse: /opt/airgap-uv/myapp/wheelhouse
    requirements: /opt/airgap-uv/myapp/requirements.txt
    venv: /srv/myapp/venv
    network: fallback
    index_url: https://pypi.example.invalid/simple

- name: Take over an environment that was created as a plain directory
  airgap.uv.sync:
    uv: /opt/airgap-uv/myapp/bin/uv
    wheelhouse: /opt/airgap-uv/myapp/wheelhouse
    requirements: /opt/airgap-uv/myapp/requirements.txt
    venv: /srv/myapp/venv
    adopt: true

- name: Go back to the previous release
  airgap.uv.sync:
    venv: /srv/myapp/venv
    state: rollback
"""

RETURN = r"""
installed:
  description: Packages that were (or in check mode would be) added.
  returned: success
  type: list
  elements: dict
  sample: [{"name": "pyyaml", "version": "6.0.1"}]
removed:
  description: Packages that were (or would be) removed.
  returned: success
  type: list
  elements: dict
  sample: [{"name": "markupsafe", "version": "2.1.5"}]
upgraded:
  description: Packages whose version went up.
  returned: success
  type: list
  elements: dict
  sample: [{"name": "six", "from": "1.16.0", "to": "1.17.0"}]
downgraded:
  description: Packages whose version went down.
  returned: success
  type: list
  elements: dict
  sample: [{"name": "six", "from": "1.17.0", "to": "1.16.0"}]
reinstalled:
  description: Packages installed again at the same version because their wheel changed (other sha256).
  returned: success
  type: list
  elements: dict
  sample: [{"name": "myapp", "version": "1.0.0"}]
packages:
  description: The package set of the environment after the run, as C(name==version), sorted by name.
  returned: success
  type: list
  elements: str
  sample: ["attrs==23.2.0", "idna==3.7", "pyyaml==6.0.1", "six==1.17.0"]
release:
  description:
    - The release directory in service after the run. In check mode the one in service now
      (V(null) when there is none).
  returned: success
  type: str
  sample: /srv/myapp/.venv.releases/20250101T120000.123456Z-a1b2c3
version:
  description:
    - The version of the deployed project in RV(release), the release in service at the end (in check
      mode, the one that would be), when the manifest names the project; else V(null).
  returned: success
  type: str
  sample: 1.4.0
unreported_switch:
  description:
    - A switch made by an earlier run whose result never reached the controller; this run reports it
      and is changed.
  returned: when there was one
  type: dict
  sample: {"release": "/srv/myapp/.venv.releases/20250101T120000.123456Z-a1b2c3", "version": "1.4.0",
           "previous_release": null, "at": "2025-01-01T12:00:01Z"}
pruned_files:
  description: Wheelhouse files removed after the switch (see O(prune_wheelhouse)).
  returned: success
  type: list
  elements: str
  sample: [numpy-2.1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl]
pruned_bytes:
  description: Their total size.
  returned: success
  type: int
  sample: 15700000
switch_id:
  description: Internal. The record of the switch this result reports, acknowledged by the action plugin.
  returned: when the result reports a switch, outside check mode
  type: str
previous_release:
  description: The release that was in service before RV(release) (the rollback target), if it still exists.
  returned: success
  type: str
  sample: /srv/myapp/.venv.releases/20241201T090000.654321Z-d4e5f6
venv:
  description: The managed environment path (the symlink).
  returned: success
  type: str
  sample: /srv/myapp/venv
network_used:
  description: V(offline) or V(online), the mode of the uv sync that succeeded; V(null) for a rollback.
  returned: success
  type: str
  sample: offline
uv_version:
  description: Version of the uv binary used; V(null) for a rollback.
  returned: success
  type: str
  sample: 0.13.8
reason:
  description:
    - Why the run changed something (V(null) when it did not), reasons joined with C(; ), for
      example C(packages changed), C(python changed from A to B), C(mode of RELEASE changed from 0755 to 0750),
      or, when a kept release was put back in service, C(packages changed; switched to existing release ID).
  returned: success
  type: str
  sample: packages changed
pruned_releases:
  description: Old or half-built release directories removed by this run.
  returned: success
  type: list
  elements: str
  sample: []
check:
  description: What O(check_command) did.
  returned: when O(check_command) is set, outside check mode
  type: dict
  contains:
    cmd:
      description: The command run.
      type: list
      elements: str
    rc:
      description: Its exit code.
      type: int
    stdout:
      description: The end of its standard output.
      type: str
    stdout_lines:
      description: RV(check.stdout) as lines.
      type: list
      elements: str
    stderr:
      description: The end of its error output.
      type: str
    user:
      description: The user it ran as when that is not the module's user (O(owner)), else V(null).
      type: str
    attempts:
      description: How many times it ran (more than one when it failed and O(check_retries) allowed more).
      type: int
  sample: {"cmd": ["/srv/myapp/venv/bin/myapp", "--version"], "rc": 0, "stdout": "myapp 1.0\n",
           "stdout_lines": ["myapp 1.0"], "stderr": "", "user": "myapp"}
cmd:
  description: The uv command line that failed.
  returned: failure, when uv failed
  type: list
  elements: str
stderr:
  description: The end of uv's error output.
  returned: failure, when uv failed
  type: str
"""

import errno

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.airgap.uv.plugins.module_utils._check_command import check_failure_message, run_check_command
from ansible_collections.airgap.uv.plugins.module_utils._sync import SyncRunner
from ansible_collections.airgap.uv.plugins.module_utils._sync_error import SyncError
from ansible_collections.airgap.uv.plugins.module_utils._sync_uv import DISK_FULL_HINT


ARGUMENT_SPEC = dict(
    uv=dict(type="path"),
    wheelhouse=dict(type="path"),
    requirements=dict(type="path"),
    build_constraints=dict(type="path"),
    manifest=dict(type="path"),
    venv=dict(type="path", required=True),
    releases_dir=dict(type="path"),
    python=dict(type="str"),
    cache_dir=dict(type="path"),
    network=dict(type="str", default="offline", choices=["offline", "fallback", "online"]),
    index_url=dict(type="str"),
    http_timeout=dict(type="int"),
    http_retries=dict(type="int"),
    refresh=dict(type="bool", default=False),
    compile_bytecode=dict(type="bool", default=False),
    state=dict(type="str", default="present", choices=["present", "rollback"]),
    adopt=dict(type="bool", default=False),
    owner=dict(type="str"),
    group=dict(type="str"),
    mode=dict(type="raw"),
    keep_releases=dict(type="int", default=2),
    check_command=dict(type="list", elements="str"),
    check_retries=dict(type="int", default=0),
    check_delay=dict(type="float", default=2),
    check_timeout=dict(type="int", default=600),
    lock_timeout=dict(type="int", default=600),
    incoming=dict(type="path"),
    manifest_sha256=dict(type="str"),
    prune_wheelhouse=dict(type="bool", default=True),
    acknowledge=dict(type="str"),
    pending=dict(type="dict", options=dict(
        requirements=dict(type="str", required=True),
        wheels=dict(type="list", elements="str", required=True),
        build_constraints=dict(type="str"),
        editable=dict(type="list", elements="dict", default=[]),
        project=dict(type="dict"),
    )),
)


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        required_if=[("state", "present", ["uv", "wheelhouse", "requirements"])],
        supports_check_mode=True,
    )
    negative = [name for name in ("check_retries", "check_delay", "check_timeout") if module.params[name] < 0]
    if negative:
        # Refused before anything changes: a check that cannot run as asked would fail after the switch.
        module.fail_json(msg="%s cannot be negative (got %s); use 0 for no retries, no delay or no time limit."
                         % (" and ".join(negative), ", ".join(str(module.params[n]) for n in negative)))
    runner = SyncRunner(
        module.params,
        check_mode=module.check_mode,
        diff=module._diff,
        tmpdir=lambda: module.tmpdir,
        warn=module.warn,
    )
    try:
        result = runner.run()
    except SyncError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        module.fail_json(msg="%s. %s" % (exc, DISK_FULL_HINT))
    finish(module, result)


def finish(module: AnsibleModule, result: dict) -> None:
    """Exit with RESULT, after the check command (not in check mode) when one is given."""
    argv = module.params["check_command"]
    if argv and not module.check_mode and module.params["state"] == "present" and not module.params["acknowledge"]:
        try:
            result["check"] = run_check_command(argv, module.params["venv"], module.params["owner"],
                                                module.params["group"], retries=module.params["check_retries"],
                                                delay=module.params["check_delay"],
                                                timeout=module.params["check_timeout"] or None)
        except KeyError as exc:
            module.fail_json(msg=exc.args[0], **result)
        if result["check"]["rc"] != 0:
            module.fail_json(msg=check_failure_message(result["check"], result), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
