"""tar and tar.gz/tgz, read as a stream (no seeking): regular files are extracted, hardlinks as
copies of their target; symlinks, devices and fifos are not, and are listed by name in the result.

A truncated archive must fail, never yield fewer members. tarfile on its own ends the member list
quietly when the data stops at (or inside) a header, and its gzip layer never checks the gzip
trailer, so: gzip input (by its magic bytes, whatever the processor type says) is read through
gzip.GzipFile, which fails on a truncated stream and checks the CRC once drained to its end; and
a header that is missing, cut short or garbage where the end-of-archive marker should be is an
error."""

from __future__ import annotations

import gzip
import os
import tarfile

from processors.decompress import (
    DAMAGED,
    GZIP_MAGIC,
    MemberError,
    NotExtracted,
    archive_folder,
    declared_report,
    extract,
    sniff,
)

_SUFFIXES = (".tar.gz", ".tgz", ".tar")
_READ = 64 << 10  # tarfile's read size: its default (10 KiB) is slow, larger is slow for small members


class _StrictTarInfo(tarfile.TarInfo):
    @classmethod
    def fromtarfile(cls, tf):
        try:
            return super().fromtarfile(tf)
        except (tarfile.EmptyHeaderError, tarfile.TruncatedHeaderError, tarfile.InvalidHeaderError) as exc:
            if tf.offset == 0:
                raise  # tarfile reports an empty or non-tar file itself
            raise tarfile.ReadError(f"archive ends without its end-of-archive marker at offset {tf.offset} "
                                    f"(truncated or damaged: {exc})") from None


def _entries(f):
    """(TarInfo, archive) of every entry, in order; a damaged or truncated archive raises MemberError."""
    head, stream = sniff(f, len(GZIP_MAGIC))
    gz = gzip.GzipFile(fileobj=stream, mode="rb") if head == GZIP_MAGIC else None
    try:
        if gz is not None:
            archive = tarfile.open(fileobj=gz, mode="r|", tarinfo=_StrictTarInfo, bufsize=_READ)
        else:
            archive = tarfile.open(fileobj=stream, mode="r|*", tarinfo=_StrictTarInfo, bufsize=_READ)
    except DAMAGED as exc:
        raise MemberError(f"not a readable tar archive: {exc}") from None
    with archive:
        try:
            for info in archive:
                yield info, archive
            if gz is not None:  # read to the gzip trailer: fails if it is missing, checks the CRC
                while gz.read(_READ):
                    pass
        except DAMAGED as exc:
            raise MemberError(f"tar archive is damaged: {exc}") from None


def _kind(info: tarfile.TarInfo) -> str:
    return ("symlink" if info.issym() else "character device" if info.ischr() else "block device" if info.isblk()
            else "fifo" if info.isfifo() else f"type {info.type!r}")


def members(f, wanted, budget, reopen):
    """Regular files as they come. A hardlink is written as a copy of its target's content: the
    stream cannot go back to the target, so the archive is read again (once per link to one target)
    after the first pass, only if it has hardlinks. Symlinks, devices and fifos are not extracted
    and are listed by name."""
    regular = set()
    links: dict[str, list[str]] = {}  # target -> link names, in archive order
    for info, archive in _entries(f):
        budget.member(info.name, info.size if info.isfile() and wanted(info.name) else None)
        if info.isfile():
            regular.add(info.name)
            yield info.name, archive.extractfile(info)
        elif info.isdir():
            continue
        elif not wanted(info.name):
            yield info.name, None
        elif info.islnk() and info.linkname in regular:
            links.setdefault(info.linkname, []).append(info.name)
        elif info.islnk():
            yield info.name, NotExtracted(f"hardlink to {info.linkname!r}, which is not a regular file before it")
        else:
            yield info.name, NotExtracted(_kind(info))
    while links:
        with reopen() as again:
            for info, archive in _entries(again):
                if info.isfile() and info.name in links:
                    names = links[info.name]
                    name = names.pop(0)
                    if not names:
                        del links[info.name]
                    yield name, archive.extractfile(info)


def declared(processor, src: dict) -> dict:
    """--dry-run: a plain tar's headers, read by seeking past the data (local files only); a
    compressed or remote tar declares nothing without reading all of it."""
    location = src["location"]
    if location["type"] != "local":
        return {"declared": None, "note": "a remote tar is not read by --dry-run; limits apply while unpacking"}
    with open(location["path"], "rb") as f:
        if f.read(2) == GZIP_MAGIC:
            return {"declared": None, "note": "a compressed tar declares no sizes; limits apply while unpacking"}
    limit = processor.processor_config.limits.max_members
    entries = []
    try:
        with tarfile.open(location["path"], "r:") as archive:
            for info in archive:
                entries.append((info.name, info.size if info.isfile() else 0, None))
                if len(entries) > limit:
                    break
    except tarfile.TarError as exc:
        return {"error": f"not a readable tar archive: {exc}"}
    return declared_report(processor.processor_config, entries, os.path.getsize(location["path"]))


def planned_outputs(cfg: dict, src_name: str) -> list[tuple[dict, str]]:
    return [(cfg["dest"], archive_folder(src_name, _SUFFIXES))]


def run(processor, src: dict, outs) -> dict:
    return extract(processor, src, outs, False, members, _SUFFIXES)
