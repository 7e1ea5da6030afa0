# -*- coding: utf-8 -*-
# Copyright (c) airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Running the shipped uv (and other commands) for airgap.uv.sync, and what a failure says.

Runs on the TARGET: standard library only (Python 3.9+).
"""

from __future__ import annotations

import os
import re
import errno
import typing as t

from ansible_collections.airgap.uv.plugins.module_utils._host_safety import RunAs, run
from ansible_collections.airgap.uv.plugins.module_utils._sync_error import SyncError
from ansible_collections.airgap.uv.plugins.module_utils._sync_packages import parse_uv_version


class InfoCache(t.Protocol):
    """Where ``Uv.info`` keeps what it learnt (the state file of _sync_store)."""

    data: t.Dict[str, t.Any]

    def set(self, key: str, value: t.Any) -> None:
        ...


STDERR_TAIL_LINES = 25


# ---------------------------------------------------------------------------
# Running uv
# ---------------------------------------------------------------------------

# Variables that could change what uv or the smoke-checked interpreter do.
_TLS_VARS = ("SSL_CERT_FILE", "SSL_CERT_DIR")
_DROP_VARS = ("VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONUSERBASE")


def uv_environment(base: t.Mapping[str, str], cache_dir: str, offline: bool) -> t.Dict[str, str]:
    """A sanitized environment: nothing from the user's uv/pip setup may re-enable the network."""
    env = {k: v for k, v in base.items() if not k.startswith(("UV_", "PIP_")) and k not in _DROP_VARS}
    env["UV_NO_CONFIG"] = "1"
    env["UV_CACHE_DIR"] = cache_dir
    env["UV_PYTHON_DOWNLOADS"] = "never"
    env["NO_COLOR"] = "1"
    if offline:
        env["UV_OFFLINE"] = "1"
        # no TLS offline: uv would still parse every CA certificate these name (~10 ms)
        for key in _TLS_VARS:
            env.pop(key, None)
    return env


class CommandResult(t.NamedTuple):
    argv: t.List[str]
    rc: int
    stdout: str
    stderr: str


def stderr_tail(stderr: str, lines: int = STDERR_TAIL_LINES) -> str:
    kept = [ln for ln in stderr.splitlines() if ln.strip()]
    return "\n".join(kept[-lines:])


CommandRunner = t.Callable[..., CommandResult]


def run_command(argv: t.List[str], env: t.Dict[str, str], run_as: t.Optional[RunAs] = None) -> CommandResult:
    """Run ARGV; as RUN_AS (the owner) when root works for one, see _host_safety."""
    try:
        proc = run(argv, env, run_as)
    except OSError as exc:
        hint = "; is it the binary for this host's platform?" if exc.errno == errno.ENOEXEC else ""
        raise SyncError("Cannot run %s: %s%s" % (argv[0], exc.strerror or exc, hint), cmd=argv)
    return CommandResult(
        argv, proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")
    )


class UvInfo(t.NamedTuple):
    version: str
    json_output: bool  # whether ``uv pip sync`` supports ``--output-format json``


class Uv:
    """The shipped uv binary, always run with ``--no-config`` and a sanitized environment."""

    def __init__(self, path: str, cache_dir: str, environ: t.Mapping[str, str], runner: CommandRunner = run_command) -> None:
        self.path = path
        self.cache_dir = cache_dir
        self.environ = environ
        self.runner = runner
        # Who uv runs as: the owner when root deploys for one (uv runs the releases' interpreters).
        self.run_as: t.Optional[RunAs] = None
        self._info: t.Optional[UvInfo] = None

    def run(self, args: t.Sequence[str], offline: bool = True, extra_env: t.Optional[t.Mapping[str, str]] = None) -> CommandResult:
        # ``--no-config`` must come before the subcommand: after ``pip sync`` uv 0.5
        # takes it for pip-tools' (ignored) option of the same name.
        argv = [self.path, "--no-config"] + list(args)
        env = uv_environment(self.environ, self.cache_dir, offline)
        env.update(extra_env or {})
        if self.run_as is not None:
            return self.runner(argv, env, self.run_as)
        return self.runner(argv, env)

    def check(self, args: t.Sequence[str], what: str, offline: bool = True) -> CommandResult:
        res = self.run(args, offline=offline)
        if res.rc != 0:
            raise uv_failure(what, res)
        return res

    def info(self, state: t.Optional[InfoCache] = None) -> UvInfo:
        """Version and capabilities, cached in the state file by the binary's identity."""
        if self._info is not None:
            return self._info
        try:
            st = os.stat(self.path)
        except OSError as exc:
            raise SyncError("uv binary %s: %s" % (self.path, exc.strerror))
        key = [os.path.realpath(self.path), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        cached = state.data.get("uv") if state is not None else None
        if isinstance(cached, dict) and cached.get("key") == key:
            self._info = UvInfo(str(cached["version"]), bool(cached["json_output"]))
            return self._info
        version = parse_uv_version(self.check(["--version"], "uv --version").stdout)
        helptext = self.check(["pip", "sync", "--help"], "uv pip sync --help").stdout
        self._info = UvInfo(version, "--output-format" in helptext)
        if state is not None:
            state.set("uv", {"key": key, "version": version, "json_output": self._info.json_output})
        return self._info


_DISK_FULL = re.compile(r"No space left on device|os error 28|Disk quota exceeded|os error 122")
DISK_FULL_HINT = ("The host ran out of disk space (or quota): free space on the file systems of the releases "
                  "directory and the uv cache (df -h), then run again. The release in service is unchanged.")


def uv_failure(what: str, res: CommandResult, hint: str = "") -> SyncError:
    tail = stderr_tail(res.stderr)
    if res.rc < 0:
        cause = "was killed by signal %d" % -res.rc
    else:
        cause = "failed (exit code %d)" % res.rc
    msg = "%s %s" % (what, cause)
    if tail:
        msg += ":\n" + tail
    if _DISK_FULL.search(res.stderr):
        msg += "\n" + DISK_FULL_HINT
    elif hint and res.rc >= 0:  # a signal is not a wheelhouse problem
        msg += "\n" + hint
    return SyncError(msg, cmd=res.argv, rc=res.rc, stdout=res.stdout[-4000:], stderr=res.stderr[-8000:])
