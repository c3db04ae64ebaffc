"""`python -m local_runner serve` end to end: HTTP POST -> the app's starter -> the orchestrator
under the SDK's replay engine -> activities -> Azurite, polled over HTTP like Airflow polls."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import time
import urllib.error
import urllib.request
import zipfile

import pytest

from tests.conftest import AZURITE_KEY, ROOT, http_file, serve_process


FUNCTION_KEY = "fUnKeY-" + os.urandom(8).hex()


def http(method: str, url: str, body=None, headers=None) -> tuple[int, dict, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json", "x-functions-key": FUNCTION_KEY} if headers is None else headers
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


@pytest.fixture
def serve(azurite, tmp_path):
    """The CLI's serve command in a child process, with RAW_STORAGE naming Azurite."""
    with serve_process(tmp_path, {"RAW_STORAGE": azurite, "LOCAL_HOST_FUNCTION_KEY": FUNCTION_KEY}, "-v") as served:
        yield served


def poll(status_url: str, timeout: float = 60) -> tuple[list[int], dict]:
    codes = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code, _, body = http("GET", status_url)
        codes.append(code)
        if code != 202:
            return codes, json.loads(body)
        time.sleep(0.2)
    raise TimeoutError(status_url)


def blob_loc(container, path):
    return {"type": "blob", "connection": "RAW_STORAGE", "container": container, "path": path}


def events(day: int, n: int) -> bytes:
    return b"".join(json.dumps({"id": f"{day}-{i}", "user": {"name": f"u{i % 5}"}, "tags": ["a"] * (i % 3)}).encode()
                    + b"\n" for i in range(n))


