# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Controller side of airgap.uv.bundle_import: check a bundle and keep it in the store (_bundle_read).

Runs inside the air gap: standard library, ansible-core and this collection only.
"""

from __future__ import annotations

import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.airgap.uv.plugins.plugin_utils._bundle_format import BundleError
from ansible_collections.airgap.uv.plugins.plugin_utils._bundle_read import ImportedBundle, hosts_for, import_bundle, stored_document

ARGUMENT_SPEC = dict(
    bundle=dict(type="path", required=True),
    store=dict(type="path", required=True),
    allowed_signers=dict(type="path"),
    allow_unsigned=dict(type="bool", default=False),
    keep=dict(type="int", default=3),
    facts=dict(type="dict"),
    sha256=dict(type="str"),
)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        dummy, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        if args["keep"] < 1:
            raise AnsibleActionFail("keep is %d; keep at least the bundle being deployed (1 or more)." % args["keep"])
        try:
            imported = self._already_imported(args) or import_bundle(
                args["bundle"], args["store"], args["allowed_signers"], args["allow_unsigned"], args["keep"],
                check_mode=self._task.check_mode)
            hosts, targets = hosts_for(imported.document, imported.root, args["facts"] or {})
        except BundleError as exc:
            raise AnsibleActionFail(str(exc)) from None
        except OSError as exc:
            raise AnsibleActionFail("Importing %s into %s failed: %s. The store is unchanged."
                                    % (args["bundle"], args["store"], exc)) from None
        document = imported.document
        result.update(changed=imported.changed, sha256=imported.sha256, path=imported.root, signer=imported.signer,
                      pruned=imported.pruned, project=document["project"], lock_sha256=document["lock_sha256"],
                      uv_version=document["uv_version"], base=document["base"], hosts=hosts, targets=targets,
                      bundle_targets=sorted(document["targets"]))
        if imported.signer is None and not args["sha256"]:
            result["warnings"] = ["%s was deployed without checking a signature (allow_unsigned)." % args["bundle"]]
        return result

    @staticmethod
    def _already_imported(args):
        """The store's checked copy of the bundle an earlier task of this run imported (SHA256), if any."""
        if not args["sha256"]:
            return None
        document = stored_document(args["store"], args["sha256"])
        if document is None:
            return None  # check mode imported nothing: check the bundle again
        return ImportedBundle(args["sha256"], os.path.join(args["store"], args["sha256"]), document, False, None, [])
