"""Run by an Airflow venv's python (database migrated): dag.test() one DAG, then read Airflow's own
asset queue (the rows the scheduler turns into runs of consuming DAGs) and write, as JSON to
argv[3], the run's state and the queued (asset uri, consuming dag_id) pairs."""

import json
import sys

try:
    from airflow.dag_processing.dagbag import DagBag  # Airflow 3
    from airflow.models.asset import AssetDagRunQueue as Queue, AssetModel as Model
    key = "asset_id"
except ImportError:
    from airflow.models.dagbag import DagBag  # Airflow 2
    from airflow.models.dataset import DatasetDagRunQueue as Queue, DatasetModel as Model
    key = "dataset_id"
from airflow.utils.session import create_session

bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
if key == "dataset_id":  # Airflow 2's dag.test() writes only its own DAG; the DAG processor writes all
    bag.sync_to_db()
run = bag.dags[sys.argv[2]].test()
with create_session() as session:
    rows = session.query(Queue).all()
    uris = {m.id: m.uri for m in session.query(Model).all()}
    queued = sorted([uris[getattr(r, key)], r.target_dag_id] for r in rows)
with open(sys.argv[3], "w") as f:
    json.dump({"state": str(getattr(run.state, "value", run.state)), "queued": queued}, f)
