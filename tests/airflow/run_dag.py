"""Run by an Airflow venv's python (the database must be migrated): dag.test() DAGs of a DAG folder,
one after the other in this process (argv[2]: dag ids separated by commas), and write, as JSON to
argv[3], each run's state, seconds, and each task instance's state, tries and XCom return value
(for one DAG id, that DAG's result at the top level)."""

import importlib.util
import json
import os
import sys
import time
from pathlib import Path

if os.environ.get("LEGACY_HTTP_PROVIDER"):  # a --target install of an old providers-http, in place of the venv's
    legacy = Path(os.environ["LEGACY_HTTP_PROVIDER"]) / "airflow" / "providers" / "http"
    spec = importlib.util.spec_from_file_location("airflow.providers.http", legacy / "__init__.py",
                                                  submodule_search_locations=[str(legacy)])
    sys.modules["airflow.providers.http"] = module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

try:  # Airflow 3
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.xcom import XComModel as XCom
except ImportError:  # Airflow 2
    from airflow.models.dagbag import DagBag
    from airflow.models.xcom import XCom


def xcom_value(row):
    """Airflow 3 keeps the value in a JSON column; Airflow 2 as JSON text (bytes or str)."""
    value = row.value.decode() if isinstance(row.value, bytes) else row.value
    try:
        return json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return value


from airflow.models import TaskInstance  # noqa: E402
from airflow.utils.session import create_session  # noqa: E402

bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
runs = {}
for dag_id in sys.argv[2].split(","):
    dag = bag.dags[dag_id]  # get_dag() would query the database
    started = time.perf_counter()
    run = dag.test()
    seconds = time.perf_counter() - started
    with create_session() as session:
        tis = session.query(TaskInstance).filter(TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == run.run_id).all()
        xcoms = {x.task_id: xcom_value(x) for x in session.query(XCom).filter(XCom.dag_id == dag.dag_id, XCom.run_id == run.run_id,
                                                                      XCom.key == "return_value")}
        tasks = {ti.task_id: {"state": str(ti.state.value if hasattr(ti.state, "value") else ti.state),
                              "try_number": ti.try_number, "xcom": xcoms.get(ti.task_id)} for ti in tis}
    runs[dag_id] = {"state": str(getattr(run.state, "value", run.state)), "run_id": run.run_id, "seconds": seconds,
                    "tasks": tasks, "operators": {t.task_id: type(t).__name__ for t in dag.tasks},
                    "http_provider": sys.modules["airflow.providers.http"].__file__}
with open(sys.argv[3], "w") as f:
    json.dump(runs[sys.argv[2]] if len(runs) == 1 else {"runs": runs}, f, default=str)
