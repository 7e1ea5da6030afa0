# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The user's own uv works offline in their checkout (issue 13): `ansible-playbook airgap.uv.workstation`.

A project made at test time (hatchling backend, a dev group with pytest and ruff, a docs group, an
extra, an sdist-only package, a git dependency pinned by the lock, a win32-only dependency) is
prepared on two offline hosts, ws-1 on Debian's Python 3.11 and ws-2 on a pyenv 3.12 shown into
it. As a non-root user, with no network and no flag typed by hand, every command of the issue
runs in the checkout; the project is editable; pyproject.toml and uv.lock stay byte-identical.
Check mode first, then the real run, then a rerun that changes and sends nothing. Then a lock
change (a package added, one upgraded): check mode reports it, the rerun sends only what is new,
the hosts drop what no longer serves the lock, everything still works offline, a rerun is a no-op.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import subprocess
import time

import pytest
import yaml

from testbed_env import REPO, TESTBED, VENV_BIN, ansible_env

HOSTS = ("ws-1", "ws-2")
USER = "dev"
CHECKOUT = "/home/dev/wsdemo"
PYTHON312 = sorted(glob.glob("/root/.pyenv/versions/3.12.*"))

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the offline test bed needs root"),
    pytest.mark.skipif(not PYTHON312, reason="needs a pyenv CPython 3.12 under /root/.pyenv/versions"),
]

PYPROJECT = """\
[project]
name = "wsdemo"
version = "0.1.0"
requires-python = ">=3.9"
dependencies = ["six", "docopt==0.6.2", "gitdep", "colorama; sys_platform == 'win32'"]

[project.optional-dependencies]
fast = ["idna==3.10"]

[project.scripts]
wsdemo = "wsdemo:main"

[dependency-groups]
dev = ["pytest", "ruff"]
docs = ["markupsafe"]

[tool.uv.sources]
gitdep = {{ git = "file://{gitdep}", rev = "{rev}" }}

[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"
"""


def git(cwd, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.email=t@example.invalid", "-c", "user.name=t", *args], cwd=cwd,
                          check=True, stdout=subprocess.PIPE, text=True).stdout.strip()


