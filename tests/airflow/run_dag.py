"""Run by an Airflow venv's python: dag.test() one DAG of a DAG folder (the database must be
migrated) and write, as JSON to argv[3], the run's state and each task instance's state and tries."""

import json
import sys
import time

try:
    from airflow.dag_processing.dagbag import DagBag  # Airflow 3
except ImportError:
    from airflow.models.dagbag import DagBag  # Airflow 2

bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
dag = bag.dags[sys.argv[2]]  # get_dag() would query the database
started = time.perf_counter()
run = dag.test()
seconds = time.perf_counter() - started

from airflow.models import TaskInstance  # noqa: E402
from airflow.utils.session import create_session  # noqa: E402

with create_session() as session:
    tis = session.query(TaskInstance).filter(TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == run.run_id).all()
    tasks = {ti.task_id: {"state": str(ti.state.value if hasattr(ti.state, "value") else ti.state), "try_number": ti.try_number}
             for ti in tis}
    xcom = None
with open(sys.argv[3], "w") as f:
    json.dump({"state": str(getattr(run.state, "value", run.state)), "run_id": run.run_id, "seconds": seconds,
               "tasks": tasks}, f)
