# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unpacking chosen members of a zip archive while its bytes arrive (a download's blocks).

:class:`ZipStream` walks the local file headers in order, inflates (or copies) the members
its ``pick`` function names and writes them, under names ``pick`` returns (never a path from
the archive), into a private staging directory, noting each one's size, CRC-32 and sha256.
The bytes are not trusted yet: the caller checks the complete file first (its sha256, then
the central directory against :attr:`ZipStream.members`) before using what was written.

Whatever it cannot follow with certainty while streaming (encryption, zip64, a method other
than stored or deflate, a stored member whose size only a data descriptor gives, a header
out of place, a name seen twice, more output than ``limit``) makes it give up quietly: its
files are removed and :meth:`ZipStream.take` answers None, so the caller unzips the
complete file instead.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import tempfile
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Callable, Optional

_LOCAL = b"PK\x03\x04"
_DESCRIPTOR = b"PK\x07\x08"
# What may follow the last member: a central directory entry, the end records (zip64 or not),
# an archive extra data record.
_AFTER_MEMBERS = (b"PK\x01\x02", b"PK\x05\x06", b"PK\x06\x06", b"PK\x06\x08")
_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")
_FLAG_ENCRYPTED = 0x1
_FLAG_DESCRIPTOR = 0x8
_FLAG_UTF8 = 0x800
_STORED, _DEFLATED = 0, 8
_ZIP64_EXTRA = 0x0001
# Inflated in slices, so the output stays in the CPU cache through CRC-32, sha256 and the write
# (64 KiB to 1 MiB of input per slice measured alike; copying the blocks is what cost).
_IN_BLOCK = 64 * 1024
_OUT_BLOCK = 256 * 1024

# Where the walk stands.
_HEADER, _DATA, _AFTER_DATA, _END, _FAILED = range(5)


@dataclass
class StreamedMember:
    """One member as streamed: where its local header was and what came out of it."""

    name: str               # the member's name in the archive
    header_offset: int      # of its local header, from the start of the archive
    method: int
    compressed_size: int
    file_size: int
    crc32: int
    sha256: str


