"""One benchmark competitor in this (child) process; at exit it writes its own figures to REPORT.

    python -m bench.child REPORT cli ARGS...          python -m local_runner ARGS... (the real CLI)
    python -m bench.child REPORT unit CONFIG          processors.run_unit on the config's units
    python -m bench.child REPORT loop SRC OUT SHAPE        the plain orjson + csv.writer line loop
    python -m bench.child REPORT duckdb SRC OUT N SHAPE    DuckDB read_json -> COPY TO csv, N threads
    python -m bench.child REPORT polars SRC OUT SHAPE      polars scan_ndjson -> sink_csv
    python -m bench.child REPORT gen jsonl|jsonl.gz|zip PATH MB SEED SHAPE

Why the child reports its own peak RSS: on Linux a child's ru_maxrss (wait4, RUSAGE_CHILDREN)
starts from the *parent's* high-water mark, because the kernel carries the pre-exec memory's peak
over exec (a 300 MB parent makes `python -c pass` report 300 MB). VmHWM in /proc/self/status is
the high-water mark of this process's own memory since exec, so it is this competitor's alone.
The wait4 figure is still recorded by the driver as a cross-check.
"""

from __future__ import annotations

import atexit
import json
import resource
import sys
import time


def own_peak_rss_mb() -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def main() -> None:
    report, kind, *args = sys.argv[1:]
    started = time.perf_counter()

    def write_report() -> None:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        with open(report, "w") as f:
            json.dump({"peak_rss_mb": own_peak_rss_mb(), "ru_maxrss_mb": ru.ru_maxrss / 1024,
                       "cpu_s": ru.ru_utime + ru.ru_stime, "in_process_s": time.perf_counter() - started}, f)

    atexit.register(write_report)  # runs after SystemExit too (the CLI ends with one)
    if kind == "cli":
        import runpy

        sys.argv = ["local_runner", *args]
        runpy.run_module("local_runner", run_name="__main__", alter_sys=True)
        return
    from bench import competitors

    if kind == "unit":
        competitors.run_units(*args)
    elif kind == "loop":
        competitors.line_loop(*args)
    elif kind == "duckdb":
        competitors.duckdb_copy(*args)
    elif kind == "polars":
        competitors.polars_copy(*args)
    elif kind == "gen":
        competitors.generate(*args)
    else:
        raise SystemExit(f"unknown kind {kind!r}")


if __name__ == "__main__":
    main()
