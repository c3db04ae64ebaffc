"""dags/ under real Airflow: Airflow 3.3 (Python 3.13) and Airflow 2.11 (Python 3.12), each in its
own venv built by `make test`. Airflow runs in child processes (tests/airflow/*.py); pytest only
arranges and checks."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from dag_compiler.compile import compile_sourcemarts, dumps
from tests.conftest import AZURITE_KEY, ROOT, free_port, wait_for_port

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
def test_status_url_code_is_registered_with_the_masker(version, tmp_path):
    found = run_airflow_script(version, tmp_path, "check_masking.py", str(ROOT / "dags" / "sourcemart_dags.py"))
    assert found["filtered"] == ("runtime/webhooks/durabletask/instances/x?taskHub=h&connection=Storage"
                                 "&code=sYsKeY-masking-check-0123456789")  # path and query: HttpHook adds the host
    assert "sYsKeY-masking-check" not in found["redacted"] and "code=***" in found["redacted"]


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
    proc = subprocess.Popen([sys.executable, "-m", "local_runner", "serve", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
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
    # the sensor polled the status URL with its code= (the server refuses it without); that the key
    # is masked in task logs is checked by test_status_url_code_is_registered_with_the_masker

    bad = run_airflow_script(version, home, "run_dag.py", str(ROOT / "dags"), "e2e.broken.collector", env=env)
    assert bad["state"] == "failed"
    assert bad["tasks"]["collect.start"]["state"] == "success"
    assert bad["tasks"]["collect.wait"]["state"] == "failed" and bad["tasks"]["collect.wait"]["try_number"] == 1
    assert bad["tasks"]["collected"]["state"] == "upstream_failed"
    assert f"blob:RAW_STORAGE/{c}/landing/broken.jsonl:2" in bad["log"]  # the orchestration's own message
    assert "Failed" in bad["log"] and bad["seconds"] < 60  # failed fast, not at the sensor's timeout
