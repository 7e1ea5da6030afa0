# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Controller side of airgap.uv.push: ask the host what it lacks (unless it has no DEST), send that in one archive."""

from __future__ import annotations

import fcntl
import hashlib
import os
import stat
import tarfile
import tempfile
import typing as t

from ansible import constants as C
from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.airgap.uv.plugins.module_utils._hashing import sha256_file
from ansible_collections.airgap.uv.plugins.module_utils._push_args import TASK_ARGUMENT_SPEC
from ansible_collections.airgap.uv.plugins.module_utils._push_pull import pulled, uv_container_name
from ansible_collections.airgap.uv.plugins.module_utils._shipped_tree import MANIFEST
from ansible_collections.airgap.uv.plugins.plugin_utils._verify import manifest_mismatches

ARGUMENT_SPEC = TASK_ARGUMENT_SPEC


def describe_tree(root: str) -> dict:
    """{relative path: {sha256, size, mode}} of the regular files under ROOT."""
    files = {}
    for directory, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(directory, name)
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode):
                continue
            relpath = os.path.relpath(path, root).replace(os.sep, "/")
            files[relpath] = {"sha256": sha256_file(path), "size": st.st_size, "mode": st.st_mode & 0o7777}
    return files


class ActionModule(ActionBase):
    TRANSFERS_FILES = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        dummy, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        src = os.path.expanduser(args["src"])
        expected = _expected_files(args["expected"]) if args["expected"] else None
        if self._task.check_mode and expected is not None:
            # The wheelhouse task wrote nothing in check mode, so SRC is still the last build (or
            # missing): compare the host with what SRC will hold instead.
            files = expected
        else:
            files = self._controller_files(src)
            if expected is not None and _content(files) != _content(expected):
                raise AnsibleActionFail(
                    "airgap.uv.push sent nothing: the controller's directory %s is no longer what this run's wheelhouse "
                    "task built (%s). Another run rebuilt it since, for another uv.lock or other hosts: give each "
                    "concurrent deployment its own wheelhouse directory (uv_deploy_wheelhouse_dir), and run again."
                    % (src, ", ".join(sorted(set(files).symmetric_difference(expected))
                                      or [n for n in sorted(files) if files[n] != expected[n]])))
        if args["dest_absent"]:
            wanted = sorted(files)  # the host has no DEST: nothing to ask it
        else:
            answer = self._execute_module(module_name="airgap.uv.push",
                                          module_args=dict(src=src, dest=args["dest"], files=files),
                                          task_vars=task_vars)
            if answer.get("failed"):
                return answer
            wanted = answer["wanted"]
        mirror = args["mirror_url"]
        # With a mirror the host fetches its wheels and uv itself (uv out of the zip named by the binaries'
        # sha256, as the mirror's feed made it); the controller sends the rest. In check mode a binary whose
        # sha256 is not known yet would come from the mirror all the same.
        container = uv_container_name(files) if mirror else None
        pull = pulled(wanted, with_uv=bool(container) or self._task.check_mode) if mirror else []
        send = [name for name in wanted if name not in pull]
        result.update(changed=bool(wanted), sent=wanted, files=len(files), pulled=pull,
                      bytes_sent=sum(files[name].get("size") or 0 for name in send),
                      bytes_pulled=sum(files[name].get("size") or 0 for name in pull))
        if MANIFEST in files and files[MANIFEST].get("sha256"):
            result["manifest_sha256"] = files[MANIFEST]["sha256"]
        if self._task.diff and wanted:
            result["diff"] = {"prepared": "files to write under %s:\n%s\n" % (args["dest"], "\n".join(wanted))}
        if not wanted or self._task.check_mode:
            return result

        module_args = dict(src=src, dest=args["dest"], files={name: files[name] for name in wanted},
                           stage=args["stage"], mirror_url=mirror, pull=pull, uv_container=container)
        if not send:
            applied = self._execute_module(module_name="airgap.uv.push", module_args=module_args, task_vars=task_vars)
            self._remove_tmp_path(self._connection._shell.tmpdir)
        else:
            applied = self._send(src, send, files, module_args, task_vars)
        if applied.get("failed"):
            return applied
        if applied.get("staged"):
            result["staged"] = applied["staged"]
        return result

    def _send(self, src: str, send: list, files: dict, module_args: dict, task_vars) -> dict:
        """SEND (paths under SRC) in one archive, then the module puts them (and any pulled files) in place."""
        bundle, shared = _archive(src, send, files)
        try:
            remote_tmp = self._connection._shell.tmpdir or self._make_tmp_path()
            remote_bundle = self._connection._shell.join_path(remote_tmp, "push.tar")
            self._transfer_file(bundle, remote_bundle)
            self._fixup_perms2((remote_tmp, remote_bundle))
            return self._execute_module(module_name="airgap.uv.push", module_args=dict(module_args, archive=remote_bundle),
                                        task_vars=task_vars)
        finally:
            if not shared:
                os.unlink(bundle)
            self._remove_tmp_path(self._connection._shell.tmpdir)

    @staticmethod
    def _controller_files(src: str) -> dict:
        if not os.path.isdir(src):
            raise AnsibleActionFail("src %s is not a directory on the controller." % src)
        files = describe_tree(src)
        refused = manifest_mismatches(src, files)
        if refused:
            # Checked before the host is asked anything: a bad controller file never replaces a good
            # copy on the host, and nothing else is sent alongside it either.
            raise AnsibleActionFail(
                "airgap.uv.push sent nothing: the controller's wheelhouse directory %s does not match its "
                "manifest.json, so it is corrupt or was changed after it was built: %s. The host's files were not "
                "touched. Fix: run the wheelhouse step again (airgap.uv.wheelhouse, or the airgap.uv.uv_deploy role): "
                "it checks every controller file against uv.lock and fetches or rebuilds the bad ones."
                % (src, "; ".join(refused)))
        return files


