"""A 1 GB JSON document (one array of records under data.items) -> CSV: wall time and the child's
own peak RSS (VmHWM), the figure issue 11 asks for. The document is generated streaming into a temp
folder (removed afterwards); the conversion runs in a child process through the real CLI.

    python -m bench.json_array [--mb 1000] [--keep-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from bench.datagen import COLUMNS, write_json_array


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=1000)
    parser.add_argument("--dir", help="where to write the document (default: a temp folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        doc = os.path.join(tmp, "dump.json")
        with open(doc, "wb") as f:
            records = write_json_array(f, int(args.mb * 1_000_000), records_path="data.items")
        size = os.path.getsize(doc)
        config = {"processors": [{"processor_name": "transform", "processor_type": "JSONL", "processor_config": {
            "src": {"type": "local", "path": doc}, "dest": {"type": "local", "path": f"{tmp}/csv/"},
            "input_format": "json", "records_path": "data.items", "columns": COLUMNS}}]}
        with open(os.path.join(tmp, "c.json"), "w") as f:
            json.dump(config, f)
        report = os.path.join(tmp, "report.json")
        env = {**os.environ, "PIPELINE_LOCAL_ROOTS": tmp}
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "bench.child", report, "cli", "run", "-q",
                               os.path.join(tmp, "c.json")], env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if proc.returncode:
            raise SystemExit(proc.stderr)
        with open(report) as f:
            child = json.load(f)
        rows = json.loads(proc.stdout)["totals"]["rows"]
        assert rows == records, (rows, records)
        print(json.dumps({"document_bytes": size, "records": records, "wall_s": round(wall, 1),
                          "cpu_s": round(child["cpu_s"], 1), "mb_per_s": round(size / 1e6 / wall, 1),
                          "peak_rss_mb": round(child["peak_rss_mb"], 1)}))


if __name__ == "__main__":
    main()
