"""The one DAG factory: every DAG in the compiled plan (dags/sourcemarts.compiled.json, written at
deploy by `python -m dag_compiler`), built as the plan says. No dependency logic lives here: the
plan already holds each DAG's schedule (cron or assets), its tasks in order and its outlet, so a
scheduler parse is a JSON read and object construction. A task run builds only its own DAG
(get_parsing_context).

Tasks, by type in the plan:
  processors  a TaskGroup that runs processors on the Functions app: <group>.start POSTs the config
              (HttpOperator) and pushes the instance id to XCom; <group>.wait polls
              GET api/pipelines/<id> (the app's status route, the connection's function key as a
              header: no system key, no code= anywhere) in reschedule mode until Completed, and fails
              at once on Failed/Terminated; when the wait fails (timed out, or killed) it terminates
              the orchestration, so no run is left working for a DAG run that gave up on it
  stage       a refiner stage of the downstream platform (bronze, silver, edw, ...): the hook where
              its operators go; an EmptyOperator here
  marker      the DAG's last task, which updates its outlet asset

Targets Airflow 3 (airflow.sdk) and Airflow 2.11 (airflow.datasets), and providers-http with
HttpOperator or only its old name SimpleHttpOperator, through the import block below.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import time
from pathlib import Path
from urllib.parse import quote

import requests

try:  # Airflow 3 (its providers-http has HttpOperator)
    from airflow.providers.http.operators.http import HttpOperator
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG, Asset, TaskGroup, get_parsing_context
    from airflow.sdk.bases.sensor import BaseSensorOperator
    from airflow.sdk.exceptions import AirflowFailException
except ImportError:  # Airflow 2.11, with a providers-http that has HttpOperator or only its old name
    from airflow import DAG
    from airflow.datasets import Dataset as Asset
    from airflow.exceptions import AirflowFailException
    from airflow.operators.empty import EmptyOperator
    from airflow.sensors.base import BaseSensorOperator
    from airflow.utils.dag_parsing_context import get_parsing_context
    from airflow.utils.task_group import TaskGroup
    try:
        from airflow.providers.http.operators.http import HttpOperator
    except ImportError:
        from airflow.providers.http.operators.http import SimpleHttpOperator as HttpOperator
from airflow.providers.http.hooks.http import HttpHook

PLAN = Path(os.environ.get("SOURCEMART_DAGS_PLAN") or Path(__file__).with_name("sourcemarts.compiled.json"))
FINISHED_BADLY = ("Failed", "Terminated", "Canceled")
OPTIONS = ("poke_interval_s", "max_poke_interval_s", "timeout_s", "is_paused_upon_creation")


def instance_id(run_id: str, dag_id: str) -> str:
    """The Durable instance id of a DAG run's processors: stable across task retries (so a retried
    start does not start twice) and within the characters and length the app accepts."""
    raw = f"{dag_id}.{run_id}"
    safe = re.sub(r"[^A-Za-z0-9_.:-]", "-", raw)
    return safe if len(safe) <= 100 else f"{safe[:83]}-{hashlib.sha1(raw.encode()).hexdigest()[:16]}"


def started_instance(response) -> str:
    """The start's response filter: the instance id the app started (or found running). Only the id
    goes to XCom: the response's management URLs carry a system key (code=)."""
    return response.json()["id"]


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


class DurableStatusSensor(BaseSensorOperator):
    """Waits for the orchestration the start task started: GET <status_route>/<instance id> on the
    Functions app, with the connection's headers (its x-functions-key). Reschedule mode with
    exponential backoff (poke_interval, doubling up to max_wait) holds no worker slot while waiting.

    One poke tolerates what the real world does between two polls, and nothing more:
      * 404 (the app does not know the instance: it was lost, e.g. a local host restarted): polled
        again a few seconds apart; `not_found_polls` in a row fail with "instance not found"
        instead of waiting out the timeout;
      * connection errors, timeouts and 5xx: polled again with backoff; more than `error_budget` in
        a row fail with the last error;
      * any other answer (401: a wrong key, 400) fails at once.
    The counts live within one poke because a rescheduled sensor keeps no state between pokes; the
    retries inside it are seconds apart, so a slot is held only while something is wrong.
    """

    template_fields = ()
    _instance: str | None = None
    RETRY_DELAY_S = 2.0  # the first retry within a poke; doubled each time, up to MAX_RETRY_DELAY_S
    MAX_RETRY_DELAY_S = 16.0

    def __init__(self, *, http_conn_id: str, status_route: str, start_task_id: str, not_found_polls: int = 3,
                 error_budget: int = 4, request_timeout_s: float = 30.0, **kwargs):
        super().__init__(**kwargs)
        self.http_conn_id, self.status_route, self.start_task_id = http_conn_id, status_route, start_task_id
        self.not_found_polls, self.error_budget, self.request_timeout_s = not_found_polls, error_budget, request_timeout_s

    def poke(self, context) -> bool:
        instance = context["ti"].xcom_pull(task_ids=self.start_task_id)
        hook = HttpHook(method="GET", http_conn_id=self.http_conn_id)
        endpoint = f"{self.status_route}/{instance}"
        not_found = errors = 0
        delay = self.RETRY_DELAY_S
        while True:
            try:
                response = hook.run(endpoint, extra_options={"check_response": False, "timeout": self.request_timeout_s})
                problem = None if response.status_code < 500 else f"the app answered {response.status_code}"
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
                response, problem = None, f"{type(exc).__name__}: {exc}"
            if problem is not None:
                errors, not_found = errors + 1, 0
                if errors > self.error_budget:
                    raise AirflowFailException(f"orchestration {instance}: status unavailable after {errors} tries "
                                               f"in a row; last error: {problem}")
                self.log.warning("orchestration %s: %s; polling again in %g s (%d of %d errors tolerated)",
                                 instance, problem, delay, errors, self.error_budget)
            elif response.status_code == 404:
                not_found, errors = not_found + 1, 0
                if not_found >= self.not_found_polls:
                    raise AirflowFailException(f"orchestration {instance}: instance not found (the app answered 404 "
                                               f"to {not_found} polls in a row: it was lost or never started)")
                self.log.warning("orchestration %s: not found (%d of %d); polling again in %g s",
                                 instance, not_found, self.not_found_polls, delay)
            elif response.status_code in (200, 202):
                return orchestration_done(response)
            else:
                raise AirflowFailException(f"orchestration {instance}: the status route answered "
                                           f"{response.status_code}: {response.text[:300]}")
            time.sleep(delay)
            delay = min(delay * 2, self.MAX_RETRY_DELAY_S)

    def on_kill(self) -> None:
        # Killed mid-poke (marked failed or cleared while running): stop the orchestration too.
        terminate_orchestration(self, self._instance, "the Airflow task waiting for it was killed")

    def execute(self, context):
        self._instance = context["ti"].xcom_pull(task_ids=self.start_task_id)
        return super().execute(context)


