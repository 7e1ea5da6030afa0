# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""ZipStream / UvBinaryStream: uv and uvx unpacked from a wheel's bytes as they arrive."""

from __future__ import annotations

import hashlib
import io
import os
import random
import zipfile

import pytest

from ansible_collections.airgap.uv.plugins.plugin_utils._uv_tool import UvBinaryStream, extract_uv_binaries
from ansible_collections.airgap.uv.plugins.plugin_utils._zipstream import ZipStream


def _binary(size: int, seed: int = 1) -> bytes:
    """Compressible but not trivially so, like a program."""
    rng = random.Random(seed)
    words = [rng.randbytes(rng.randint(1, 24)) for dummy in range(400)]
    out = bytearray()
    while len(out) < size:
        out += rng.choice(words) if rng.random() < 0.8 else rng.randbytes(8)
    return bytes(out[:size])


UV = _binary(600 * 1024)
UVX = _binary(40 * 1024, seed=2)
SMALL_UV = _binary(6000, seed=3)


class _Unseekable(io.RawIOBase):
    """A write-only stream: zipfile then writes data descriptors after each member."""

    def __init__(self) -> None:
        super().__init__()
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, block) -> int:
        self.data += block
        return len(block)


def make_wheel(uv: bytes = UV, uvx: bytes = UVX, compression: int = zipfile.ZIP_DEFLATED, seekable: bool = True,
               extra: tuple = (), force_zip64: bool = False) -> bytes:
    members = [("uv/__init__.py", b"import os\n" * 40), ("uv/py.typed", b""),
               ("uv-0.13.8.data/scripts/uv", uv), ("uv-0.13.8.data/scripts/uvx", uvx), *extra,
               ("uv-0.13.8.dist-info/METADATA", b"Name: uv\nVersion: 0.13.8\n" * 30),
               ("uv-0.13.8.dist-info/RECORD", b"")]
    sink = io.BytesIO() if seekable else _Unseekable()
    with zipfile.ZipFile(sink, "w", compression=compression) as archive:
        for name, data in members:
            with archive.open(name, "w", force_zip64=force_zip64) as out:
                out.write(data)
    return bytes(sink.getvalue() if seekable else sink.data)


def stream(data: bytes, parent: str, chunks=None) -> UvBinaryStream:
    """Feed DATA in CHUNKS (sizes, cycled), or 1 MiB blocks as the store does."""
    consumer = UvBinaryStream(parent)
    sizes = chunks or [1 << 20]
    position = index = 0
    while position < len(data):
        size = sizes[index % len(sizes)]
        consumer.feed(data[position:position + size])
        position += size
        index += 1
    consumer.finish()
    return consumer


def extracted(data: bytes, tmp_path) -> dict:
    wheel = tmp_path / "reference.whl"
    wheel.write_bytes(data)
    digests: dict = {}
    extract_uv_binaries(str(wheel), str(tmp_path / "reference"), digests=digests)
    return digests


def staged(tmp_path) -> list:
    return sorted(name for name in os.listdir(tmp_path / "parent")) if (tmp_path / "parent").exists() else []


def _random_chunks(seed: int) -> list:
    rng = random.Random(seed)
    return [rng.choice((1, 2, 3, 29, 30, 31, 511, 4096, 65535, 65536, 65537, 300000)) for dummy in range(200)]


@pytest.mark.parametrize("chunks", [None, [65536], [4096], [7, 13, 30, 31], [1024 * 1024 * 3],
                                    _random_chunks(1), _random_chunks(2)],
                         ids=["1MiB", "64KiB", "4KiB", "tiny", "whole", "random1", "random2"])
@pytest.mark.parametrize("seekable", [True, False], ids=["sizes-in-header", "data-descriptor"])
def test_deflated_members_stream_like_unzip(tmp_path, chunks, seekable):
    data = make_wheel(seekable=seekable)
    if not seekable:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            assert all(info.flag_bits & 0x8 for info in archive.infolist())
    wheel = tmp_path / "uv.whl"
    wheel.write_bytes(data)
    consumer = stream(data, str(tmp_path / "parent"), chunks)
    digests: dict = {}
    staging = consumer.verified(str(wheel), digests)
    assert staging is not None
    expected = {"uv": hashlib.sha256(UV).hexdigest(), "uvx": hashlib.sha256(UVX).hexdigest()}
    assert digests == extracted(data, tmp_path) == expected
    assert sorted(os.listdir(staging)) == ["uv", "uvx"]
    with open(os.path.join(staging, "uv"), "rb") as handle:
        assert handle.read() == UV
    assert os.stat(os.path.join(staging, "uv")).st_mode & 0o777 == 0o755
    assert staged(tmp_path) == [os.path.basename(staging)]


@pytest.mark.parametrize("seekable", [True, False], ids=["sizes-in-header", "data-descriptor"])
def test_one_byte_at_a_time(tmp_path, seekable):
    data = make_wheel(uv=SMALL_UV, uvx=b"uvx", seekable=seekable)
    wheel = tmp_path / "uv.whl"
    wheel.write_bytes(data)
    digests: dict = {}
    staging = stream(data, str(tmp_path / "parent"), [1]).verified(str(wheel), digests)
    assert staging is not None and digests == extracted(data, tmp_path)


