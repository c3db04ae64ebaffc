"""Telemetry (pipeline/telemetry.py): the structured record of each unit and run, captured through
`logging` as Application Insights' handler would see it (the record's extra fields), its JSON text,
the spans in the OpenTelemetry SDK's in-memory exporter, the CLI's JSON lines, the Durable
orchestrator writing the run's record once (not while replaying), and secrets absent from all of it."""

from __future__ import annotations

import json
import logging
import socket

import pytest

from local_runner.executor import run_orchestration
from pipeline.activities import ACTIVITIES
from pipeline.telemetry import RUN_EVENT, UNIT_EVENT, observed_orchestration, trace_ids
from tests.conftest import header_origin, run_cli

SECRET = "s3cr3t-Token-Value-0123456789"
UNIT_FIELDS = {"run_id", "sourcemart", "table", "processor", "source", "bytes_in", "bytes_out", "outputs", "rows",
               "rejects", "seconds", "outcome"}
DRIFT_FIELDS = {"drift_unmapped", "drift_missing", "drift_type_changes"}  # a transform's, with drift on (the default)


@pytest.fixture(scope="module")
def spans():
    """The global tracer provider, set once for this process: an SDK one with an in-memory exporter."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture
def records(caplog, spans):
    spans.clear()
    caplog.set_level(logging.INFO, logger="pipeline.telemetry")

    def of(event):
        return [r for r in caplog.records if r.name == "pipeline.telemetry" and getattr(r, "event", None) == event]

    return of


def fields_of(record) -> dict:
    """The record's fields as a handler sees them (extra attributes), checked against its JSON text."""
    extra = {k: getattr(record, k) for k in UNIT_FIELDS | DRIFT_FIELDS | {"error", "units", "processors", "event"}
             if hasattr(record, k)}
    event, _, text = record.getMessage().partition(" ")
    assert event == record.event and json.loads(text) == {k: v for k, v in extra.items() if k != "event"}
    return extra


def transform_config(tmp_path, src: dict, **options) -> dict:
    return {"sourcemart": "acme", "table": "events", "processors": [
        {"processor_name": "transform", "processor_type": "JSONL",
         "processor_config": {"src": src, "dest": {"type": "local", "path": f"{tmp_path}/out/"},
                              "columns": [{"name": "id", "path": "id"}], **options}}]}


def run(config):
    return run_orchestration(observed_orchestration, {"config": config}, ACTIVITIES, workers=2)


def test_a_successful_unit_and_run(tmp_path, records, spans):
    (tmp_path / "in.jsonl").write_text("".join(f'{{"id": {i}}}\n' for i in range(2)) + '{"id": 2, "new": {"a": 1}}\n')
    manifest = run(transform_config(tmp_path, {"type": "local", "path": str(tmp_path / "in.jsonl")}))
    (unit,) = records(UNIT_EVENT)
    f = fields_of(unit)
    assert unit.levelno == logging.INFO and set(f) == UNIT_FIELDS | DRIFT_FIELDS | {"event"}
    assert (f["drift_unmapped"], f["drift_missing"], f["drift_type_changes"]) == (1, 0, 0)  # new.a
    assert f["outcome"] == "succeeded" and f["processor"] == "transform:JSONL"
    assert f["sourcemart"] == "acme" and f["table"] == "events"
    assert f["source"] == f"local:{tmp_path / 'in.jsonl'}"
    assert f["bytes_in"] == (tmp_path / "in.jsonl").stat().st_size
    assert f["bytes_out"] == (tmp_path / "out" / "in.csv").stat().st_size == manifest["totals"]["bytes_written"]
    assert (f["rows"], f["rejects"], f["outputs"]) == (3, 0, 1) and f["seconds"] >= 0
    (run_record,) = records(RUN_EVENT)
    r = fields_of(run_record)
    assert r["run_id"] == f["run_id"] and r["outcome"] == "succeeded"
    assert (r["processors"], r["units"], r["rows"], r["rejects"], r["bytes_out"]) == (1, 1, 3, 0, f["bytes_out"])
    # Spans: one per unit and one for the run, in the run's trace (derived from the run id).
    done = {s.name: s for s in spans.get_finished_spans()}
    assert set(done) == {"pipeline.unit", "pipeline.run"}
    trace_id, parent_id = trace_ids(f["run_id"])
    for span in done.values():
        assert span.context.trace_id == trace_id and span.parent.span_id == parent_id
        assert span.status.is_ok
    assert done["pipeline.unit"].attributes["rows"] == 3 and done["pipeline.unit"].attributes["outcome"] == "succeeded"
    assert done["pipeline.run"].attributes["run_id"] == f["run_id"]
    assert done["pipeline.run"].end_time >= done["pipeline.run"].start_time


def test_rejected_lines_within_the_budget_are_counted(tmp_path, records):
    (tmp_path / "in.jsonl").write_text("".join(f'{{"id": {i}}}\n' for i in range(199)) + "{broken\n")
    run(transform_config(tmp_path, {"type": "local", "path": str(tmp_path / "in.jsonl")}, on_error="skip"))
    f = fields_of(records(UNIT_EVENT)[0])
    assert (f["outcome"], f["rows"], f["rejects"]) == ("succeeded", 199, 1)
    assert fields_of(records(RUN_EVENT)[0])["rejects"] == 1


