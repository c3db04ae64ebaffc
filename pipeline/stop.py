"""A process-wide request to stop (the local CLI makes it on SIGINT/SIGTERM).

Running units see it at their next write and before each commit (writers.base), and the executor
before it starts another activity, so after the request nothing more is published: a running unit
raises Interrupted, its OutputSet aborts, and its temp files are removed."""

from __future__ import annotations

import threading

from pipeline.errors import Interrupted

_event = threading.Event()
_reason: list[str] = []


def request_stop(reason: str) -> None:
    if not _event.is_set():
        _reason.append(reason)
        _event.set()


def stop_requested() -> bool:
    return _event.is_set()


def reason() -> str | None:
    return _reason[0] if _reason else None


def check() -> None:
    """Raise Interrupted if a stop was requested."""
    if _event.is_set():
        raise Interrupted(f"interrupted by {_reason[0]}")
