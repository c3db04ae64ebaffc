"""`make demo` = `python -m demo`: the whole chain on this machine, as a user runs it.

    Azurite (blob, containers landing and raw)       the storage the shipped sourcemarts name (RAW_STORAGE)
    two local HTTP APIs (demo/api.py)                 stand-ins for api.acme.example and billing.globex.example
    local_runner serve                                the Functions app's HTTP contract, with its function key
    Airflow 3.3 on 127.0.0.1                          what `airflow standalone` runs: scheduler, DAG
                                                      processor, triggerer, API server (LocalExecutor,
                                                      SQLite); dags/ as shipped, the connection
                                                      sourcemart_functions

then it unpauses the DAGs through Airflow's REST API (the schedule DAGs last: each then runs its
latest cron interval, which starts the chain), waits until every
DAG of the asset chain has a successful run (collectors, the shared pipeline, refiners, the
cross-sourcemart collector), prints a summary (DAG runs with durations, CSV files and rows in
Azurite, the UI's URL and login) and keeps running until Ctrl-C, which stops everything it started.
`--once` stops after the summary (exit 0 only if the whole chain succeeded): what the test runs.

The shipped sourcemarts run unchanged. Their origins and tokens come from settings, as an operator
would set them (pipeline/policy.py): PIPELINE_ORIGIN_OVERRIDES sends https://api.acme.example and
https://billing.globex.example to the local APIs, and the policy allows exactly those two local
origins plain http and a loopback address, and binds each token to its own API.

Everything lives under --workdir (default .demo/, emptied at each start): the children's output in
logs/, Airflow's home (metadata DB, task logs) in airflow/, Azurite's data in azurite/.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from demo.api import ACME_FILES, GLOBEX_FILES, LocalApi

ROOT = Path(__file__).resolve().parent.parent
AIRFLOW_BIN = ROOT / ".venv-airflow3" / "bin"
AZURITE = ROOT / "node_modules" / ".bin" / "azurite-blob"
PLAN = ROOT / "dags" / "sourcemarts.compiled.json"
# Azurite's documented development account: public, not a secret.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
CONTAINERS = ("landing", "raw")  # what the shipped sourcemarts write to


def say(text: str) -> None:
    print(f"[demo] {text}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what: str, check, timeout: float, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(every)
    raise TimeoutError(f"{what}: not ready after {timeout:.0f} s")


class Children:
    """The processes the demo started, each in its own process group (with whatever it starts in
    turn: the scheduler's task processes), output to logs/<name>.log."""

    def __init__(self, logs: Path):
        self.logs, self.procs = logs, []

    def start(self, name: str, argv: list[str], env: dict, cwd: Path = ROOT) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "wb")
        env = {**env, "DEMO_WORKDIR": str(self.logs.parent)}  # marks every process the demo started
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        self.procs.append((name, proc, log))
        return proc

    def check_alive(self) -> None:
        for name, proc, _ in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; see {self.logs / (name + '.log')}")

    def stop_all(self, grace: float = 20.0) -> None:
        for name, proc, _ in reversed(self.procs):
            if proc.poll() is None:
                say(f"stopping {name} (process group {proc.pid})")
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + grace
        for name, proc, log in reversed(self.procs):
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                say(f"{name} did not stop in {grace:.0f} s: killing it")
            try:  # whatever is left in the group (task processes, a component that ignored SIGTERM)
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(10)
            log.close()


class AirflowApi:
    """Airflow 3's REST API (v2) with a token from the simple auth manager."""

    def __init__(self, base: str, user: str, password: str):
        self.base, self.user, self.password, self.token = base, user, password, None

    def _request(self, method: str, path: str, body=None, auth: bool = True):
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.base + path, method=method, headers=headers,
                                     data=None if body is None else json.dumps(body).encode())
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"null")

    def login(self) -> None:
        self.token = self._request("POST", "/auth/token", {"username": self.user, "password": self.password},
                                   auth=False)["access_token"]

    def call(self, method: str, path: str, body=None):
        try:
            return self._request(method, path, body)
        except urllib.error.HTTPError as err:
            if err.code != 401:
                raise RuntimeError(f"Airflow API {method} {path}: {err.code} {err.read()[:500]!r}") from None
        self.login()  # the token expired
        return self._request(method, path, body)

    def healthy(self) -> bool:
        try:
            return self._request("GET", "/api/v2/monitor/health", auth=False) is not None
        except (OSError, ValueError):
            return False


