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
module: bundle_import
short_description: Check a bundle carried into the air gap and keep it in the controller's bundle store
version_added: 0.1.0
description:
  - Runs on the controller inside the air gap, with no network, no uv and no Python library beyond
    ansible-core.
  - Checks the detached signature (C(<bundle>.sig)) with C(ssh-keygen -Y verify) against
    O(allowed_signers), then every member's sha256 and size against the bundle's C(bundle.json),
    before anything reaches a host.
  - Keeps the checked bundle unpacked under O(store)C(/<sha256>/) (a delta gets the members it
    leaves to its base from the base's entry), so a redeploy or rollback needs no media; keeps the
    O(keep) most recently used bundles.
  - With O(facts), maps each host to its target in the bundle and returns RV(hosts) and
    RV(targets) in the shape M(airgap.uv.wheelhouse) returns, for M(airgap.uv.push) and
    M(airgap.uv.sync).
author:
  - airgap.uv maintainers (@airgap-uv)
requirements:
  - OpenSSH 8.1 or newer (C(ssh-keygen -Y)) to check signatures
options:
  bundle:
    description: The bundle file.
    type: path
    required: true
  store:
    description: Directory of the controller's bundle store.
    type: path
    required: true
  allowed_signers:
    description: An OpenSSH allowed-signers file listing who may sign bundles (C(principal key-type key) per line).
    type: path
  allow_unsigned:
    description: Deploy a bundle without checking a signature when O(allowed_signers) is not set.
    type: bool
    default: false
  keep:
    description: How many bundles the store keeps (the most recently used; the one imported is always kept).
    type: int
    default: 3
  facts:
    description: Each host's C(airgap_uv_target) fact (from M(airgap.uv.target_facts)), by host name.
    type: dict
  sha256:
    description:
      - The RV(sha256) an earlier task of the same run returned for O(bundle). When the store holds that
        bundle checked, it is read from the store and the bundle file is not read (nor checked) again; else
        (check mode imports nothing) the bundle is checked as without this option.
    type: str
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - airgap.uv.action_plugin
attributes:
  check_mode:
    support: full
    details: Checks the signature and every member without writing to the store.
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Check the bundle and map the hosts to its targets
  airgap.uv.bundle_import:
    bundle: /media/transfer/app-1.4.0.tar
    allowed_signers: /etc/airgap-uv/allowed_signers
    store: /var/lib/airgap-uv/bundles
    facts: "{{ dict(ansible_play_hosts | zip(ansible_play_hosts | map('extract', hostvars, 'airgap_uv_target'))) }}"
  run_once: true
  delegate_to: localhost
  register: app_bundle
"""

RETURN = r"""
sha256:
  description: The bundle's sha256; its store entry is RV(path).
  returned: always
  type: str
path:
  description: The bundle's directory in the store.
  returned: always
  type: str
signer:
  description: The principal whose key signed the bundle, or V(null) when unsigned bundles were allowed.
  returned: always
  type: str
pruned:
  description: Store entries removed to keep O(keep).
  returned: always
  type: list
  elements: str
project:
  description: The project's C(name) and C(version).
  returned: always
  type: dict
lock_sha256:
  description: The sha256 of the uv.lock the bundle was built from.
  returned: always
  type: str
uv_version:
  description: The version of the uv binaries in the bundle.
  returned: always
  type: str
base:
  description: The base of a delta bundle (C(sha256), C(name)), else V(null).
  returned: always
  type: dict
bundle_targets:
  description: The target ids the bundle holds.
  returned: always
  type: list
  elements: str
hosts:
  description:
    - As RV(airgap.uv.wheelhouse#module:hosts), for the hosts of O(facts).
    - Each entry also has C(workstation_path), the directory M(airgap.uv.push) sends to a developer machine of that
      target (C(bin/uv), C(bin/uvx) and its uv cache chunks), when the bundle was built for workstations too; else null.
  returned: always
  type: dict
targets:
  description: Per target of those hosts, its C(hosts), C(path) and C(install_file), as M(airgap.uv.wheelhouse) returns them.
  returned: always
  type: dict
"""
