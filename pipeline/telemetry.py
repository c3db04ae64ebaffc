"""Telemetry: one structured record per unit and per run, and OpenTelemetry spans for both.

Records go through the standard `logging` module (logger "pipeline.telemetry"), so whatever
handles logging carries them: the Functions host (Application Insights), the local CLI's stderr
(text, or one JSON object per line with `--log-format json`). Each record has its fields twice:

  * as `extra` attributes of the LogRecord: with Azure Monitor's OpenTelemetry distro enabled
    (PIPELINE_AZURE_MONITOR, see configure_azure_monitor) they become the trace's customDimensions;
  * in the message, as `pipeline.unit {"run_id": ..., ...}` JSON: the classic Functions host
    forwards only a record's text, so a query can still `parse_json` it.

    pipeline.unit  run_id sourcemart table processor source bytes_in bytes_out outputs rows rejects
                   seconds outcome [error]
    pipeline.run   run_id sourcemart table processors units outputs bytes_in bytes_out rows rejects
                   seconds outcome [error]

A unit's outcome: `succeeded` (rejected lines within the budget are counted in `rejects`),
`rejected` (failed for good: the data, the config or the policy is wrong; not retried), `failed`
(an error the executor may retry: I/O). Every string field is redacted (pipeline.settings.redact).

Spans (opentelemetry-api: no-op until an SDK is configured): "pipeline.run" and one "pipeline.unit"
per unit attempt, with the record's fields as attributes. A run's spans share one trace: its id is
derived from the run id, so an activity on another machine joins the trace
from the `telemetry` block the orchestration puts in each unit payload (no clock, no randomness:
Durable replay stays deterministic). The run span is recorded when the run ends (an orchestrator
cannot hold a span across episodes), so run and unit spans are siblings under the run's trace.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import time
import uuid
from typing import Any, Callable

from pipeline.settings import redact

log = logging.getLogger("pipeline.telemetry")

UNIT_EVENT = "pipeline.unit"
RUN_EVENT = "pipeline.run"
TRACER_NAME = "sourcemart.pipeline"
# What a run id may look like once it travelled in a payload (an instance id: pipeline.request).
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@+-]{0,159}")


def emit(event: str, fields: dict[str, Any], level: int = logging.INFO) -> dict[str, Any]:
    """Log one structured record; returns the fields as logged (redacted, None left out)."""
    clean = {k: (redact(v) if isinstance(v, str) else v) for k, v in fields.items() if v is not None}
    log.log(level, "%s %s", event, json.dumps(clean, sort_keys=True, ensure_ascii=False),
            extra={"event": event, **clean})
    return clean


# -- the run's trace ---------------------------------------------------------------------------

def trace_ids(run_key: str) -> tuple[int, int]:
    """(trace id, parent span id) of a run: derived, so every process computes the same."""
    digest = hashlib.sha256(f"sourcemart-run\0{run_key}".encode()).digest()
    return int.from_bytes(digest[:16], "big") or 1, int.from_bytes(digest[16:24], "big") or 1


def traceparent(run_key: str) -> str:
    trace_id, span_id = trace_ids(run_key)
    return f"00-{trace_id:032x}-{span_id:016x}-01"


def _parent_context(parent: str | None):
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract({"traceparent": parent}) if parent else None


def _tracer():
    from opentelemetry import trace

    return trace.get_tracer(TRACER_NAME)


def _set_outcome(span, fields: dict[str, Any]) -> None:
    from opentelemetry.trace import Status, StatusCode

    span.set_attributes({k: v for k, v in fields.items() if isinstance(v, (str, bool, int, float))})
    if fields.get("outcome") != "succeeded":
        span.set_status(Status(StatusCode.ERROR, fields.get("error") or fields.get("outcome")))


# -- units -------------------------------------------------------------------------------------

def _context_of(payload: dict) -> dict[str, Any]:
    """The payload's `telemetry` block, trusted only as far as labels go."""
    block = payload.get("telemetry")
    block = block if isinstance(block, dict) else {}
    run_id = block.get("run_id")
    parent = block.get("traceparent")
    return {
        "run_id": run_id if isinstance(run_id, str) and _RUN_ID.fullmatch(run_id) else None,
        "sourcemart": str(block["sourcemart"])[:200] if block.get("sourcemart") else None,
        "table": str(block["table"])[:200] if block.get("table") else None,
        "traceparent": parent if isinstance(parent, str) and re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]", parent)
        else None,
    }


def _source_label(payload: dict) -> str | None:
    from mounters import describe

    if isinstance(payload.get("batch"), dict):
        return f"batch {payload['batch'].get('index')} ({payload['batch'].get('count')} files)"
    src = payload.get("src") or {}
    try:
        label = describe(src["location"])
    except Exception:  # an edited payload: the activity refuses it; the record still says what it was given
        return str(src.get("name"))[:500] if src.get("name") else None
    name = src.get("name")
    return label if not name or label.endswith(str(name)) else f"{label} ({name})"


def _processor_label(payload: dict) -> str | None:
    from pipeline.units import processor_label

    try:
        return processor_label(payload["processor"])
    except Exception:
        return None