def _archive(src: str, send: list, files: dict) -> t.Tuple[str, bool]:
    """The tar of SEND (paths under SRC, described in FILES) on the controller, and whether hosts share it.

    Every host of a target that lacks all of SRC's files (a first deploy) is sent the same archive: it is
    written once per run, named by its content, in Ansible's local temporary directory, which
    ansible-playbook removes when it ends (its workers are forks that share it). Any other set is
    written for this host alone, and removed once sent.
    """
    if sorted(send) == sorted(files) and all(files[name].get("sha256") for name in send):
        key = hashlib.sha256("".join("%s %s %o\n" % (name, files[name]["sha256"], files[name]["mode"])
                                     for name in sorted(send)).encode("utf-8")).hexdigest()
        path = os.path.join(C.DEFAULT_LOCAL_TMP, "airgap-uv-push-%s.tar" % key[:32])
        with open(path + ".lock", "a", encoding="utf-8") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # the first host's worker writes it; the others wait, then reuse it
            if not os.path.exists(path):
                _write_tar(src, send, path + ".part")
                os.replace(path + ".part", path)
        return path, True
    fd, path = tempfile.mkstemp(prefix="airgap-uv-push-", suffix=".tar", dir=C.DEFAULT_LOCAL_TMP)
    os.close(fd)
    try:
        _write_tar(src, send, path)
    except BaseException:
        os.unlink(path)
        raise
    return path, False


def _write_tar(src: str, send: list, path: str) -> None:
    # Wheels are compressed already: a plain tar costs no CPU and is one transfer.
    with tarfile.open(path, "w") as archive:
        for name in send:
            archive.add(os.path.join(src, *name.split("/")), arcname=name, recursive=False)


def _content(files: dict) -> dict:
    return {name: (meta["sha256"], meta["mode"]) for name, meta in files.items()}


def _expected_files(expected: dict) -> dict:
    """The EXPECTED description (hosts.<host>.files of airgap.uv.wheelhouse), checked enough to use."""
    files = {}
    for name, meta in expected.items():
        if not isinstance(meta, dict) or not isinstance(meta.get("mode"), int):
            raise AnsibleActionFail("expected[%r] is not a file description with sha256, size and mode; pass "
                                    "hosts[<host>].files of airgap.uv.wheelhouse." % name)
        files[name] = {"sha256": meta.get("sha256"), "size": meta.get("size"), "mode": meta["mode"]}
    return files