def start_azurite(children: Children, workdir: Path) -> str:
    port = free_port()
    children.start("azurite", [str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location",
                               str(workdir / "azurite"), "--skipApiVersionCheck", "--disableTelemetry", "--loose"],
                   {**os.environ})
    conn = (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};")
    wait_until("Azurite", lambda: _port_open(port) or children.check_alive(), 60)
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(conn)
    for name in CONTAINERS:
        service.create_container(name)
    say(f"Azurite on 127.0.0.1:{port}, containers {', '.join(CONTAINERS)}")
    return conn


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def app_settings(storage: str, acme: LocalApi, globex: LocalApi, tokens: dict, keys: dict) -> dict:
    """The Functions app's settings for the demo: storage, tokens, keys, and the operator's policy
    with the two local APIs allowed explicitly (pipeline/policy.py)."""
    hosts = ",".join(api.origin.removeprefix("http://") for api in (acme, globex))
    return {
        "RAW_STORAGE": storage,
        **tokens,
        "LOCAL_HOST_FUNCTION_KEY": keys["function"],
        "LOCAL_HOST_SYSTEM_KEY": keys["system"],
        "PIPELINE_ALLOWED_SETTINGS": "RAW_STORAGE,ACME_API_TOKEN,GLOBEX_API_TOKEN",
        "PIPELINE_ORIGIN_OVERRIDES": f"https://api.acme.example={acme.origin},"
                                     f"https://billing.globex.example={globex.origin}",
        "PIPELINE_HEADER_ORIGINS": f"ACME_API_TOKEN={acme.origin},GLOBEX_API_TOKEN={globex.origin}",
        "PIPELINE_PLAIN_HTTP_HOSTS": hosts,
        "PIPELINE_PRIVATE_HOSTS": hosts,
        "PIPELINE_LOCAL_ROOTS": "",  # blob and http only, as in the app
    }


def start_serve(children: Children, settings: dict) -> int:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")}
    children.start("serve", [sys.executable, "-m", "local_runner", "serve", "--port", str(port)],
                   {**env, "PYTHONPATH": str(ROOT), **settings})
    wait_until("serve", lambda: _port_open(port) or children.check_alive(), 60)
    say(f"serve (the Functions app) on http://127.0.0.1:{port}, with its function key")
    return port


