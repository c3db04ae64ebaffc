"""The real work: one unit of work = one processor applied to one source file.

    run_unit(unit) -> small JSON-able result (counts, bytes, rows, rejects; the outputs' locations and
                     sha256 inline for a few, else in the unit's output manifest)

A unit is a plain dict, so any executor (the local runner, a Durable Functions activity) can
carry it: {"processor": <processor config>, "src": {"location": ..., "name": ..., "size": ...}},
or a batch of sources {"processor": ..., "batch": {"index", "count", "segments"}} (pipeline.units),
whose sources pipeline.activities reads and checks one by one and hands to run_unit.
No cloud SDK is imported here; mounters/ and writers/ load one only for a blob location.
"""

from __future__ import annotations

import importlib
import time

from pydantic import TypeAdapter

from pipeline.config import Processor
from pipeline.errors import PipelineError, UnitError, is_permanent
from writers.base import MANIFEST_PREFIX

_MODULES = {
    ("copy", "copy"): "processors.copy",
    ("decompress", "zip"): "processors.decompress.zip",
    ("decompress", "gzip"): "processors.decompress.gzip",
    ("decompress", "tar"): "processors.decompress.tar",
    ("decompress", "tar.gz"): "processors.decompress.tar",
    ("transform", "JSONL"): "processors.transform.jsonl",
}

__all__ = ["UnitError", "module_for", "processor_model", "run_unit"]


_processor_adapter = TypeAdapter(Processor)


def processor_model(processor: dict):
    """Re-validate a processor dict that travelled as JSON (cheap; catches a hand-edited payload)."""
    return _processor_adapter.validate_python(processor)


def module_for(processor: dict):
    return importlib.import_module(_MODULES[(processor["processor_name"], processor["processor_type"])])


def manifest_target(unit: dict) -> tuple[dict, str]:
    """Where a unit's output manifest goes (writers.base.OutputSet): its processor's destination
    folder, beside the outputs; named after the unit's source (or its batch number), so a re-run
    replaces it. Names start with MANIFEST_PREFIX, which listings skip."""
    processor = unit["processor"]
    dest = processor["processor_config"]["dest"]
    if "batch" in unit:
        return dest, f"{MANIFEST_PREFIX}{processor['processor_name']}-batch-{unit['batch']['index']:05d}.jsonl"
    folder, _, base = unit["src"]["name"].rpartition("/")
    return dest, f"{folder + '/' if folder else ''}{MANIFEST_PREFIX}{processor['processor_name']}-{base}.jsonl"


def run_unit(unit: dict, sources=None) -> dict:
    """Run one unit (one source, or a batch of them: `sources` yields each source reference);
    any failure becomes a UnitError that names the source (and line or member). All the unit's
    outputs are committed together (one writers.OutputSet) when it succeeded. The result carries
    counts, and the outputs inline up to OUTPUTS_INLINE, else a reference to the unit's output
    manifest ("outputs_manifest")."""
    from writers import OutputSet
    from writers.base import OUTPUTS_INLINE

    processor = processor_model(unit["processor"])
    module = module_for(unit["processor"])
    started = time.perf_counter()
    results = []
    from mounters import describe

    # A failure while committing names the unit: its source, or its batch.
    label = describe(unit["src"]["location"]) if sources is None else f"batch {unit['batch']['index']}"
    with _named(label):
        # A batch unit lists its outputs in its manifest whatever their count: a processor's
        # results (up to MAX_UNITS of them) then carry no output lists at all.
        with OutputSet(manifest_target(unit), inline=OUTPUTS_INLINE if sources is None else 0) as outs:
            for src in ([unit["src"]] if sources is None else sources):
                with _named(describe(src["location"])):
                    results.append(module.run(processor, src, outs))
    result = results[0] if sources is None else _batch_result(results)
    result["output_count"], result["bytes_written"] = outs.count, outs.bytes
    if outs.manifest is not None:
        result["outputs_manifest"] = outs.manifest
    else:
        result["outputs"] = outs.outputs
    result["seconds"] = round(time.perf_counter() - started, 3)
    return result


# A batch unit's result lists its sources' own results up to this many, and its files with
# rejected lines up to REJECTS_LISTED (the counts cover them all).
BATCH_RESULTS_LISTED = 5
REJECTS_LISTED = 100


def _batch_result(results: list[dict]) -> dict:
    total: dict = {"src": results[0]["src"] + (f" and {len(results) - 1} more" if len(results) > 1 else ""),
                   "sources": len(results), "src_bytes": sum(int(r.get("src_bytes") or 0) for r in results)}
    for key in ("rows", "rejects", "members_skipped", "members_not_extracted"):
        if any(key in r for r in results):
            total[key] = sum(r.get(key, 0) for r in results)
    rejected = [r for r in results if r.get("rejects")]
    if rejected:  # per file, as a single unit's result would say it (the run's rejects report lists them)
        total["first_reject"] = {"src": rejected[0]["src"], **rejected[0]["first_reject"]}
        total["rejected_files"] = len(rejected)
        total["rejected"] = [{"src": r["src"], "rejects": r["rejects"], "first_reject": r.get("first_reject")}
                             for r in rejected[:REJECTS_LISTED]]
    drifts = [r["drift"] for r in results if r.get("drift")]
    if drifts:  # the batch's files as one unit in the run's drift report
        from processors.transform.drift import combine

        total["drift"] = combine(drifts)
    engines = sorted({r["engine"] for r in results if "engine" in r})
    if engines:
        total["engine"] = "+".join(engines)
    total["results"] = [{k: v for k, v in r.items() if k != "src_location"} for r in results[:BATCH_RESULTS_LISTED]]
    return total


class _named:
    """Turns any failure inside into a UnitError naming the source `label` (and the line or member)."""

    def __init__(self, label: str):
        self.label = label

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is None or isinstance(exc, UnitError) or not isinstance(exc, Exception):
            return
        from pipeline.settings import redact

        label = self.label
        line = getattr(exc, "line", None)
        where = f"{label}:{line}" if line else label
        # Our own errors and OS errors say what went wrong; anything else also needs its type's name.
        text = str(exc) if isinstance(exc, (PipelineError, ValueError, OSError)) else f"{type(exc).__name__}: {exc}"
        if text.startswith(label):  # mounters name the source themselves
            where, text = text.split(": ", 1) if ": " in text else (text, "failed")
        raise UnitError(redact(f"{where}: {text}"), is_permanent(exc), source=label, line=line,
                        member=getattr(exc, "member", None)) from exc
