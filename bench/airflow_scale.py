"""Scale of the Airflow side: N synthetic sourcemarts -> compile time, plan size, and the time for
Airflow's own DagBag to parse dags/ with that plan (what the DAG processor does on every parse),
plus the parse a task run does with get_parsing_context() (only its own DAG).

    python -m bench.airflow_scale [--sourcemarts 300] [--tables 1000] [--rounds 3] [--airflow 3|2|both]

Needs the Airflow venvs `make test` builds (.venv-airflow3, .venv-airflow2). Medians of --rounds
interleaved runs; the machine is shared, so compare within one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from dag_compiler.compile import compile_sourcemarts, dumps

ROOT = Path(__file__).resolve().parent.parent

PARSE = """
import json, os, sys, time
t = time.perf_counter()
try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:
    from airflow.models.dagbag import DagBag
imported = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
done = time.perf_counter()
json.dump({"import_s": imported - t, "parse_s": done - imported, "dags": len(bag.dags),
           "errors": len(bag.import_errors), "tasks": sum(len(d.tasks) for d in bag.dags.values())}, open(sys.argv[2], "w"))
"""


def synthetic(n_sourcemarts: int, n_tables: int) -> list[tuple[str, dict]]:
    """Sourcemarts with tables spread evenly; every third one has a shared pipeline that unpacks its
    first two tables into the third (skip lists on), the rest are plain; every tenth table chains
    on a table of the previous sourcemart."""
    docs = []
    per = [n_tables // n_sourcemarts + (1 if i < n_tables % n_sourcemarts else 0) for i in range(n_sourcemarts)]

    def blob(path):
        return {"type": "blob", "connection": "RAW_STORAGE", "container": "raw", "path": path}

    for i, count in enumerate(per):
        sm = f"sm{i:04d}"
        tables = []
        for j in range(count):
            t = {"name": f"t{j}", "schedule": f"{j % 60} {i % 24} * * *",
                 "collector": {"processors": [{"processor_name": "copy", "processor_type": "copy", "processor_config": {
                     "src": {"type": "http", "url": f"https://api.example.com/{sm}/t{j}.zip"}, "dest": blob(f"{sm}/t{j}/")}}]},
                 "refiner": {"processors": [{"processor_name": "transform", "processor_type": "JSONL", "processor_config": {
                     "src": blob(f"{sm}/t{j}/*.jsonl"), "dest": blob(f"{sm}/t{j}/csv/"),
                     "columns": [{"name": "id", "path": "id"}, {"name": "v", "path": "a.b"}]}}], "stages": ["bronze", "silver"]}}
            if (i * 7 + j) % 10 == 0 and i > 0:
                t["collector"]["wait_on"] = [f"sm{i - 1:04d}/t1/refined"]
            tables.append(t)
        doc = {"sourcemart": sm, "tables": tables}
        if i % 3 == 0 and count >= 3:
            tables[2].pop("collector")
            tables[2].pop("schedule")
            doc["pipelines"] = [{"name": "unpack", "upstreams": ["t0", "t1"], "downstreams": ["t2"],
                                 "skip_upstreams_refiners": ["t0"], "skip_downstreams_collectors": ["t2"],
                                 "processors": [{"processor_name": "decompress", "processor_type": "zip", "processor_config": {
                                     "src": blob(f"{sm}/t*/*.zip"), "dest": blob(f"{sm}/t2/")}}]}]
            tables[0].pop("refiner")
        docs.append((f"sourcemarts/{sm}.json", doc))
    return docs


def parse(version: str, plan: Path, work: Path, only_dag: str | None = None) -> dict:
    python = ROOT / f".venv-airflow{version}" / "bin" / "python"
    out = work / "parse.json"
    home = work / f"home{version}"
    home.mkdir(exist_ok=True)
    env = {"PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "600", "SOURCEMART_DAGS_PLAN": str(plan)}
    if only_dag:
        env["_AIRFLOW_PARSING_CONTEXT_DAG_ID"] = only_dag
    proc = subprocess.run([str(python), "-c", PARSE, str(ROOT / "dags"), str(out)], env=env, cwd=home,
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(out.read_text())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sourcemarts", type=int, default=300)
    ap.add_argument("--tables", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--airflow", choices=["3", "2", "both"], default="both")
    args = ap.parse_args()
    versions = ["3", "2"] if args.airflow == "both" else [args.airflow]

    docs = synthetic(args.sourcemarts, args.tables)
    compile_times = []
    for _ in range(args.rounds):
        t = time.perf_counter()
        text = dumps(compile_sourcemarts(docs))
        compile_times.append(time.perf_counter() - t)
    plan_doc = json.loads(text)
    n_dags = len(plan_doc["dags"])
    print(f"{args.sourcemarts} sourcemarts, {args.tables} tables -> {n_dags} DAGs; compile median "
          f"{statistics.median(compile_times):.2f} s (rounds {', '.join(f'{x:.2f}' for x in compile_times)}); "
          f"plan {len(text.encode()) / 1e6:.1f} MB")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        plan = work / "plan.json"
        plan.write_text(text)
        one = plan_doc["dags"][len(plan_doc["dags"]) // 2]["dag_id"]
        results: dict[str, list] = {}
        for _ in range(args.rounds):  # interleaved: every variant once per round
            for v in versions:
                results.setdefault(f"airflow{v} full", []).append(parse(v, plan, work))
                results.setdefault(f"airflow{v} one DAG", []).append(parse(v, plan, work, one))
        print("| Airflow DagBag of dags/ | DAGs | tasks | parse s (median) | rounds | import s |")
        print("|---|---|---|---|---|---|")
        for name, runs in results.items():
            assert all(r["errors"] == 0 for r in runs), runs
            parse_s = [r["parse_s"] for r in runs]
            print(f"| {name} | {runs[0]['dags']} | {runs[0]['tasks']} | {statistics.median(parse_s):.2f} | "
                  f"{' / '.join(f'{x:.2f}' for x in parse_s)} | {statistics.median(r['import_s'] for r in runs):.2f} |")


if __name__ == "__main__":
    main()
