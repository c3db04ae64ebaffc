"""zip (zip64 included): stored, deflate, bzip2 and lzma members, streamed one after another.

The central directory (at the end of the archive) is read here, in bounded chunks, rather than by
zipfile, which builds a ZipInfo per member up front (55 MB for 100,000 members): memory stays a
few MB whatever the member count. It is read twice: once to check every member before anything
is written, so an encrypted or Deflate64 member (or an unsafe name) among the members to extract
fails the archive up front with a message naming it and its method, and once to extract. A
member's data is read from its local header on (ZipMember): deflate inflated by ISA-L
(python-isal), bzip2 and lzma by the standard library; its size and CRC-32 are checked at the end,
as zipfile checks them. The source must be seekable: local files are, blob and HTTP sources get
the ranged reader."""

from __future__ import annotations

import bz2
import io
import lzma
import os
import struct
import zipfile
from dataclasses import dataclass
from typing import Iterator, cast

from isal import isal_zlib

from mounters import open_source
from mounters.base import safe_relative
from pipeline import counters
from pipeline.counters import CountedReader
from processors.decompress import MemberError, archive_folder, declared_report, extract

SUPPORTED = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
METHOD_NAMES = {0: "stored", 1: "shrink", 6: "implode", 8: "deflate", 9: "Deflate64", 12: "bzip2", 14: "lzma",
                93: "zstd", 95: "xz", 96: "JPEG", 97: "WavPack", 98: "PPMd", 99: "AES-encrypted"}

_EOCD = struct.Struct("<4s4H2LH")  # end of central directory record (22 bytes, then a comment)
_LOCATOR64 = struct.Struct("<4sLQL")  # zip64 end of central directory locator (20 bytes)
_EOCD64 = struct.Struct("<4sQ2H2L4Q")  # zip64 end of central directory record (56 bytes)
_ENTRY = struct.Struct("<4s4B4HL2L5H2L")  # a central directory header (46 bytes, then name, extra, comment)
_LOCAL = struct.Struct("<4s5H3L2H")  # a local file header (30 bytes, then name and extra)
_CHUNK = 256 << 10  # central directory bytes read at a time
_RAW = 64 << 10  # compressed bytes per read of a member
_OUT = 1 << 20  # at most this much inflated per read (a highly compressed member stays bounded)


@dataclass(slots=True)
class Entry:
    """One central directory entry: what zipfile's ZipInfo says of a member, and no more."""
    filename: str
    flag_bits: int
    compress_type: int
    CRC: int
    compress_size: int
    file_size: int
    header_offset: int
    raw_name: bytes

    def is_dir(self) -> bool:
        return self.filename.endswith("/")


def _bad(why: str) -> MemberError:
    return MemberError(f"not a readable zip archive: {why}")


