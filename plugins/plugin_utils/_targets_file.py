# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The targets file: the offline hosts' distinct targets, carried out of the air gap.

Written inside the air gap from airgap.uv.target_facts results (`ansible-playbook
airgap.uv.targets`), read on the connected machine, which has no inventory of those hosts.
Each entry is the short description `_target.facts_from_spec` accepts, so the reader re-creates
the very Target (and id) the writer saw. Only that description and, unless anonymous, the
host names are written: no paths, kernel strings or anything else a host reported.

Standard library and PyYAML only (ansible-core brings it): this also runs on a controller
inside the air gap, which may lack packaging and tomli.
"""

from __future__ import annotations

from typing import Any, Mapping

import yaml

from ansible_collections.airgap.uv.plugins.plugin_utils._target import Target, TargetError

FORMAT = 1
HEADER = (
    "# Written by `ansible-playbook airgap.uv.targets` (airgap.uv); rerun it rather than edit this file.\n"
    "# The distinct targets (Python, OS, CPU, C library) of the offline hosts it ran on, and which hosts\n"
    "# share each. Carry this file to the connected machine: the bundle for these hosts is built from it,\n"
    "# with no inventory. It holds nothing secret (host names at most; none with\n"
    "# uv_deploy_targets_anonymous: true).\n"
)
REQUIRED = ("python", "os", "arch")
# What facts_from_spec reads besides REQUIRED; all strings. Versions are written quoted so that
# a reader never sees the number 2.4 for libc 2.40, and so is abiflags, which is mostly "".
OPTIONAL = ("implementation", "abiflags", "libc", "libc_version", "macos_version")
QUOTED = ("python", "libc_version", "macos_version", "abiflags")
HOSTS = "hosts"
_AGAIN = "write it again with `ansible-playbook airgap.uv.targets` inside the air gap"


class TargetsFileError(ValueError):
    """A targets file cannot be written from these facts, or read: the message says why and what to do."""


def spec_of(target: Target) -> dict[str, str]:
    """TARGET as the short description facts_from_spec takes; None values (no libc, not macOS) left out."""
    spec = {
        "python": target.python_version, "implementation": target.implementation, "abiflags": target.abiflags,
        "os": target.os, "arch": target.arch, "libc": target.libc_family, "libc_version": target.libc_version,
    }
    if target.os == "darwin":
        spec["macos_version"] = target.macos_version
    return {key: str(value) for key, value in spec.items() if value is not None}


def targets_from_facts(facts_by_host: Mapping[str, Mapping], anonymous: bool) -> dict[str, dict]:
    """{target id: spec (with sorted `hosts` unless ANONYMOUS)} for the hosts' target facts.

    A host's facts may also be a short description already (a host no play can reach).
    """
    if not facts_by_host:
        raise TargetsFileError("No host's target facts were given, so there is no target to write: run "
                               "airgap.uv.target_facts on the offline hosts first.")
    targets: dict[str, dict] = {}
    for host in sorted(facts_by_host, key=str):
        try:
            target = Target.from_facts(facts_by_host[host], str(host))
        except TargetError as exc:
            raise TargetsFileError(str(exc)) from None
        spec = spec_of(target)
        _check_round_trip(spec, target, "host %s" % host)
        entry = targets.setdefault(target.id, spec)
        if not anonymous:
            entry.setdefault(HOSTS, []).append(str(host))
    return targets


def _check_round_trip(spec: Mapping[str, str], target: Target, what: str) -> None:
    """The reader must re-create TARGET from SPEC; refuse to write a description that would not."""
    try:
        again = Target.from_facts(spec)
    except TargetError as exc:
        raise TargetsFileError("The target of %s (%s) cannot be described in a targets file: %s" % (
            what, target.id, exc)) from None
    if again.id != target.id:
        raise TargetsFileError("The target of %s reads back as %s instead of %s; this is a bug in airgap.uv." % (
            what, again.id, target.id))


class _Quoted(str):
    """A string YAML writes in double quotes (versions, abiflags)."""


class _Flow(list):
    """A list YAML writes on one line: hosts: [web1, web2]."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Quoted, lambda dumper, data: dumper.represent_scalar(
    "tag:yaml.org,2002:str", str(data), style='"'))
