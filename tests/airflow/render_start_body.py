"""Run by an Airflow venv's python: render the start task's request body the way Airflow does (the
DAG's Jinja environment, with its user-defined filter) for one DAG of the plan SOURCEMART_DAGS_PLAN
names, and write {"body": ...} as JSON to argv[4]. argv: factory file, dag_id, run_id."""

import importlib.util
import json
import sys

spec = importlib.util.spec_from_file_location("sourcemart_dags", sys.argv[1])
factory = importlib.util.module_from_spec(spec)
spec.loader.exec_module(factory)
dag = getattr(factory, sys.argv[2])
start = next(t for t in dag.tasks if t.task_id.endswith(".start"))
body = start.render_template(start.data, {"run_id": sys.argv[3], "dag": dag}, dag.get_template_env())
with open(sys.argv[4], "w") as f:
    json.dump({"body": body}, f)