def test_post_poll_completed_csvs_in_azurite(serve, blob_env):
    base, log = serve
    client, c = blob_env
    sizes = {1: 700, 2: 300, 3: 1200}
    for day, n in sizes.items():
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(f"part-a/events-{day}.jsonl", events(day, n))
            zf.writestr(f"part-b/events-{day}.jsonl", events(day + 10, n // 2))
            zf.writestr("README.txt", "not data")
        client.get_blob_client(c, f"landing/acme-2024-01-0{day}.zip").upload_blob(buf.getvalue())
    config = {"sourcemart": "acme", "table": "events", "processors": [
        {"processor_name": "decompress", "processor_type": "zip",
         "processor_config": {"src": blob_loc(c, "landing/acme-*.zip"), "dest": blob_loc(c, "raw/"), "members": "**/*.jsonl"}},
        {"processor_name": "transform", "processor_type": "JSONL",
         "processor_config": {"dest": blob_loc(c, "csv/"), "columns": [
             {"name": "id", "path": "id"}, {"name": "user", "path": "user.name"}, {"name": "tags", "path": "tags"}]}}]}

    code, headers, body = http("POST", f"{base}/api/pipelines", {"config": config, "instance_id": "acme-events-1",
                                                                  "max_parallel_units": 4})
    assert code == 202, body
    started = json.loads(body)
    assert headers["Location"] == started["statusQueryGetUri"] and started["id"] == "acme-events-1"
    codes, status = poll(started["statusQueryGetUri"])
    assert codes[-1] == 200 and set(codes[:-1]) <= {202}
    assert status["runtimeStatus"] == "Completed", status["output"]
    assert status["instanceId"] == "acme-events-1" and status["name"] == "pipeline"
    out = status["output"]
    assert [s["units"] for s in out["steps"]] == [3, 6]
    assert out["totals"]["rows"] == sum(n + n // 2 for n in sizes.values())
    assert status["customStatus"] == {"processor": 2, "of": 2, "name": "transform:JSONL", "stage": "finished",
                                      "units_done": 6, "units": 6,
                                      "src_bytes": out["steps"][0]["bytes_written"]}  # what it reads: step 1's outputs

    names = sorted(b.name for b in client.get_container_client(c).list_blobs(name_starts_with="csv/"))
    assert names == sorted(f"csv/acme-2024-01-0{d}/{p}/events-{d}.csv" for d in sizes for p in ("part-a", "part-b"))
    for day, n in sizes.items():
        for part, first, count in (("part-a", day, n), ("part-b", day + 10, n // 2)):
            text = client.get_blob_client(c, f"csv/acme-2024-01-0{day}/{part}/events-{day}.csv").download_blob().readall()
            rows = list(csv.reader(io.StringIO(text.decode())))
            assert rows[0] == ["id", "user", "tags"]
            assert rows[1:] == [[f"{first}-{i}", f"u{i % 5}", json.dumps(["a"] * (i % 3), separators=(",", ":"))
                                 if i % 3 else "[]"] for i in range(count)]
    log.seek(0)
    assert AZURITE_KEY not in log.read()


def test_a_failing_pipeline_is_failed_with_the_place_named(serve, blob_env):
    base, log = serve
    client, c = blob_env
    client.get_blob_client(c, "landing/bad.jsonl").upload_blob(b'{"id": 1}\n{"id": 2}\n{"id": \n')
    config = {"processors": [{"processor_name": "transform", "processor_type": "JSONL",
                              "processor_config": {"src": blob_loc(c, "landing/*.jsonl"), "dest": blob_loc(c, "csv/"),
                                                   "columns": [{"name": "id", "path": "id"}]}}]}
    code, _, body = http("POST", f"{base}/api/pipelines", {"config": config, "retry": {"max_attempts": 2, "interval_seconds": 0.2}})
    assert code == 202
    codes, status = poll(json.loads(body)["statusQueryGetUri"])
    assert codes[-1] == 200 and status["runtimeStatus"] == "Failed"
    assert status["output"].startswith("Orchestrator function 'pipeline' failed: processor 1 of 1 (transform:JSONL) failed:")
    assert f"blob:RAW_STORAGE/{c}/landing/bad.jsonl:3: unexpected end of data" in status["output"]
    assert "(not retried: the data or the config is wrong)" in status["output"]
    # the README's example failure message is this one, word for word (container "raw" there)
    example = re.search(r'"output": "(Orchestrator[^\n]*)\n#\s+(blob:[^\n]*)"\n', (ROOT / "README.md").read_text())
    assert status["output"] == f"{example[1]} {example[2]}".replace("RAW_STORAGE/raw/", f"RAW_STORAGE/{c}/")
    log.seek(0)
    assert "attempt 1 failed" not in log.read()  # a bad line stays bad: one attempt
    assert not list(client.get_container_client(c).list_blobs(name_starts_with="csv/"))  # nothing half-written
    assert http("GET", f"{base}/runtime/webhooks/durabletask/instances/no-such-run")[0] == 404
    assert http("POST", f"{base}/api/pipelines", {"config": {"processors": "x"}})[0] == 400


@pytest.fixture
def flaky_source():
    """An HTTP source that answers 503 to its first 4 GETs (the transport's own retries: 1 + 3), then
    serves the file: a transient failure that outlasts the transport's retries."""
    gets = []

    def before(n):
        gets.append(n)
        return 503 if n <= 4 else None

    with http_file(b'{"id": 1}\n{"id": 2}\n{"id": 3}\n', before=before) as url:
        yield url, gets


def test_a_transient_failure_is_retried_by_durable(serve, blob_env, flaky_source):
    base, log = serve
    client, c = blob_env
    url, gets = flaky_source
    config = {"processors": [{"processor_name": "transform", "processor_type": "JSONL",
                              "processor_config": {"src": {"type": "http", "url": url}, "dest": blob_loc(c, "csv/"),
                                                   "columns": [{"name": "id", "path": "id"}]}}]}
    code, _, body = http("POST", f"{base}/api/pipelines", {"config": config, "retry": {"max_attempts": 3, "interval_seconds": 0.2}})
    assert code == 202
    _, status = poll(json.loads(body)["statusQueryGetUri"])
    assert status["runtimeStatus"] == "Completed", status["output"]
    assert len(gets) == 5  # 4 answered 503 (the transport retried 3 times), then Durable's retried attempt
    log.seek(0)
    assert "transform attempt 1 failed; retrying in 0.2 s" in log.read()
    assert client.get_blob_client(c, "csv/feed.csv").download_blob().readall() == b"id\r\n1\r\n2\r\n3\r\n"


def test_status_route_answers_like_the_status_url_with_the_function_key(serve, blob_env):
    """GET /api/pipelines/{id}: what Airflow polls, with the function key in a header (no system key
    in any URL): the same codes and body as statusQueryGetUri."""
    base, log = serve
    client, c = blob_env
    client.get_blob_client(c, "landing/a.jsonl").upload_blob(b'{"id": 1}\n{"id": 2}\n')
    config = {"processors": [{"processor_name": "transform", "processor_type": "JSONL",
                              "processor_config": {"src": blob_loc(c, "landing/a.jsonl"), "dest": blob_loc(c, "csv/"),
                                                   "columns": [{"name": "id", "path": "id"}]}}]}
    code, _, body = http("POST", f"{base}/api/pipelines", {"config": config, "instance_id": "status-route-1"})
    assert code == 202
    codes, via_route = poll(f"{base}/api/pipelines/status-route-1")
    assert codes[-1] == 200 and set(codes[:-1]) <= {202} and via_route["runtimeStatus"] == "Completed"
    _, via_url = poll(json.loads(body)["statusQueryGetUri"])
    assert via_route == via_url  # same fields, same values
    assert set(via_route) == {"name", "instanceId", "runtimeStatus", "input", "customStatus", "output",
                              "createdTime", "lastUpdatedTime"}
    assert http("GET", f"{base}/api/pipelines/no-such-run")[0] == 404
    assert http("GET", f"{base}/api/pipelines/status-route-1", headers={})[0] == 401  # the function key is required
    system_key = json.loads(body)["statusQueryGetUri"].rsplit("code=", 1)[1]
    assert http("GET", f"{base}/api/pipelines/status-route-1?code={system_key}", headers={})[0] == 401


def test_terminate_route_stops_a_running_instance(serve, blob_env):
    base, log = serve
    client, c = blob_env
    release = __import__("threading").Event()
    with http_file(b'{"id": 1}\n', before=lambda n: release.wait(30) and None) as url:
        config = {"processors": [{"processor_name": "transform", "processor_type": "JSONL",
                                  "processor_config": {"src": {"type": "http", "url": url}, "dest": blob_loc(c, "csv/"),
                                                       "columns": [{"name": "id", "path": "id"}]}}]}
        code, _, body = http("POST", f"{base}/api/pipelines", {"config": config, "instance_id": "to-terminate"})
        assert code == 202
        assert http("GET", f"{base}/api/pipelines/to-terminate")[0] == 202
        assert http("POST", f"{base}/api/pipelines/to-terminate/terminate?reason=the+DAG+run+gave+up", {})[0] == 202
        codes, status = poll(f"{base}/api/pipelines/to-terminate", timeout=20)
        assert codes[-1] == 200 and status["runtimeStatus"] == "Terminated" and status["output"] == "the DAG run gave up"
        assert http("POST", f"{base}/api/pipelines/to-terminate/terminate", {})[0] == 410  # already finished
        assert http("POST", f"{base}/api/pipelines/no-such-run/terminate", {})[0] == 404
        assert http("POST", f"{base}/api/pipelines/to-terminate/terminate", {},
                    headers={"Content-Type": "application/json"})[0] == 401
        release.set()  # the unit that was running finishes (as on Azure: terminate does not kill activities)
        # a cleared task's new try starts a terminated instance afresh under the same id
        assert http("POST", f"{base}/api/pipelines", {"config": config, "instance_id": "to-terminate"})[0] == 202
        _, status = poll(f"{base}/api/pipelines/to-terminate")
    assert status["runtimeStatus"] == "Completed", status["output"]
