"""zip (zip64 included): stored, deflate, bzip2 and lzma members, streamed one after another.

zipfile needs a seekable source (it reads the central directory at the end first): local files
are, blob and HTTP sources get the ranged reader. Every member is checked against the central
directory before anything is written, so an encrypted or Deflate64 member (or an unsafe name)
among the members to extract fails the archive up front with a message naming it and its method."""

from __future__ import annotations

import zipfile

from mounters.base import safe_relative
from mounters import open_source
from processors.decompress import MemberError, archive_folder, declared_report, extract

SUPPORTED = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
METHOD_NAMES = {0: "stored", 1: "shrink", 6: "implode", 8: "deflate", 9: "Deflate64", 12: "bzip2", 14: "lzma",
                93: "zstd", 95: "xz", 96: "JPEG", 97: "WavPack", 98: "PPMd", 99: "AES-encrypted"}


def check_member(info: zipfile.ZipInfo) -> None:
    if info.flag_bits & 0x41 or info.compress_type == 99:  # 0x1 encrypted, 0x40 strong encryption
        raise MemberError(f"member {info.filename!r} is encrypted; encrypted archives are not supported")
    if info.compress_type not in SUPPORTED:
        method = METHOD_NAMES.get(info.compress_type, "unknown")
        raise MemberError(f"member {info.filename!r} uses compression method {info.compress_type} ({method}), "
                          "which is not supported (supported: stored, deflate, bzip2, lzma)")


def members(f, wanted, budget, reopen=None):
    try:
        archive = zipfile.ZipFile(f)
    except (zipfile.BadZipFile, EOFError) as exc:
        if isinstance(exc.__context__, OSError):  # zipfile turns a failed read into "File is not a zip file"
            raise exc.__context__ from None  # the source's own error (a network error names the source)
        raise MemberError(f"not a readable zip archive: {exc}") from None
    infos = [i for i in archive.infolist() if not i.is_dir()]
    budget.declared(len(archive.infolist()), sum(i.file_size for i in infos if wanted(i.filename)))
    # Up front, before anything is written: only the members to extract (an unsupported method
    # in a member the filter leaves out is no reason to fail the archive).
    for info in infos:
        if wanted(info.filename):
            check_member(info)
            safe_relative(info.filename, "member")
    for info in infos:
        if not wanted(info.filename):
            yield info.filename, None  # not opened: a remote archive is not fetched for it
            continue
        try:
            stream = archive.open(info)
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, EOFError) as exc:
            raise MemberError(f"member {info.filename!r}: {exc}") from None
        with stream:
            yield info.filename, stream


_SUFFIXES = (".zip",)


def declared(processor, src: dict) -> dict:
    """--dry-run: the central directory's members and sizes (read with a few ranged reads, no data)."""
    with open_source(src["location"], seekable=True) as f:
        size = f.seek(0, 2)
        f.seek(0)
        try:
            infos = zipfile.ZipFile(f).infolist()
        except (zipfile.BadZipFile, EOFError) as exc:
            return {"error": f"not a readable zip archive: {exc}"}
    entries = [(i.filename, i.file_size, i.compress_size) for i in infos if not i.is_dir()]
    return declared_report(processor.processor_config, entries, size)


def planned_outputs(cfg: dict, src_name: str) -> list[tuple[dict, str]]:
    return [(cfg["dest"], archive_folder(src_name, _SUFFIXES))]


def run(processor, src: dict, outs) -> dict:
    return extract(processor, src, outs, True, members, _SUFFIXES)