def test_a_rejected_unit_fails_for_good_and_the_run_fails(tmp_path, records, spans):
    (tmp_path / "in.jsonl").write_text('{"id": 1}\n{broken\n')
    with pytest.raises(Exception, match="in.jsonl:2"):
        run(transform_config(tmp_path, {"type": "local", "path": str(tmp_path / "in.jsonl")}))
    (unit,) = records(UNIT_EVENT)
    f = fields_of(unit)
    assert unit.levelno == logging.WARNING and f["outcome"] == "rejected"
    assert f["error"].startswith(f"local:{tmp_path / 'in.jsonl'}:2: ") and f["outputs"] == 0
    (run_record,) = records(RUN_EVENT)
    r = fields_of(run_record)
    assert run_record.levelno == logging.ERROR and r["outcome"] == "failed" and "in.jsonl:2" in r["error"]
    statuses = {s.name: s.status for s in spans.get_finished_spans()}
    assert not statuses["pipeline.unit"].is_ok and "in.jsonl:2" in statuses["pipeline.unit"].description
    assert not statuses["pipeline.run"].is_ok


@pytest.fixture
def dead_port_with_secret(monkeypatch):
    """An HTTP source on a port nobody listens on, whose URL path and header setting hold a secret."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("ACME_TOKEN", SECRET)
    header_origin(monkeypatch, "ACME_TOKEN", f"http://127.0.0.1:{port}")
    return {"type": "http", "url": f"http://127.0.0.1:{port}/feed-{SECRET}.jsonl",
            "headers_from_env": {"Authorization": "ACME_TOKEN"}}


def test_a_failed_unit_may_be_retried_and_no_field_holds_a_secret(tmp_path, records, spans, dead_port_with_secret):
    with pytest.raises(Exception, match="GET failed"):
        run(transform_config(tmp_path, dead_port_with_secret))
    (unit,) = records(UNIT_EVENT)
    f = fields_of(unit)
    assert f["outcome"] == "failed" and "GET failed" in f["error"] and "bytes_out" not in f
    assert f["source"].startswith("http:http://127.0.0.1:") and "***" in f["source"]
    everything = [json.dumps(fields_of(r)) + r.getMessage() for r in records(UNIT_EVENT) + records(RUN_EVENT)]
    everything += [json.dumps(dict(s.attributes)) + (s.status.description or "") for s in spans.get_finished_spans()]
    assert len(everything) == 4 and not any(SECRET in text for text in everything)


def test_the_cli_writes_json_lines_without_secrets(tmp_path, dead_port_with_secret):
    import os

    config = tmp_path / "config.json"
    config.write_text(json.dumps(transform_config(tmp_path, dead_port_with_secret)))
    env = {"ACME_TOKEN": SECRET, "PIPELINE_HEADER_ORIGINS": os.environ["PIPELINE_HEADER_ORIGINS"]}
    proc = run_cli("--log-format", "json", "run", "-q", str(config), env=env)
    assert proc.returncode == 1
    lines = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    by_event = {line.get("event"): line for line in lines}
    unit, run_record = by_event[UNIT_EVENT], by_event[RUN_EVENT]
    assert unit["level"] == "WARNING" and unit["logger"] == "pipeline.telemetry" and unit["outcome"] == "failed"
    assert set(unit) >= {"time", "message", "run_id", "processor", "source", "seconds", "error"}
    assert run_record["outcome"] == "failed" and run_record["run_id"] == unit["run_id"]
    assert SECRET not in proc.stderr and SECRET not in proc.stdout


@pytest.mark.parametrize("good", [True, False])
def test_text_logs_carry_records_only_when_asked(tmp_path, good):
    """The default text stderr stays what people read (a failure in one line); -v or json add the records."""
    (tmp_path / "in.jsonl").write_text('{"id": 1}\n' if good else '{"id": 1}\n{broken\n')
    config = tmp_path / "config.json"
    config.write_text(json.dumps(transform_config(tmp_path, {"type": "local", "path": str(tmp_path / "in.jsonl")})))
    proc = run_cli("run", "-q", str(config))
    assert proc.returncode == (0 if good else 1) and UNIT_EVENT not in proc.stderr and RUN_EVENT not in proc.stderr
    proc = run_cli("-v", "run", "-q", str(config))
    assert f" pipeline.telemetry: {UNIT_EVENT} " in proc.stderr and f" pipeline.telemetry: {RUN_EVENT} " in proc.stderr
    proc = run_cli("--log-format", "json", "run", "-q", str(config))
    events = [json.loads(line).get("event") for line in proc.stderr.splitlines() if line.startswith("{")]
    assert events.count(UNIT_EVENT) == 1 and events.count(RUN_EVENT) == 1


def test_the_durable_orchestrator_writes_the_run_record_once(records):
    """Replayed by the SDK's engine: no record while the run is under way, one when it ends."""
    from tests.test_azure_replay import History, request, unit_result, units

    h = History(request()).scheduled((0, "list")).next_episode().completed(0, units(2))
    assert h.replay()["isDone"] is False and not records(RUN_EVENT)
    h.scheduled((1, "transform"), (2, "transform")).next_episode().completed(1, unit_result(0, 4))
    assert h.replay()["isDone"] is False and not records(RUN_EVENT)
    state = h.next_episode().completed(2, unit_result(1, 6)).replay()
    assert state["isDone"] is True
    (run_record,) = records(RUN_EVENT)
    r = fields_of(run_record)
    assert (r["run_id"], r["outcome"], r["units"], r["rows"], r["bytes_out"]) == ("i-1", "succeeded", 2, 10, 100)
    assert r["seconds"] == 180.0  # three episodes a minute apart: from the history's timestamps (replay-safe), not the clock
