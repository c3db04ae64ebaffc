"""DAGs for the sensor policy tests (tests/test_airflow.py), built from the factory's own parts
(dags/sourcemart_dags.py, loaded from SOURCEMART_FACTORY): its processors TaskGroup and its
DurableStatusSensor, against `local_runner serve` through the connections the test sets.

  sensor_not_found     a start that pushes an instance id the app never heard of -> "instance not found"
  sensor_unreachable   the status route on a port where nothing listens -> fails once the budget is spent
  sensor_refused_once  the processors TaskGroup through a proxy that refuses connections for a moment
                       right after the start -> the run succeeds
  sensor_times_out     processors that hang, a 4 s timeout -> the sensor fails and terminates the run
"""

import datetime as dt
import importlib.util
import json
import os

try:  # Airflow 3
    from airflow.providers.standard.operators.python import PythonOperator
except ImportError:  # Airflow 2
    from airflow.operators.python import PythonOperator

spec = importlib.util.spec_from_file_location("sourcemart_dags_factory", os.environ["SOURCEMART_FACTORY"])
factory = importlib.util.module_from_spec(spec)
spec.loader.exec_module(factory)
CASES = json.loads(os.environ["SENSOR_CASES"])  # {"config": ..., "hanging_config": ...}
DEFAULTS = {**json.loads(open(factory.PLAN).read())["defaults"], "functions_conn_id": "functions_via_proxy"}
START = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)


def pushed_start_and_sensor(dag_id: str, instance: str, conn_id: str, **sensor):
    with factory.DAG(dag_id=dag_id, schedule=None, start_date=START, catchup=False) as dag:
        with factory.TaskGroup("collect"):
            start = PythonOperator(task_id="start", python_callable=lambda: instance)
            wait = factory.DurableStatusSensor(task_id="wait", http_conn_id=conn_id, status_route="api/pipelines",
                                               start_task_id="collect.start", mode="reschedule", poke_interval=1,
                                               timeout=120, on_failure_callback=factory.terminate_on_failure, **sensor)
            start >> wait
    return dag


sensor_not_found = pushed_start_and_sensor("sensor_not_found", "no-such-instance", "sourcemart_functions",
                                           not_found_polls=3)
sensor_unreachable = pushed_start_and_sensor("sensor_unreachable", "unreachable-instance", "functions_unreachable",
                                             error_budget=2)

options = {k: DEFAULTS[k] for k in factory.OPTIONS} | {"poke_interval_s": 1, "max_poke_interval_s": 2}
with factory.DAG(dag_id="sensor_refused_once", schedule=None, start_date=START, catchup=False,
                 user_defined_filters={"instance_id": factory.instance_id}) as sensor_refused_once:
    factory.processors_task_group("collect", CASES["config"], DEFAULTS, options)

with factory.DAG(dag_id="sensor_times_out", schedule=None, start_date=START, catchup=False,
                 user_defined_filters={"instance_id": factory.instance_id}) as sensor_times_out:
    factory.processors_task_group("collect", CASES["hanging_config"], {**DEFAULTS, "functions_conn_id": "sourcemart_functions"},
                                  {**options, "timeout_s": 4})
