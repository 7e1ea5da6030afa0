# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to the airgap.uv collection
"""The targets file: written stable and sorted, anonymous on request, read back into the same targets."""

from __future__ import annotations

import typing as t

import pytest
import yaml

from ansible_collections.airgap.uv.plugins.plugin_utils._target import Target
from ansible_collections.airgap.uv.plugins.plugin_utils._targets_file import (
    HEADER,
    TargetsFileError,
    read_targets_file,
    render_targets_file,
    targets_from_facts,
)


def facts(python: str = "3.11.2", libc: t.Optional[dict] = None, **overrides: t.Any) -> dict:
    """airgap_uv_target facts as target_facts returns them, paths and kernel strings included."""
    env = {
        "implementation_name": "cpython", "implementation_version": python, "os_name": "posix",
        "platform_machine": "x86_64", "platform_release": "6.1.0-28-amd64", "platform_system": "Linux",
        "platform_version": "#1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1", "python_full_version": python,
        "platform_python_implementation": "CPython", "python_version": python.rsplit(".", 1)[0],
        "sys_platform": "linux",
    }
    result = {"marker_environment": env, "os": "linux", "arch": "x86_64",
              "libc": libc or {"family": "glibc", "version": "2.36"},
              "python": {"executable": "/srv/secret-project/bin/python3", "version": python,
                         "implementation": "cpython", "abiflags": "", "soabi": "cpython-311-x86_64-linux-gnu",
                         "has_venv": False},
              "uv": {"path": "/opt/airgap-uv/secret/bin/uv", "version": "0.13.8", "verified": True}}
    result.update(overrides)
    return result


FLEET = {
    "web2": facts(),
    "web1": facts(),
    "db1": facts("3.12.1"),
    "edge-1": facts("3.13.0", libc={"family": "musl", "version": "1.2.4"}, arch="aarch64"),
    "mac-7": {"python": "3.12.3", "os": "darwin", "arch": "arm64", "macos_version": "14.0"},
}


def write(tmp_path: t.Any, text: str) -> str:
    path = tmp_path / "targets.yml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_hosts_with_one_target_share_an_entry_with_sorted_hosts():
    targets = targets_from_facts(FLEET, anonymous=False)
    assert targets["cpython3.11.2-linux-x86_64-glibc2.36"] == {
        "python": "3.11.2", "implementation": "cpython", "abiflags": "", "os": "linux", "arch": "x86_64",
        "libc": "glibc", "libc_version": "2.36", "hosts": ["web1", "web2"]}
    assert sorted(targets) == ["cpython3.11.2-linux-x86_64-glibc2.36", "cpython3.12.1-linux-x86_64-glibc2.36",
                               "cpython3.12.3-darwin-arm64-macos14.0", "cpython3.13.0-linux-aarch64-musl1.2.4"]
    assert targets["cpython3.12.3-darwin-arm64-macos14.0"]["macos_version"] == "14.0"
    assert "libc" not in targets["cpython3.12.3-darwin-arm64-macos14.0"]


def test_rendering_is_stable_sorted_and_quotes_versions():
    text = render_targets_file(targets_from_facts(FLEET, anonymous=False))
    reordered = dict(reversed(list(FLEET.items())))
    assert render_targets_file(targets_from_facts(reordered, anonymous=False)) == text
    assert text.startswith(HEADER) and text.splitlines()[0].startswith("# Written by `ansible-playbook airgap.uv.targets`")
    document = yaml.safe_load(text)
    assert list(document) == ["format", "targets"] and document["format"] == 1
    assert list(document["targets"]) == sorted(document["targets"])
    assert all(list(spec) == sorted(spec) for spec in document["targets"].values())
    assert '    python: "3.11.2"\n' in text and '    libc_version: "2.36"\n' in text and '    abiflags: ""\n' in text
    assert "    hosts: [web1, web2]\n" in text


def test_nothing_but_the_description_and_host_names_is_written():
    text = render_targets_file(targets_from_facts(FLEET, anonymous=False))[len(HEADER):]
    for secret in ("secret", "/srv", "/opt", "PREEMPT", "6.1.0-28", "0.13.8", "soabi", "has_venv"):
        assert secret not in text


