"""gzip: one compressed stream (multi-member files included) -> one file without the .gz suffix.

The input must start with the gzip magic bytes (an empty file is not an empty gzip stream), and
gzip.GzipFile fails on a truncated stream or a CRC mismatch. Only read errors are reported as a
bad gzip stream; a failing destination reports its own error."""

from __future__ import annotations

import gzip
import zlib

from mounters import open_source
from processors.decompress import GZIP_MAGIC, sniff
from processors.stream import COPY_BUFFER, replace_suffix, source_stats
from writers import OutputSet


def run(processor, src: dict) -> dict:
    cfg = processor.processor_config
    dest = cfg.dest.model_dump()
    with open_source(src["location"]) as f, OutputSet() as outs:
        head, stream = sniff(f, len(GZIP_MAGIC))
        if head != GZIP_MAGIC:
            raise ValueError(f"not a gzip file (it starts with {head!r}, not {GZIP_MAGIC!r})")
        stream = gzip.GzipFile(fileobj=stream, mode="rb")
        with outs.create(dest, replace_suffix(src["name"], (".gz", ".gzip"))) as sink:
            view = memoryview(bytearray(COPY_BUFFER))
            while True:
                try:
                    n = stream.readinto(view)
                except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
                    raise ValueError(f"not a readable gzip stream: {exc}") from None
                if not n:
                    break
                sink.write(view[:n])
        stats = source_stats(f, src)
    return {**stats, "outputs": outs.outputs}