def start_airflow(children: Children, home: Path, port: int, serve_port: int, function_key: str) -> AirflowApi:
    home.mkdir(parents=True)
    password = secrets.token_urlsafe(12)
    # The simple auth manager reads its users' passwords from this file (admin:admin is its default user).
    (home / "simple_auth_manager_passwords.json.generated").write_text(json.dumps({"admin": password}))
    env = {
        "PATH": f"{AIRFLOW_BIN}:/usr/bin:/bin", "HOME": os.environ.get("HOME", str(home)), "PYTHONPATH": "",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "6",  # a 2-core laptop: task processes are ~150 MB and CPU-bound at start
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        # The connection, as an operator sets it: the app's URL, the function key as a header (HttpHook
        # sends extras as headers); from the environment, so the key is not stored in the metadata DB.
        "AIRFLOW_CONN_SOURCEMART_FUNCTIONS": f"http://127.0.0.1:{serve_port}?x-functions-key={function_key}",
        # Defence in depth: Airflow masks values of extras with these names wherever it logs them.
        "AIRFLOW__CORE__SENSITIVE_VAR_CONN_NAMES": "x-functions-key",
    }
    # What `airflow standalone` runs (its LocalExecutor and simple auth manager are Airflow 3's
    # defaults), started one by one: standalone cannot pass --skip-serve-logs, and the scheduler's
    # and triggerer's log servers would listen on every interface (the API server reads the task
    # logs from their files here). So everything the demo starts listens on 127.0.0.1 only.
    airflow = str(AIRFLOW_BIN / "airflow")
    migrate = subprocess.run([airflow, "db", "migrate"], cwd=home, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    (children.logs / "airflow-db-migrate.log").write_bytes(migrate.stdout)
    if migrate.returncode:
        raise RuntimeError(f"airflow db migrate failed; see {children.logs / 'airflow-db-migrate.log'}")
    for name, argv in (("scheduler", ["scheduler", "--skip-serve-logs"]), ("dag-processor", ["dag-processor"]),
                       ("triggerer", ["triggerer", "--skip-serve-logs"]),
                       ("api-server", ["api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"])):
        children.start(f"airflow-{name}", [airflow, *argv], env, cwd=home)
    api = AirflowApi(f"http://127.0.0.1:{port}", "admin", password)
    wait_until("Airflow's API server", lambda: api.healthy() or children.check_alive(), 600, every=2)
    api.login()
    say(f"Airflow 3 (scheduler, DAG processor, triggerer, API server) on http://127.0.0.1:{port}")
    return api


def register_dags(api: AirflowApi, children: Children, plan: dict) -> list[str]:
    """Wait until the DAG processor has parsed every DAG of the plan, then unpause them: the
    asset-driven DAGs first (a paused consumer is never queued for an asset event), the schedule
    DAGs last. Unpausing a schedule DAG is what starts the chain: with catchup=False Airflow runs its
    latest cron interval at once. A schedule DAG that gets no such run within a minute (another
    Airflow's timetable semantics) is triggered through the REST API. Returns the schedule DAGs."""
    dag_ids = [d["dag_id"] for d in plan["dags"]]
    schedules = [d["dag_id"] for d in plan["dags"] if "cron" in d["schedule"]]

    def all_parsed():
        children.check_alive()
        errors = api.call("GET", "/api/v2/importErrors")["import_errors"]
        if errors:
            raise RuntimeError(f"DAG import errors: {errors}")
        found = {d["dag_id"] for d in api.call("GET", "/api/v2/dags?limit=1000")["dags"]}
        return set(dag_ids) <= found

    wait_until("the DAG processor to parse dags/", all_parsed, 300, every=2)
    for dag_id in [d for d in dag_ids if d not in schedules] + schedules:
        api.call("PATCH", f"/api/v2/dags/{dag_id}?update_mask=is_paused", {"is_paused": False})
    say(f"{len(dag_ids)} DAGs parsed and unpaused (the asset-driven ones first, then {', '.join(schedules)})")

    def started():
        return {r["dag_id"] for r in api.call("GET", "/api/v2/dags/~/dagRuns?limit=1000")["dag_runs"]} >= set(schedules)

    try:
        wait_until("the schedule DAGs' first runs", started, 60, every=2)
    except TimeoutError:
        running = {r["dag_id"] for r in api.call("GET", "/api/v2/dags/~/dagRuns?limit=1000")["dag_runs"]}
        for dag_id in sorted(set(schedules) - running):
            api.call("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None})
            say(f"triggered {dag_id} through the REST API")
    return dag_ids


def wait_for_chain(api: AirflowApi, children: Children, dag_ids: list[str], timeout: float) -> list[dict]:
    """Until every DAG has a successful run (or one failed): the runs, one per DAG."""
    done: dict[str, dict] = {}

    def progress():
        children.check_alive()
        for run in api.call("GET", "/api/v2/dags/~/dagRuns?limit=1000")["dag_runs"]:
            if run["dag_id"] in dag_ids and run["dag_id"] not in done and run["state"] in ("success", "failed"):
                done[run["dag_id"]] = run
                say(f"{run['state']:>7}  {run['dag_id']}  ({_seconds(run):.1f} s, {run['run_type']})")
        failed = [r for r in done.values() if r["state"] == "failed"]
        return failed or len(done) == len(dag_ids)

    try:
        wait_until("the asset chain", progress, timeout, every=2)
    except TimeoutError:
        say(f"timed out; still waiting for: {', '.join(sorted(set(dag_ids) - set(done)))}")
    return [done.get(d, {"dag_id": d, "state": "missing"}) for d in dag_ids]


def _seconds(run: dict) -> float:
    from datetime import datetime

    if not run.get("start_date") or not run.get("end_date"):
        return float("nan")
    return (datetime.fromisoformat(run["end_date"]) - datetime.fromisoformat(run["start_date"])).total_seconds()


def csv_files(storage: str) -> dict[str, list[list[str]]]:
    from azure.storage.blob import BlobServiceClient

    raw = BlobServiceClient.from_connection_string(storage).get_container_client("raw")
    return {b.name: list(csv.reader(io.StringIO(raw.download_blob(b.name).readall().decode())))
            for b in raw.list_blobs() if b.name.endswith(".csv")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--once", action="store_true", help="stop after the summary (exit 1 if the chain failed)")
    parser.add_argument("--port", type=int, default=8080, help="Airflow's UI and API port on 127.0.0.1")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".demo")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for the whole chain")
    parser.add_argument("--summary", type=Path, help="also write the summary as JSON here")
    args = parser.parse_args(argv)
    for need, how in ((AIRFLOW_BIN / "airflow", "make .venv-airflow3/.installed"), (AZURITE, "make node_modules/.installed")):
        if not need.exists():
            print(f"{need} is missing: run `make demo` (or {how})", file=sys.stderr)
            return 2
    if _port_open(args.port):
        print(f"127.0.0.1:{args.port} is in use: stop what listens there, or pass --port", file=sys.stderr)
        return 2

    started = time.monotonic()
    workdir = args.workdir.resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    (workdir / "logs").mkdir(parents=True)
    children, apis = Children(workdir / "logs"), []
    # Ctrl-C (SIGINT, even if whoever started us ignored it) and SIGTERM both stop everything we started.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    plan = json.loads(PLAN.read_text())
    dag_ids = [d["dag_id"] for d in plan["dags"]]
    ok = False
    try:
        storage = start_azurite(children, workdir)
        tokens = {"ACME_API_TOKEN": f"Bearer demo-acme-{secrets.token_hex(12)}",
                  "GLOBEX_API_TOKEN": f"Bearer demo-globex-{secrets.token_hex(12)}"}
        acme, globex = LocalApi(ACME_FILES, tokens["ACME_API_TOKEN"]), LocalApi(GLOBEX_FILES, tokens["GLOBEX_API_TOKEN"])
        apis += [acme, globex]
        say(f"local APIs: https://api.acme.example -> {acme.origin}, https://billing.globex.example -> {globex.origin}")
        keys = {"function": os.environ.get("LOCAL_HOST_FUNCTION_KEY") or secrets.token_urlsafe(32),
                "system": os.environ.get("LOCAL_HOST_SYSTEM_KEY") or secrets.token_urlsafe(32)}
        serve_port = start_serve(children, app_settings(storage, acme, globex, tokens, keys))
        api = start_airflow(children, workdir / "airflow", args.port, serve_port, keys["function"])
        register_dags(api, children, plan)
        say(f"waiting for the asset chain ({len(dag_ids)} DAGs)")
        runs = wait_for_chain(api, children, dag_ids, args.timeout)
        # the chain: from the first DAG run's start to the last one's end, as Airflow recorded them
        stamps = [(r["start_date"], r["end_date"]) for r in runs if r.get("start_date") and r.get("end_date")]
        chain_seconds = _seconds({"start_date": min(a for a, _ in stamps), "end_date": max(b for _, b in stamps)}) \
            if stamps else float("nan")
        ok = all(r["state"] == "success" for r in runs)
        files = csv_files(storage)
        summary = {
            "ok": ok, "wall_s": round(time.monotonic() - started, 1), "chain_s": round(chain_seconds, 1),
            "dag_runs": [{"dag_id": r["dag_id"], "state": r["state"], "run_type": r.get("run_type"),
                          "seconds": round(_seconds(r), 1) if r.get("end_date") else None} for r in runs],
            "csv": {name: {"rows": len(rows) - 1, "content": rows} for name, rows in sorted(files.items())},
            "ui": {"url": f"http://127.0.0.1:{args.port}/", "user": "admin"},
            "workdir": str(workdir),
        }
        print_summary(summary, api.password)
        if args.summary:
            args.summary.write_text(json.dumps(summary, indent=1))
        if args.once:
            return 0 if ok else 1
        say("running until Ctrl-C (the UI stays up; the schedules keep their crons)")
        while True:
            children.check_alive()
            time.sleep(2)
    except KeyboardInterrupt:
        say("Ctrl-C: stopping everything the demo started")
        return 0 if ok or not args.once else 1
    except (RuntimeError, TimeoutError) as exc:
        say(f"failed: {exc}")
        return 1
    finally:
        for api_server in apis:
            api_server.stop()
        children.stop_all()
        say(f"stopped; logs and Airflow's home are in {workdir}")


def print_summary(summary: dict, password: str) -> None:
    print("\n== the chain " + ("succeeded" if summary["ok"] else "did NOT succeed") +
          f" in {summary['chain_s']} s (demo wall time so far {summary['wall_s']} s)")
    print(f"{'DAG run':<32} {'state':<8} {'seconds':>8}")
    for r in summary["dag_runs"]:
        print(f"{r['dag_id']:<32} {r['state']:<8} {r['seconds'] if r['seconds'] is not None else '-':>8}")
    print(f"\n{'CSV in Azurite (container raw)':<48} {'rows':>6}")
    for name, info in summary["csv"].items():
        print(f"{name:<48} {info['rows']:>6}")
    print(f"\nAirflow UI: {summary['ui']['url']}  login: admin / {password}\n", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
