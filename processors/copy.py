"""copy: source -> destination byte stream (the Collector's "SrcToRaw" step)."""

from __future__ import annotations

from mounters import open_source
from processors.stream import copy_stream, source_stats


def output_name(src_name: str) -> str:
    return src_name


def planned_outputs(cfg: dict, src_name: str) -> list[tuple[dict, str]]:
    return [(cfg["dest"], output_name(src_name))]


def run(processor, src: dict, outs) -> dict:
    """Writes into `outs` (the unit's writers.OutputSet, committed by processors.run_unit)."""
    cfg = processor.processor_config
    dest = cfg.dest.model_dump()
    with open_source(src["location"]) as f:
        with outs.create(dest, output_name(src["name"])) as sink:
            copy_stream(f, sink)
        return source_stats(f, src)