_Dumper.add_representer(_Flow, lambda dumper, data: dumper.represent_sequence(
    "tag:yaml.org,2002:seq", list(data), flow_style=True))


def render_targets_file(targets: Mapping[str, Mapping[str, Any]]) -> str:
    """The file's text for TARGETS ({id: spec}): header comment, then YAML with sorted keys.

    Byte-identical for equal TARGETS, whatever order hosts or targets came in.
    """
    document = {"format": FORMAT, "targets": {}}
    for target_id, spec in targets.items():
        entry: dict[str, Any] = {}
        for key, value in spec.items():
            if key == HOSTS:
                entry[key] = _Flow(sorted(str(host) for host in value))
            else:
                entry[key] = _Quoted(value) if key in QUOTED else str(value)
        document["targets"][str(target_id)] = entry
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=True, default_flow_style=False, allow_unicode=True,
                     width=100)
    return HEADER + body


def read_targets_file(path: str) -> dict[str, dict]:
    """{target id: spec} from the targets file at PATH, each entry checked to re-create its own id."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise TargetsFileError("Cannot read the targets file %s: %s." % (path, exc)) from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TargetsFileError("The targets file %s is not YAML (%s); %s." % (path, _yaml_problem(exc), _AGAIN)) from None
    if not isinstance(document, dict) or "targets" not in document:
        raise TargetsFileError("%s is not a targets file (no `format` and `targets` at its top); %s." % (path, _AGAIN))
    if document.get("format") != FORMAT:
        raise TargetsFileError(
            "The targets file %s has format %r; this airgap.uv reads format %d. Use the same airgap.uv version "
            "on both sides of the air gap, or %s." % (path, document.get("format"), FORMAT, _AGAIN))
    entries = document["targets"]
    if not isinstance(entries, dict) or not entries:
        raise TargetsFileError("The targets file %s lists no targets under `targets`; %s." % (path, _AGAIN))
    return {str(key): _read_entry(path, str(key), entry) for key, entry in entries.items()}


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """Where and what, in one line: line 3, column 10: expected ',' or ']'."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if mark is None or not problem:
        return " ".join(str(exc).split())
    return "line %d, column %d: %s" % (mark.line + 1, mark.column + 1, problem)


def _read_entry(path: str, key: str, entry: Any) -> dict:
    """One entry of the file, checked: known fields, strings, a valid target whose id is KEY."""
    where = "The targets file %s, entry %s" % (path, key)
    if not isinstance(entry, dict):
        raise TargetsFileError("%s: is not a mapping of python, os, arch, ...; %s." % (where, _AGAIN))
    unknown = sorted(str(name) for name in entry if name not in REQUIRED + OPTIONAL + (HOSTS,))
    if unknown:
        raise TargetsFileError("%s: unknown field %s (known: %s); %s." % (
            where, ", ".join(unknown), ", ".join(REQUIRED + OPTIONAL + (HOSTS,)), _AGAIN))
    missing = [name for name in REQUIRED if name not in entry]
    if missing:
        raise TargetsFileError("%s: lacks %s; %s." % (where, ", ".join(missing), _AGAIN))
    for name in REQUIRED + OPTIONAL:
        if name in entry and not isinstance(entry[name], str):
            raise TargetsFileError('%s: %s is %r, not a string; quote it (for example "2.40": YAML reads an unquoted '
                                   "2.40 as the number 2.4)." % (where, name, entry[name]))
    hosts = entry.get(HOSTS, [])
    if not isinstance(hosts, list) or not all(isinstance(host, str) for host in hosts):
        raise TargetsFileError("%s: hosts must be a list of host names; %s." % (where, _AGAIN))
    try:
        target = Target.from_facts(entry)
    except TargetError as exc:
        raise TargetsFileError("%s: %s; %s." % (where, str(exc).rstrip("."), _AGAIN)) from None
    if target.id != key:
        raise TargetsFileError("%s: describes the target %s, not %s (was the file edited?); %s." % (
            where, target.id, key, _AGAIN))
    return dict(entry)
