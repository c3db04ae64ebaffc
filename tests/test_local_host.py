"""The local task hub (azure_shim.local_host) under load it must get right: fan-out where attempts
fail and complete in any order while retries interleave. The SDK checks every event id it replays
against the tasks it created, so a hub that numbered retry timers or rescheduled attempts wrongly
would stall or fail these runs."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

import pytest


def run_on_hub(app, orchestrator: str, input_json: str, workers: int):
    from azure_shim.local_host.taskhub import TaskHub

    hub = TaskHub(app.get_functions(), workers=workers)
    try:
        hub.start(orchestrator, "run", input_json)
        return hub.wait("run", 30)
    finally:
        hub.close()


def fan_out_app(fail_times: dict[int, int]):
    import azure.durable_functions as df

    app = df.DFApp()
    attempts: Counter = Counter()
    lock = threading.Lock()

    @app.orchestration_trigger(context_name="context")
    def fan(context: df.DurableOrchestrationContext):
        retry = df.RetryOptions(first_retry_interval_in_milliseconds=10, max_number_of_attempts=4)
        n = context.get_input()["n"]
        squares = yield context.task_all([context.call_activity_with_retry("work", retry, i) for i in range(n)])
        context.set_custom_status({"fanned": n})
        last = yield context.call_activity_with_retry("work", retry, 100)
        return squares + [last]

    @app.activity_trigger(input_name="i")
    def work(i: int) -> int:
        with lock:
            attempts[i] += 1
            attempt = attempts[i]
        time.sleep(random.random() * 0.02)
        if attempt <= fail_times.get(i, 0):
            raise RuntimeError(f"unit {i} attempt {attempt} failed")
        return i * i

    return app, attempts


@pytest.mark.parametrize("round_", range(4))
def test_fan_out_with_interleaved_retries_completes(round_):
    fail_times = {1: 1, 4: 2, 7: 3, 9: 1, 100: 1}
    app, attempts = fan_out_app(fail_times)
    inst = run_on_hub(app, "fan", '{"n": 12}', workers=4)
    assert inst.runtime_status == "Completed", inst.output
    assert inst.output == [i * i for i in range(12)] + [10000]
    assert inst.custom_status == {"fanned": 12}
    assert {i: attempts[i] for i in fail_times} == {i: n + 1 for i, n in fail_times.items()}


def test_a_unit_failing_every_attempt_fails_the_instance():
    app, attempts = fan_out_app({5: 4, 2: 1})
    inst = run_on_hub(app, "fan", '{"n": 8}', workers=4)
    assert inst.runtime_status == "Failed"
    assert inst.output.startswith("Orchestrator function 'fan' failed: Activity function 'work' failed: unit 5 attempt 4 failed")
    assert attempts[5] == 4


def race_app():
    """t1 fails while t2 completes; the orchestrator moves on (task_any) and schedules t3 while
    t1's retry is in flight: a new task and a retry timer take sequence numbers in one episode."""
    import azure.durable_functions as df

    app = df.DFApp()
    barrier = threading.Barrier(2)
    attempts: Counter = Counter()

    @app.orchestration_trigger(context_name="context")
    def race(context: df.DurableOrchestrationContext):
        retry = df.RetryOptions(first_retry_interval_in_milliseconds=20, max_number_of_attempts=3)
        t1 = context.call_activity_with_retry("step", retry, 1)
        t2 = context.call_activity_with_retry("step", retry, 2)
        yield context.task_any([t1, t2])
        r3 = yield context.call_activity_with_retry("step", retry, 3)
        r1 = yield t1
        return [r1, r3]

    @app.activity_trigger(input_name="i")
    def step(i: int) -> int:
        attempts[i] += 1
        if i in (1, 2) and attempts[i] == 1:
            barrier.wait(5)  # the failure of 1 and the success of 2 arrive together
        if i == 1 and attempts[i] == 1:
            raise RuntimeError("first attempt of 1 fails")
        return i * 10

    return app


@pytest.mark.parametrize("round_", range(8))
def test_a_retry_and_a_new_task_numbered_in_the_same_episode(round_):
    inst = run_on_hub(race_app(), "race", "null", workers=2)
    assert (inst.runtime_status, inst.output) == ("Completed", [10, 30])
