# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Controller side of airgap.uv.bundle: the published wheelhouse into one signed tar (_bundle_write)."""

from __future__ import annotations

import os
import traceback

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.airgap.uv.plugins.plugin_utils._bundle_format import BundleError
from ansible_collections.airgap.uv.plugins.plugin_utils._collection_version import collection_version

try:
    from ansible_collections.airgap.uv.plugins.plugin_utils._bundle_write import BundleRequest, build_bundle
    from ansible_collections.airgap.uv.plugins.plugin_utils._bundle_extras import lock_urls, project_of
    from ansible_collections.airgap.uv.plugins.plugin_utils._targets_file import TargetsFileError, read_targets_file
    IMPORT_ERROR = None
except ImportError:
    IMPORT_ERROR = traceback.format_exc()

ARGUMENT_SPEC = dict(
    wheelhouse=dict(type="dict", required=True),
    targets_file=dict(type="path", required=True),
    project=dict(type="path", required=True),
    dest=dict(type="path", required=True),
    base=dict(type="path"),
    signing_key=dict(type="path"),
    mtime=dict(type="int"),
    workstation=dict(type="dict"),
)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        dummy, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        if IMPORT_ERROR:
            raise AnsibleActionFail("airgap.uv.bundle cannot load its code: %s" % IMPORT_ERROR.strip().splitlines()[-1],
                                    result={"exception": IMPORT_ERROR})
        mtime = args["mtime"]
        if mtime is None:
            # The reproducible-builds convention; a fixed time otherwise, never the clock.
            mtime = int(os.environ.get("SOURCE_DATE_EPOCH") or 0)
        if self._task.check_mode and (args["wheelhouse"].get("changed") or (args["workstation"] or {}).get("changed")):
            # The wheelhouse (or cache) task wrote nothing it would write: the bundle made of it would change too.
            dest = os.path.abspath(args["dest"])
            result.update(changed=True, path=dest, sha256=None, size=None, members=None, payload_bytes=None,
                          from_base=None, signature=dest + ".sig" if args["signing_key"] else None,
                          sums=dest + ".sha256", project=None, targets=sorted(args["wheelhouse"].get("targets", {})),
                          base=None, msg="The wheelhouse would change, so the bundle would be written anew.")
            return result
        try:
            request = BundleRequest(
                wheelhouse=args["wheelhouse"], specs=read_targets_file(args["targets_file"]), dest=args["dest"],
                lock_urls=lock_urls(os.path.join(args["project"], "uv.lock")), base=args["base"],
                signing_key=args["signing_key"], mtime=mtime, collection_version=collection_version(),
                project=project_of(args["project"]), workstation=args["workstation"] or {})
            outcome = build_bundle(request, check_mode=self._task.check_mode)
        except (BundleError, TargetsFileError) as exc:
            raise AnsibleActionFail(str(exc)) from None
        except OSError as exc:
            raise AnsibleActionFail("Writing the bundle %s failed: %s. Nothing was replaced." % (args["dest"], exc)) from None
        document = outcome.document
        result.update(changed=outcome.changed, path=outcome.path, sha256=outcome.sha256, size=outcome.size,
                      members=outcome.members, payload_bytes=outcome.payload_bytes, from_base=outcome.from_base,
                      signature=outcome.signature, sums=outcome.sums, project=document["project"],
                      targets=sorted(document["targets"]), base=document["base"])
        return result
