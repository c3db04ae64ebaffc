"""Drives the portable orchestration generator on this machine, as the Durable engine would:
call_activity runs an activity, task_all fans out to a thread pool, results are sent back into
the generator and failures are thrown into it. Payloads and results make a JSON round trip, so
whatever works here is also carried by Durable Functions (which serialises them)."""

from __future__ import annotations

import concurrent.futures as cf
from dataclasses import dataclass
from typing import Any, Callable

import orjson

from pipeline.stop import check as check_stop


@dataclass
class ActivityTask:
    name: str
    payload: Any


@dataclass
class AllTask:
    tasks: list[ActivityTask]


class ActivityFailed(RuntimeError):
    pass


class LocalContext:
    def __init__(self, on_status: Callable[[Any], None] | None = None):
        self.custom_status = None
        self._on_status = on_status

    def call_activity(self, name: str, payload: Any) -> ActivityTask:
        return ActivityTask(name, orjson.loads(orjson.dumps(payload)))

    def task_all(self, tasks: list[ActivityTask]) -> AllTask:
        return AllTask(list(tasks))

    def set_custom_status(self, status: Any) -> None:
        self.custom_status = status
        if self._on_status:
            self._on_status(status)


def run_orchestration(orchestrator, request: dict, activities: dict[str, Callable], workers: int = 4,
                      on_status=None, on_unit_done=None):
    ctx = LocalContext(on_status)

    def call(task: ActivityTask):
        try:
            check_stop()  # interrupted: no more activities start
            return orjson.loads(orjson.dumps(activities[task.name](task.payload)))
        except Exception as exc:
            raise ActivityFailed(f"activity {task.name!r} failed: {exc}") from exc

    gen = orchestrator(ctx, request)
    send, value = gen.send, None
    with cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="unit") as pool:
        while True:
            try:
                task = send(value)
            except StopIteration as stop:
                return stop.value
            try:
                if isinstance(task, ActivityTask):
                    value, send = call(task), gen.send
                elif isinstance(task, AllTask):
                    value, send = _all(pool, call, task.tasks, on_unit_done), gen.send
                else:
                    raise TypeError(f"orchestrator yielded {type(task).__name__}, not a task")
            except ActivityFailed as exc:
                value, send = exc, gen.throw


def _all(pool, call, tasks: list[ActivityTask], on_unit_done) -> list:
    futures = [pool.submit(call, t) for t in tasks]
    failures = []
    for fut in cf.as_completed(futures):
        if fut.cancelled():  # not started because another unit had failed
            continue
        exc = fut.exception()
        if exc is not None and not failures:
            for other in futures:  # fail fast: units not yet started are not started
                other.cancel()
        if exc is not None:
            failures.append(exc)
        if on_unit_done:
            on_unit_done(exc)
    if failures:
        first = next(f.exception() for f in futures if not f.cancelled() and f.exception() is not None)
        more = f" (and {len(failures) - 1} more failed)" if len(failures) > 1 else ""
        raise ActivityFailed(f"{first}{more}")
    return [f.result() for f in futures]
