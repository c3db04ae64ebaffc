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

_MODULES = {
    ("copy", "copy"): "processors.copy",
    ("decompress", "zip"): "processors.decompress.zip",
    ("decompress", "gzip"): "processors.decompress.gzip",
    ("decompress", "tar"): "processors.decompress.tar",
    ("decompress", "tar.gz"): "processors.decompress.tar",
    ("transform", "JSONL"): "processors.transform.jsonl",
}


class UnitError(RuntimeError):
    """A unit failed; the message names the source (file and line, archive member).

    `permanent`: the data or the config is wrong (a bad line, a bad member, an unset setting), so
    running the unit again cannot succeed; otherwise (I/O: a dropped connection, a 5xx, a storage
    error) a retry may."""

    def __init__(self, message: str, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


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
        text = str(exc) if isinstance(exc, (ValueError, OSError)) else f"{type(exc).__name__}: {exc}"
        if text.startswith(label):  # mounters name the source themselves
            where, text = text.split(": ", 1) if ": " in text else (text, "failed")
        permanent = isinstance(exc, (ValueError, LookupError)) and not isinstance(exc, OSError)
        raise UnitError(redact(f"{where}: {text}"), permanent) from exc
    result["seconds"] = round(time.perf_counter() - started, 3)
    return result
