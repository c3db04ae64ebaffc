"""Byte streaming shared by the processors: readinto() into one reused buffer, never the whole file."""

from __future__ import annotations

import io
import os

from mounters import describe
from pipeline.counters import CountedReader

COPY_BUFFER = 1 << 20


def unbuffered(f):
    """The local file under f when f is one opened by the local mounter and nothing of it is
    buffered yet, else f. Readers that take large blocks (a converter's chunks, an inflater's input)
    read it directly: the mounter's 1 MiB read buffer would only add a copy and 1 MiB of memory."""
    if type(f) is CountedReader:  # a source counted for progress: unwrap below the count, keep counting
        inner = unbuffered(f.wrapped)
        return f if inner is f.wrapped else CountedReader(inner)
    raw = getattr(f, "raw", None)
    if type(f) is io.BufferedReader and type(raw) is io.FileIO and f.tell() == raw.tell():
        return raw
    return f


def copy_stream(src, dst, buffer_size: int = COPY_BUFFER, charge=None) -> int:
    """Copy src to dst; `charge(n)`, if given, is told of each chunk before it is written (and may
    refuse it by raising: an archive's limits)."""
    buf = bytearray(buffer_size)
    view = memoryview(buf)
    total = 0
    while True:
        n = src.readinto(view)
        if not n:
            return total
        if charge is not None:
            charge(n)
        dst.write(view[:n])
        total += n


def source_stats(f, src: dict) -> dict:
    """What was read from a source: its size, and for ranged readers the bytes actually fetched."""
    stats = {"src": describe(src["location"]), "src_location": src["location"], "src_bytes": src.get("size")}
    raw = getattr(f, "raw", None)
    if hasattr(raw, "bytes_fetched"):
        stats["src_bytes"] = raw.size
        stats["bytes_fetched"] = raw.bytes_fetched
        stats["fetch_requests"] = raw.requests
    elif stats["src_bytes"] is None:
        length = getattr(getattr(f, "headers", None), "get", lambda _: None)("Content-Length")  # HTTP
        try:
            stats["src_bytes"] = int(length) if length else os.fstat(f.fileno()).st_size
        except (OSError, ValueError, AttributeError):  # a finished HTTP response has no file any more
            pass
    return stats


def replace_suffix(name: str, suffixes: tuple[str, ...], new: str = "") -> str:
    lower = name.lower()
    for s in suffixes:
        if lower.endswith(s) and len(name) > len(s):
            return name[: -len(s)] + new
    return name + new
