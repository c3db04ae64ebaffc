"""The HTTP starter, called as the Functions host calls it: a real func.HttpRequest and the real
DurableOrchestrationClient, built by the SDK from a client binding JSON whose rpcBaseUrl points at
a local server answering the extension's RPC calls (POST orchestrators/{name}[/{id}],
GET instances/{id}): azure_shim.local_host, the same server `local_runner serve` runs."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from urllib.parse import urlsplit

import pytest

from tests.conftest import http_file


@pytest.fixture
def app_server():
    from azure_shim import build_app
    from azure_shim.local_host.server import FunctionAppServer

    server = FunctionAppServer(build_app(), "127.0.0.1", 0, workers=2, hub_name="testhub")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()  # also closes the SDK client's shared aiohttp session


@pytest.fixture
def gate():
    """An HTTP source whose body is held back until the test opens the gate: a run stays Running."""
    opened = threading.Event()
    with http_file(b'{"id": 1}\n{"id": 2}\n', "events.jsonl", before=lambda n: opened.wait(30) and None) as url:
        yield url, opened
        opened.set()


def config(src: dict, dest) -> dict:
    return {"sourcemart": "acme", "table": "events", "processors": [
        {"processor_name": "transform", "processor_type": "JSONL",
         "processor_config": {"src": src, "dest": {"type": "local", "path": f"{dest}/"},
                              "columns": [{"name": "id", "path": "id"}]}}]}


def start(server, body) -> "func.HttpResponse":  # noqa: F821
    """Invoke the starter function the way the worker does, on the server's event loop."""
    import azure.functions as func

    fn = {f.get_function_name(): f for f in server.hub_functions}["start_pipeline"].get_user_function()
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = func.HttpRequest(method="POST", url=f"{server.base_url}/api/pipelines", headers={"Content-Type": "application/json"},
                           params={}, route_params={}, body=data)
    return asyncio.run_coroutine_threadsafe(fn(req=req, client=server.client_binding()), server.loop).result(30)


def wait_done(server, instance_id, timeout=30):
    return server.hub.wait(instance_id, timeout)


def test_start_answers_202_with_the_status_urls(app_server, tmp_path):
    (tmp_path / "in.jsonl").write_text('{"id": 1}\n{"id": 2}\n')
    resp = start(app_server, {"config": config({"type": "local", "path": str(tmp_path / "in.jsonl")}, tmp_path / "out")})
    assert resp.status_code == 202
    body = json.loads(resp.get_body())
    instance_id = body["id"]
    assert set(body) >= {"id", "statusQueryGetUri", "sendEventPostUri", "terminatePostUri", "purgeHistoryDeleteUri"}
    assert resp.headers["Location"] == body["statusQueryGetUri"]
    assert resp.headers["Retry-After"] == "10" and resp.headers["Content-Type"] == "application/json"
    status_url = urlsplit(body["statusQueryGetUri"])
    assert status_url.path == f"/runtime/webhooks/durabletask/instances/{instance_id}"
    assert "taskHub=testhub" in status_url.query
    inst = wait_done(app_server, instance_id)
    assert inst.runtime_status == "Completed", inst.output
    assert inst.output["totals"]["rows"] == 2
    assert (tmp_path / "out" / "in.csv").read_text() == "id\n1\n2\n"


@pytest.mark.parametrize("body, expected", [
    (b"{not json", "(root): the body is not a JSON document"),
    ({"config": {"processors": []}}, "config.processors: List should have at least 1 item after validation, not 0"),
    ({"config": {"processors": [{"processor_name": "transform", "processor_type": "JSONL",
                                 "processor_config": {"src": {"type": "local", "path": "x"}, "dest": {"type": "local", "path": "y/"},
                                                      "columns": [{"name": "a", "path": "a"}], "quoting": "sometimes"}}]}},
     "config.processors[0].processor_config.quoting: Input should be 'minimal', 'all', 'nonnumeric' or 'none' (got 'sometimes')"),
    ({"config": {"processors": [{"processor_name": "copy", "processor_type": "copy",
                                 "processor_config": {"src": {"type": "local", "path": "x"}, "dest": {"type": "local", "path": "y/"}}}]},
      "instance_id": "a/b"}, "instance_id: String should match pattern"),
    ({"config": {"processors": [{"processor_name": "copy", "processor_type": "copy",
                                 "processor_config": {"src": {"type": "local", "path": "x"}, "dest": {"type": "local", "path": "y/"}}}]},
      "retry": {"max_attempts": 0}}, "retry.max_attempts: Input should be greater than or equal to 1"),
])
def test_a_bad_request_is_400_with_json_paths_and_starts_nothing(app_server, body, expected):
    resp = start(app_server, body)
    assert resp.status_code == 400
    errors = json.loads(resp.get_body())["errors"]
    assert any(e.startswith(expected) for e in errors), errors
    assert app_server.hub.instances() == []


def test_a_retried_start_with_an_instance_id_does_not_start_twice(app_server, gate, tmp_path):
    url, opened = gate
    body = {"config": config({"type": "http", "url": url}, tmp_path / "out"), "instance_id": "acme-events-run-1"}
    first = start(app_server, body)
    assert first.status_code == 202 and json.loads(first.get_body())["id"] == "acme-events-run-1"
    inst = app_server.hub.get("acme-events-run-1")
    created = inst.created
    again = start(app_server, body)  # Airflow retried the POST while the run is going on
    assert again.status_code == 202 and again.get_body() == first.get_body()
    assert app_server.hub.get("acme-events-run-1") is inst and inst.runtime_status in ("Pending", "Running")
    opened.set()
    assert wait_done(app_server, "acme-events-run-1").runtime_status == "Completed"
    start(app_server, body)  # and once it has completed: still the same run, not a new one
    assert app_server.hub.get("acme-events-run-1") is inst and inst.created == created


def test_a_failed_instance_is_started_afresh_under_the_same_id(app_server, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": 1}\n{"id": \n')
    body = {"config": config({"type": "local", "path": str(src)}, tmp_path / "out"), "instance_id": "run-2",
            "retry": {"max_attempts": 1}}
    start(app_server, body)
    failed = wait_done(app_server, "run-2")
    assert failed.runtime_status == "Failed"
    assert f"{src}:2" in failed.output and "processor 1 of 1 (transform:JSONL) failed" in failed.output
    src.write_text('{"id": 1}\n{"id": 2}\n')
    time.sleep(0.01)
    start(app_server, body)
    fresh = wait_done(app_server, "run-2")
    assert fresh is not failed and fresh.runtime_status == "Completed"


def test_status_urls_carry_and_require_the_system_key(tmp_path):
    """With a system key (as the Durable extension has), management URLs carry code= and the
    status endpoint refuses a request without it; the client's RPC needs none."""
    import urllib.error
    import urllib.request

    from azure_shim import build_app
    from azure_shim.local_host.server import FunctionAppServer

    server = FunctionAppServer(build_app(), "127.0.0.1", 0, workers=1, hub_name="testhub", system_key="k3y")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        (tmp_path / "in.jsonl").write_text('{"id": 1}\n')
        resp = start(server, {"config": config({"type": "local", "path": str(tmp_path / "in.jsonl")}, tmp_path / "out")})
        url = json.loads(resp.get_body())["statusQueryGetUri"]
        assert url.endswith("&code=k3y")
        wait_done(server, json.loads(resp.get_body())["id"])
        assert urllib.request.urlopen(url).status == 200
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(url.replace("&code=k3y", ""))
        assert info.value.code == 401
    finally:
        server.shutdown()
        server.server_close()
