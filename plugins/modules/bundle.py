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
module: bundle
short_description: Pack a published wheelhouse into one signed, reproducible bundle for an air gap
version_added: 0.1.0
description:
  - Runs on the connected controller, after M(airgap.uv.wheelhouse) has published the wheelhouse for
    the targets of a targets file (see the C(airgap.uv.targets) playbook).
  - Writes ONE uncompressed tar holding each file once (wheels and sdists under C(files/), the uv
    binary of each platform under C(uv/)), each target's install files under C(targets/<id>/), a PEP 751
    C(pylock.<id>.toml) per target whose paths point into the bundle, a CycloneDX SBOM
    (C(sbom.cdx.json)) and C(bundle.json), the manifest of every member with its sha256 and size.
  - The same inputs give a byte-identical tar (sorted members, fixed times, owners and modes).
  - Beside it, C(<dest>.sha256) (C(sha256sum) format) and, with O(signing_key), the detached
    signature C(<dest>.sig) made with C(ssh-keygen -Y sign) (namespace C(airgap.uv-bundle)).
  - Written beside O(dest) and renamed into place, so a failure leaves no half-written bundle.
author:
  - airgap.uv maintainers (@airgap-uv)
requirements:
  - OpenSSH 8.1 or newer (C(ssh-keygen -Y)) to sign
options:
  wheelhouse:
    description: The registered result of M(airgap.uv.wheelhouse) for the targets of O(targets_file).
    type: dict
    required: true
  targets_file:
    description: The targets file the wheelhouse was built for (written by the C(airgap.uv.targets) playbook).
    type: path
    required: true
  project:
    description: The project directory (its C(uv.lock) gives the original URL of each file for the PEP 751 locks).
    type: path
    required: true
  dest:
    description: The bundle file to write.
    type: path
    required: true
  base:
    description:
      - A bundle carried inside before. The new bundle then holds only the members O(base) lacks
        (a delta) and names O(base) by its sha256; the inside controller refuses it unless it has
        imported O(base).
    type: path
  signing_key:
    description: The private ssh key to sign the bundle with (C(ssh-keygen -Y sign)).
    type: path
  mtime:
    description:
      - Modification time of every member, in seconds since the epoch.
      - Default C(SOURCE_DATE_EPOCH) from the controller's environment, else 0.
    type: int
  workstation:
    description:
      - The registered result of M(airgap.uv.workstation_cache) run for the same targets (keyed by target id), to
        carry each target's uv cache too, so developer machines inside the gap are prepared from the bundle
        (role M(airgap.uv.uv_workstation) with C(uv_workstation_bundle)).
      - The cache files are kept once by content (C(cache/<sha256>)); uv is the target's own.
      - Omit for a bundle that only deploys.
    type: dict
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - airgap.uv.action_plugin
attributes:
  check_mode:
    support: full
    details:
      - Works out the bundle and its sha256 without writing; C(changed) says whether O(dest) would change.
      - When the O(wheelhouse) task reports that it would change (it writes nothing in check mode), the
        bundle is reported as changed without being worked out, and RV(sha256) is V(null).
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Pack the wheelhouse into a bundle
  airgap.uv.bundle:
    wheelhouse: "{{ app_wheelhouse }}"
    targets_file: targets.yml
    project: /src/app
    dest: /media/transfer/app-1.4.0.tar
    signing_key: ~/.ssh/airgap_release
  delegate_to: localhost
"""

RETURN = r"""
path:
  description: Absolute path of the bundle.
  returned: always
  type: str
sha256:
  description: The bundle's sha256 (also in C(<path>.sha256)); V(null) in check mode when the wheelhouse would change.
  returned: always
  type: str
size:
  description: The bundle's size in bytes.
  returned: always
  type: int
members:
  description: Number of files the bundle carries (besides C(bundle.json)).
  returned: always
  type: int
payload_bytes:
  description: Bytes of those files.
  returned: always
  type: int
from_base:
  description: Number of files a delta leaves to its base.
  returned: always
  type: int
signature:
  description: Path of the detached signature, or V(null) when not signed.
  returned: always
  type: str
sums:
  description: Path of the C(sha256sum)-style digest file.
  returned: always
  type: str
project:
  description: The project's C(name) and C(version).
  returned: always
  type: dict
targets:
  description: The target ids the bundle holds.
  returned: always
  type: list
  elements: str
base:
  description: The base of a delta (C(sha256), C(name)), else V(null).
  returned: always
  type: dict
"""
