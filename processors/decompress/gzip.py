"""gzip: one compressed stream (multi-member files included) -> one file without the .gz suffix."""

from __future__ import annotations

import gzip

from mounters import open_source
from processors.stream import copy_stream, replace_suffix, source_stats
from writers import OutputSet


def run(processor, src: dict) -> dict:
    cfg = processor.processor_config
    dest = cfg.dest.model_dump()
    with open_source(src["location"]) as f, OutputSet() as outs:
        with outs.create(dest, replace_suffix(src["name"], (".gz", ".gzip"))) as sink:
            try:
                copy_stream(gzip.GzipFile(fileobj=f, mode="rb"), sink)
            except (gzip.BadGzipFile, EOFError, OSError) as exc:
                raise ValueError(f"not a readable gzip stream: {exc}") from None
        stats = source_stats(f, src)
    return {**stats, "outputs": outs.outputs}