def test_anonymous_leaves_out_every_host_name():
    targets = targets_from_facts(FLEET, anonymous=True)
    text = render_targets_file(targets)[len(HEADER):]
    assert all("hosts" not in spec for spec in targets.values())
    for host in FLEET:
        assert host not in text
    assert len(yaml.safe_load(text)["targets"]) == 4


def test_facts_to_file_to_spec_give_the_same_target_ids(tmp_path):
    originals = {host: Target.from_facts(host_facts, host) for host, host_facts in FLEET.items()}
    path = write(tmp_path, render_targets_file(targets_from_facts(FLEET, anonymous=False)))
    read = read_targets_file(path)
    assert sorted(read) == sorted({target.id for target in originals.values()})
    for target_id, spec in read.items():
        again = Target.from_facts(spec)
        assert again.id == target_id
        for host in spec["hosts"]:
            assert originals[host] == again and originals[host].id == again.id


def test_a_host_that_cannot_be_described_is_named():
    no_libc = facts(libc={"family": None, "version": None})
    with pytest.raises(TargetsFileError, match="host odd1 .*needs libc"):
        targets_from_facts({"web1": facts(), "odd1": no_libc}, anonymous=False)
    with pytest.raises(TargetsFileError, match="host odd2 lack marker_environment"):
        targets_from_facts({"odd2": {"os": "linux"}}, anonymous=False)
    with pytest.raises(TargetsFileError, match="No host's target facts"):
        targets_from_facts({}, anonymous=False)


GOOD = render_targets_file(targets_from_facts({"web1": facts()}, anonymous=False))


@pytest.mark.parametrize("text, message", [
    (GOOD.replace("format: 1", "format: 2"), r"has format 2; this airgap\.uv reads format 1"),
    (GOOD.replace("format: 1\n", ""), r"has format None"),
    (GOOD.replace('python: "3.11.2"', 'python: "3.11.7"'),
     r"entry cpython3\.11\.2-linux-x86_64-glibc2\.36: describes the target cpython3\.11\.7-linux-x86_64-glibc2\.36"),
    (GOOD.replace('    python: "3.11.2"\n', ""), r"entry cpython3\.11\.2-linux-x86_64-glibc2\.36: lacks python"),
    (GOOD.replace('    libc: glibc\n', ""), r"on Linux needs libc"),
    (GOOD.replace('libc_version: "2.36"', "libc_version: 2.40"), r"libc_version is 2\.4, not a string; quote it"),
    (GOOD.replace("    os: linux\n", "    os: linux\n    kernel: 6.1\n"), r"unknown field kernel"),
    (GOOD.replace("hosts: [web1]", "hosts: web1"), r"hosts must be a list"),
    ("targets: [unclosed\n", r"is not YAML"),
    ("- just\n- a list\n", r"is not a targets file"),
    ("format: 1\ntargets: {}\n", r"lists no targets"),
])
def test_bad_files_are_refused_naming_the_file_and_the_remedy(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(TargetsFileError, match=message) as caught:
        read_targets_file(path)
    assert path in str(caught.value)
    if "format 2" not in message:
        assert "ansible-playbook airgap.uv.targets" in str(caught.value) or "quote it" in str(caught.value)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(TargetsFileError, match="Cannot read the targets file .*nowhere.yml"):
        read_targets_file(str(tmp_path / "nowhere.yml"))


def test_a_hand_written_short_entry_is_read():
    """implementation and abiflags may be left out: the id check still guards the entry."""
    spec = {"python": "3.12.3", "os": "linux", "arch": "aarch64", "libc": "glibc", "libc_version": "2.35"}
    assert Target.from_facts(spec).id == "cpython3.12.3-linux-aarch64-glibc2.35"


def test_a_hand_written_short_entry_in_a_file(tmp_path):
    path = write(tmp_path, 'format: 1\ntargets:\n  cpython3.12.3-linux-aarch64-glibc2.35:\n    python: "3.12.3"\n'
                           '    os: linux\n    arch: aarch64\n    libc: glibc\n    libc_version: "2.35"\n')
    assert read_targets_file(path) == {"cpython3.12.3-linux-aarch64-glibc2.35": {
        "python": "3.12.3", "os": "linux", "arch": "aarch64", "libc": "glibc", "libc_version": "2.35"}}
