"""Where this project's JSONL -> CSV transform spends its time, printed as markdown.

    python -m bench.profile SRC.jsonl [--reps 3] [--column-mb 10] [--top 15]

1. Phases, each a full pass over SRC in this process, each adding one step of the transform's
   work to the previous one (best of --reps interleaved rounds): read + split lines, the long-number check, orjson
   parsing, the generated per-column line function, UTF-8 encoding + writing, then the real
   processors.run_unit without and with fsync. The difference between two rows is that step's cost.
   The line loop (bench.competitors.line_loop) gets the same treatment, for comparison.
2. Per column: the generated line function's cost for each column, measured as (all columns)
   minus (all but that column) on objects parsed beforehand from the first --column-mb MB.
3. cProfile of processors.run_unit over SRC: the top functions by own time. The generated line
   function is a single frame (`<jsonl-to-csv>:1(lines)`): its own time is the per-column work
   that is inlined in it; section 2 splits it by column.

Uses the transform's internals (processors.transform.jsonl) only to time them; changes nothing.
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import gc
import io
import os
import pstats
import shutil
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

import orjson

from bench.datagen import COLUMNS


def interleaved(fns, reps: int, gc_paused: bool) -> list[float]:
    """Best time of each fn over `reps` rounds, every round running all of them in turn (the
    machine is shared: a slow spell then hits every variant, not one)."""
    from processors.transform.jsonl import gc_paused as paused

    best = [float("inf")] * len(fns)
    for r in range(reps):
        for i, fn in enumerate(fns):
            if gc_paused:
                with paused():
                    t = time.perf_counter()
                    fn()
                    t = time.perf_counter() - t
            else:
                t = time.perf_counter()
                fn()
                t = time.perf_counter() - t
            best[i] = min(best[i], t)
        print(f"  round {r + 1}/{reps}: " + " ".join(f"{b:.2f}" for b in best), file=sys.stderr, flush=True)
    return best


def transform_config(src: str, dest: str) -> dict:
    return {"processors": [{"processor_name": "transform", "processor_type": "JSONL", "processor_config": {
        "src": {"type": "local", "path": src}, "dest": {"type": "local", "path": dest}, "columns": COLUMNS}}]}


def unit_for(src: str, dest: str) -> dict:
    from pipeline.config import validate_config
    from pipeline.units import plan_units

    config = validate_config(transform_config(src, dest)).model_dump(exclude_none=True)
    return plan_units(config["processors"][0], None)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--column-mb", type=float, default=10)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()

    from pipeline.config import validate_config
    from processors import run_unit
    from processors.transform import jsonl
    from writers.csv_text import CsvFormat, open_text

    src = args.src
    mb = os.path.getsize(src) / 1e6
    work = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    cfg = validate_config(transform_config(src, f"{work}/")).processors[0].processor_config
    fmt = CsvFormat(cfg.delimiter, cfg.quoting, cfg.newline)
    lines_fn = jsonl.build_line_function(cfg.columns, fmt, cfg.null_text)
    chunk_size = getattr(jsonl, "CHUNK", 256 << 10)
    loads = orjson.loads
    out: list[str] = []
    try:
        def chunks():
            """The transform's chunking: CHUNK-sized reads cut after the last newline."""
            with open(src, "rb", buffering=1 << 20) as f:
                pending = b""
                while chunk := f.read(chunk_size):
                    cut = chunk.rfind(b"\n")
                    if cut < 0:
                        pending += chunk
                        continue
                    body = pending + chunk[:cut]
                    pending = chunk[cut + 1:]
                    yield body, body.split(b"\n")
                if pending:
                    yield pending, [pending]

        def p_split():
            for _body, _lines in chunks():
                pass

        def p_check():
            for body, _lines in chunks():
                jsonl.has_long_number(body)

        def p_parse():
            for body, lines in chunks():
                jsonl.has_long_number(body)
                deque(map(loads, lines), 0)

        def p_build():
            for body, lines in chunks():
                jsonl.has_long_number(body)
                lines_fn(map(loads, lines))

        def p_write():
            with open(work / "phase.csv", "wb", buffering=256 << 10) as raw:
                text = open_text(raw)
                for body, lines in chunks():
                    jsonl.has_long_number(body)
                    text.write(lines_fn(map(loads, lines)))
                text.flush()
                text.detach()

        def p_unit():
            shutil.rmtree(work / "unit", ignore_errors=True)
            run_unit(unit_for(src, f"{work}/unit/"))

        real_fsync = os.fsync

        def p_unit_nofsync():
            os.fsync = lambda fd: None
            try:
                p_unit()
            finally:
                os.fsync = real_fsync

        phases = [("read 256 KiB chunks + split lines", p_split),
                  ("+ long-number check (bytes.translate)", p_check),
                  ("+ orjson.loads of every line", p_parse),
                  ("+ generated line function (paths, formatting, escaping) -> CSV text", p_build),
                  ("+ UTF-8 encode + write (TextIOWrapper -> plain file)", p_write),
                  ("processors.run_unit, os.fsync stubbed (real converter, sink sha256, config, rename)", p_unit_nofsync),
                  ("processors.run_unit (all of it, fsync included)", p_unit)]

        paths = [c["path"].split(".") for c in COLUMNS]
        from bench.competitors import get, line_loop

        def l_iter():
            with open(src, "rb") as f:
                for _line in f:
                    pass

        def l_parse():
            with open(src, "rb") as f:
                for line in f:
                    orjson.loads(line)

        def l_get():
            with open(src, "rb") as f:
                for line in f:
                    obj = orjson.loads(line)
                    [get(obj, p) for p in paths]

        def l_all():
            line_loop(src, str(work / "loop.csv"))

        def l_all_nogc():
            gc.disable()
            try:
                line_loop(src, str(work / "loop.csv"))
            finally:
                gc.enable()

        loop_phases = [("for line in file", l_iter), ("+ orjson.loads", l_parse),
                       ("+ get() of 14 dotted paths", l_get), ("+ csv.writer.writerow to file (= the line loop)", l_all),
                       ("the line loop with gc.disable() (for comparison only)", l_all_nogc)]

        def phase_table(rows, gc_paused: bool) -> list[str]:
            times = interleaved([fn for _, fn in rows], args.reps, gc_paused)
            res = ["| step | cumulative s | step adds s | MB/s so far |", "|---|---|---|---|"]
            prev = 0.0
            for (name, _), t in zip(rows, times):
                res.append(f"| {name} | {t:.2f} | {t - prev:+.2f} | {mb / t:.1f} |")
                if not name.startswith("the line loop with"):  # a comparison row, not a step
                    prev = t
            return res

        print(f"profiling {src} ({mb:.0f} MB), best of {args.reps} ...", file=sys.stderr, flush=True)
        out += [f"## 4. Where this project's transform spends its time ({mb:.0f} MB, best of {args.reps} per row)", "",
                "### 4a. This project: steps added one at a time (gc paused, as the transform pauses it)", "",
                *phase_table(phases, True), "",
                "### 4b. The line loop, the same way (gc enabled, as the natural code runs)", "",
                *phase_table(loop_phases, False), ""]

        # Per column.
        limit = int(args.column_mb * 1e6)
        objs, size = [], 0
        with open(src, "rb") as f:
            for line in f:
                objs.append(loads(line))
                size += len(line)
                if size >= limit:
                    break
        cols = list(cfg.columns)

        def timer(columns):
            fn = jsonl.build_line_function(columns, fmt, cfg.null_text)
            return lambda: fn(iter(objs))

        # All columns, then all but column i, for each i; interleaved rounds, best of each.
        variants = [timer(cols)] + [timer(cols[:i] + cols[i + 1:]) for i in range(len(cols))]
        full, *without = interleaved(variants, max(5, args.reps), True)
        per_col = [(c.name, ".".join(c.segments), full - w) for c, w in zip(cols, without)]
        per_col.sort(key=lambda x: -x[2])
        n = len(objs)
        out += [f"### 4c. The generated line function per column ({size / 1e6:.0f} MB prefix, {n} rows: "
                f"{full:.3f} s = {full / n * 1e6:.2f} us/row for all {len(cols)} columns)", "",
                "| column | path | us/row | share of the line function |", "|---|---|---|---|"]
        for name, path, t in per_col:
            out.append(f"| {name} | {path} | {t / n * 1e6:.2f} | {t / full:.0%} |")
        rest = full - sum(t for *_, t in per_col)
        out += [f"| (per row: loop, type check, f-string join) | | {rest / n * 1e6:.2f} | {rest / full:.0%} |", ""]
        objs.clear()  # the closures above hold the list: emptying it frees the parsed rows

        # cProfile.
        prof = cProfile.Profile()
        shutil.rmtree(work / "unit", ignore_errors=True)
        unit = unit_for(src, f"{work}/unit/")
        t = time.perf_counter()
        prof.enable()
        run_unit(unit)
        prof.disable()
        wall = time.perf_counter() - t
        stats = pstats.Stats(prof, stream=io.StringIO())
        total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
        rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[: args.top]  # type: ignore[attr-defined]
        out += [f"### 4d. cProfile of processors.run_unit (whole file; {wall:.1f} s under the profiler), "
                f"top {args.top} by own time", "",
                "| function | calls | own s | own share | cumulative s |", "|---|---|---|---|---|"]
        for func, (_cc, nc, tt, ct, _callers) in rows:
            name = pstats.func_std_string(func).replace("|", "\\|")
            name = name.replace(str(Path.cwd()) + "/", "")
            out.append(f"| `{name}` | {nc} | {tt:.2f} | {tt / total:.0%} | {ct:.2f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\n".join(out))


if __name__ == "__main__":
    csv.field_size_limit(1 << 30)
    main()