class ZipStream:
    """Feed an archive's bytes in order (any block sizes); read the picked members as they pass.

    ``pick(member name)`` returns the file name to write the member to, or None to pass it by.
    ``parent`` is where the staging directory is made (the first time a picked member starts).
    :meth:`feed` and :meth:`finish` never raise for bad input; they give up instead.
    """

    def __init__(self, pick: Callable[[str], Optional[str]], parent: str, limit: int = 1 << 30,
                 prefix: str = ".unzip-") -> None:
        self._pick = pick
        self._parent = parent
        self._limit = limit
        self._prefix = prefix
        self._reset()

    def _reset(self) -> None:
        # The bytes not walked yet: self._pending[self._start:] (usually the last block, not copied).
        self._pending: bytes = b""
        self._view = memoryview(self._pending)
        self._start = 0
        self._position = 0          # archive offset of self._pending[self._start]
        self._state = _HEADER
        self._complete = False
        self._produced = 0          # bytes inflated or copied, picked or not (the limit)
        self.staging: Optional[str] = None
        self.members: dict[str, StreamedMember] = {}  # written file name -> member
        self._current: Optional[dict] = None
        self._out: Optional[BinaryIO] = None

    @property
    def failed(self) -> bool:
        return self._state == _FAILED

    # -- the consumer interface (see _download.FileRequest.consumer) -----------------------

    def feed(self, block: bytes) -> None:
        """The next bytes of the archive."""
        if self._state in (_END, _FAILED) or not block:
            return
        if self._start < len(self._pending):
            # Only a piece of a header or a descriptor is ever left over: short.
            self._pending = bytes(self._view[self._start:]) + bytes(block)
        else:
            self._pending = block
        self._view = memoryview(self._pending)
        self._start = 0
        try:
            self._walk()
        except Exception:  # pylint: disable=broad-except
            # Anything unexpected (zlib.error, a full disk, an odd name): the caller unzips instead.
            self._give_up()

    def finish(self) -> None:
        """The archive ended (and matched its expected hash): complete only if its members all ended."""
        if self._state == _END and self._out is None:
            self._complete = True
        else:
            self._give_up()

    def abort(self) -> None:
        """Discard everything; the stream may be fed again from byte 0 (a retried download)."""
        self._give_up()
        self._reset()

    def take(self) -> Optional[str]:
        """The staging directory, now the caller's, if the whole archive streamed; else None."""
        if not self._complete or self.staging is None:
            self._give_up()
            return None
        staging, self.staging = self.staging, None
        self._complete = False
        return staging

    # -- the walk ---------------------------------------------------------------------------

    def _give_up(self) -> None:
        self._state = _FAILED
        self._complete = False
        self._pending = b""
        self._view = memoryview(self._pending)
        self._start = 0
        if self._out is not None:
            try:
                self._out.close()
            except OSError:
                pass
            self._out = None
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None
        self.members = {}

    def _available(self) -> int:
        return len(self._pending) - self._start

    def _consume(self, count: int) -> memoryview:
        taken = self._view[self._start:self._start + count]
        self._start += count
        self._position += count
        return taken

    def _walk(self) -> None:
        while self._state not in (_END, _FAILED):
            if self._state == _HEADER:
                if not self._header():
                    return
            elif self._state == _DATA:
                if not self._available() and self._current["left"] != 0:
                    return  # a member with no bytes left still ends below, else wait for more
                self._data()
            elif not self._descriptor():
                return

    def _header(self) -> bool:
        available = self._available()
        if available < 4:
            return False
        signature = bytes(self._view[self._start:self._start + 4])
        if signature in _AFTER_MEMBERS:
            self._state = _END
            self._pending = b""
            self._view = memoryview(self._pending)
            self._start = 0
            return True
        if signature != _LOCAL:
            self._give_up()
            return True
        if available < _LOCAL_HEADER.size:
            return False
        (dummy, dummy2, flags, method, dummy3, dummy4, crc, compressed, size,
         name_length, extra_length) = _LOCAL_HEADER.unpack_from(self._pending, self._start)
        total = _LOCAL_HEADER.size + name_length + extra_length
        if available < total:
            return False
        offset = self._position
        header = bytes(self._consume(total))
        raw_name = header[_LOCAL_HEADER.size:_LOCAL_HEADER.size + name_length]
        extra = header[_LOCAL_HEADER.size + name_length:]
        descriptor = bool(flags & _FLAG_DESCRIPTOR)
        if (flags & _FLAG_ENCRYPTED or method not in (_STORED, _DEFLATED) or _has_zip64(extra)
                or 0xFFFFFFFF in (compressed, size) or (method == _STORED and descriptor)
                or (method == _STORED and compressed != size)):
            self._give_up()
            return True
        name = raw_name.decode("utf-8" if flags & _FLAG_UTF8 else "cp437")
        target = self._pick(name)
        if target is not None:
            if (target in self.members or "/" in target or os.sep in target or target in ("", ".", "..")
                    or (not descriptor and size > self._limit)):
                self._give_up()
                return True
            if self.staging is None:
                os.makedirs(self._parent, exist_ok=True)
                self.staging = tempfile.mkdtemp(dir=self._parent, prefix=self._prefix)
            self._out = open(os.path.join(self.staging, target), "xb")
        self._current = {
            "name": name, "target": target, "offset": offset, "method": method, "descriptor": descriptor,
            "header_crc": crc, "header_size": size,
            # Compressed bytes still to come; None: until the deflate stream ends.
            "left": None if descriptor else compressed,
            # A member nobody wants whose size is known is passed over without inflating it.
            "skip": target is None and not descriptor,
            "inflater": zlib.decompressobj(-15) if method == _DEFLATED else None,
            "consumed": 0, "size": 0, "crc": 0, "sha256": hashlib.sha256() if target is not None else None,
        }
        self._state = _DATA
        return True

    def _data(self) -> None:
        member = self._current
        left = member["left"]
        count = min(self._available(), _IN_BLOCK)
        if left is not None:
            count = min(left, count)
        chunk = self._consume(count)
        member["consumed"] += count
        if left is not None:
            member["left"] = left - count
        if member["skip"]:
            if member["left"] == 0:
                self._close_member()
            return
        inflater = member["inflater"]
        if inflater is None:
            self._emit(chunk)
            if self._state == _DATA and member["left"] == 0:
                self._end_member()
            return
        while True:
            out = inflater.decompress(chunk, _OUT_BLOCK)
            self._emit(out)
            if self._state != _DATA:
                return
            chunk = inflater.unconsumed_tail
            if inflater.eof or (not chunk and len(out) < _OUT_BLOCK):
                break
        if not inflater.eof:
            if member["left"] == 0:
                self._give_up()  # all its bytes and no end of the deflate stream
            return
        unused = inflater.unused_data
        if member["left"] is not None:
            if unused or member["left"]:
                self._give_up()  # the deflate stream ends before its recorded size
                return
        elif unused:
            # Read past the member's end (its size is in the descriptor): put that back.
            # They are the end of the slice just consumed, so still in self._pending.
            member["consumed"] -= len(unused)
            self._start -= len(unused)
            self._position -= len(unused)
        self._end_member()

    def _emit(self, data: bytes) -> None:
        if not data:
            return
        member = self._current
        self._produced += len(data)
        if self._produced > self._limit:
            self._give_up()
            return
        member["size"] += len(data)
        member["crc"] = zlib.crc32(data, member["crc"])
        if self._out is not None:
            member["sha256"].update(data)
            self._out.write(data)

    def _end_member(self) -> None:
        member = self._current
        if member["descriptor"]:
            self._state = _AFTER_DATA
            return
        if (member["size"], member["crc"]) != (member["header_size"], member["header_crc"]):
            self._give_up()
            return
        self._close_member()

    def _descriptor(self) -> bool:
        """Skip the data descriptor after a member (with or without its signature) once it agrees."""
        if self._available() < 16:
            return False  # a descriptor is 12 or 16 bytes and something follows it in any valid archive
        member = self._current
        expected = (member["crc"], member["consumed"], member["size"])
        start = self._start
        if (bytes(self._view[start:start + 4]) == _DESCRIPTOR
                and struct.unpack_from("<III", self._pending, start + 4) == expected):
            self._consume(16)
        elif struct.unpack_from("<III", self._pending, start) == expected:
            self._consume(12)
        else:
            self._give_up()
            return True
        self._close_member()
        return True

    def _close_member(self) -> None:
        member = self._current
        if self._out is not None:
            self._out.close()
            self._out = None
            os.chmod(os.path.join(self.staging or "", member["target"]), 0o755)
            self.members[member["target"]] = StreamedMember(
                name=member["name"], header_offset=member["offset"], method=member["method"],
                compressed_size=member["consumed"], file_size=member["size"], crc32=member["crc"],
                sha256=member["sha256"].hexdigest())
        self._current = None
        self._state = _HEADER


def _has_zip64(extra: bytes) -> bool:
    position = 0
    while position + 4 <= len(extra):
        kind, length = struct.unpack_from("<HH", extra, position)
        if kind == _ZIP64_EXTRA:
            return True
        position += 4 + length
    return False