def terminate_orchestration(sensor, instance: str | None, reason: str) -> None:
    """POST <status_route>/<id>/terminate with the connection's function key. A finished (410) or
    unknown (404) instance needs nothing; a failure here is logged, never raised over the task's own."""
    log = logging.getLogger("sourcemart_dags")
    if not instance:
        return
    try:
        hook = HttpHook(method="POST", http_conn_id=sensor.http_conn_id)
        response = hook.run(f"{sensor.status_route}/{instance}/terminate?reason={quote(reason)}", data="{}",
                            headers={"Content-Type": "application/json"},
                            extra_options={"check_response": False, "timeout": 30})
        log.warning("orchestration %s: terminate answered %s (%s)", instance, response.status_code, reason)
    except Exception as exc:  # noqa: BLE001  the task is failing already; say why this did not help
        log.error("orchestration %s: could not terminate it: %s: %s", instance, type(exc).__name__, exc)


def terminate_on_failure(context) -> None:
    """The wait task's failure callback (a timeout, a kill, or a failed orchestration: the app answers
    410 to the last, harmlessly)."""
    sensor = context["task"]
    instance = context["ti"].xcom_pull(task_ids=sensor.start_task_id)
    terminate_orchestration(sensor, instance, f"Airflow task {context['ti'].task_id} failed")


def processors_task_group(group_id: str, config: dict, defaults: dict, options: dict) -> TaskGroup:
    """Run a processors config on the Functions app and wait for it; see the module docstring."""
    # {% raw %} keeps Jinja away from the config; only the instance id is a template.
    body = ('{"config": {% raw %}' + json.dumps(config, separators=(",", ":")) + '{% endraw %}, '
            '"instance_id": "{{ run_id | instance_id(dag.dag_id) }}"}')
    with TaskGroup(group_id) as group:
        start = HttpOperator(task_id="start", http_conn_id=defaults["functions_conn_id"],
                             endpoint=defaults["start_route"], method="POST", data=body,
                             headers={"Content-Type": "application/json"}, response_filter=started_instance,
                             retries=2, retry_delay=dt.timedelta(seconds=30))
        wait = DurableStatusSensor(task_id="wait", http_conn_id=defaults["functions_conn_id"],
                                   status_route=defaults["start_route"], start_task_id=f"{group_id}.start",
                                   not_found_polls=defaults["not_found_polls"], error_budget=defaults["error_budget"],
                                   mode="reschedule", poke_interval=options["poke_interval_s"],
                                   exponential_backoff=True, max_wait=options["max_poke_interval_s"],
                                   timeout=options["timeout_s"], on_failure_callback=terminate_on_failure)
        start >> wait
    return group


def build_dag(spec: dict, defaults: dict) -> DAG:
    schedule = spec["schedule"].get("cron") or [Asset(uri) for uri in spec["schedule"]["assets"]]
    # The sourcemart's and the table's options (compiled into the plan) over the plan's defaults.
    options = {k: defaults[k] for k in OPTIONS} | spec.get("options", {})
    paused = {} if options["is_paused_upon_creation"] is None else {
        "is_paused_upon_creation": options["is_paused_upon_creation"]}
    with DAG(dag_id=spec["dag_id"], schedule=schedule, description=spec["description"],
             start_date=dt.datetime.fromisoformat(defaults["start_date"]).replace(tzinfo=dt.timezone.utc),
             catchup=False, max_active_runs=1, tags=[spec["sourcemart"], spec["kind"]],
             user_defined_filters={"instance_id": instance_id}, **paused) as dag:
        previous = None
        for task in spec["tasks"]:
            if task["type"] == "processors":
                current = processors_task_group(task["task_id"], task["config"], defaults, options)
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