class Directory:
    """A zip's central directory: `count` entries at `start` (`size` bytes), read in chunks by
    iterating (each pass reads it again)."""

    def __init__(self, f):
        self._f = f
        self.archive_size = size = f.seek(0, 2)
        # The end record is the last 22 bytes unless the archive has a comment: read those first
        # (a remote archive's reads are fetched; a comment's 64 KiB are read only when there is one).
        tail_len = min(size, _EOCD.size)
        f.seek(size - tail_len)
        tail = f.read(tail_len)
        if not (tail.startswith(b"PK\x05\x06") and tail[-2:] == b"\0\0"):
            tail_len = min(size, _EOCD.size + 0xFFFF)
            f.seek(size - tail_len)
            tail = f.read(tail_len)
        at = _end_record(tail)
        if at < 0:
            raise _bad("File is not a zip file")
        _, disk, cd_disk, _, count, cd_size, cd_offset, _ = _EOCD.unpack_from(tail, at)
        eocd_pos = size - tail_len + at
        extra = 0  # zip64 records before the end record (for archives with a prefix, e.g. a self-extractor)
        if count == 0xFFFF or cd_size == 0xFFFFFFFF or cd_offset == 0xFFFFFFFF:
            if eocd_pos < _LOCATOR64.size:
                raise _bad("zip64 end of central directory locator missing")
            f.seek(eocd_pos - _LOCATOR64.size)
            locator = f.read(_LOCATOR64.size)
            if locator[:4] != b"PK\x06\x07":
                raise _bad("zip64 end of central directory locator missing")
            pos64 = eocd_pos - _LOCATOR64.size - _EOCD64.size
            f.seek(pos64)
            record = f.read(_EOCD64.size)
            if len(record) != _EOCD64.size or record[:4] != b"PK\x06\x06":
                raise _bad("zip64 end of central directory record missing")
            _, _, _, _, disk, cd_disk, _, count, cd_size, cd_offset = _EOCD64.unpack(record)
            extra = _LOCATOR64.size + _EOCD64.size
        if disk or cd_disk:
            raise _bad("archives spanning several disks are not supported")
        concat = eocd_pos - extra - cd_size - cd_offset  # bytes before the archive proper
        if concat < 0:
            raise _bad("the central directory lies outside the file (truncated?)")
        self.count, self.start, self.size, self._concat = count, cd_offset + concat, cd_size, concat

    def __iter__(self) -> Iterator[Entry]:
        # buf holds central directory bytes from file offset `pos`; `i` is the next entry's index in it
        pos, end, buf, i, n = self.start, self.start + self.size, b"", 0, 0
        while n < self.count:
            if len(buf) - i < _ENTRY.size:
                buf, pos, i = self._more(buf[i:], pos + i, end), pos + i, 0
            fields = _ENTRY.unpack_from(buf, i)
            if fields[0] != b"PK\x01\x02":
                raise _bad(f"bad central directory entry {n + 1}")
            name_len, extra_len, comment_len = fields[12], fields[13], fields[14]
            total = _ENTRY.size + name_len + extra_len + comment_len
            while len(buf) - i < total:
                buf, pos, i = self._more(buf[i:], pos + i, end), pos + i, 0
            at = i + _ENTRY.size
            raw_name, extra = buf[at:at + name_len], buf[at + name_len:at + name_len + extra_len]
            flags, method, crc, csize, usize, offset = fields[5], fields[6], fields[9], fields[10], fields[11], fields[18]
            csize, usize, offset = _zip64(extra, csize, usize, offset, n)
            name = raw_name.decode("utf-8" if flags & 0x800 else "cp437").split("\x00", 1)[0]
            yield Entry(name, flags, method, crc, csize, usize, offset + self._concat, raw_name)
            i += total
            n += 1

    def _more(self, buf: bytes, at: int, end: int) -> bytes:
        """buf (the bytes from `at` on) and the next chunk after them."""
        start = at + len(buf)
        if start >= end:
            raise _bad("the central directory ends before its last entry (truncated?)")
        self._f.seek(start)
        more = self._f.read(min(_CHUNK, end - start))
        if not more:
            raise _bad("the central directory ends before its last entry (truncated?)")
        return buf + more


def _end_record(tail: bytes) -> int:
    """Where the end record starts in the archive's tail: the last signature whose comment ends
    exactly at the end of the file (a comment may hold the signature's bytes), else the last one
    with room for a record; -1 if none."""
    fallback, at = -1, tail.rfind(b"PK\x05\x06")
    while at >= 0:
        if len(tail) - at >= _EOCD.size:
            if at + _EOCD.size + _EOCD.unpack_from(tail, at)[7] == len(tail):
                return at
            fallback = at if fallback < 0 else fallback
        at = tail.rfind(b"PK\x05\x06", 0, at)
    return fallback