def unit_fields(payload: dict, result: dict | None, error: BaseException | None, seconds: float) -> dict[str, Any]:
    context = _context_of(payload)
    fields: dict[str, Any] = {
        "run_id": context["run_id"], "sourcemart": context["sourcemart"], "table": context["table"],
        "processor": _processor_label(payload), "source": _source_label(payload), "seconds": round(seconds, 3),
    }
    src_size = (payload.get("src") or {}).get("size")
    if error is not None:
        fields.update(outcome="failed", error=_one_line(error), bytes_in=src_size)
        return fields
    result = result or {}
    fields.update(
        bytes_in=result.get("bytes_fetched", result.get("src_bytes", src_size)),
        bytes_out=result.get("bytes_written", 0), outputs=result.get("output_count", 0),
        rows=result.get("rows"), rejects=result.get("rejects"),
    )
    drift = result.get("drift")
    if drift:  # a transform's schema drift, as counts a query can alert on (the paths are in the manifest)
        fields.update(drift_unmapped=drift["unmapped_paths"], drift_missing=len(drift["missing"]),
                      drift_type_changes=len(drift["type_changes"]))
    if "failed" in result:
        fields.update(outcome="rejected", error=_one_line(result["failed"]))
    else:
        fields["outcome"] = "succeeded"
    return fields


def observed_unit(run_unit: Callable[[dict], dict]) -> Callable[[dict], dict]:
    """`run_unit` with a record and a span per call (each attempt of a retried unit is one call)."""

    def run(payload: dict) -> dict:
        context = _context_of(payload)
        with _tracer().start_as_current_span("pipeline.unit", context=_parent_context(context["traceparent"]),
                                             record_exception=False, set_status_on_exception=False) as span:
            started = time.perf_counter()
            try:
                result = run_unit(payload)
            except Exception as exc:
                fields = emit(UNIT_EVENT, unit_fields(payload, None, exc, time.perf_counter() - started),
                              logging.WARNING)
                _set_outcome(span, fields)
                raise
            fields = emit(UNIT_EVENT, unit_fields(payload, result, None, time.perf_counter() - started),
                          logging.INFO if "failed" not in result else logging.WARNING)
            _set_outcome(span, fields)
            return result

    run.__name__ = getattr(run_unit, "__name__", "run_unit")
    run.__doc__ = run_unit.__doc__
    return run


# -- runs --------------------------------------------------------------------------------------

def run_fields(run_id: str, config: dict, manifest: dict | None, error: BaseException | None,
               seconds: float) -> dict[str, Any]:
    fields: dict[str, Any] = {"run_id": run_id, "sourcemart": config.get("sourcemart"), "table": config.get("table"),
                              "processors": len(config.get("processors") or []), "seconds": round(seconds, 3)}
    if error is not None:
        fields.update(outcome="failed", error=_one_line(error))
        return fields
    manifest = manifest or {}
    totals = manifest.get("totals") or {}
    steps = manifest.get("steps") or []
    fields.update(units=totals.get("units"), outputs=totals.get("outputs"),
                  bytes_in=sum(int(s.get("bytes_read") or 0) for s in steps),
                  bytes_out=totals.get("bytes_written"), rows=totals.get("rows"), rejects=totals.get("rejects"),
                  outcome=manifest.get("status", "succeeded"))
    return fields


def observed_orchestration(ctx, request: dict):
    """pipeline.orchestration.orchestrate with a run record and a run span, for every executor.

    It takes what it needs from the context's Durable shape when there is one (instance_id,
    current_utc_datetime, is_replaying: replay-safe, and the record is written only by the episode
    that ends the run, never again while replaying); the local runner's context has none of them,
    so a run id, the clock and "not replaying" stand in."""
    from pipeline.orchestration import orchestrate

    run_id = getattr(ctx, "instance_id", None) or uuid.uuid4().hex

    def now() -> dt.datetime:
        return getattr(ctx, "current_utc_datetime", None) or dt.datetime.now(dt.timezone.utc)

    started = now()
    # The trace follows the run id alone: the units' payloads must not depend on the clock (replay
    # over a history stamped another day makes the same actions). A failed instance restarted under
    # its id continues its trace; the records' times tell the attempts apart.
    run_key = run_id
    config = request.get("config") or {}
    request = {**request, "telemetry": {"run_id": run_id, "sourcemart": config.get("sourcemart"),
                                        "table": config.get("table"), "traceparent": traceparent(run_key)}}
    try:
        manifest = yield from orchestrate(ctx, request)
    except Exception as exc:
        if not getattr(ctx, "is_replaying", False):
            _record_run(run_key, started, now(), run_fields(run_id, config, None, exc, _seconds(started, now())))
        raise
    if not getattr(ctx, "is_replaying", False):
        _record_run(run_key, started, now(), run_fields(run_id, config, manifest, None, _seconds(started, now())))
    return manifest


def _seconds(start: dt.datetime, end: dt.datetime) -> float:
    return max(0.0, (end - start).total_seconds())


def _record_run(run_key: str, started: dt.datetime, ended: dt.datetime, fields: dict[str, Any]) -> None:
    fields = emit(RUN_EVENT, fields, logging.INFO if fields["outcome"] == "succeeded" else logging.ERROR)
    span = _tracer().start_span("pipeline.run", context=_parent_context(traceparent(run_key)),
                                start_time=int(started.timestamp() * 1e9))
    _set_outcome(span, fields)
    span.end(end_time=max(int(ended.timestamp() * 1e9), int(started.timestamp() * 1e9)))


def _one_line(error: BaseException | str) -> str:
    return " ".join(str(error).split())[:2000]


# -- the local CLI's JSON lines ----------------------------------------------------------------

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, and the record's extra fields
    (a telemetry record's fields). Every string is redacted, whatever put it there."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                doc[key] = value if isinstance(value, (int, float, bool)) or value is None else str(value)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps({k: (redact(v) if isinstance(v, str) else v) for k, v in doc.items()}, ensure_ascii=False)
