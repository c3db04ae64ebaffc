"""Side-by-side benchmarks, all in one run (the machine is shared and noisy: medians and ratios).

    python -m bench.run [--mb 200] [--reps 3] [--flat-sizes 100,1000] [--skip-flat]

1. JSONL -> CSV of the same file with the same nested columns by
     this project (the real CLI, transform:JSONL), a plain orjson + csv.writer line loop, and
     DuckDB read_json -> COPY TO csv.
2. zip -> CSV end to end (decompress:zip then transform:JSONL, local files) vs transform alone.
3. Flat memory: zip -> CSV at two sizes; peak RSS of each.
Every competitor runs in its own child process; peak RSS is that child's own (wait4).
Results go to stdout and bench/results/latest.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data"
RESULTS = ROOT / "bench" / "results"

LINE_LOOP = r"""
import csv, sys, orjson
sys.path.insert(0, sys.argv[3])
from bench.datagen import COLUMNS
paths = [c["path"].split(".") for c in COLUMNS]

def get(obj, path):
    for key in path:
        if isinstance(obj, dict):
            obj = obj.get(key)
        elif isinstance(obj, list) and key.isdigit() and int(key) < len(obj):
            obj = obj[int(key)]
        else:
            return None
    return obj

with open(sys.argv[1], "rb") as f, open(sys.argv[2], "w", newline="", encoding="utf-8") as out:
    w = csv.writer(out)
    w.writerow([c["name"] for c in COLUMNS])
    for line in f:
        if line.strip():
            obj = orjson.loads(line)
            w.writerow([get(obj, p) for p in paths])
"""

DUCKDB = r"""
import sys, os, duckdb
con = duckdb.connect()
con.execute(f"SET threads TO {os.cpu_count()}")
con.execute(f'''COPY (SELECT event_id, ts, "user".id AS user_id, "user".name AS user_name,
    "user".address.city AS city, "user".address.country AS country, "order".total AS total,
    "order".currency AS currency, "order".items[1].sku AS first_sku, to_json("order".items) AS items,
    to_json(tags) AS tags, active, note, score
  FROM read_json('{sys.argv[1]}', format='newline_delimited', sample_size=-1))
  TO '{sys.argv[2]}' (HEADER, DELIMITER ',')''')
"""


def run_child(cmd: list[str], cwd=ROOT) -> tuple[float, float]:
    """(seconds, peak RSS MB) of one child process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"{cmd} failed: {proc.stderr.read().decode()[-2000:]}")
    proc.stderr.close()
    return seconds, usage.ru_maxrss / 1024


def cli(config: dict, work: Path) -> list[str]:
    path = work / f"config-{abs(hash(json.dumps(config, sort_keys=True)))}.json"
    path.write_text(json.dumps(config))
    return [sys.executable, "-m", "local_runner", "run", str(path), "-q", "--workers", "1"]


def transform_config(src: str, dest: str, columns) -> dict:
    return {"processors": [{"processor_name": "transform", "processor_type": "JSONL", "processor_config": {
        "src": {"type": "local", "path": src}, "dest": {"type": "local", "path": dest}, "columns": columns}}]}


def zip_config(src: str, work: Path, columns) -> dict:
    return {"processors": [
        {"processor_name": "decompress", "processor_type": "zip", "processor_config": {
            "src": {"type": "local", "path": src}, "dest": {"type": "local", "path": f"{work}/extracted/"}}},
        {"processor_name": "transform", "processor_type": "JSONL", "processor_config": {
            "dest": {"type": "local", "path": f"{work}/csv/"}, "columns": columns}}]}


def ensure_jsonl(mb: int) -> Path:
    from bench.datagen import write_jsonl

    path = DATA / f"events-{mb}mb-seed7.jsonl"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        with open(str(path) + ".part", "wb") as f:
            write_jsonl(f, mb * 1_000_000, seed=7)
        os.replace(str(path) + ".part", path)
    return path


def ensure_zip(mb: int) -> Path:
    from bench.datagen import write_zip

    path = DATA / f"events-{mb}mb-seed7.zip"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        write_zip(str(path) + ".part", mb * 1_000_000, files=3, seed=7, level=1)
        os.replace(str(path) + ".part", path)
    return path


def measure(name: str, make_cmd, reps: int, mb: float, clean) -> dict:
    times, peaks = [], []
    for _ in range(reps):
        clean()
        seconds, peak = run_child(make_cmd())
        times.append(seconds)
        peaks.append(peak)
    median = statistics.median(times)
    return {"name": name, "seconds": median, "mb_s": mb / median, "rss": max(peaks), "times": times}


