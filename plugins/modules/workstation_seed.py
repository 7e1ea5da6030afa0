#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: workstation_seed
short_description: Put the uv cache made for a workstation into its user's uv cache
version_added: 0.1.0
description:
  - Runs on the host, as the user whose cache it fills (C(become_user)). Reads O(src)C(/seed.json) written by
    M(airgap.uv.workstation_cache) and unpacks into O(cache_dir) each chunk of it that the cache does not hold yet,
    after checking the chunk's sha256.
  - What was unpacked is recorded in O(cache_dir)C(/.airgap-uv-seed.json), so a rerun with the same chunks reads
    no chunk and reports no change. Entries uv itself added to the cache are left alone.
  - Chunks are unpacked only inside O(cache_dir); a member with an absolute path, a C(..) part or a link leading
    out of the cache fails the task before anything is written.
author:
  - airgap.uv maintainers (@airgap-uv)
options:
  src:
    description: Directory on the host holding C(seed.json) and C(cache/*.tar.gz) (pushed by M(airgap.uv.push)).
    type: path
    required: true
  cache_dir:
    description: The user's uv cache directory (the C(cache-dir) of the uv configuration the role writes).
    type: path
    required: true
  prune:
    description:
      - Remove the unpacked archives of chunks that an earlier run unpacked and O(src) no longer lists, and
        the metadata files (links, HTTP cache entries, index pages) that the metadata chunk an earlier run
        unpacked held and the new one does not.
      - M(airgap.uv.workstation_cache) ships only what serves the current lock and tools, so after a lock
        change this removes the old lock's wheels from the user's cache. Entries uv itself added are left alone.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description:
      - Reports the chunks it would unpack and the archives it would prune, and writes nothing.
  diff_mode:
    support: none
    description:
      - No diff.
  platform:
    support: full
    platforms: posix
    description:
      - Linux hosts (uv's cache uses symbolic links).
"""

EXAMPLES = r"""
- name: Seed the developer's uv cache
  airgap.uv.workstation_seed:
    src: /opt/airgap-uv/workstation/myapp/ship
    cache_dir: /home/dev/.cache/uv
  become: true
  become_user: dev
"""

RETURN = r"""
unpacked:
  description: Chunks unpacked (or, in check mode, to unpack).
  returned: always
  type: list
  elements: str
pruned:
  description: Archive directories removed (or to remove) from the cache.
  returned: always
  type: list
  elements: str
pruned_files:
  description:
    - Metadata files of the previous metadata chunk removed from the cache because the new one lacks them
      (known when the new chunk is unpacked, so empty in check mode).
  returned: always
  type: list
  elements: str
"""

import hashlib
import json
import os
import shutil
import tarfile

from ansible.module_utils.basic import AnsibleModule

RECORD = ".airgap-uv-seed.json"


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_json(path, default):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return default


def _inside(base, name):
    resolved = os.path.normpath(os.path.join(base, name))
    return resolved == base or resolved.startswith(base + os.sep)


def _check_members(tar, cache_dir, chunk):
    members = tar.getmembers()
    for member in members:
        name = member.name
        if os.path.isabs(name) or ".." in name.split("/") or not _inside(cache_dir, name):
            raise ValueError("chunk %s has a member outside the cache: %s" % (chunk, name))
        if member.issym() and not _inside(cache_dir, os.path.join(os.path.dirname(name), member.linkname)):
            raise ValueError("chunk %s has a link leading out of the cache: %s -> %s" % (chunk, name, member.linkname))
        if not (member.isfile() or member.isdir() or member.issym()):
            raise ValueError("chunk %s has a member that is no file, directory or link: %s" % (chunk, name))
    return members


def _unpack(path, cache_dir, chunk, entry):
    """Unpack the chunk at PATH into CACHE_DIR; the names of the files and links it held."""
    root = entry.get("root") or ""
    if root and os.path.lexists(os.path.join(cache_dir, root)):
        shutil.rmtree(os.path.join(cache_dir, root))
    with tarfile.open(path, "r:gz") as tar:
        members = _check_members(tar, cache_dir, chunk)
        for member in members:
            # A file or link being replaced goes first: git's objects are read-only (0444).
            target = os.path.join(cache_dir, member.name)
            if not member.isdir() and os.path.lexists(target) and not os.path.isdir(target):
                os.unlink(target)
        if hasattr(tarfile, "data_filter"):
            tar.extractall(cache_dir, members=members, filter="fully_trusted")
        else:
            tar.extractall(cache_dir, members=members)
    return sorted(member.name for member in members if not member.isdir())


def _prune_files(cache_dir, names):
    """Remove NAMES (files and links of an earlier metadata chunk) from CACHE_DIR; those removed."""
    removed = []
    for name in names:
        path = os.path.join(cache_dir, name)
        if _inside(cache_dir, name) and (os.path.islink(path) or os.path.isfile(path)):
            os.unlink(path)
            removed.append(name)
    return removed


def _write_record(cache_dir, record):
    temporary = os.path.join(cache_dir, RECORD + ".tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=1, sort_keys=True)
    os.replace(temporary, os.path.join(cache_dir, RECORD))


def seed(module):
    src, cache_dir = module.params["src"], os.path.abspath(module.params["cache_dir"])
    wanted = _read_json(os.path.join(src, "seed.json"), None)
    if wanted is None and module.check_mode:
        # Check mode before the first push: everything is still to unpack.
        return {"changed": True, "unpacked": [], "pruned": []}
    if not isinstance(wanted, dict) or wanted.get("format") != 1:
        module.fail_json(msg="%s/seed.json is missing or not a workstation seed of format 1." % src)
    chunks = wanted["chunks"]
    record = _read_json(os.path.join(cache_dir, RECORD), {})
    unpack = sorted(name for name, entry in chunks.items() if record.get(name, {}).get("sha256") != entry["sha256"]
                    or (entry.get("root") and not os.path.isdir(os.path.join(cache_dir, entry["root"]))))
    stale = sorted(name for name in record if name not in chunks) if module.params["prune"] else []
    pruned = sorted(record[name]["root"] for name in stale if record[name].get("root"))
    result = {"changed": bool(unpack or stale), "unpacked": unpack, "pruned": pruned, "pruned_files": []}
    if module.check_mode or not result["changed"]:
        return result
    os.makedirs(cache_dir, mode=0o755, exist_ok=True)
    for name in unpack:
        path = os.path.join(src, "cache", name)
        if _sha256(path) != chunks[name]["sha256"]:
            module.fail_json(msg="%s does not match its sha256 in seed.json: push it again." % path)
        try:
            files = _unpack(path, cache_dir, name, chunks[name])
        except (ValueError, tarfile.TarError) as exc:
            module.fail_json(msg=str(exc))
        before = record.get(name, {}).get("files") or []
        record[name] = dict(chunks[name])
        if not chunks[name].get("root"):
            record[name]["files"] = files
            if module.params["prune"]:
                result["pruned_files"] += _prune_files(cache_dir, sorted(set(before) - set(files)))
        _write_record(cache_dir, record)
    for name in stale:
        root = record.pop(name).get("root")
        if root and _inside(cache_dir, root):
            shutil.rmtree(os.path.join(cache_dir, root), ignore_errors=True)
    _write_record(cache_dir, record)
    return result


def main():
    module = AnsibleModule(
        argument_spec={
            "src": {"type": "path", "required": True},
            "cache_dir": {"type": "path", "required": True},
            "prune": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    module.exit_json(**seed(module))


if __name__ == "__main__":
    main()
