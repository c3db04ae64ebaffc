"""dags/ under real Airflow: Airflow 3.3 (Python 3.13) and Airflow 2.11 (Python 3.12), each in its
own venv built by `make test`. Airflow runs in child processes (tests/airflow/*.py); pytest only
arranges and checks."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from dag_compiler.compile import compile_sourcemarts, dumps
from tests.conftest import AZURITE_KEY, ROOT, free_port, http_file, wait_for_port

VENVS = {"3": ROOT / ".venv-airflow3", "2": ROOT / ".venv-airflow2"}


def airflow_python(version: str) -> Path:
    python = VENVS[version] / "bin" / "python"
    if not python.exists():
        pytest.fail(f"Airflow {version} is not installed: run `make test` (it builds {VENVS[version].name})")
    return python


def airflow_env(home: Path, **more) -> dict:
    return {"PATH": f"{home.parent}/bin:/usr/bin:/bin", "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False", "PYTHONPATH": "", **more}


def run_airflow_script(version: str, home: Path, script: str, *args: str, env: dict | None = None, timeout=300) -> dict:
    out = home / f"{Path(script).stem}.json"
    proc = subprocess.run([str(airflow_python(version)), str(ROOT / "tests" / "airflow" / script), *args, str(out)],
                          cwd=home, env=airflow_env(home, **(env or {})), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    result["log"] = proc.stdout + proc.stderr
    return result


def expected_tasks(spec: dict) -> list[str]:
    ids = []
    for task in spec["tasks"]:
        ids += [f"{task['task_id']}.start", f"{task['task_id']}.wait"] if task["type"] == "processors" else [task["task_id"]]
    return sorted(ids)


@pytest.mark.parametrize("version", ["3", "2"])
def test_dag_folder_loads_and_each_dag_is_what_the_plan_says(version, tmp_path):
    found = run_airflow_script(version, tmp_path, "inspect_dagbag.py", str(ROOT / "dags"))
    assert found["import_errors"] == {}
    plan = json.loads((ROOT / "dags" / "sourcemarts.compiled.json").read_text())
    assert sorted(found["dags"]) == sorted(d["dag_id"] for d in plan["dags"])
    for spec in plan["dags"]:
        dag = found["dags"][spec["dag_id"]]
        assert dag["schedule"] == spec["schedule"], spec["dag_id"]
        assert dag["outlets"] == spec["outlets"], spec["dag_id"]
        assert dag["tasks"] == expected_tasks(spec), spec["dag_id"]
        assert dag["tags"] == sorted([spec["sourcemart"], spec["kind"]])
        chain = [t for t in (expected_tasks({"tasks": [x]}) for x in spec["tasks"])]
        flat = [t for group in chain for t in group]
        assert dag["edges"] == sorted([a, b] for a, b in zip(flat, flat[1:])), spec["dag_id"]  # one chain, in order


@pytest.mark.parametrize("version", ["3", "2"])
def test_the_start_task_keeps_only_the_instance_id(version, tmp_path):
    """The app's 202 carries management URLs with a system key (code=): none of it reaches XCom."""
    found = run_airflow_script(version, tmp_path, "start_filter.py", str(ROOT / "dags" / "sourcemart_dags.py"))
    assert found["filtered"] == "x"


@pytest.mark.parametrize("version", ["3", "2"])
def test_start_body_is_the_config_verbatim_and_the_instance_id(version, tmp_path):
    """Jinja renders only the instance id: a config holding template-like text goes out as it is."""
    sourcemart = {"sourcemart": "acme", "tables": [{"name": "t", "schedule": "@daily", "collector": {"processors": [
        {"processor_name": "transform", "processor_type": "JSONL", "processor_config": {
            "src": {"type": "local", "path": "in/*.jsonl"}, "dest": {"type": "local", "path": "out/"},
            "columns": [{"name": "{{ 7 * 7 }}", "path": "a"}, {"name": "{% if x %}y{% endif %}", "path": "b"}]}}]}}]}
    plan = compile_sourcemarts([("acme.json", sourcemart)])
    (tmp_path / "plan.json").write_text(dumps(plan))
    run_id = "scheduled__2026-11-24T02:00:00+00:00"
    found = run_airflow_script(version, tmp_path, "render_start_body.py", str(ROOT / "dags" / "sourcemart_dags.py"),
                               "acme.t.collector", run_id, env={"SOURCEMART_DAGS_PLAN": str(tmp_path / "plan.json")})
    body = json.loads(found["body"])
    assert body["config"] == plan["dags"][0]["tasks"][0]["config"]
    assert [c["name"] for c in body["config"]["processors"][0]["processor_config"]["columns"]] == [
        "{{ 7 * 7 }}", "{% if x %}y{% endif %}"]
    assert body["instance_id"] == "acme.t.collector.scheduled__2026-11-24T02:00:00-00:00"