def test_stored_members_with_sizes_stream(tmp_path):
    data = make_wheel(compression=zipfile.ZIP_STORED)
    wheel = tmp_path / "uv.whl"
    wheel.write_bytes(data)
    digests: dict = {}
    staging = stream(data, str(tmp_path / "parent"), [1000, 65536]).verified(str(wheel), digests)
    assert staging is not None and digests == extracted(data, tmp_path)


def test_a_descriptor_without_its_signature_is_followed(tmp_path):
    data = make_wheel(seekable=False)
    assert data.count(b"PK\x07\x08") == 6  # one per member, nowhere else
    consumer = stream(data.replace(b"PK\x07\x08", b""), str(tmp_path / "parent"), [4096])
    # The central directory's offsets no longer fit, so only the walk itself is checked here.
    assert not consumer.failed and sorted(consumer.members) == ["uv", "uvx"]
    assert consumer.members["uv"].sha256 == hashlib.sha256(UV).hexdigest()
    consumer.abort()
    assert staged(tmp_path) == []


@pytest.mark.filterwarnings("ignore:Duplicate name")
@pytest.mark.parametrize("case", ["stored-descriptor", "zip64", "truncated", "truncated-in-uv", "corrupt-deflated",
                                  "corrupt-stored", "not-a-zip", "duplicate", "bzip2"])
def test_what_cannot_stream_gives_up_and_leaves_nothing(tmp_path, case):
    if case == "stored-descriptor":
        data = make_wheel(compression=zipfile.ZIP_STORED, seekable=False)
    elif case == "zip64":
        data = make_wheel(force_zip64=True)
    elif case == "truncated":
        data = make_wheel()
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            data = data[:archive.start_dir + 3]  # the members all came, the central directory did not
    elif case == "truncated-in-uv":
        data = make_wheel()[:len(make_wheel()) // 2]
    elif case in ("corrupt-deflated", "corrupt-stored"):
        data = bytearray(make_wheel(compression=zipfile.ZIP_STORED if case == "corrupt-stored"
                                    else zipfile.ZIP_DEFLATED))
        data[len(data) // 3] ^= 0x55  # inside uv's data
        data = bytes(data)
    elif case == "not-a-zip":
        data = b"<html>not found</html>" * 100
    elif case == "duplicate":
        data = make_wheel(extra=(("uv-0.13.8.data/scripts/uv", b"second"),))
    else:
        data = make_wheel(compression=zipfile.ZIP_BZIP2)
    parent = str(tmp_path / "parent")
    consumer = stream(data, parent, [65536])
    wheel = tmp_path / "uv.whl"
    wheel.write_bytes(data)
    assert consumer.failed
    assert consumer.verified(str(wheel), {}) is None
    assert staged(tmp_path) == []


def test_only_the_uv_scripts_are_written_under_fixed_names(tmp_path):
    data = make_wheel(extra=(("uv-0.13.8.data/scripts/other", b"x"), ("uv-0.13.8.data/scripts/../../uv", b"evil"),
                             ("x/uv-0.13.8.data/scripts/uvx.exe", b"evil"), ("uv-0.13.8.data/purelib/uv", b"evil")))
    wheel = tmp_path / "uv.whl"
    wheel.write_bytes(data)
    digests: dict = {}
    staging = stream(data, str(tmp_path / "parent")).verified(str(wheel), digests)
    assert staging is not None and sorted(os.listdir(staging)) == ["uv", "uvx"]
    assert digests == extracted(data, tmp_path)
    assert os.listdir(tmp_path / "parent") == [os.path.basename(staging)]


def test_the_central_directory_must_agree(tmp_path):
    data = make_wheel()
    consumer = stream(data, str(tmp_path / "parent"))
    other = tmp_path / "other.whl"  # as if the complete file listed another uvx
    other.write_bytes(make_wheel(uvx=b"another uvx"))
    assert consumer.verified(str(other), {}) is None
    assert staged(tmp_path) == []
    no_uvx = tmp_path / "no-uvx.whl"
    with zipfile.ZipFile(no_uvx, "w") as archive:
        archive.writestr("uv-0.13.8.data/scripts/uv", UV)
    consumer = stream(data, str(tmp_path / "parent"))
    assert consumer.verified(str(no_uvx), {}) is None
    assert staged(tmp_path) == []


def test_abort_starts_over(tmp_path):
    data = make_wheel()
    wheel = tmp_path / "uv.whl"
    wheel.write_bytes(data)
    consumer = UvBinaryStream(str(tmp_path / "parent"))
    consumer.feed(data[:len(data) // 2])
    assert staged(tmp_path) != []
    consumer.abort()  # a retried download: fed again from byte 0
    assert staged(tmp_path) == []
    for position in range(0, len(data), 65536):
        consumer.feed(data[position:position + 65536])
    consumer.finish()
    digests: dict = {}
    assert consumer.verified(str(wheel), digests) is not None and digests == extracted(data, tmp_path)


def test_finish_without_the_end_and_a_limit(tmp_path):
    consumer = ZipStream(lambda name: "out" if name.endswith("/uv") else None, str(tmp_path / "parent"), limit=1000)
    consumer.feed(make_wheel())
    consumer.finish()
    assert consumer.failed and consumer.take() is None and staged(tmp_path) == []
    consumer = ZipStream(lambda name: None, str(tmp_path / "parent"))
    consumer.finish()  # nothing fed
    assert consumer.take() is None
