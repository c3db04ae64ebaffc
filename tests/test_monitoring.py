"""Application Insights through Azure Monitor's OpenTelemetry distro (azure_shim/monitoring.py): off
unless PIPELINE_AZURE_MONITOR is true (the distro is not even imported), and when on, the real
distro's exporter sends the telemetry records, with their fields as customDimensions, and the spans
to the ingestion endpoint of the connection string: here a local HTTP server standing in for it."""

from __future__ import annotations

import gzip
import http.server
import json
import os
import subprocess
import sys
import textwrap

from tests.conftest import ROOT, local_http_server

CHILD = textwrap.dedent("""
    import json, sys
    import function_app  # configures the distro when the setting says so
    print(json.dumps({"distro": "azure.monitor.opentelemetry" in sys.modules,
                      "sdk": "opentelemetry.sdk.trace" in sys.modules}), flush=True)
    if len(sys.argv) > 1:
        from opentelemetry import trace
        from opentelemetry._logs import get_logger_provider
        from local_runner.executor import run_orchestration
        from pipeline.activities import ACTIVITIES
        from pipeline.telemetry import observed_orchestration

        run_orchestration(observed_orchestration, {"config": json.loads(sys.argv[1])}, ACTIVITIES, workers=1)
        get_logger_provider().force_flush()
        trace.get_tracer_provider().force_flush()
""")


def run_app(env: dict, *args: str) -> tuple[dict, subprocess.CompletedProcess]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("APPLICATIONINSIGHTS_", "PIPELINE_AZURE"))}
    proc = subprocess.run([sys.executable, "-c", CHILD, *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**base, "PYTHONPATH": str(ROOT), **env})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[0]), proc


def test_the_distro_is_not_loaded_by_default():
    loaded, _ = run_app({})
    assert loaded == {"distro": False, "sdk": False}  # opentelemetry-api alone: spans are no-ops


def test_the_distro_knows_no_instrumentation_that_stays_on():
    from azure.monitor.opentelemetry._constants import _ALL_SUPPORTED_INSTRUMENTED_LIBRARIES

    from azure_shim.monitoring import INSTRUMENTATIONS

    assert set(_ALL_SUPPORTED_INSTRUMENTED_LIBRARIES) <= set(INSTRUMENTATIONS)


def test_records_and_spans_reach_the_ingestion_endpoint(tmp_path):
    received: list[dict] = []

    class Ingestion(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            items = json.loads(body)
            received.extend(items if isinstance(items, list) else [items])
            answer = json.dumps({"itemsReceived": len(received), "itemsAccepted": len(received), "errors": []}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    (tmp_path / "in.jsonl").write_text('{"id": 1}\n{"id": 2}\n')
    config = {"sourcemart": "acme", "table": "events", "processors": [
        {"processor_name": "transform", "processor_type": "JSONL",
         "processor_config": {"src": {"type": "local", "path": str(tmp_path / "in.jsonl")},
                              "dest": {"type": "local", "path": f"{tmp_path}/out/"},
                              "columns": [{"name": "id", "path": "id"}]}}]}
    with local_http_server(Ingestion) as server:
        loaded, proc = run_app({
            "PIPELINE_AZURE_MONITOR": "true",
            "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
                                                     f"IngestionEndpoint=http://127.0.0.1:{server.server_address[1]}/",
            # Nothing leaves this machine: no SDK self-telemetry, no cloud metadata probe.
            "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
            "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "azure_app_service",
            # The distro's default rate-limited sampler (5 traces/s) may leave a run's first spans
            # out; this test is about what gets exported, so every span is kept.
            "OTEL_TRACES_SAMPLER": "always_on",
        }, json.dumps(config))

    assert loaded == {"distro": True, "sdk": True}
    messages = [e["data"]["baseData"] for e in received if e["data"]["baseType"] == "MessageData"]
    assert messages and all(m["message"].startswith("pipeline.") for m in messages), messages  # "pipeline" loggers only
    unit = next(m["properties"] for m in messages if m["message"].startswith("pipeline.unit "))
    assert unit["outcome"] == "succeeded" and unit["processor"] == "transform:JSONL" and unit["rows"] == "2"
    assert unit["source"] == f"local:{tmp_path / 'in.jsonl'}" and unit["sourcemart"] == "acme"
    run_record = next(m["properties"] for m in messages if m["message"].startswith("pipeline.run "))
    assert run_record["run_id"] == unit["run_id"] and run_record["units"] == "1"
    spans = {e["data"]["baseData"]["name"]: e for e in received
             if e["data"]["baseType"] in ("RemoteDependencyData", "RequestData")}
    assert {"pipeline.unit", "pipeline.run"} <= set(spans), sorted(spans)
    # One operation (trace) for the run: Application Insights' end-to-end view groups by it.
    assert spans["pipeline.unit"]["tags"]["ai.operation.id"] == spans["pipeline.run"]["tags"]["ai.operation.id"]
