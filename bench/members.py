"""Member-count scaling: a zip of N tiny members through the real CLI, to local disk and to Azurite.

    python -m bench.members [--members 100000 10000] [--dest local blob] [--rounds 1] [--transform]

For each member count it writes one zip of N tiny JSONL members (deflate), then runs
`python -m local_runner run CONFIG -q` in a child process (bench/child.py: the child reports its
own peak RSS, VmHWM from /proc/self/status, so the figure is the CLI's alone) with one decompress
processor writing to a local folder or to a container in an Azurite this script starts (on disk,
in the work folder, as tests/conftest.py starts it). Reported:
wall time, the child's peak RSS, the run manifest's size and the number of outputs (checked
against N). `--transform` adds a transform processor after the decompress one (its units are
batches planned from the decompress unit's member manifest). Rounds are interleaved
(local, blob, local, blob, ...) and the median is reported with min-max; "our CPU s" is the
child's own user + system time, which Azurite's speed does not change.

`--azurite-mariadb` starts a MariaDB server (Debian's mariadb-server) in the work folder and
points Azurite's metadata at it (AZURITE_DB): Azurite's default LokiJS store scans every blob of
the account on each request, so its own time grows as the square of the member count (20,000
members: 1,555 s); with the SQL store it is linear and 100,000 members take ~20 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def write_members_zip(path: Path, members: int) -> None:
    """N tiny JSONL members in 100 folders (one line each, ~60 bytes)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for i in range(members):
            z.writestr(f"d{i % 100:02d}/m{i:07d}.jsonl", f'{{"id": {i}, "name": "member {i}", "ok": true}}\n')


def start_mariadb(work: Path) -> tuple[subprocess.Popen, str]:
    """A throwaway MariaDB server (Debian's mariadb-server) in the work folder, for Azurite's SQL store.

    Why: Azurite's default metadata store (LokiJS) finds a blob or its blocks by scanning every
    document of the account, so each request costs time in proportion to the blobs already stored
    and N members cost O(N^2) on the server's side (20,000 members: 1,555 s, one core at 99% in
    Node.js). With `AZURITE_DB` Azurite keeps the same metadata in SQL tables with unique indexes
    on (account, container, blob[, block]): the same service and REST API, indexed lookups, so a
    100,000-member run measures our client rather than the emulator's scans. Returns the server and
    Azurite's connection URL (a random password, never printed).
    """
    from tests.conftest import free_port, wait_for_port

    server = shutil.which("mariadbd", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/usr/local/sbin")
    if server is None:
        raise SystemExit("--azurite-mariadb needs a MariaDB server: apt-get install mariadb-server")
    data = work / "mariadb"
    subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--skip-test-db",
                    "--auth-root-authentication-method=normal"], check=True, capture_output=True)
    port, sock = free_port(), data / "server.sock"
    proc = subprocess.Popen([server, "--no-defaults", f"--datadir={data}", f"--socket={sock}", f"--port={port}",
                             "--bind-address=127.0.0.1", "--skip-log-bin", "--skip-name-resolve",
                             # Azurite's Loki store does not fsync each request either: compare like with like
                             "--innodb-flush-log-at-trx-commit=2",
                             *(["--user=root"] if os.geteuid() == 0 else [])],
                            stdout=open(work / "mariadb.log", "w"), stderr=subprocess.STDOUT)
    wait_for_port(port, proc)
    password = secrets.token_hex(16)
    subprocess.run(["mariadb", "--no-defaults", f"--socket={sock}", "-uroot", "-e",
                    "CREATE DATABASE azurite_blob; "
                    f"CREATE USER 'azurite'@'127.0.0.1' IDENTIFIED BY '{password}'; "
                    "GRANT ALL ON azurite_blob.* TO 'azurite'@'127.0.0.1';"], check=True, capture_output=True)
    return proc, f"mysql://azurite:{password}@127.0.0.1:{port}/azurite_blob"