def table(rows: list[dict], baseline: str | None) -> str:
    base = next((r for r in rows if r["name"] == baseline), None)
    out = ["| competitor | median s | MB/s (input) | peak RSS MB | throughput vs line loop |", "|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{r['mb_s'] / base['mb_s']:.2f}x" if base else ""
        out.append(f"| {r['name']} | {r['seconds']:.2f} | {r['mb_s']:.1f} | {r['rss']:.1f} | {ratio} |")
    return "\n".join(out)


def count_rows(path: Path) -> int:
    import csv

    with open(path, newline="", encoding="utf-8") as f:
        return sum(1 for _ in csv.reader(f)) - 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=200, help="JSONL input size for the transform comparison")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--flat-sizes", default="100,1000", help="zip->CSV sizes (MB uncompressed) for flat memory")
    parser.add_argument("--skip-flat", action="store_true")
    parser.add_argument("--skip-duckdb", action="store_true")
    args = parser.parse_args()

    from bench.datagen import COLUMNS

    work = Path(tempfile.mkdtemp(prefix="bench-"))
    report = [f"# Benchmark results\n\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
              f"{os.cpu_count()} cores; Python {platform.python_version()}; {platform.machine()}; "
              f"reps {args.reps} (median time, max peak RSS)\n"]
    try:
        src = ensure_jsonl(args.mb)
        mb = src.stat().st_size / 1e6
        out = work / "out"

        def clean():
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()

        rows = [
            measure("this project (CLI transform:JSONL)",
                    lambda: cli(transform_config(str(src), f"{out}/", COLUMNS), work), args.reps, mb, clean),
            measure("line loop (orjson + csv.writer)",
                    lambda: [sys.executable, "-c", LINE_LOOP, str(src), f"{out}/loop.csv", str(ROOT)],
                    args.reps, mb, clean),
        ]
        loop_rows = count_rows(out / "loop.csv")  # left by the line loop's last repetition
        clean()
        run_child(cli(transform_config(str(src), f"{out}/", COLUMNS), work))
        ours = count_rows(out / src.name.replace(".jsonl", ".csv"))
        assert ours == loop_rows, f"row counts differ: this project {ours}, line loop {loop_rows}"
        if not args.skip_duckdb:
            import duckdb

            rows.append(measure(f"DuckDB {duckdb.__version__} read_json -> COPY ({os.cpu_count()} threads)",
                                lambda: [sys.executable, "-c", DUCKDB, str(src), f"{out}/duck.csv"],
                                args.reps, mb, clean))
        section = (f"## JSONL -> CSV, {mb:.0f} MB, {ours} rows, {len(COLUMNS)} columns (nested paths)\n\n"
                   + table(rows, "line loop (orjson + csv.writer)"))
        print(section + "\n", flush=True)
        report.append(section)

        zsrc = ensure_zip(args.mb)
        zwork = work / "zip"

        def zclean():
            shutil.rmtree(zwork, ignore_errors=True)
            zwork.mkdir()

        zrows = [measure("zip -> CSV (decompress:zip + transform:JSONL)",
                         lambda: cli(zip_config(str(zsrc), zwork, COLUMNS), work), args.reps, mb, zclean),
                 rows[0]]
        section = (f"## zip -> CSV end to end vs transform alone ({mb:.0f} MB uncompressed, "
                   f"zip {zsrc.stat().st_size / 1e6:.0f} MB)\n\n" + table(zrows, None))
        print(section + "\n", flush=True)
        report.append(section)

        if not args.skip_flat:
            flat = []
            for size in [int(s) for s in args.flat_sizes.split(",")]:
                z = ensure_zip(size)
                flat.append(measure(f"zip -> CSV, {size} MB uncompressed", lambda: cli(zip_config(str(z), zwork, COLUMNS), work),
                                    1, size, zclean))
            spread = max(r["rss"] for r in flat) - min(r["rss"] for r in flat)
            section = ("## Flat memory: zip -> CSV on local files, one worker\n\n" + table(flat, None)
                       + f"\n\nPeak RSS spread between sizes: {spread:.1f} MB")
            print(section + "\n", flush=True)
            report.append(section)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.md").write_text("\n\n".join(report) + "\n")
    print(f"written to {RESULTS / 'latest.md'}")


if __name__ == "__main__":
    main()
