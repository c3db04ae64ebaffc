"""Run by an Airflow venv's python (not pytest's): load a DAG folder with Airflow's own DagBag and
write, as JSON to argv[2], what each DAG really is: schedule, task ids, outlets, import errors, parse time."""

import json
import sys
import time

started = time.perf_counter()
try:
    from airflow.dag_processing.dagbag import DagBag  # Airflow 3
except ImportError:
    from airflow.models.dagbag import DagBag  # Airflow 2
bag = DagBag(dag_folder=sys.argv[1])
seconds = time.perf_counter() - started


def uris(assets):
    return sorted(a.uri for a in assets)


def schedule(dag):
    timetable = dag.timetable
    if type(timetable).__name__ in ("AssetTriggeredTimetable", "DatasetTriggeredTimetable"):
        condition = getattr(timetable, "asset_condition", None) or timetable.dataset_condition
        return {"assets": uris(condition.objects)}
    cron = getattr(dag, "schedule_interval", None)  # Airflow 2; Airflow 3 keeps dag.schedule
    return {"cron": cron if isinstance(cron, str) else dag.schedule}


out = {"seconds": seconds, "import_errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": {}}
for dag_id, dag in bag.dags.items():
    out["dags"][dag_id] = {
        "schedule": schedule(dag),
        "tasks": sorted(t.task_id for t in dag.tasks),
        "outlets": uris([o for t in dag.tasks for o in (t.outlets or [])]),
        "tags": sorted(dag.tags),
        "edges": sorted([t.task_id, d] for t in dag.tasks for d in t.downstream_task_ids),
        "is_paused_upon_creation": dag.is_paused_upon_creation,
        "sensors": {t.task_id: {"mode": t.mode, "poke_interval": t.poke_interval, "timeout": t.timeout,
                                "exponential_backoff": t.exponential_backoff,
                                "max_wait": t.max_wait.total_seconds() if t.max_wait else None,
                                "has_failure_callback": bool(t.on_failure_callback)}
                    for t in dag.tasks if hasattr(t, "poke")},
    }
with open(sys.argv[2], "w") as f:
    json.dump(out, f)