def make_project(tmp) -> str:
    """The project and its git dependency, committed, locked by the dev venv's uv."""
    gitdep = tmp / "gitdep"
    (gitdep / "src" / "gitdep").mkdir(parents=True)
    (gitdep / "pyproject.toml").write_text(
        '[project]\nname = "gitdep"\nversion = "0.1.0"\nrequires-python = ">=3.9"\n'
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n', encoding="utf-8")
    (gitdep / "src" / "gitdep" / "__init__.py").write_text('VALUE = "from git"\n', encoding="utf-8")
    git(gitdep, "init", "-q")
    git(gitdep, "add", ".")
    git(gitdep, "commit", "-qm", "gitdep")
    project = tmp / "wsdemo"
    (project / "src" / "wsdemo").mkdir(parents=True)
    (project / "tests").mkdir()
    (project / "pyproject.toml").write_text(PYPROJECT.format(gitdep=gitdep, rev=git(gitdep, "rev-parse", "HEAD")),
                                            encoding="utf-8")
    (project / "src" / "wsdemo" / "__init__.py").write_text(
        "import docopt, six, gitdep\n\ndef main():\n    print('wsdemo says', gitdep.VALUE)\n", encoding="utf-8")
    (project / "tests" / "test_wsdemo.py").write_text(
        "import wsdemo\n\ndef test_main(capsys):\n    wsdemo.main()\n"
        "    assert 'from git' in capsys.readouterr().out\n", encoding="utf-8")
    (project / ".gitignore").write_text(".venv/\n__pycache__/\n", encoding="utf-8")
    subprocess.run([os.path.join(VENV_BIN, "uv"), "lock", "-q"], cwd=project, check=True)
    lock = (project / "uv.lock").read_text(encoding="utf-8")
    assert "sdist = " in lock and 'name = "colorama"' in lock and "git = " in lock, lock[:2000]
    git(project, "init", "-q")
    git(project, "add", ".")
    git(project, "commit", "-qm", "wsdemo")
    return str(project)


def on_host(host: str, script: str, user: str = "") -> subprocess.CompletedProcess:
    command = ["su", "-", user, "-c", script] if user else ["sh", "-ec", script]
    return subprocess.run([TESTBED, "exec", host, "--", *command], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, check=False)


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("workstation")
    prefix = PYTHON312[-1]
    try:
        subprocess.run([TESTBED, "down", *HOSTS], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([TESTBED, "up", "ws-1"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([TESTBED, "up", "ws-2", "--python", prefix], check=True, stdout=subprocess.DEVNULL)
        for host in HOSTS:
            # The user's way to the pyenv build shown under /root (0700 in the base) is the test bed's matter.
            made = on_host(host, "useradd -m -s /bin/bash %s && chmod o+x /root /root/.pyenv /root/.pyenv/versions "
                                 "2>/dev/null || true; id %s" % (USER, USER))
            assert "uid=" in made.stdout, made.stdout
        inventory = tmp / "inventory.yml"
        subprocess.run([TESTBED, "inventory", "--write", str(inventory), *HOSTS], check=True,
                       stdout=subprocess.DEVNULL)
        document = yaml.safe_load(inventory.read_text(encoding="utf-8"))
        document["all"]["hosts"]["ws-2"]["uv_workstation_python"] = os.path.join(prefix, "bin", "python3")
        inventory.write_text(yaml.safe_dump(document), encoding="utf-8")
        yield {"tmp": tmp, "inventory": str(inventory), "project": make_project(tmp), "python312": prefix}
    finally:
        subprocess.run([TESTBED, "down", *HOSTS], check=False, stdout=subprocess.DEVNULL)


def playbook(bed, *extra: str) -> tuple:
    started = time.monotonic()
    proc = subprocess.run(
        ["ansible-playbook", "-i", bed["inventory"], "airgap.uv.workstation",
         "-e", "uv_workstation_project=%s" % bed["project"], "-e", "uv_workstation_user=%s" % USER,
         "-e", "uv_workstation_checkout=%s" % CHECKOUT, "-e", "uv_workstation_copy=true",
         "-e", "uv_workstation_wheelhouse_dir=%s" % (bed["tmp"] / "controller"),
         "-e", json.dumps({"uv_workstation_tools": ["ruff"]}), *extra],
        cwd=REPO, env=ansible_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    return proc, time.monotonic() - started


def recap(output: str) -> dict:
    return {host: int(changed) for host, changed in re.findall(r"^(\S+)\s*: ok=\d+\s+changed=(\d+)", output, re.M)}


def digests(host: str) -> str:
    return on_host(host, "cd %s && sha256sum pyproject.toml uv.lock" % CHECKOUT).stdout


def controller_digests(bed) -> str:
    lines = []
    for name in ("pyproject.toml", "uv.lock"):
        with open(os.path.join(bed["project"], name), "rb") as handle:
            lines.append("%s  %s\n" % (hashlib.sha256(handle.read()).hexdigest(), name))
    return "".join(lines)


def shipped_bytes(bed) -> dict:
    """Per target: (bytes of the chunks and uv shipped, bytes of the target's wheels alone)."""
    figures = {}
    for seed_path in glob.glob(str(bed["tmp"] / "controller" / "caches" / "*" / "ship" / "seed.json")):
        ship = os.path.dirname(seed_path)
        with open(seed_path, encoding="utf-8") as handle:
            chunks = sum(c["size"] for c in json.load(handle)["chunks"].values())
        uv = sum(os.path.getsize(os.path.join(ship, "bin", n)) for n in ("uv", "uvx"))
        target = os.path.basename(os.path.dirname(ship))
        wheels = sum(os.path.getsize(p) for p in glob.glob(
            str(bed["tmp"] / "controller" / "wheelhouse" / "targets" / target / "wheelhouse" / "*")))
        figures[target] = (chunks, uv, wheels)
    return figures


@pytest.fixture(scope="module")
def prepared(bed):
    """Check mode, the real run, a rerun; their outputs and times."""
    check, dummy = playbook(bed, "--check")
    assert check.returncode == 0, check.stdout[-4000:]
    first, first_time = playbook(bed)
    assert first.returncode == 0, first.stdout[-4000:]
    again, again_time = playbook(bed)
    assert again.returncode == 0, again.stdout[-4000:]
    print("\nworkstation figures: first run %.1f s, no-op run %.1f s; per target (chunks, uv, wheels alone) in bytes: %s"
          % (first_time, again_time, shipped_bytes(bed)))
    return {"check": check, "first": first, "again": again, "digests": {h: digests(h) for h in HOSTS}}


def test_check_mode_then_real_run_then_a_rerun_that_changes_nothing(bed, prepared):
    assert all(count > 0 for count in recap(prepared["check"].stdout).values()), prepared["check"].stdout[-3000:]
    assert all(count > 0 for count in recap(prepared["first"].stdout).values()), prepared["first"].stdout[-3000:]
    assert recap(prepared["again"].stdout) == {host: 0 for host in HOSTS}, prepared["again"].stdout[-4000:]
    # Check mode wrote nothing on the hosts: the real run still had everything to send.
    push = prepared["first"].stdout.split("Copy uv and the cache")[1].split("TASK")[0]
    assert "changed: [ws-1]" in push and "changed: [ws-2]" in push, push


@pytest.mark.parametrize("host", HOSTS)
def test_the_users_own_uv_works_offline_in_the_checkout(bed, prepared, host):
    def run(command: str) -> str:
        proc = on_host(host, "cd %s && %s" % (CHECKOUT, command), user=USER)
        assert proc.returncode == 0, "%s: %s failed:\n%s" % (host, command, proc.stdout[-3000:])
        return proc.stdout

    assert run("command -v uv uvx").split() == ["/usr/local/bin/uv", "/usr/local/bin/uvx"]
    assert "offline = true" in run("cat ~/.config/uv/uv.toml")
    # No network at all: the host has no route out.
    assert "unreachable" in run("python3 -c 'import socket\ntry:\n socket.create_connection((\"10.0.0.1\", 443), 2)"
                                "\nexcept OSError as e: print(\"unreachable\", e)'")
    assert "+ wsdemo==0.1.0" in run("uv sync")
    assert "pytest" in run("uv sync --group dev && uv pip list")
    synced = run("uv sync --all-extras --all-groups && uv pip list")
    assert all(name in synced for name in ("idna", "markupsafe", "docopt", "gitdep", "six"))
    assert "colorama" not in synced
    run("uv sync --locked")
    assert "wsdemo says from git" in run("uv run wsdemo")
    assert "1 passed" in run("uv run pytest -q")
    python = run("uv run python -c 'import sys; print(sys.version)'")
    assert python.startswith("3.12." if host == "ws-2" else "3.11."), python
    assert run("uvx ruff --version").splitlines()[-1].startswith("ruff ")
    assert "Installed 1 executable: ruff" in run("uv tool install ruff")
    assert run("uv tool run ruff --version").splitlines()[-1].startswith("ruff ")
    # Editable: a source edit shows without a new sync.
    run("sed -i 's/wsdemo says/wsdemo now says/' src/wsdemo/__init__.py")
    assert "wsdemo now says from git" in run("uv run --no-sync wsdemo")
    assert digests(host) == prepared["digests"][host] == controller_digests(bed)


def user_cache_state(host: str) -> str:
    """The user's seed record and the dist-infos of the unpacked archives in the user's cache."""
    return on_host(host, "cd ~/.cache/uv && sha256sum .airgap-uv-seed.json && ls -d archive-v0/*/*.dist-info | "
                         "sed 's,^archive-v0/[^/]*/,,' | sort", user=USER).stdout


def test_a_lock_change_sends_only_what_is_new(bed, prepared):
    """attrs comes into the lock and idna is upgraded (3.10 was pinned). Check mode reports it and changes nothing;
    the real run sends the two new archives, the metadata and the list, not uv; the hosts drop idna 3.10 (it no
    longer serves the lock); in the user's updated checkout every command still works offline (the project is
    rebuilt editable from the cached build requirements); a rerun changes nothing."""
    project = bed["project"]
    path = os.path.join(project, "pyproject.toml")
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text.replace('dependencies = ["six",', 'dependencies = ["six", "attrs",')
                     .replace('fast = ["idna==3.10"]', 'fast = ["idna>3.10"]'))
    subprocess.run([os.path.join(VENV_BIN, "uv"), "lock", "-q"], cwd=project, check=True)
    git(project, "commit", "-qam", "attrs, idna upgraded")
    before = user_cache_state("ws-1")
    assert "idna-3.10.dist-info" in before and "attrs-" not in before, before
    seeds = {name: open(name, "rb").read() for name in glob.glob(
        str(bed["tmp"] / "controller" / "caches" / "*" / "ship" / "seed.json"))}

    check, dummy = playbook(bed, "--check", "--limit", "ws-1")
    assert check.returncode == 0, check.stdout[-4000:]
    reported = check.stdout.split("TASK [airgap.uv.uv_workstation : Report that the real run")[1].split("TASK [")[0]
    assert "changed: [ws-1]" in reported, reported
    assert user_cache_state("ws-1") == before
    assert {name: open(name, "rb").read() for name in seeds} == seeds

    proc, dummy = playbook(bed, "-v")
    assert proc.returncode == 0, proc.stdout[-4000:]
    push = proc.stdout.split("Copy uv and the cache")[1].split("TASK [")[0]
    for host in HOSTS:
        result = json.loads(re.search(r"^changed: \[%s\] => (\{.*\})$" % host, push, re.M).group(1))
        sent = result["sent"]
        # The new wheels' unpacked archives, uv's metadata and the list: not uv, not the other archives.
        assert sorted(sent)[-2:] == ["cache/meta.tar.gz", "seed.json"] and len(sent) == 4, sent
        assert all(name.startswith("cache/archive-v0-") for name in sorted(sent)[:2]), sent
        print("\n%s: the lock change sent %s, %d bytes" % (host, sent, result["bytes_sent"]))
        state = user_cache_state(host)
        assert "idna-3.10.dist-info" not in state and "attrs-" in state and "idna-3." in state, state
        # The user pulls the change into the checkout: the locked sync rebuilds the project editable (its
        # pyproject.toml changed) and installs attrs and the new idna with no network; the tools still run.
        pulled = subprocess.run(
            [TESTBED, "exec", host, "--", "su", "-", USER, "-c",
             "tar -C %s -xf - && cd %s && uv sync --locked --all-extras --all-groups && uv run pytest -q && "
             "uv run python -c 'import attrs, idna; print(\"idna\", idna.__version__)' && uvx ruff --version && "
             "uv tool install --force ruff" % (CHECKOUT, CHECKOUT)],
            input=subprocess.run(["tar", "-C", project, "-cf", "-", "pyproject.toml", "uv.lock"], check=True,
                                 stdout=subprocess.PIPE).stdout,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
        out = pulled.stdout.decode()
        assert pulled.returncode == 0 and "+ attrs==" in out and "Built wsdemo" in out, out[-3000:]
        assert "1 passed" in out and "idna 3." in out and "idna 3.10" not in out, out[-3000:]

    again, dummy = playbook(bed)
    assert again.returncode == 0 and recap(again.stdout) == {host: 0 for host in HOSTS}, again.stdout[-4000:]
