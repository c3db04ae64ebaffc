"""tar and tar.gz/tgz, read as a stream (no seeking): regular files are extracted; links, devices
and folders are skipped."""

from __future__ import annotations

import tarfile

from processors.decompress import MemberError, extract

_SUFFIXES = (".tar.gz", ".tgz", ".tar")


def members(f):
    try:
        archive = tarfile.open(fileobj=f, mode="r|*")
    except tarfile.TarError as exc:
        raise MemberError(f"not a readable tar archive: {exc}") from None
    with archive:
        try:
            for info in archive:
                if info.isfile():
                    stream = archive.extractfile(info)
                    yield info.name, stream
        except tarfile.TarError as exc:
            raise MemberError(f"tar archive is damaged: {exc}") from None


def run(processor, src: dict) -> dict:
    return extract(processor, src, False, members, _SUFFIXES)