def _zip64(extra: bytes, csize: int, usize: int, offset: int, n: int) -> tuple[int, int, int]:
    """Sizes and offset from the zip64 extra field (id 1), for those the entry marks 0xFFFFFFFF."""
    if 0xFFFFFFFF not in (csize, usize, offset):
        return csize, usize, offset
    i = 0
    while i + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, i)
        if tag == 1:
            values, j = [], i + 4
            for current in (usize, csize, offset):
                if current == 0xFFFFFFFF:
                    if j + 8 > i + 4 + length:
                        raise _bad(f"entry {n + 1}: zip64 extra field too short")
                    values.append(struct.unpack_from("<Q", extra, j)[0])
                    j += 8
                else:
                    values.append(current)
            return values[1], values[0], values[2]
        i += 4 + length
    raise _bad(f"entry {n + 1}: zip64 sizes missing")


def check_member(info) -> None:
    if info.flag_bits & 0x41 or info.compress_type == 99:  # 0x1 encrypted, 0x40 strong encryption
        raise MemberError(f"member {info.filename!r} is encrypted; encrypted archives are not supported")
    if info.compress_type not in SUPPORTED:
        method = METHOD_NAMES.get(info.compress_type, "unknown")
        raise MemberError(f"member {info.filename!r} uses compression method {info.compress_type} ({method}), "
                          "which is not supported (supported: stored, deflate, bzip2, lzma)")


def positional_reader(f):
    """read_at(offset, n) on the archive. A local file is read with os.pread (which leaves the file
    position alone): through the local mounter's 1 MiB read buffer, that buffer would be filled, and
    so resident, for every block a member's data takes. Reads of a counted source stay counted."""
    counted = type(f) is CountedReader
    inner = f.wrapped if counted else f
    raw = getattr(inner, "raw", None)
    if type(inner) is io.BufferedReader and type(raw) is io.FileIO:
        fd = raw.fileno()

        def pread(offset: int, n: int) -> bytes:
            data = os.pread(fd, n, offset)
            if counted:
                counters.add(read=len(data))
            return data

        return pread

    def read_at(offset: int, n: int) -> bytes:
        f.seek(offset)
        return f.read(n)

    return read_at


# isal's stubs do not say its `error` is an exception class; it is (igzip_lib.IsalError).
_DECODER_ERRORS: tuple[type[Exception], ...] = (cast(type[Exception], isal_zlib.error), OSError, lzma.LZMAError,
                                                EOFError, ValueError)


