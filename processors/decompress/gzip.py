"""gzip: one compressed stream (multi-member files included) -> one file without the .gz suffix.

The input must start with the gzip magic bytes (an empty file is not an empty gzip stream), and
gzip.GzipFile fails on a truncated stream or a CRC mismatch. Only read errors are reported as a
bad gzip stream; a failing destination reports its own error."""

from __future__ import annotations

import gzip

from mounters import open_source
from pipeline.errors import DataError
from processors.decompress import DAMAGED, GZIP_MAGIC, sniff
from processors.decompress.limits import ArchiveBudget, counted
from processors.stream import COPY_BUFFER, replace_suffix, source_stats


_SUFFIXES = (".gz", ".gzip")


def declared(processor, src: dict) -> dict:
    return {"declared": None, "note": "a gzip stream declares no size; limits apply while unpacking"}


def planned_outputs(cfg: dict, src_name: str) -> list[tuple[dict, str]]:
    return [(cfg["dest"], replace_suffix(src_name, _SUFFIXES))]


def run(processor, src: dict, outs) -> dict:
    cfg = processor.processor_config
    dest = cfg.dest.model_dump()
    with open_source(src["location"]) as f:
        reader, counter = counted(f)  # a gzip declares no size (its trailer's is mod 2**32): count
        budget = ArchiveBudget(cfg.limits, lambda: counter.count)
        head, stream = sniff(reader, len(GZIP_MAGIC))
        if head != GZIP_MAGIC:
            raise DataError(f"not a gzip file (it starts with {head!r}, not {GZIP_MAGIC!r})")
        stream = gzip.GzipFile(fileobj=stream, mode="rb")
        with outs.create(dest, replace_suffix(src["name"], _SUFFIXES)) as sink:
            view = memoryview(bytearray(COPY_BUFFER))
            while True:
                try:
                    n = stream.readinto(view)
                except DAMAGED as exc:
                    raise DataError(f"not a readable gzip stream: {exc}") from None
                if not n:
                    break
                budget.add(n, None)
                sink.write(view[:n])
        return source_stats(f, src)