@pytest.mark.parametrize("version", ["3", "2"])
def test_an_outlet_queues_the_dags_scheduled_on_it(version, tmp_path):
    """Airflow's own asset machinery, not the plan, decides what runs next: a Refiner that finishes
    queues the Collector of another sourcemart that waits on it (globex.invoices waits on
    acme/orders/refined and globex/accounts/refined)."""
    home = migrated_home(version, tmp_path)
    found = run_airflow_script(version, home, "asset_queue.py", str(ROOT / "dags"), "acme.orders.refiner")
    assert found["state"] == "success"
    assert found["queued"] == [["sourcemart://acme/orders/refined", "globex.invoices.collector"]]


# -- end to end: dag.test() -> local serve -> Azurite --------------------------------

def blob(container, path):
    return {"type": "blob", "connection": "RAW_STORAGE", "container": container, "path": path}


SYSTEM_KEY = "sYsKeY-" + os.urandom(8).hex()  # the status URLs' code=, which task logs must never show
FUNCTION_KEY = "fUnKeY-" + os.urandom(8).hex()  # every route of serve wants it, as Azure does


@pytest.fixture
def serve_app(azurite, tmp_path):
    port = free_port()
    log = open(tmp_path / "serve.log", "w")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAW_STORAGE": azurite, "LOCAL_HOST_SYSTEM_KEY": SYSTEM_KEY,
           "LOCAL_HOST_FUNCTION_KEY": FUNCTION_KEY}
    proc = subprocess.Popen([sys.executable, "-m", "local_runner", "-v", "serve", "--port", str(port)], cwd=ROOT,
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc)
        # The Airflow connection: the HTTP hook sends its extras as headers, so the key travels as
        # x-functions-key (as it would to Azure), never in a URL.
        yield f"http://127.0.0.1:{port}?x-functions-key={FUNCTION_KEY}"
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def migrated_home(version: str, tmp_path: Path) -> Path:
    home = tmp_path / f"airflow{version}"
    home.mkdir()
    proc = subprocess.run([str(airflow_python(version)), "-m", "airflow", "db", "migrate"], cwd=home,
                          env=airflow_env(home), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return home


@pytest.mark.parametrize("version", ["3", "2"])
def test_collector_dag_runs_processors_on_the_functions_app(version, serve_app, blob_env, tmp_path):
    home = migrated_home(version, tmp_path)
    client, c = blob_env
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("d/events.jsonl", "".join(json.dumps({"id": i, "kind": f"k{i % 3}"}) + "\n" for i in range(250)))
    client.get_blob_client(c, "landing/drop.zip").upload_blob(buf.getvalue())
    client.get_blob_client(c, "landing/broken.jsonl").upload_blob(b'{"id": 1}\n{"id": 2,\n')
    sourcemart = {"sourcemart": "e2e", "tables": [
        {"name": "events", "schedule": "@daily", "collector": {"processors": [
            {"processor_name": "decompress", "processor_type": "zip",
             "processor_config": {"src": blob(c, "landing/*.zip"), "dest": blob(c, "raw/")}},
            {"processor_name": "transform", "processor_type": "JSONL",
             "processor_config": {"dest": blob(c, "csv/"), "columns": [{"name": "id", "path": "id"}, {"name": "kind", "path": "kind"}]}}]}},
        {"name": "broken", "schedule": "@daily", "collector": {"processors": [
            {"processor_name": "transform", "processor_type": "JSONL",
             "processor_config": {"src": blob(c, "landing/broken.jsonl"), "dest": blob(c, "broken/"),
                                  "columns": [{"name": "id", "path": "id"}]}}]}}]}
    plan = tmp_path / "plan.json"
    plan.write_text(dumps(compile_sourcemarts([("e2e.json", sourcemart)], {"poke_interval_s": 1})))
    env = {"SOURCEMART_DAGS_PLAN": str(plan), "AIRFLOW_CONN_SOURCEMART_FUNCTIONS": serve_app}

    ok = run_airflow_script(version, home, "run_dag.py", str(ROOT / "dags"), "e2e.events.collector", env=env)
    assert ok["state"] == "success", ok["log"][-4000:]
    assert {t: s["state"] for t, s in ok["tasks"].items()} == {"collect.start": "success", "collect.wait": "success",
                                                                "collected": "success"}
    text = client.get_blob_client(c, "csv/drop/d/events.csv").download_blob().readall().decode()
    assert text.splitlines() == ["id,kind"] + [f"{i},k{i % 3}" for i in range(250)]
    assert AZURITE_KEY not in ok["log"]
    assert ok["tasks"]["collect.start"]["xcom"] == f"e2e.events.collector.{ok['run_id']}".replace("+", "-")
    for secret in (FUNCTION_KEY, SYSTEM_KEY, "code="):  # the sensor polls with the connection's header
        assert secret not in ok["log"] and secret not in json.dumps(ok["tasks"])

    bad = run_airflow_script(version, home, "run_dag.py", str(ROOT / "dags"), "e2e.broken.collector", env=env)
    assert bad["state"] == "failed"
    assert bad["tasks"]["collect.start"]["state"] == "success"
    assert bad["tasks"]["collect.wait"]["state"] == "failed" and bad["tasks"]["collect.wait"]["try_number"] == 1
    assert bad["tasks"]["collected"]["state"] == "upstream_failed"
    assert f"blob:RAW_STORAGE/{c}/landing/broken.jsonl:2" in bad["log"]  # the orchestration's own message
    assert "Failed" in bad["log"] and bad["seconds"] < 60  # failed fast, not at the sensor's timeout


@pytest.mark.parametrize("version", ["3", "2"])
def test_dag_options_reach_the_dags_and_their_sensors(version, tmp_path):
    sourcemart = {"sourcemart": "o", "dag_options": {"poke_interval_s": 3, "max_poke_interval_s": 20},
                  "tables": [{"name": "a", "schedule": "@daily", "collector": {"processors": [
                      {"processor_name": "copy", "processor_type": "copy", "processor_config": {
                          "src": {"type": "http", "url": "https://api.example.com/a.zip"}, "dest": blob("raw", "a/")}}]},
                      "dag_options": {"timeout_s": 900, "is_paused_upon_creation": False}}]}
    (tmp_path / "plan.json").write_text(dumps(compile_sourcemarts([("o.json", sourcemart)])))
    found = run_airflow_script(version, tmp_path, "inspect_dagbag.py", str(ROOT / "dags"),
                               env={"SOURCEMART_DAGS_PLAN": str(tmp_path / "plan.json")})
    dag = found["dags"]["o.a.collector"]
    assert dag["is_paused_upon_creation"] is False
    assert dag["sensors"] == {"collect.wait": {"mode": "reschedule", "poke_interval": 3, "timeout": 900,
                                               "exponential_backoff": True, "max_wait": 20.0,
                                               "has_failure_callback": True}}


# -- the sensor's policy against serve -------------------------------------------------

class RefusingProxy:
    """A TCP forwarder on 127.0.0.1 to serve that, as soon as it forwards a start (POST /api/pipelines),
    stops listening for `refuse_s` seconds: connections in that window are refused (ECONNREFUSED),
    as when the app's host restarts; then it listens again on the same port, and answers the first
    status poll after that with a 503 (a host still starting), the next ones from serve."""

    def __init__(self, target_port: int, refuse_s: float):
        self.target_port, self.refuse_s = target_port, refuse_s
        self.port, self.windows, self.stopped, self.answered_503 = free_port(), 0, False, False
        self.listener = self._listen()
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    def _listen(self) -> socket.socket:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(16)
        sock.settimeout(0.2)
        return sock

    def _accept_loop(self) -> None:
        while not self.stopped:
            listener = self.listener
            if listener is None:
                time.sleep(0.05)
                continue
            try:
                conn, _ = listener.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    def _reopen(self) -> None:
        if not self.stopped:
            self.listener = self._listen()

    def _relay(self, conn: socket.socket) -> None:
        conn.settimeout(30)
        first = conn.recv(65536)
        if first.startswith(b"POST /api/pipelines ") and self.windows == 0:
            self.windows += 1
            listener, self.listener = self.listener, None
            listener.close()  # from now on, connecting is refused
            threading.Timer(self.refuse_s, self._reopen).start()
        if self.windows == 1 and not self.answered_503 and first.startswith(b"GET /api/pipelines/"):
            self.answered_503 = True
            conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            conn.close()
            return
        upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=30)
        # serve checks that Host names it (DNS rebinding): say its address, as a reverse proxy would
        upstream.sendall(first.replace(f"Host: 127.0.0.1:{self.port}\r\n".encode(),
                                       f"Host: 127.0.0.1:{self.target_port}\r\n".encode(), 1))

        def pump(src, dst):
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        back = threading.Thread(target=pump, args=(upstream, conn), daemon=True)
        back.start()
        pump(conn, upstream)
        back.join(30)
        conn.close()
        upstream.close()

    def close(self) -> None:
        self.stopped = True
        if self.listener is not None:
            self.listener.close()