class ZipMember:
    """A member's data, read from the archive's own bytes (local header, then the data) and
    inflated as its method says; its size and CRC-32 are checked at the end."""

    def __init__(self, f, info: Entry):
        self._read_at = positional_reader(f)
        header = self._read_at(info.header_offset, _LOCAL.size)
        if len(header) != _LOCAL.size or header[:4] != b"PK\x03\x04":
            raise zipfile.BadZipFile("bad local file header")
        name_len, extra_len = header[26] | header[27] << 8, header[28] | header[29] << 8
        if self._read_at(info.header_offset + _LOCAL.size, name_len) != info.raw_name:
            raise zipfile.BadZipFile("file name in directory and local header differ")
        self._info = info
        self._pos = info.header_offset + _LOCAL.size + name_len + extra_len
        self._left = info.compress_size
        self._crc = self._size = 0
        self._done = False
        self._zlib = info.compress_type == zipfile.ZIP_DEFLATED
        self._inflate = None
        if self._zlib:
            self._inflate = isal_zlib.decompressobj(-15)
        elif info.compress_type == zipfile.ZIP_BZIP2:
            self._inflate = bz2.BZ2Decompressor()
        elif info.compress_type == zipfile.ZIP_LZMA:
            self._inflate = self._lzma()

    def _lzma(self):
        # zip's lzma: a 4-byte header (version, properties size), the LZMA1 properties, then raw data.
        head = self._raw(4)
        (props_len,) = struct.unpack("<H", head[2:4])
        props = self._raw(props_len)
        if len(props) < 5:
            raise zipfile.BadZipFile("lzma properties too short")
        byte, dict_size = props[0], struct.unpack("<L", props[1:5])[0]
        lc, lp, pb = byte % 9, (byte // 9) % 5, byte // 45
        return lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[
            {"id": lzma.FILTER_LZMA1, "dict_size": dict_size, "lc": lc, "lp": lp, "pb": pb}])

    def _raw(self, n: int) -> bytes:
        raw = self._read_at(self._pos, min(n, self._left))
        if not raw and n:
            raise EOFError("archive ends inside the member's data")
        self._pos += len(raw)
        self._left -= len(raw)
        return raw

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self.read(len(b))
        n = len(data)
        memoryview(b).cast("B")[:n] = data
        return n

    def read(self, n: int = -1) -> bytes:
        limit = _OUT if n is None or n < 0 else min(n, _OUT)
        d = self._inflate
        while not self._done:
            if d is None:
                data = self._raw(min(limit, _RAW)) if self._left else None
            elif self._zlib and d.unconsumed_tail:
                data = self._decode(d.unconsumed_tail, limit)
            elif not self._zlib and not d.eof and not d.needs_input:
                data = self._decode(b"", limit)
            elif self._left and not d.eof:
                data = self._decode(self._raw(_RAW), limit)
            else:
                data = None
            if data is None:
                self._finish()
                return b""
            if data:
                self._crc = isal_zlib.crc32(data, self._crc)
                self._size += len(data)
                return data
        return b""

    def _decode(self, raw: bytes, limit: int) -> bytes:
        # A decompressor works on bytes alone: whatever it raises means the member's data is damaged
        # (isal's IsalError, bz2's plain OSError, LZMAError), never I/O, so it is said as BadZipFile,
        # one of the decoders' errors the decompress processor reports as the member's (a DataError).
        try:
            return self._inflate.decompress(raw, limit)
        except _DECODER_ERRORS as exc:
            raise zipfile.BadZipFile(f"damaged compressed data: {exc}") from None

    def close(self) -> None:
        self._done = True

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _finish(self) -> None:
        self._done = True
        if self._zlib and not self._inflate.eof:
            raise EOFError("compressed data ends before the end of the deflate stream")
        if self._size != self._info.file_size:
            raise zipfile.BadZipFile(f"size {self._size} is not the {self._info.file_size} the archive lists")
        if self._crc != self._info.CRC:
            raise zipfile.BadZipFile(f"Bad CRC-32 for file {self._info.filename!r}")


def checked(f, wanted, budget) -> Directory:
    """The central directory, after checking it up front, before anything is written: what it
    declares against the limits, and each member to extract (method, encryption, safe name)."""
    directory = Directory(f)
    total = 0
    for info in directory:
        if info.is_dir() or not wanted(info.filename):
            continue  # an unsupported method in a member the filter leaves out is no reason to fail
        total += info.file_size
        check_member(info)
        safe_relative(info.filename, "member")
    budget.declared(directory.count, total)
    return directory


def members(f, wanted, budget, reopen=None):
    directory = checked(f, wanted, budget)
    for info in directory:
        if info.is_dir():
            continue
        if not wanted(info.filename):
            yield info.filename, None  # not opened: a remote archive is not fetched for it
            continue
        try:
            stream = ZipMember(f, info)
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            if isinstance(exc, OSError):
                raise
            raise MemberError(f"member {info.filename!r}: {exc}") from None
        yield info.filename, stream


_SUFFIXES = (".zip",)


def declared(processor, src: dict) -> dict:
    """--dry-run: the central directory's members and sizes (read with a few ranged reads, no data)."""
    with open_source(src["location"], seekable=True) as f:
        try:
            directory = Directory(f)
            entries = [(i.filename, i.file_size, i.compress_size) for i in directory if not i.is_dir()]
        except MemberError as exc:
            return {"error": str(exc)}
    return declared_report(processor.processor_config, entries, directory.archive_size)


def planned_outputs(cfg: dict, src_name: str) -> list[tuple[dict, str]]:
    return [(cfg["dest"], archive_folder(src_name, _SUFFIXES))]


def run(processor, src: dict, outs) -> dict:
    return extract(processor, src, outs, True, members, _SUFFIXES)
