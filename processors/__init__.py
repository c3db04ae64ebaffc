"""The real work: one unit of work = one processor applied to one source file.

    run_unit(unit) -> small JSON-able result (locations, bytes, rows, rejects, sha256 of outputs)

A unit is a plain dict, so any executor (the local runner, a Durable Functions activity) can
carry it: {"processor": <processor config>, "src": {"location": ..., "name": ..., "size": ...}}.
No cloud SDK is imported here; mounters/ and writers/ load one only for a blob location.
"""

from __future__ import annotations

import importlib
import time

from pydantic import TypeAdapter

from pipeline.config import Processor
from pipeline.errors import PipelineError, UnitError, is_permanent

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


def run_unit(unit: dict) -> dict:
    """Run one unit; any failure becomes a UnitError that names the source (and line or member)."""
    from mounters import describe
    from pipeline.settings import redact

    processor = processor_model(unit["processor"])
    label = describe(unit["src"]["location"])
    started = time.perf_counter()
    try:
        result = module_for(unit["processor"]).run(processor, unit["src"])
    except Exception as exc:
        line = getattr(exc, "line", None)
        where = f"{label}:{line}" if line else label
        # Our own errors and OS errors say what went wrong; anything else also needs its type's name.
        text = str(exc) if isinstance(exc, (PipelineError, ValueError, OSError)) else f"{type(exc).__name__}: {exc}"
        if text.startswith(label):  # mounters name the source themselves
            where, text = text.split(": ", 1) if ": " in text else (text, "failed")
        raise UnitError(redact(f"{where}: {text}"), is_permanent(exc), source=label, line=line,
                        member=getattr(exc, "member", None)) from exc
    result["seconds"] = round(time.perf_counter() - started, 3)
    return result