def serve_status(serve_uri: str, instance: str) -> tuple[int, dict]:
    base, _, query = serve_uri.partition("?")
    req = urllib.request.Request(f"{base}/api/pipelines/{instance}", headers={"x-functions-key": FUNCTION_KEY})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, {}


@pytest.mark.parametrize("version", ["3", "2"])
def test_sensor_policy_against_serve(version, serve_app, blob_env, tmp_path):
    """404s in a row fail with "instance not found" (not at the timeout); a connection refused for a
    moment and a 503 are tolerated; an unreachable app fails once the error budget is spent, with the last error;
    a sensor that times out terminates the orchestration (no orphaned run)."""
    home = migrated_home(version, tmp_path)
    client, c = blob_env
    client.get_blob_client(c, "landing/a.jsonl").upload_blob(b'{"id": 1}\n{"id": 2}\n')
    serve_port = int(serve_app.split("?")[0].rsplit(":", 1)[1])
    release = threading.Event()

    def transform(src, dest):
        return {"processors": [{"processor_name": "transform", "processor_type": "JSONL", "processor_config": {
            "src": src, "dest": blob(c, dest), "columns": [{"name": "id", "path": "id"}]}}]}

    proxy = RefusingProxy(serve_port, refuse_s=4)
    try:
        with http_file(b'{"id": 1}\n', before=lambda n: release.wait(60) and None) as hanging_url:
            cases = {"config": transform(blob(c, "landing/a.jsonl"), "csv/"),
                     "hanging_config": transform({"type": "http", "url": hanging_url}, "hang/")}
            env = {"SOURCEMART_FACTORY": str(ROOT / "dags" / "sourcemart_dags.py"), "SENSOR_CASES": json.dumps(cases),
                   "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "tests" / "airflow" / "sensor_dags"),
                   "AIRFLOW_CONN_SOURCEMART_FUNCTIONS": serve_app,
                   "AIRFLOW_CONN_FUNCTIONS_VIA_PROXY": f"http://127.0.0.1:{proxy.port}?x-functions-key={FUNCTION_KEY}",
                   "AIRFLOW_CONN_FUNCTIONS_UNREACHABLE": f"http://127.0.0.1:{free_port()}?x-functions-key={FUNCTION_KEY}"}
            out = run_airflow_script(version, home, "run_dag.py", str(ROOT / "tests" / "airflow" / "sensor_dags"),
                                     "sensor_not_found,sensor_unreachable,sensor_refused_once,sensor_times_out",
                                     env=env, timeout=500)
            runs, log = out["runs"], out["log"]
            (tmp_path / "airflow.log").write_text(log)  # for a failing assertion's reader
            hung = runs["sensor_times_out"]["tasks"]["collect.start"]["xcom"]
            hung_status = serve_status(serve_app, hung)
            release.set()
    finally:
        proxy.close()

    lost = runs["sensor_not_found"]
    assert lost["state"] == "failed" and lost["tasks"]["collect.wait"]["try_number"] == 1
    assert "orchestration no-such-instance: instance not found (the app answered 404 to 3 polls in a row" in log
    assert lost["seconds"] < 60  # not the sensor's timeout (120 s)
    serve_log = (tmp_path / "serve.log").read_text()
    assert serve_log.count("GET /api/pipelines/no-such-instance") == 3

    down = runs["sensor_unreachable"]
    assert down["state"] == "failed" and down["tasks"]["collect.wait"]["try_number"] == 1
    assert "orchestration unreachable-instance: status unavailable after 3 tries in a row; last error: ConnectionError" in log
    assert "Connection refused" in log

    flaky = runs["sensor_refused_once"]
    assert proxy.windows == 1
    assert flaky["state"] == "success", log[-4000:]
    assert flaky["tasks"]["collect.wait"] == {"state": "success", "try_number": 1, "xcom": None}
    flaky_id = flaky["tasks"]["collect.start"]["xcom"]
    assert f"orchestration {flaky_id}: ConnectionError" in log  # refused, then a 503, then recovered
    assert proxy.answered_503 and f"orchestration {flaky_id}: the app answered 503; polling again" in log
    assert client.get_blob_client(c, "csv/a.csv").download_blob().readall() == b"id\r\n1\r\n2\r\n"

    timed_out = runs["sensor_times_out"]
    assert timed_out["state"] == "failed" and timed_out["tasks"]["collect.wait"]["state"] == "failed"
    assert hung_status == (200, hung_status[1]) and hung_status[1]["runtimeStatus"] == "Terminated", hung_status
    assert hung_status[1]["output"] == "Airflow task collect.wait failed"

    for secret in (FUNCTION_KEY, SYSTEM_KEY, "code="):
        assert secret not in log and secret not in json.dumps(runs)


