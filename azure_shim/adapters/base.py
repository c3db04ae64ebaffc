"""What every adapter does around its core call: log it, and turn any failure into an
ActivityError whose message is redacted and carries no chained traceback (Durable stores the
message in the orchestration history, where whoever polls the status URL can read it)."""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from pipeline.activities import ACTIVITIES
from pipeline.settings import redact
from pipeline.units import processor_label

log = logging.getLogger("pipeline.activity")


class ActivityError(RuntimeError):
    pass


def run_activity(name: str, payload: dict, check: Callable[[dict], None] | None = None) -> Any:
    what = _describe(payload)
    started = time.perf_counter()
    try:
        if check:
            check(payload)
        result = ACTIVITIES[name](payload)
    except Exception as exc:
        text = str(exc) if isinstance(exc, (ValueError, OSError, RuntimeError)) else f"{type(exc).__name__}: {exc}"
        log.error("%s %s failed: %s", name, what, redact(text))
        raise ActivityError(redact(text)) from None
    if isinstance(result, dict) and "failed" in result:  # the data or the config is wrong: not retried
        log.error("%s %s failed for good: %s", name, what, result["failed"])
    else:
        log.info("%s %s done in %.1f s", name, what, time.perf_counter() - started)
    return result


def unit_adapter(processor_name: str) -> Callable[[dict], dict]:
    """The adapter for one processor kind: its activity runs only that kind's units."""

    def check(payload: dict) -> None:
        got = payload["processor"]["processor_name"]
        if got != processor_name:
            raise ValueError(f"activity {processor_name!r} was given a unit of processor {got!r}")

    def run(payload: dict) -> dict:
        return run_activity(processor_name, payload, check)

    run.__name__ = f"run_{processor_name}"
    return run


def _describe(payload: dict) -> str:
    label = processor_label(payload["processor"])
    src, batch = payload.get("src"), payload.get("batch")
    if batch:
        return f"{label} batch {batch.get('index')} ({batch.get('count')} files)"
    return f"{label} {src['name']}" if src else label
