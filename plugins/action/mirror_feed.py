# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Controller side of airgap.uv.mirror_feed: per source, ask the mirror what it lacks and would prune,
send that in one archive, then have it record the feed and prune (_mirror_feed, _mirror_state)."""

from __future__ import annotations

import os
import tarfile
import tempfile

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.airgap.uv.plugins.module_utils._mirror_feed_args import TASK_ARGUMENT_SPEC
from ansible_collections.airgap.uv.plugins.plugin_utils._mirror_feed import Feed, FeedError, collect

ARGUMENT_SPEC = TASK_ARGUMENT_SPEC


class ActionModule(ActionBase):
    TRANSFERS_FILES = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        dummy, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        if args["keep"] < 1:
            raise AnsibleActionFail("keep is %d; keep at least the feed being fed (1 or more)." % args["keep"])
        cache_dir = os.path.expanduser(args["cache_dir"])
        try:
            feeds = [collect(os.path.expanduser(source), cache_dir) for source in args["sources"]]
        except FeedError as exc:
            raise AnsibleActionFail("airgap.uv.mirror_feed sent nothing: %s" % exc) from None
        except OSError as exc:
            raise AnsibleActionFail("airgap.uv.mirror_feed sent nothing: %s" % exc) from None
        reports = []
        try:
            for feed in feeds:
                report = self._feed(feed, args, task_vars)
                if report.get("failed"):
                    return report
                reports.append(report)
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        result.update(changed=any(r.pop("changed") for r in reports), feeds=reports,
                      bytes_sent=sum(r["bytes_sent"] for r in reports),
                      removed=sorted({name for r in reports for name in r["removed"]}))
        return result

    def _feed(self, feed: Feed, args: dict, task_vars) -> dict:
        files = {name: {"sha256": f.sha256, "size": f.size, "mode": 0o644} for name, f in feed.files.items()}
        common = dict(sources=args["sources"], dest=args["dest"], state=args["state"], keep=args["keep"],
                      project=feed.project, files=files)
        answer = self._execute_module(module_name="airgap.uv.mirror_feed", module_args=common, task_vars=task_vars)
        if answer.get("failed"):
            return answer
        wanted = answer["wanted"]
        report = dict(source=feed.source, project=feed.project, feed=answer["feed"], files=len(files), sent=wanted,
                      bytes_sent=sum(feed.files[name].size for name in wanted), record=answer["record"],
                      removed=answer["removed"], dropped=answer["dropped"],
                      changed=bool(wanted or answer["removed"] or answer["dropped"] or answer["record"] != "same"))
        if self._task.check_mode or not report["changed"]:
            return report
        module_args = dict(common, apply=True)
        if wanted:
            module_args["archive"] = self._upload(feed, wanted)
        applied = self._execute_module(module_name="airgap.uv.mirror_feed", module_args=module_args, task_vars=task_vars)
        if applied.get("failed"):
            return applied
        report.update(removed=applied["removed"], dropped=applied["dropped"], record=applied["record"])
        return report

    def _upload(self, feed: Feed, wanted: list) -> str:
        """WANTED (files of FEED) in one archive on the mirror host; its path there."""
        fd, bundle = tempfile.mkstemp(prefix="airgap-uv-feed-", suffix=".tar")
        os.close(fd)
        try:
            # Wheels and the uv zip are compressed already: a plain tar costs no CPU and is one transfer.
            with tarfile.open(bundle, "w") as archive:
                for name in wanted:
                    archive.add(feed.files[name].path, arcname=name, recursive=False)
            remote_tmp = self._connection._shell.tmpdir or self._make_tmp_path()
            remote = self._connection._shell.join_path(remote_tmp, "feed.tar")
            self._transfer_file(bundle, remote)
            self._fixup_perms2((remote_tmp, remote))
            return remote
        finally:
            os.unlink(bundle)
