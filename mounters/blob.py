"""Azure Blob Storage sources, read with ranged GETs under a buffered, seekable reader (the client,
naming and error meanings live in backends/blob.py).

Every ranged read carries the ETag of the blob's properties (If-Match), so a blob overwritten while
it is read fails the unit (as I/O: a retry reads the new version whole) instead of giving a file
that is half old, half new. A glob lists only the names under its literal prefix.
"""

from __future__ import annotations

from typing import BinaryIO, Iterator

from azure.core import MatchConditions
from azure.core.exceptions import AzureError

from backends.blob import DEFAULT_BLOCK, container_client, describe, translate
from mounters.base import select
from pipeline.errors import MissingSource
from mounters.ranged import open_ranged

__all__ = ["describe", "iter_files", "open_source"]


def iter_files(location: dict) -> Iterator[dict]:
    sel = select(location.get("path", ""))
    try:
        blobs = sorted((b.name, b.size) for b in container_client(location).list_blobs(name_starts_with=sel.prefix or None)
                       if not b.name.endswith("/") and sel.matches(b.name))
    except AzureError as exc:
        raise translate(exc, location, "listing") from None
    if sel.exact is not None and not blobs:
        raise MissingSource(f"{describe(location)}: no such blob")
    return ({"location": {**location, "path": name}, "name": name[len(sel.base):], "size": size} for name, size in blobs)


class _ViewWriter:
    def __init__(self, view: memoryview):
        self._view, self._pos = view, 0

    def write(self, b) -> int:
        n = len(b)
        self._view[self._pos:self._pos + n] = b
        self._pos += n
        return n


def open_source(location: dict, seekable: bool = False) -> BinaryIO:
    # Always ranged: one GET per buffer refill, so a sequential read streams with bounded
    # memory and a zip can seek. download_blob(offset, length) never prefetches past length.
    label = describe(location)
    blob = container_client(location).get_blob_client(location["path"])
    try:
        props = blob.get_blob_properties()
    except AzureError as exc:
        raise translate(exc, location, "reading its properties") from None
    size, etag = props.size, props.etag

    def fetch(offset: int, view: memoryview) -> int:
        try:
            # The downloader writes into a stream; this one fills the caller's buffer (no extra copy).
            return blob.download_blob(offset=offset, length=len(view), max_concurrency=1, etag=etag,
                                      match_condition=MatchConditions.IfNotModified).readinto(_ViewWriter(view))
        except AzureError as exc:
            raise translate(exc, location, f"the read at offset {offset}") from None

    return open_ranged(fetch, size, label, location.get("block_size", DEFAULT_BLOCK))