def test_the_factory_runs_where_only_simple_http_operator_exists(serve_app, blob_env, tmp_path):
    """providers-http 4.5.2 (before HttpOperator existed) on Airflow 2.11: the factory's import block
    takes SimpleHttpOperator, and a Collector runs against serve."""
    legacy = VENVS["2"] / "legacy-http"
    if not legacy.exists():
        pytest.fail("the legacy providers-http is not installed: run `make test` (it builds .venv-airflow2)")
    home = migrated_home("2", tmp_path)
    client, c = blob_env
    client.get_blob_client(c, "landing/a.jsonl").upload_blob(b'{"id": 7}\n{"id": 8}\n')
    sourcemart = {"sourcemart": "old", "tables": [{"name": "t", "schedule": "@daily", "collector": {"processors": [
        {"processor_name": "transform", "processor_type": "JSONL", "processor_config": {
            "src": blob(c, "landing/a.jsonl"), "dest": blob(c, "csv/"), "columns": [{"name": "id", "path": "id"}]}}]}}]}
    plan = tmp_path / "plan.json"
    plan.write_text(dumps(compile_sourcemarts([("old.json", sourcemart)], {"poke_interval_s": 1})))
    env = {"SOURCEMART_DAGS_PLAN": str(plan), "AIRFLOW_CONN_SOURCEMART_FUNCTIONS": serve_app,
           "LEGACY_HTTP_PROVIDER": str(legacy)}
    ok = run_airflow_script("2", home, "run_dag.py", str(ROOT / "dags"), "old.t.collector", env=env)
    assert ok["http_provider"].startswith(str(legacy))  # the old provider, not the venv's
    assert ok["operators"]["collect.start"] == "SimpleHttpOperator"
    assert ok["state"] == "success", ok["log"][-4000:]
    assert client.get_blob_client(c, "csv/a.csv").download_blob().readall() == b"id\r\n7\r\n8\r\n"
