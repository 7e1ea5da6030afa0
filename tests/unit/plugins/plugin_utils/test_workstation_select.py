# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""What of a workstation's uv cache serves the current lock and tools: the metadata that follows the used archives."""

from __future__ import annotations

import json
import os
import shutil

from ansible_collections.airgap.uv.plugins.plugin_utils._workstation_cache import FillRequest, cache_entries, pack
from ansible_collections.airgap.uv.plugins.plugin_utils._workstation_select import (
    clone_cache,
    inputs_digest,
    pack_serving,
    select,
)

# A cache after a lock change: six stays, attrs left the lock, idna moved from 3.10 to 3.20, docopt (an sdist)
# stays, an old git dependency build left, hatchling (a build requirement, resolved from its page) stays,
# pre-commit (a removed tool) left; an index other than the default holds "private".
LINKS = {
    "wheels-v7/pypi/six/1.17.0-py2.py3-none-any": "archive-v0/SIX",
    "wheels-v7/pypi/attrs/25.4.0-py3-none-any": "archive-v0/ATTRS",
    "wheels-v7/pypi/idna/3.10-py3-none-any": "archive-v0/IDNA310",
    "wheels-v7/pypi/idna/3.20-py3-none-any": "archive-v0/IDNA320",
    "wheels-v7/pypi/hatchling/1.33.0-py3-none-any": "archive-v0/HATCH",
    "wheels-v7/pypi/pre-commit/4.0.1-py2.py3-none-any": "archive-v0/PRECOMMIT",
    "wheels-v7/index/0123abcd/private/1.0-py3-none-any": "archive-v0/PRIVATE",
    "sdists-v10/pypi/docopt/0.6.2/xt9u/docopt-0.6.2-py2.py3-none-any": "archive-v0/DOCOPT",
    "sdists-v10/git/4af4/55fc/gitdep-0.1.0-py3-none-any": "archive-v0/GITOLD",
}
META = sorted(list(LINKS) + [
    "sdists-v10/.gitignore",
    "wheels-v7/pypi/six/1.17.0-py2.py3-none-any.http",
    "wheels-v7/pypi/attrs/25.4.0-py3-none-any.http",
    "wheels-v7/pypi/idna/3.10-py3-none-any.http",
    "wheels-v7/pypi/idna/3.20-py3-none-any.http",
    "wheels-v7/pypi/hatchling/1.33.0-py3-none-any.http",
    "wheels-v7/pypi/hatchling/1.33.0-py3-none-any.msgpack",
    "wheels-v7/pypi/hatchling/1.34.0-py3-none-any.msgpack",  # metadata read, wheel never unpacked
    "wheels-v7/pypi/pre-commit/4.0.1-py2.py3-none-any.http",
    "wheels-v7/index/0123abcd/private/1.0-py3-none-any.http",
    "sdists-v10/pypi/docopt/0.6.2/revision.http",
    "sdists-v10/pypi/docopt/0.6.2/xt9u/metadata.msgpack",
    "sdists-v10/pypi/docopt/0.6.2/xt9u/docopt-0.6.2-py2.py3-none-any.whl",
    "sdists-v10/pypi/docopt/0.6.2/xt9u/src/setup.py",
    "sdists-v10/git/4af4/55fc/metadata.msgpack",
    "simple-v27/pypi/hatchling.rkyv",
    "simple-v27/pypi/pre-commit.rkyv",
    "simple-v27/index/0123abcd/private.rkyv",
    "git-v1/db/f1cf/.git/HEAD",
    "git-v1/checkouts/f1cf/55fcb28/src/gitdep/__init__.py",
])
USED = ["archive-v0/SIX", "archive-v0/IDNA320", "archive-v0/HATCH", "archive-v0/PRIVATE", "archive-v0/DOCOPT",
        "archive-v0/EDITABLE"]  # uv also used the scratch project's editable build: not among the links


def test_only_the_used_archives_and_their_metadata_serve():
    meta, archives = select(META, LINKS, USED)
    assert archives == ["archive-v0/DOCOPT", "archive-v0/HATCH", "archive-v0/IDNA320", "archive-v0/PRIVATE",
                        "archive-v0/SIX"]
    assert meta == sorted([
        "git-v1/checkouts/f1cf/55fcb28/src/gitdep/__init__.py",
        "git-v1/db/f1cf/.git/HEAD",
        "sdists-v10/.gitignore",
        "sdists-v10/pypi/docopt/0.6.2/revision.http",
        "sdists-v10/pypi/docopt/0.6.2/xt9u/docopt-0.6.2-py2.py3-none-any",
        "sdists-v10/pypi/docopt/0.6.2/xt9u/docopt-0.6.2-py2.py3-none-any.whl",
        "sdists-v10/pypi/docopt/0.6.2/xt9u/metadata.msgpack",
        "sdists-v10/pypi/docopt/0.6.2/xt9u/src/setup.py",
        "simple-v27/index/0123abcd/private.rkyv",
        "simple-v27/pypi/hatchling.rkyv",
        "wheels-v7/index/0123abcd/private/1.0-py3-none-any",
        "wheels-v7/index/0123abcd/private/1.0-py3-none-any.http",
        "wheels-v7/pypi/hatchling/1.33.0-py3-none-any",
        "wheels-v7/pypi/hatchling/1.33.0-py3-none-any.http",
        "wheels-v7/pypi/hatchling/1.33.0-py3-none-any.msgpack",
        "wheels-v7/pypi/idna/3.20-py3-none-any",
        "wheels-v7/pypi/idna/3.20-py3-none-any.http",
        "wheels-v7/pypi/six/1.17.0-py2.py3-none-any",
        "wheels-v7/pypi/six/1.17.0-py2.py3-none-any.http",
    ])


