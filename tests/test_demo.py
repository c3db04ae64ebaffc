"""`make demo` end to end, non-interactively (`python -m demo --once`): Azurite, the local APIs,
`serve` and Airflow 3.3 standalone as a user runs them, the shipped sourcemarts unchanged. Every
DAG of the asset chain succeeds, the CSVs hold the expected rows, nothing of the demo's outputs
holds a key or a code= value, and nothing the demo started is left running."""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

from demo.api import expected_csv_rows
from tests.conftest import ROOT, free_port


CODE = re.compile(r"(?<![A-Za-z0-9_])code=")  # a code= query parameter (not status_code=)


def processes_mentioning(text: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if text.encode() in cmdline or text.encode() in environ:
            found.append(int(pid))
    return found


def test_demo_once_runs_the_whole_chain_and_leaks_no_key(tmp_path):
    keys = {"LOCAL_HOST_FUNCTION_KEY": "fUnKeY-" + os.urandom(12).hex(), "LOCAL_HOST_SYSTEM_KEY": "sYsKeY-" + os.urandom(12).hex()}
    workdir, port = tmp_path / "demo", free_port()
    proc = subprocess.run([sys.executable, "-m", "demo", "--once", "--port", str(port), "--workdir", str(workdir),
                           "--summary", str(tmp_path / "summary.json"), "--timeout", "600"],
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **keys}, capture_output=True, text=True,
                          timeout=1200)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    print(f"\ndemo: wall {summary['wall_s']} s, chain {summary['chain_s']} s; "
          + ", ".join(f"{r['dag_id']} {r['seconds']} s" for r in summary["dag_runs"]))

    plan = json.loads((ROOT / "dags" / "sourcemarts.compiled.json").read_text())
    assert sorted(r["dag_id"] for r in summary["dag_runs"]) == sorted(d["dag_id"] for d in plan["dags"])
    assert {r["dag_id"]: r["state"] for r in summary["dag_runs"]} == {d["dag_id"]: "success" for d in plan["dags"]}
    assert {name: info["content"] for name, info in summary["csv"].items()} == expected_csv_rows()

    # No task log, XCom value, rendered field or scheduler output holds a key or a code= value.
    secrets = list(keys.values())
    outputs = [proc.stdout, proc.stderr] + [p.read_text(errors="replace") for p in workdir.rglob("*.log")]
    outputs += [p.read_text(errors="replace") for p in (workdir / "airflow" / "logs").rglob("*") if p.is_file()]
    assert len(outputs) > 20  # the task logs are there
    for text in outputs:
        for secret in secrets:
            assert secret not in text
        assert not CODE.search(text), CODE.search(text) and text[CODE.search(text).start() - 200:][:300]
    db = sqlite3.connect(workdir / "airflow" / "airflow.db")
    stored = [str(v) for (v,) in db.execute("select value from xcom")]
    stored += [str(row) for row in db.execute("select rendered_fields from rendered_task_instance_fields")]
    assert any(v for v in stored)  # the start tasks pushed the instance ids
    for value in stored:
        assert not CODE.search(value) and not any(s in value for s in secrets)
    raw_db = (workdir / "airflow" / "airflow.db").read_bytes()
    assert not any(s.encode() in raw_db for s in secrets)

    # Everything the demo started has stopped.
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0
    assert processes_mentioning(str(workdir)) == []


def test_ctrl_c_stops_everything_the_demo_started(tmp_path):
    """Ctrl-C (SIGINT to the demo) once Airflow is up: every child (Azurite, serve, Airflow's
    components and their task processes) is stopped, and the demo exits."""
    import signal
    import time

    workdir, port = tmp_path / "demo", free_port()
    proc = subprocess.Popen([sys.executable, "-m", "demo", "--port", str(port), "--workdir", str(workdir)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if "API server) on http://127.0.0.1" in line:
                break
        running = processes_mentioning(f"DEMO_WORKDIR={workdir}")
        assert len(running) >= 6, "".join(seen)  # Azurite, serve, Airflow's 4 components (and their children)
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=90)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, "".join(seen) + rest
    assert "Ctrl-C: stopping everything the demo started" in rest
    deadline = time.monotonic() + 10
    while processes_mentioning(str(workdir)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert processes_mentioning(str(workdir)) == []  # also every DEMO_WORKDIR=<workdir>
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0
