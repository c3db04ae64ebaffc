"""A transform whose src is an archive: each selected member is read straight into the converter
(decompress -> transform as one stream, the chain of file-likes); nothing is extracted.

Members are found by the decompress processors' own rules (zip: every selected member checked
against the central directory up front; tar: a truncated archive fails). Inflating is ISA-L's
(python-isal, 2.5-3x zlib's speed here): gzip through isal.igzip, and deflate zip members by
_ZipMember below, which reads the member's bytes from the archive itself (zipfile only lists
them; it is not patched); other zip methods (bzip2, lzma) through zipfile; tar and tar.gz through
processors.decompress.tar (tarfile, gzip.GzipFile).
Output names are those of decompress followed by transform: <archive name without suffix>/<member
path>, with .jsonl/.ndjson/.json/.txt swapped for .csv (gzip: the file name without .gz)."""

from __future__ import annotations

import gzip
import io
import os
import struct
import tarfile
import zipfile
import zlib

from isal import igzip, isal_zlib

from mounters.base import member_matcher, safe_relative
from pipeline.errors import DataError, MemberError
from processors.decompress import GZIP_MAGIC, sniff
from processors.decompress.limits import ArchiveBudget, counted
from processors.stream import replace_suffix, unbuffered

_SUFFIXES = {"zip": (".zip",), "tar": (".tar.gz", ".tgz", ".tar"), "tar.gz": (".tar.gz", ".tgz", ".tar"),
             "gzip": (".gz", ".gzip")}
# A member that fails while it is read (bad deflate data, a CRC mismatch, a cut-off stream).
_READ_ERRORS: tuple[type[BaseException], ...] = (zlib.error, isal_zlib.error, zipfile.BadZipFile, EOFError,
                                               gzip.BadGzipFile, tarfile.TarError)
_RAW = 64 << 10  # compressed bytes per read of a zip member
_OUT = 1 << 20  # at most this much inflated per read (a highly compressed member stays bounded)


def stem(kind: str, src_name: str) -> str:
    return replace_suffix(src_name, _SUFFIXES[kind])


def members(kind: str, pattern: str, f, src_name: str, limits, reopen):
    """(member name, readable stream, output name before the .csv swap) for each selected member.
    The archive's limits (processors/decompress/limits.py) apply as when it is extracted: what it
    declares is checked up front, and the bytes inflated are counted as the converter reads them."""
    wanted = member_matcher(pattern)
    base = stem(kind, src_name)
    if kind == "zip":
        yield from _zip_members(f, wanted, base, limits)
        return
    reader, counter = counted(unbuffered(f))  # gzip and tar declare nothing trustworthy: count what is read
    budget = ArchiveBudget(limits, lambda: counter.count)
    if kind == "gzip":
        head, stream = sniff(reader, len(GZIP_MAGIC))
        if head != GZIP_MAGIC:
            raise DataError(f"not a gzip file (it starts with {head!r}, not {GZIP_MAGIC!r})")
        budget.member(base)
        yield base, _Checked(igzip.IGzipFile(fileobj=stream, mode="rb"), base, budget), base
        return
    from processors.decompress.tar import members as archive_members

    for name, stream in archive_members(reader, wanted, budget, reopen):
        if stream is None or not hasattr(stream, "read") or not wanted(name):
            continue  # not selected, or not a regular file (a symlink, a device: nothing to convert)
        yield name, _Checked(stream, name, budget), f"{base}/{safe_relative(name, 'member')}"


class _Checked:
    """A member's stream whose read errors name the member (and say what is wrong with it)."""

    def __init__(self, stream, name: str, budget: ArchiveBudget):
        self._stream, self._name, self._budget = stream, name, budget

    def read(self, n: int = -1) -> bytes:
        try:
            data = self._stream.read(n)
        except _READ_ERRORS as exc:
            raise MemberError(f"member {self._name!r}: {type(exc).__name__}: {exc}") from None
        self._budget.add(len(data), self._name)
        return data


def _zip_members(f, wanted, stem: str, limits):
    from processors.decompress.zip import check_member, members as zip_members

    size = f.seek(0, 2)
    budget = ArchiveBudget(limits, lambda: size)  # read at random: the ratio is against its whole size
    try:
        archive = zipfile.ZipFile(f)
    except (zipfile.BadZipFile, EOFError):
        yield from zip_members(f, wanted, budget)  # its error names the cause (or the source's own read error)
        return
    infos = [i for i in archive.infolist() if not i.is_dir() and wanted(i.filename)]
    budget.declared(len(archive.infolist()), sum(i.file_size for i in infos))
    for info in infos:  # up front, before anything is written
        check_member(info)
        safe_relative(info.filename, "member")
    for info in infos:
        name = info.filename
        if info.compress_type in (zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED):
            stream = _ZipMember(f, info)
        else:
            stream = archive.open(info)
        yield name, _Checked(stream, name, budget), f"{stem}/{safe_relative(name, 'member')}"


class _ZipMember:
    """A deflate or stored member read from the archive's own bytes (local header, then the data),
    inflated by ISA-L; its size and CRC-32 are checked at the end, as zipfile checks them."""

    def __init__(self, f, info: zipfile.ZipInfo):
        self._read_at = _positional_reader(f)
        header = self._read_at(info.header_offset, 30)
        if len(header) != 30 or header[:4] != b"PK\x03\x04":
            raise zipfile.BadZipFile("bad local file header")
        name_len, extra_len = struct.unpack("<HH", header[26:30])
        self._info = info
        self._pos = info.header_offset + 30 + name_len + extra_len
        self._left = info.compress_size
        self._inflate = isal_zlib.decompressobj(-15) if info.compress_type == zipfile.ZIP_DEFLATED else None
        self._crc = self._size = 0
        self._done = False

    def read(self, n: int = -1) -> bytes:
        limit = _OUT if n is None or n < 0 else min(n, _OUT)
        while not self._done:
            d = self._inflate
            if d is not None and d.unconsumed_tail:
                data = d.decompress(d.unconsumed_tail, limit)
            elif self._left:
                raw = self._read_at(self._pos, min(_RAW, self._left))
                if not raw:
                    raise EOFError("archive ends inside the member's data")
                self._pos += len(raw)
                self._left -= len(raw)
                data = d.decompress(raw, limit) if d is not None else raw
            else:
                self._finish()
                return b""
            if data:
                self._crc = isal_zlib.crc32(data, self._crc)
                self._size += len(data)
                return data
        return b""

    def _finish(self) -> None:
        self._done = True
        if self._inflate is not None and not self._inflate.eof:
            raise EOFError("compressed data ends before the end of the deflate stream")
        if self._size != self._info.file_size:
            raise zipfile.BadZipFile(f"size {self._size} is not the {self._info.file_size} the archive lists")
        if self._crc != self._info.CRC:
            raise zipfile.BadZipFile("CRC-32 mismatch")


def _positional_reader(f):
    """read_at(offset, n) on the archive. A local file is read with os.pread: the local mounter's
    1 MiB read buffer would be filled (and so resident) for every 64 KiB a member's data takes."""
    raw = getattr(f, "raw", None)
    if type(f) is io.BufferedReader and type(raw) is io.FileIO:  # positional: whatever f has buffered
        fd = raw.fileno()
        return lambda offset, n: os.pread(fd, n, offset)

    def read_at(offset: int, n: int) -> bytes:
        f.seek(offset)
        return f.read(n)

    return read_at
