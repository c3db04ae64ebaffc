"""Output manifests: a unit with many outputs lists them in a JSON Lines file beside them
(writers.base.OutputSet), and its result carries only counts and this file's reference. The next
processor's planning reads them as a stream (scan), and a batch unit reads its slice of one by
byte range (read_range), so neither the orchestration nor any one payload holds the whole list.

A manifest line: {"name": <name relative to the destination folder>, "location": <the file's
location>, "bytes": n, "sha256": hex}."""

from __future__ import annotations

from typing import Iterator

import orjson

from mounters import open_source
from pipeline.errors import DataError

READ = 1 << 20


def _lines(f, start: int, end: int | None) -> Iterator[tuple[int, int, bytes]]:
    """(start offset, end offset, line) of each whole line from `start` to `end` (None: the end)."""
    pos, rest = start, b""
    while end is None or pos + len(rest) < end:
        want = READ if end is None else min(READ, end - pos - len(rest))
        data = f.read(want)
        if not data:
            break
        rest += data
        lines = rest.split(b"\n")
        rest = lines.pop()
        for line in lines:
            yield pos, pos + len(line) + 1, line
            pos += len(line) + 1
    if rest:
        yield pos, pos + len(rest), rest


def _entry(line: bytes, where: str) -> dict:
    try:
        o = orjson.loads(line)
        return {"location": o["location"], "name": o["name"], "size": o.get("bytes")}
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{where}: not an output manifest line ({exc})") from None


def scan(ref: dict) -> Iterator[tuple[dict, int, int]]:
    """(source reference, start, end byte) of each output a manifest lists, in order; the count
    must be the one its unit reported (a manifest cut short or added to is an error)."""
    from mounters import describe

    location, count, n = ref["location"], ref["outputs"], 0
    with open_source(location) as f:
        for start, end, line in _lines(f, 0, None):
            n += 1
            yield _entry(line, f"{describe(location)}:{n}"), start, end
    if n != count:
        raise DataError(f"{describe(location)}: lists {n} outputs, not the {count} its unit reported")


def read_range(location: dict, start: int, end: int, count: int) -> Iterator[dict]:
    """The source references a manifest lists between byte offsets start and end (count of them)."""
    from mounters import describe

    n = 0
    with open_source(location, seekable=True) as f:
        f.seek(start)
        for _, _, line in _lines(f, start, end):
            n += 1
            yield _entry(line, f"{describe(location)}: byte {start}")
    if n != count:
        raise DataError(f"{describe(location)}: bytes {start}-{end} hold {n} outputs, not {count}")
