# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Controller side of airgap.uv.targets_file: the hosts' target facts into a targets file (_targets_file)."""

from __future__ import annotations

import os
import secrets
import stat
from typing import Optional

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.airgap.uv.plugins.plugin_utils._os_errors import describe
from ansible_collections.airgap.uv.plugins.plugin_utils._targets_file import (
    TargetsFileError,
    read_targets_file,
    render_targets_file,
    targets_from_facts,
)

ARGUMENT_SPEC = {
    "path": {"type": "path", "required": True},
    "facts": {"type": "dict"},
    "anonymous": {"type": "bool", "default": False},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        dummy, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        # Relative to where ansible-playbook was started, like any controller path on its command line.
        path = os.path.abspath(args["path"])
        if args["facts"] is None:
            try:
                result.update(changed=False, path=path, targets=read_targets_file(path))
            except TargetsFileError as exc:
                raise AnsibleActionFail(str(exc)) from None
            return result
        try:
            targets = targets_from_facts(args["facts"], args["anonymous"])
        except TargetsFileError as exc:
            raise AnsibleActionFail(str(exc)) from None
        after = render_targets_file(targets)
        before = _current_text(path)
        changed = before != after
        if changed and not self._task.check_mode:
            _write_atomically(path, after)
        result.update(changed=changed, path=path, targets=targets)
        if changed and self._task.diff:
            result["diff"] = {"before": before or "", "after": after, "before_header": path, "after_header": path}
        return result


def _current_text(path: str) -> Optional[str]:
    """What PATH holds now, None when there is no file yet."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise AnsibleActionFail("The targets file %s is a directory: give a file name, for example %s." % (
            path, os.path.join(path, "targets.yml"))) from None
    except OSError as exc:
        raise AnsibleActionFail("Cannot read the targets file %s: %s." % (path, describe(exc, path))) from None


def _write_atomically(path: str, text: str) -> None:
    """Replace PATH by TEXT with one rename, so a reader sees the old file or the new one, never a part.

    A symbolic link is kept and its target replaced; an existing file keeps its permissions, a
    new one gets the usual 0666 less the umask (the file holds nothing secret).
    """
    real = os.path.realpath(path)
    directory = os.path.dirname(real)
    if not os.path.isdir(directory):
        raise AnsibleActionFail("The directory %s of the targets file %s does not exist: create it, or choose "
                                "another uv_deploy_targets_file." % (directory, path))
    try:
        mode: Optional[int] = stat.S_IMODE(os.stat(real).st_mode)
    except FileNotFoundError:
        mode = None
    temp = os.path.join(directory, ".%s.%s.tmp" % (os.path.basename(real), secrets.token_hex(6)))
    try:
        with os.fdopen(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb") as handle:
            if mode is not None:
                os.fchmod(handle.fileno(), mode)
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, real)
        _fsync_directory(directory)
    except OSError as exc:
        _remove_quietly(temp)
        raise AnsibleActionFail("Cannot write the targets file %s: %s." % (path, describe(exc, directory))) from None


def _fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
