"""The orchestrator under the Durable SDK's own replay engine: the function the app registers
(Orchestrator.create's handle, as the worker calls it) replayed over histories built here, in the
shape the Durable extension sends (ExecutionStarted carries `Version`)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from pipeline.request import orchestration_input, validate_request
from pipeline.telemetry import traceparent

T0 = dt.datetime(2026, 11, 24, 10, 0, tzinfo=dt.timezone.utc)


def orchestrator():
    from azure_shim import build_app

    return {f.get_function_name(): f for f in build_app().get_functions()}["pipeline"].get_user_function()


def request(max_attempts=3, interval=5, wave=32, processors=1):
    procs = [{"processor_name": "transform", "processor_type": "JSONL",
              "processor_config": {"src": {"type": "local", "path": "in/*.jsonl"}, "dest": {"type": "local", "path": "out/"},
                                   "columns": [{"name": "id", "path": "id"}]}}]
    if processors == 2:
        procs = [{"processor_name": "decompress", "processor_type": "zip",
                  "processor_config": {"src": {"type": "local", "path": "in/*.zip"}, "dest": {"type": "local", "path": "raw/"}}},
                 {**procs[0], "processor_config": {**procs[0]["processor_config"], "src": None}}]
        procs[1]["processor_config"].pop("src")
    body = {"config": {"sourcemart": "acme", "table": "events", "processors": procs},
            "retry": {"max_attempts": max_attempts, "interval_seconds": interval}, "max_parallel_units": wave}
    return orchestration_input(validate_request(body))


class History:
    """A Durable history, episode by episode, and the orchestrator replayed over it."""

    def __init__(self, req: dict):
        self.input = json.dumps(req)
        self.events: list[dict] = []
        self.minute = 0
        self._add(12)  # OrchestratorStarted
        self._add(0, Name="pipeline", Input=self.input, Version="")  # ExecutionStarted

    def _add(self, event_type: int, event_id: int = -1, **fields) -> None:
        ts = (T0 + dt.timedelta(minutes=self.minute)).isoformat().replace("+00:00", "Z")
        self.events.append({"EventType": event_type, "EventId": event_id, "IsPlayed": False, "Timestamp": ts, **fields})

    def scheduled(self, *ids_names) -> "History":
        for event_id, name in ids_names:
            self._add(4, event_id, Name=name)
        return self

    def next_episode(self) -> "History":
        self._add(13)  # OrchestratorCompleted
        for e in self.events:
            e["IsPlayed"] = True
        self.minute += 1
        self._add(12)
        return self

    def completed(self, event_id: int, result) -> "History":
        self._add(5, TaskScheduledId=event_id, Result=json.dumps(result))
        return self

    def failed(self, event_id: int, reason: str) -> "History":
        self._add(6, TaskScheduledId=event_id, Reason=reason, Details="")
        return self

    def timer(self, timer_id: int) -> "History":
        self._add(10, timer_id, FireAt="2026-11-24T10:00:05Z")
        self._add(11, TimerId=timer_id, FireAt="2026-11-24T10:00:05Z")
        return self

    def replay(self, fn=None) -> dict:
        context = {"history": self.events, "instanceId": "i-1", "isReplaying": False, "parentInstanceId": None,
                   "input": self.input, "upperSchemaVersion": 0}
        return json.loads((fn or orchestrator())(json.dumps(context)))


def flat(actions) -> list[dict]:
    return [a for group in actions for a in group]


def units(n):
    return [{"processor": {"processor_name": "transform"}, "src": {"location": {"type": "local", "path": f"in/{i}.jsonl"},
                                                                    "name": f"{i}.jsonl", "size": 10}} for i in range(n)]


def unit_result(i, rows):
    return {"outputs": [{"location": {"type": "local", "path": f"out/{i}.csv"}, "name": f"{i}.csv", "bytes": rows * 10}],
            "rows": rows, "rejects": 0}


def test_first_episode_lists_the_first_processor_with_retry_options():
    req = request(max_attempts=4, interval=7)
    state = History(req).replay()
    assert state["isDone"] is False
    (action,) = flat(state["actions"])
    assert action["actionType"] == 1 and action["functionName"] == "list"  # CallActivityWithRetry
    assert action["retryOptions"] == {"firstRetryIntervalInMilliseconds": 7000, "maxNumberOfAttempts": 4}
    # The first listing also carries the whole run: it checks the run's outputs for collisions.
    assert json.loads(action["input"]) == {"processor": req["config"]["processors"][0], "previous_outputs": None,
                                           "run": req["config"]["processors"]}
    assert state["customStatus"] == {"processor": 1, "of": 1, "name": "transform:JSONL", "stage": "listing"}


def test_fan_out_with_out_of_order_completions():
    h = History(request()).scheduled((0, "list")).next_episode().completed(0, units(3))
    state = h.replay()
    fanned = flat(state["actions"])[1:]
    assert [a["functionName"] for a in fanned] == ["transform"] * 3
    inputs = [json.loads(a["input"]) for a in fanned]
    assert [{k: v for k, v in u.items() if k != "telemetry"} for u in inputs] == units(3)
    # Each unit carries the run's labels and trace for its telemetry record and span (pipeline.telemetry).
    assert all(u["telemetry"] == {"run_id": "i-1", "sourcemart": "acme", "table": "events",
                                  "traceparent": traceparent("i-1")} for u in inputs)
    assert state["customStatus"]["stage"] == "running" and state["customStatus"]["units"] == 3
    h.scheduled((1, "transform"), (2, "transform"), (3, "transform"))
    for event_id, rows in [(3, 30), (1, 10)]:  # the last unit first, then the first: still waiting
        state = h.next_episode().completed(event_id, unit_result(event_id - 1, rows)).replay()
        assert state["isDone"] is False and len(flat(state["actions"])) == 4
    state = h.next_episode().completed(2, unit_result(1, 20)).replay()
    assert state["isDone"] is True
    out = state["output"]
    step = out["steps"][0]
    assert [r["rows"] for r in step["results"]] == [10, 20, 30]  # unit order, not completion order
    assert out["totals"] == {"units": 3, "outputs": 3, "bytes_written": 600, "rows": 60, "rejects": 0}
    assert state["customStatus"] == {"processor": 1, "of": 1, "name": "transform:JSONL", "stage": "finished",
                                     "units_done": 3, "units": 3, "src_bytes": 30}  # the units' sizes, for progress


def test_units_run_in_waves_and_the_next_processor_reads_the_outputs():
    h = History(request(wave=2, processors=2)).scheduled((0, "list")).next_episode().completed(0, units(3))
    state = h.replay()
    assert len(flat(state["actions"])) == 1 + 2  # the first wave only
    h.scheduled((1, "decompress"), (2, "decompress")).next_episode().completed(2, unit_result(1, 0)).completed(1, unit_result(0, 0))
    state = h.replay()
    assert len(flat(state["actions"])) == 1 + 2 + 1 and state["customStatus"]["units_done"] == 2
    state = h.scheduled((3, "decompress")).next_episode().completed(3, unit_result(2, 0)).replay()
    listing = flat(state["actions"])[-1]
    assert listing["functionName"] == "list"
    assert [o["name"] for o in json.loads(listing["input"])["previous_outputs"]] == ["0.csv", "1.csv", "2.csv"]


def test_a_failed_unit_is_retried_then_succeeds():
    h = History(request(max_attempts=3)).scheduled((0, "list")).next_episode().completed(0, units(1))
    h.replay()
    h.scheduled((1, "transform")).next_episode().failed(1, "Activity function 'transform' failed: reset by peer")
    state = h.replay()
    assert state["isDone"] is False and len(flat(state["actions"])) == 2  # the extension retries, no new action
    state = h.next_episode().timer(2).replay()  # the retry timer takes id 2
    assert state["isDone"] is False
    state = h.scheduled((3, "transform")).next_episode().completed(3, unit_result(0, 5)).replay()
    assert state["isDone"] is True and state["output"]["totals"]["rows"] == 5


def test_retries_exhausted_fail_the_orchestration_with_the_unit_message():
    h = History(request(max_attempts=2)).scheduled((0, "list")).next_episode().completed(0, units(2))
    h.replay()
    h.scheduled((1, "transform"), (2, "transform")).next_episode().completed(2, unit_result(1, 1))
    reason = "Activity function 'transform' failed: in/0.jsonl:7: not valid JSON: unexpected character"
    h.next_episode().failed(1, reason).timer(3).scheduled((4, "transform")).next_episode().failed(4, reason)
    assert h.replay()["isDone"] is False  # the SDK waits for the last retry timer, as Durable sends it
    h.next_episode().timer(5)
    with pytest.raises(Exception) as info:
        h.replay()
    message = str(info.value).split("\n\n$OutOfProcData$:")[0]
    assert message == ("processor 1 of 1 (transform:JSONL) failed: Activity function 'transform' failed: "
                       "in/0.jsonl:7: not valid JSON: unexpected character")


def test_replay_is_deterministic():
    h = History(request(processors=2)).scheduled((0, "list")).next_episode().completed(0, units(4))
    first = h.replay()
    second = h.replay()
    assert first == second
    h.events[0]["Timestamp"] = "2030-01-01T00:00:00Z"  # another day, another machine: same decisions
    assert h.replay()["actions"] == first["actions"]


def test_a_unit_that_reports_bad_data_fails_the_run_without_retries():
    h = History(request(max_attempts=3)).scheduled((0, "list")).next_episode().completed(0, units(2))
    h.replay()
    h.scheduled((1, "transform"), (2, "transform")).next_episode().completed(2, unit_result(1, 1))
    h.completed(1, {"failed": "in/0.jsonl:3: unexpected end of data", "outputs": []})
    with pytest.raises(Exception) as info:
        h.replay()
    assert str(info.value).split("\n\n$OutOfProcData$:")[0] == (
        "processor 1 of 1 (transform:JSONL) failed: in/0.jsonl:3: unexpected end of data "
        "(not retried: the data or the config is wrong)")
