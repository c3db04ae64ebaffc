"""A transform whose src is an archive: each selected member is read straight into the converter
(decompress -> transform as one stream, the chain of file-likes); nothing is extracted.

Members are found by the decompress processors' own rules (zip: every selected member checked
against the central directory up front; tar: a truncated archive fails). Inflating is ISA-L's
(python-isal, 2.5-3x zlib's speed here): gzip through isal.igzip, and deflate zip members by
processors.decompress.zip.ZipMember, which reads the member's bytes from the archive itself (its
central directory read in bounded chunks, not by zipfile); bzip2 and lzma members by the standard
library's decompressors; tar and tar.gz through
processors.decompress.tar (tarfile, gzip.GzipFile).
Output names are those of decompress followed by transform: <archive name without suffix>/<member
path>, with .jsonl/.ndjson/.json/.txt swapped for .csv (gzip: the file name without .gz)."""

from __future__ import annotations

import gzip
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
    from processors.decompress.zip import ZipMember, checked

    size = f.seek(0, 2)
    budget = ArchiveBudget(limits, lambda: size)  # read at random: the ratio is against its whole size
    directory = checked(f, wanted, budget)  # up front, before anything is written
    for info in directory:
        if info.is_dir() or not wanted(info.filename):
            continue
        name = info.filename
        yield name, _Checked(ZipMember(f, info), name, budget), f"{stem}/{safe_relative(name, 'member')}"