def test_nothing_used_keeps_only_markers_and_git():
    assert select(META, LINKS, []) == ([m for m in META if m.startswith("git-v")] + ["sdists-v10/.gitignore"], [])


def test_everything_used_keeps_everything_but_metadata_of_wheels_never_unpacked():
    meta, archives = select(META, LINKS, LINKS.values())
    assert archives == sorted(LINKS.values())
    assert set(META) - set(meta) == {"wheels-v7/pypi/hatchling/1.34.0-py3-none-any.msgpack"}


def test_a_clone_packs_to_the_same_bytes_and_a_dry_pack_writes_nothing(tmp_path):
    cache = tmp_path / "c"
    archive = cache / "archive-v0" / "SIX" / "six-1.17.0.dist-info"
    archive.mkdir(parents=True)
    (archive / "RECORD").write_text("six.py,,\n")
    (cache / "wheels-v7" / "pypi" / "six").mkdir(parents=True)
    (cache / "wheels-v7" / "pypi" / "six" / "1.17.0-py2.py3-none-any.http").write_bytes(b"policy")
    os.symlink("../../../archive-v0/SIX", cache / "wheels-v7" / "pypi" / "six" / "1.17.0-py2.py3-none-any")
    entries = (["wheels-v7/pypi/six/1.17.0-py2.py3-none-any", "wheels-v7/pypi/six/1.17.0-py2.py3-none-any.http"],
               ["archive-v0/SIX"])
    first = pack(str(cache), str(tmp_path / "ship"), "0.13.8", entries)
    clone_cache(str(cache), str(tmp_path / "clone"), *entries)
    (cache / "wheels-v7" / "pypi" / "six" / "1.17.0-py2.py3-none-any.http").write_bytes(b"policy 2")
    assert os.path.samefile(cache / "archive-v0" / "SIX" / "six-1.17.0.dist-info" / "RECORD",
                            tmp_path / "clone" / "archive-v0" / "SIX" / "six-1.17.0.dist-info" / "RECORD")
    assert pack(str(tmp_path / "clone"), str(tmp_path / "ship"), "0.13.8", entries, dry=True)["written"] == []
    seed = (tmp_path / "ship" / "seed.json").read_bytes()
    dry = pack(str(cache), str(tmp_path / "ship"), "0.13.8", (entries[0], []), dry=True)
    assert dry["written"] == ["meta.tar.gz", "seed.json"] and dry["removed"] == ["archive-v0-SIX.tar.gz"]
    assert (tmp_path / "ship" / "seed.json").read_bytes() == seed
    assert sorted(os.listdir(tmp_path / "ship" / "cache")) == sorted(first["written"][:-1])


def small_cache(work):
    """WORK/uv-cache with six (used) and attrs (left the lock), and WORK/project."""
    cache = work / "uv-cache"
    for name, version, archive in (("six", "1.17.0", "SIX"), ("attrs", "25.4.0", "ATTRS")):
        (cache / "archive-v0" / archive / ("%s-%s.dist-info" % (name, version))).mkdir(parents=True)
        (cache / "archive-v0" / archive / ("%s-%s.dist-info" % (name, version)) / "RECORD").write_text("x\n")
        (cache / "wheels-v7" / "pypi" / name).mkdir(parents=True)
        (cache / "wheels-v7" / "pypi" / name / ("%s-py3-none-any.http" % version)).write_bytes(b"policy")
        os.symlink("../../../archive-v0/%s" % archive, cache / "wheels-v7" / "pypi" / name / ("%s-py3-none-any" % version))
    (work / "project").mkdir()
    (work / "project" / "uv.lock").write_text("version = 1\n")
    # A uv that always fails: any replay fails (and then nothing is pruned).
    return FillRequest(uv=shutil.which("false"), project=str(work / "project"), python="/usr/bin/python3",
                       platform="x86_64-manylinux_2_36", work=str(work), tools=["ruff"])


def test_a_remembered_selection_replays_nothing(tmp_path):
    request = small_cache(tmp_path)
    meta, archives = cache_entries(request.cache)
    record = str(tmp_path / "selection.json")
    (tmp_path / "selection.json").write_text(json.dumps({
        "digest": inputs_digest(request, meta, archives), "used": ["archive-v0/SIX"], "pruning": "verified"}))
    # The inputs are those of the record: no replay (it would fail and ship everything).
    report = pack_serving(request, str(tmp_path / "ship"), "0.13.8", True, record)
    assert report["pruning"] == "verified" and report["left_out"] == ["archive-v0/ATTRS"]
    assert sorted(os.listdir(tmp_path / "ship" / "cache")) == ["archive-v0-SIX.tar.gz", "meta.tar.gz"]
    # Another input (the lock) means another answer: here uv cannot replay, so nothing is pruned and the record says why.
    (tmp_path / "project" / "uv.lock").write_text("version = 1\n# changed\n")
    report = pack_serving(request, str(tmp_path / "ship"), "0.13.8", True, record)
    assert report["pruning"].startswith("not pruned: the offline replay against the whole cache failed"), report
    assert sorted(report["written"]) == ["archive-v0-ATTRS.tar.gz", "meta.tar.gz", "seed.json"]
    assert json.loads((tmp_path / "selection.json").read_text())["pruning"] == report["pruning"]


def test_without_prune_everything_ships(tmp_path):
    request = small_cache(tmp_path)
    report = pack_serving(request, str(tmp_path / "ship"), "0.13.8", False, str(tmp_path / "selection.json"))
    assert report["pruning"].startswith("off") and report["chunks"] == 3
    assert not (tmp_path / "selection.json").exists()
