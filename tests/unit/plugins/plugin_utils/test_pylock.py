# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of plugins/plugin_utils/_pylock.py: the text, then real offline installs of it.

Two wheels are written by hand at test time (``alpha`` requires ``beta``), placed as the
bundle places them (``files/<filename>`` beside ``pylock.<target>.toml``) and installed into a
fresh venv by pip (the dev venv's pip >= 26.3, aimed at the venv with ``--python``) and by
``uv pip sync`` with an empty cache, with no index and, where the kernel allows it, no network
at all (``unshare -rn``).
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
import typing as t
import zipfile
from pathlib import Path

import pytest
from packaging.pylock import Pylock

from ansible_collections.airgap.uv.plugins.plugin_utils._pylock import (
    PylockPackage,
    pylock_file_name,
    pylock_text,
    toml_string,
)
from ansible_collections.airgap.uv.tests.unit.conftest import find_uv

TARGET = "cpython3.11.2-linux-x86_64-glibc2.36"
SHA = "ab" * 32


def entry(name: str = "alpha", version: str = "1.0", filename: str = "", url: t.Optional[str] = None,
          is_sdist: bool = False, sha256: str = SHA, size: int = 10) -> PylockPackage:
    filename = filename or ("%s-%s.tar.gz" if is_sdist else "%s-%s-py3-none-any.whl") % (name, version)
    return PylockPackage(name, version, filename, sha256, size, url, "files/" + filename, is_sdist)


def test_text_is_a_pep751_lock_sorted_by_name_then_file():
    text = pylock_text(TARGET, "3.11.2", [
        entry("Zeta_Pkg", "2.0", "zeta_pkg-2.0-py3-none-any.whl", url="https://files.index.invalid/z.whl"),
        entry("alpha", is_sdist=True),
        entry("alpha", filename="alpha-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"),
        entry("alpha"),
    ])
    data = tomllib.loads(text)
    assert data["lock-version"] == "1.0" and data["created-by"] == "airgap.uv"
    assert data["requires-python"] == "==3.11.2"
    assert data["tool"] == {"airgap-uv": {"target": TARGET}}
    assert [p["name"] for p in data["packages"]] == ["alpha", "zeta-pkg"]
    alpha, zeta = data["packages"]
    assert [w["name"] for w in alpha["wheels"]] == ["alpha-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
                                                    "alpha-1.0-py3-none-any.whl"]
    assert alpha["sdist"] == {"name": "alpha-1.0.tar.gz", "path": "files/alpha-1.0.tar.gz", "size": 10,
                              "hashes": {"sha256": SHA}}
    assert zeta["wheels"] == [{"name": "zeta_pkg-2.0-py3-none-any.whl", "url": "https://files.index.invalid/z.whl",
                               "path": "files/zeta_pkg-2.0-py3-none-any.whl", "size": 10, "hashes": {"sha256": SHA}}]
    lock = Pylock.from_dict(data)  # packaging's PEP 751 validation, the one pip vendors
    assert [p.name for p in lock.packages] == ["alpha", "zeta-pkg"]


def test_text_is_deterministic_and_deduplicates_the_same_entry():
    packages = [entry("b"), entry("a"), entry("a", is_sdist=True)]
    once = pylock_text(TARGET, None, packages)
    assert once == pylock_text(TARGET, None, list(reversed(packages)) + [entry("a")])
    assert "requires-python" not in tomllib.loads(once)


@pytest.mark.parametrize("python_version, specifier", [("3.11.2", "==3.11.2"), ("3.9", "==3.9.*")])
def test_requires_python(python_version, specifier):
    assert tomllib.loads(pylock_text(TARGET, python_version, []))["requires-python"] == specifier


def test_empty_target_still_has_packages():
    data = tomllib.loads(pylock_text(TARGET, "3.11", []))
    assert data["packages"] == []
    Pylock.from_dict(data)


@pytest.mark.parametrize("value", [
    'plain', 'quote " and backslash \\ ', "tab\tnew\nline\rcr", "\x00\x01\x1f\x7f\b\f", "é ✓ 𝄞", "",
    "'''single''' \"\"\"triple\"\"\"", "\\u0041 literal",
])
def test_toml_string_round_trips(value):
    assert tomllib.loads("k = %s" % toml_string(value))["k"] == value


def test_strings_in_entries_are_escaped():
    url = 'https://files.index.invalid/a "b"\\c\n'
    data = tomllib.loads(pylock_text('target "x"\n', None, [entry(url=url)]))
    assert data["packages"][0]["wheels"][0]["url"] == url
    assert data["tool"]["airgap-uv"]["target"] == 'target "x"\n'


@pytest.mark.parametrize("packages, message", [
    ([entry(version="1.0"), entry(version="2.0")], "two versions"),
    ([entry(), entry(size=11)], "two different entries"),
    ([entry(is_sdist=True), entry(filename="alpha-1.0.zip", is_sdist=True)], "more than one sdist"),
    ([entry(sha256="AB" * 32)], "sha256"),
    ([entry(sha256="ab")], "sha256"),
    ([entry(size=-1)], "size"),
    ([entry(filename="alpha-1.0.tar.gz")], "ends in .whl"),
    ([entry(filename="alpha-1.0-py3-none-any.whl", is_sdist=True)], "ends in .whl"),
    ([PylockPackage("a", "1", "a-1-py3-none-any.whl", SHA, 1, None, "/abs/a-1-py3-none-any.whl", False)], "relative"),
    ([PylockPackage("a", "1", "a-1-py3-none-any.whl", SHA, 1, None, "", False)], "required"),
])
def test_refuses_what_an_installer_would(packages, message):
    with pytest.raises(ValueError, match=message):
        pylock_text(TARGET, None, packages)


def test_file_name_is_one_pip_reads_as_a_pylock():
    assert pylock_file_name(TARGET) == "pylock.cpython3_11_2-linux-x86_64-glibc2_36.toml"
    with pytest.raises(ValueError):
        pylock_file_name("a/b")


# --- real installs ---------------------------------------------------------------------------

def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def write_wheel(directory: Path, name: str, version: str, requires: t.Sequence[str] = (),
                body: t.Optional[str] = None) -> PylockPackage:
    """A minimal pure wheel (METADATA, WHEEL, RECORD) whose module says its version; stored, not
    deflated, so that another ``body`` of the same length gives a file of the same size."""
    dist_info = "%s-%s.dist-info" % (name, version)
    files = {
        "%s/__init__.py" % name: body or 'VERSION = "%s"\n' % version,
        dist_info + "/METADATA": "Metadata-Version: 2.1\nName: %s\nVersion: %s\n%s" % (
            name, version, "".join("Requires-Dist: %s\n" % r for r in requires)),
        dist_info + "/WHEEL": "Wheel-Version: 1.0\nGenerator: airgap.uv-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join("%s,%s,%d\n" % (p, _record_hash(c.encode()), len(c.encode())) for p, c in files.items())
    files[dist_info + "/RECORD"] = record + dist_info + "/RECORD,,\n"
    filename = "%s-%s-py3-none-any.whl" % (name, version)
    path = directory / filename
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for member, content in files.items():
            archive.writestr(zipfile.ZipInfo(member, (2020, 1, 1, 0, 0, 0)), content)
    data = path.read_bytes()
    return PylockPackage(name, version, filename, hashlib.sha256(data).hexdigest(), len(data),
                         "https://files.index.invalid/packages/" + filename, "files/" + filename, False)


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A bundle's top: files/ with alpha (requires beta) and beta, and the target's pylock."""
    top = tmp_path / "bundle"
    (top / "files").mkdir(parents=True)
    packages = [write_wheel(top / "files", "alpha", "1.0", ["beta>=2"]), write_wheel(top / "files", "beta", "2.0")]
    version = "%d.%d.%d" % sys.version_info[:3]
    (top / pylock_file_name(TARGET)).write_text(pylock_text(TARGET, version, packages), encoding="utf-8")
    return top


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    """A fresh venv without pip: the installers are aimed at it from outside."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True)
    return tmp_path / "venv" / "bin" / "python"


def _offline_prefix() -> t.List[str]:
    """``unshare -rn`` (a network namespace with no interface) when the kernel lets us; the
    dead proxy and the invalid index below hold in either case."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-rn", "true"], capture_output=True, check=False).returncode == 0:
        return [unshare, "-rn"]
    return []


def _offline_env(tmp_path: Path) -> t.Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_")) and "proxy" not in k.lower()}
    dead = "http://127.0.0.1:9"
    env.update(HTTP_PROXY=dead, HTTPS_PROXY=dead, ALL_PROXY=dead, PIP_CONFIG_FILE=os.devnull,
               PIP_INDEX_URL="https://files.index.invalid/simple", PIP_NO_CACHE_DIR="1",
               PIP_DISABLE_PIP_VERSION_CHECK="1", UV_CACHE_DIR=str(tmp_path / "uv-cache"), UV_NO_CONFIG="1",
               UV_INDEX_URL="https://files.index.invalid/simple", UV_PYTHON_DOWNLOADS="never")
    return env


def pip_install(python: Path, lock: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-index", "-r", str(lock)]
    return subprocess.run(_offline_prefix() + command, env=_offline_env(tmp_path), capture_output=True, text=True,
                          check=False)


def uv_sync(python: Path, lock: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    uv = find_uv()
    assert uv, "uv not found (set AIRGAP_UV_TEST_UV)"
    command = [uv, "pip", "sync", "--offline", "--no-index", "--preview-features", "pylock", "--python", str(python), str(lock)]
    return subprocess.run(_offline_prefix() + command, env=_offline_env(tmp_path), capture_output=True, text=True,
                          check=False)


def installed_versions(python: Path) -> str:
    code = "import alpha, beta; print(alpha.VERSION, beta.VERSION)"
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def tamper(files: Path) -> None:
    """Swap beta's wheel for a valid one of the same name and size whose module differs by one
    byte: only the sha256 can tell. (A byte flipped in the archive also fails, but uv, which
    unzips as it hashes, reports the zip's bad CRC before the hash.)"""
    genuine = (files / "beta-2.0-py3-none-any.whl").read_bytes()
    forged = write_wheel(files, "beta", "2.0", body='VERSION = "2.1"\n')
    assert forged.size == len(genuine) and forged.sha256 != hashlib.sha256(genuine).hexdigest()


INSTALLERS = {"pip": (pip_install, "DO NOT MATCH THE HASHES"), "uv": (uv_sync, "Hash mismatch")}


@pytest.mark.parametrize("installer", sorted(INSTALLERS))
def test_offline_install_from_the_lock(installer, bundle, venv, tmp_path):
    install, dummy = INSTALLERS[installer]
    result = install(venv, bundle / pylock_file_name(TARGET), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert installed_versions(venv) == "1.0 2.0"


@pytest.mark.parametrize("installer", sorted(INSTALLERS))
def test_a_tampered_wheel_fails_the_install(installer, bundle, venv, tmp_path):
    install, message = INSTALLERS[installer]
    tamper(bundle / "files")
    result = install(venv, bundle / pylock_file_name(TARGET), tmp_path)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert subprocess.run([str(venv), "-c", "import beta"], capture_output=True, check=False).returncode != 0
