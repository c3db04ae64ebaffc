"""The one DAG factory: every DAG in the compiled plan (dags/sourcemarts.compiled.json, written at
deploy by `python -m dag_compiler`), built as the plan says. No dependency logic lives here: the
plan already holds each DAG's schedule (cron or assets), its tasks in order and its outlet, so a
scheduler parse is a JSON read and object construction. A task run builds only its own DAG
(get_parsing_context).

Tasks, by type in the plan:
  processors  a TaskGroup that runs processors on the Functions app: <group>.start POSTs the config
              (HttpOperator) and pushes the status URL's path and query to XCom; <group>.wait polls
              it (HttpSensor, reschedule mode) until Completed, and fails at once on Failed/Terminated
  stage       a refiner stage of the downstream platform (bronze, silver, edw, ...): the hook where
              its operators go; an EmptyOperator here
  marker      the DAG's last task, which updates its outlet asset

Targets Airflow 3 (airflow.sdk) and Airflow 2.11 (airflow.datasets) through the import below.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

try:  # Airflow 3
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG, Asset, TaskGroup, get_parsing_context
    from airflow.sdk.exceptions import AirflowFailException
    from airflow.sdk.log import mask_secret
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.datasets import Dataset as Asset
    from airflow.exceptions import AirflowFailException
    from airflow.operators.empty import EmptyOperator
    from airflow.utils.dag_parsing_context import get_parsing_context
    from airflow.utils.log.secrets_masker import mask_secret
    from airflow.utils.task_group import TaskGroup
from airflow.providers.http.operators.http import HttpOperator
from airflow.providers.http.sensors.http import HttpSensor

PLAN = Path(os.environ.get("SOURCEMART_DAGS_PLAN") or Path(__file__).with_name("sourcemarts.compiled.json"))
FINISHED_BADLY = ("Failed", "Terminated", "Canceled")


def instance_id(run_id: str, dag_id: str) -> str:
    """The Durable instance id of a DAG run's processors: stable across task retries (so a retried
    start does not start twice) and within the characters and length the app accepts."""
    raw = f"{dag_id}.{run_id}"
    safe = re.sub(r"[^A-Za-z0-9_.:-]", "-", raw)
    return safe if len(safe) <= 100 else f"{safe[:83]}-{hashlib.sha1(raw.encode()).hexdigest()[:16]}"


def _mask_code(path_and_query: str) -> None:
    # The status URL's code= is a system key of the Functions app: keep it out of every log line.
    for value in parse_qs(urlsplit(path_and_query).query).get("code", []):
        mask_secret(value)


def status_path(response) -> str:
    """The start's response filter: the path and query of statusQueryGetUri (HttpHook prefixes the
    connection's base URL, so the host stays in the connection)."""
    url = urlsplit(response.json()["statusQueryGetUri"])
    path = url.path.lstrip("/") + (f"?{url.query}" if url.query else "")
    _mask_code(path)
    return path


def orchestration_done(response) -> bool:
    """The sensor's response check: True on Completed; Failed/Terminated/Canceled fail the task at
    once, without retries, with the orchestration's own message; anything else keeps poking."""
    status = response.json()
    state = status.get("runtimeStatus")
    if state == "Completed":
        return True
    if state in FINISHED_BADLY:
        raise AirflowFailException(f"orchestration {status.get('instanceId')} {state}: {status.get('output')}")
    progress = status.get("customStatus") or {}
    print(f"orchestration {status.get('instanceId')} {state}: {json.dumps(progress)}")
    return False


class DurableStatusSensor(HttpSensor):
    """An HttpSensor on the status URL the start task pushed to XCom. The URL is read when poking,
    not rendered as a template field, so its code= never lands in the rendered fields; it is
    registered with the secrets masker before anything is logged."""

    def __init__(self, *, start_task_id: str, **kwargs):
        super().__init__(endpoint="", **kwargs)
        self.start_task_id = start_task_id

    def poke(self, context) -> bool:
        path = context["ti"].xcom_pull(task_ids=self.start_task_id)
        _mask_code(path)
        self.endpoint = path
        return super().poke(context)


def processors_task_group(group_id: str, config: dict, defaults: dict) -> TaskGroup:
    """Run a processors config on the Functions app and wait for it; see the module docstring."""
    # {% raw %} keeps Jinja away from the config; only the instance id is a template.
    body = ('{"config": {% raw %}' + json.dumps(config, separators=(",", ":")) + '{% endraw %}, '
            '"instance_id": "{{ run_id | instance_id(dag.dag_id) }}"}')
    with TaskGroup(group_id) as group:
        start = HttpOperator(task_id="start", http_conn_id=defaults["functions_conn_id"],
                             endpoint=defaults["start_route"], method="POST", data=body,
                             headers={"Content-Type": "application/json"}, response_filter=status_path,
                             retries=2, retry_delay=dt.timedelta(seconds=30))
        wait = DurableStatusSensor(task_id="wait", http_conn_id=defaults["functions_conn_id"], method="GET",
                                   start_task_id=f"{group_id}.start", response_check=orchestration_done,
                                   mode="reschedule", poke_interval=defaults["poke_interval_s"],
                                   timeout=defaults["timeout_s"])
        start >> wait
    return group


def build_dag(spec: dict, defaults: dict) -> DAG:
    schedule = spec["schedule"].get("cron") or [Asset(uri) for uri in spec["schedule"]["assets"]]
    with DAG(dag_id=spec["dag_id"], schedule=schedule, description=spec["description"],
             start_date=dt.datetime.fromisoformat(defaults["start_date"]).replace(tzinfo=dt.timezone.utc),
             catchup=False, max_active_runs=1, tags=[spec["sourcemart"], spec["kind"]],
             user_defined_filters={"instance_id": instance_id}) as dag:
        previous = None
        for task in spec["tasks"]:
            if task["type"] == "processors":
                current = processors_task_group(task["task_id"], task["config"], defaults)
            elif task["type"] == "marker":
                current = EmptyOperator(task_id=task["task_id"], outlets=[Asset(uri) for uri in spec["outlets"]])
            else:  # a refiner stage
                current = EmptyOperator(task_id=task["task_id"])
            if previous is not None:
                previous >> current
            previous = current
    return dag


def build_all(namespace: dict) -> None:
    plan = json.loads(PLAN.read_text(encoding="utf-8"))
    only = get_parsing_context().dag_id  # a task run needs just its own DAG
    for spec in plan["dags"]:
        if only is None or spec["dag_id"] == only:
            namespace[spec["dag_id"]] = build_dag(spec, plan["defaults"])


build_all(globals())