def start_azurite(work: Path, in_memory: bool = False, database: str | None = None):
    from tests.conftest import free_port, wait_for_port

    port = free_port()
    folder = work / "azurite"
    folder.mkdir(exist_ok=True)
    log = open(folder / "azurite.log", "w")
    where = ["--inMemoryPersistence"] if in_memory else ["--location", str(folder)]
    env = {**os.environ, "AZURITE_DB": database} if database else None
    proc = subprocess.Popen([str(ROOT / "node_modules" / ".bin" / "azurite-blob"), "--blobHost", "127.0.0.1",
                             "--blobPort", str(port), *where, "--skipApiVersionCheck",
                             "--disableTelemetry", "--loose", "--silent"],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    wait_for_port(port, proc)
    conn = (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;")
    return proc, conn


def config(src: Path, dest: str, work: Path, tag: str, transform: bool) -> dict:
    if dest == "local":
        out = {"type": "local", "path": f"{work}/out-{tag}/"}
        csv = {"type": "local", "path": f"{work}/csv-{tag}/"}
    else:
        out = {"type": "blob", "connection": "BENCH_STORAGE", "container": tag, "path": "members/"}
        csv = {"type": "blob", "connection": "BENCH_STORAGE", "container": tag, "path": "csv/"}
    processors = [{"processor_name": "decompress", "processor_type": "zip",
                   "processor_config": {"src": {"type": "local", "path": str(src)}, "dest": out}}]
    if transform:
        processors.append({"processor_name": "transform", "processor_type": "JSONL",
                           "processor_config": {"dest": csv, "columns": [{"name": "id", "path": "id"},
                                                                         {"name": "name", "path": "name"}]}})
    return {"sourcemart": "bench", "table": "members", "processors": processors}


def run_once(work: Path, src: Path, members: int, dest: str, conn: str | None, rnd: int, transform: bool) -> dict:
    tag = f"m{members}-{dest}-{rnd}"
    if dest == "blob":
        from azure.storage.blob import BlobServiceClient

        BlobServiceClient.from_connection_string(conn).create_container(tag)
    cfg = work / f"{tag}.json"
    cfg.write_text(json.dumps(config(src, dest, work, tag, transform)))
    report, manifest = work / f"{tag}.report.json", work / f"{tag}.manifest.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PIPELINE_LOCAL_ROOTS": str(work),
           "PIPELINE_ALLOWED_SETTINGS": "BENCH_STORAGE"}
    if conn:
        env["BENCH_STORAGE"] = conn
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "bench.child", str(report), "cli", "run", str(cfg), "-q",
                           "--manifest", str(manifest)], cwd=work, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{tag}: the run failed ({proc.returncode}): {proc.stderr[-2000:]}")
    figures = json.loads(report.read_text())
    result = json.loads(manifest.read_text())
    outputs = result["steps"][0]["outputs"]
    if outputs != members:
        raise SystemExit(f"{tag}: {outputs} outputs, expected {members}")
    row = {"members": members, "dest": dest, "seconds": wall, "cpu_s": figures["cpu_s"],
           "peak_rss_mb": figures["peak_rss_mb"],
           "manifest_kb": manifest.stat().st_size / 1024, "units": [s["units"] for s in result["steps"]],
           "outputs": [s["outputs"] for s in result["steps"]]}
    if dest == "local":  # keep the disk clean between rounds
        shutil.rmtree(work / f"out-{tag}", ignore_errors=True)
        shutil.rmtree(work / f"csv-{tag}", ignore_errors=True)
    else:
        from azure.storage.blob import BlobServiceClient

        BlobServiceClient.from_connection_string(conn).delete_container(tag)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, nargs="+", default=[100_000])
    parser.add_argument("--dest", nargs="+", choices=("local", "blob"), default=["local", "blob"])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--transform", action="store_true", help="add a transform processor after the decompress")
    parser.add_argument("--azurite-in-memory", action="store_true",
                        help="Azurite keeps its data in memory (--inMemoryPersistence) instead of on disk")
    parser.add_argument("--azurite-mariadb", action="store_true",
                        help="Azurite keeps its metadata in a MariaDB this script starts (AZURITE_DB): indexed "
                             "lookups instead of LokiJS scans; needs Debian's mariadb-server")
    parser.add_argument("--work", help="working folder (default: a new temporary one, removed at the end)")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-members-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))
    mariadb = azurite = conn = None
    rows: list[dict] = []
    try:
        if "blob" in args.dest:
            database = None
            if args.azurite_mariadb:
                mariadb, database = start_mariadb(work)
            azurite, conn = start_azurite(work, args.azurite_in_memory, database)
        for members in args.members:
            src = work / f"members-{members}.zip"
            if not src.exists():
                write_members_zip(src, members)
            for rnd in range(args.rounds):
                for dest in args.dest:  # interleaved
                    row = run_once(work, src, members, dest, conn, rnd, args.transform)
                    print(json.dumps(row), file=sys.stderr, flush=True)
                    rows.append(row)
    finally:
        for server in (azurite, mariadb):
            if server is not None:
                server.terminate()
                server.wait(30)
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    print("| members | dest | steps (units) | wall s median (min-max) | our CPU s | peak RSS MB median (min-max) "
          "| manifest KB |")
    print("|---|---|---|---|---|---|---|")
    for members in args.members:
        for dest in args.dest:
            sel = [r for r in rows if r["members"] == members and r["dest"] == dest]
            if not sel:
                continue
            s = [r["seconds"] for r in sel]
            m = [r["peak_rss_mb"] for r in sel]
            cpu = statistics.median(r["cpu_s"] for r in sel)
            print(f"| {members:,} | {dest} | {sel[0]['units']} | {statistics.median(s):.1f} ({min(s):.1f}-{max(s):.1f}) "
                  f"| {cpu:.1f} | {statistics.median(m):.1f} ({min(m):.1f}-{max(m):.1f}) | {sel[0]['manifest_kb']:.1f} |")


if __name__ == "__main__":
    main()
