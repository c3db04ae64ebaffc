"""What the drift sample costs the transform: the CLI (native kernel) with `drift: true` (the
default) vs `drift: false`, per data shape, on all cores and on 1 thread, interleaved rounds.

    python -m bench.drift_cost [--mb 100] [--reps 5] [--shapes events,social] [--baseline REV]
                               [--python] [--results bench/results/drift.md]

--baseline REV adds REV's own code (e.g. `main`, exported with `git archive` into a temp folder;
the same venv and kernel) on all cores, so the cost of the progress counters, which are on in
both of this tree's configurations, shows too. --python adds the pure-Python path on and off.
Per configuration: the median wall time of the child (start-up included), the median time inside
the unit (manifest `seconds`) and the child's CPU seconds; the loss is on - off relative to off,
of the medians and per round (on and off ran seconds apart). Inputs are bench.datagen's, cached
in bench/data/ like bench.run's.

On a shared 2-core machine whole-CLI rounds swing by tens of percent, far more than the cost
measured, so a second measurement runs in one child of its own (`--in-process-rounds`, default
11): the file in memory, the converter (native kernel, 1 thread; the pure-Python path with
--python) writing to a sink that discards, drift on and off alternating, CPU time of the process
per conversion (process_time: waiting for a core is not counted); and, in the drift-on runs, the
CPU time spent inside the sampler itself (LineSampler.chunk and finish, thread_time around each call).

`--callgrind` counts instructions instead (valgrind's callgrind: the same count for the same
binary and input whatever the machine's load): one process each for start-up only, drift off and
drift on (native kernel, 1 thread, file in memory); cost = (on - off) / (off - start-up).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from bench.run import DATA, RESULTS, ROOT, Children, Competitor, compile_project, ensure_input, log, machine_facts, nproc, \
    sha256, transform_config, warm, write_config

TARGET_LOSS = 0.05  # the drift sample may cost at most 5% of the transform's throughput


class Config(Competitor):
    children: Children

    def unit_s(self) -> list[float]:
        return [sum(u["seconds"] for s in json.loads(r["stdout"])["steps"] for u in s["results"]) for r in self.runs]

    def lines_sampled(self) -> int | None:
        results = json.loads(self.runs[-1]["stdout"])["steps"][0]["results"]
        return results[0].get("drift", {}).get("lines_sampled")


def export(rev: str, into: Path) -> Path:
    """REV's tracked files (its code), in a folder of their own."""
    archive = into / "baseline.tar"
    subprocess.run(["git", "archive", "-o", str(archive), rev], cwd=ROOT, check=True)
    folder = into / "baseline"
    with tarfile.open(archive) as t:
        t.extractall(folder, filter="data")
    return folder


def loss(on: list[float], off: list[float]) -> float:
    return statistics.median(on) / statistics.median(off) - 1


def in_process(src: str, shape: str, rounds: int, engines: list[str]) -> dict:
    """Run in a child: CPU seconds per conversion with drift on and off, alternating, and the
    sampler's own seconds. The source is in memory and the output is discarded."""
    import io
    from time import perf_counter, process_time, thread_time

    from bench.datagen import SHAPE_COLUMNS
    from pipeline.config import JsonlTransformConfig
    from processors.transform import drift as drift_module
    from processors.transform.jsonl import Converter
    from processors.transform.kernel import kernel_for
    from writers.csv_text import CsvFormat, EncodedOutput

    data = Path(src).read_bytes()
    spent = [0.0]

    def timed(method):
        def wrapper(*args):
            t = thread_time()  # CPU time: a wait for a core is not the sampler's cost
            try:
                return method(*args)
            finally:
                spent[0] += thread_time() - t
        return wrapper

    drift_module.LineSampler.chunk = timed(drift_module.LineSampler.chunk)  # type: ignore[method-assign]
    drift_module.LineSampler.finish = timed(drift_module.LineSampler.finish)  # type: ignore[method-assign]

    class Discard:
        def write(self, b) -> int:
            return len(b)

    out: dict = {}
    for name in engines:  # "native" (1 thread), "native2" (2 converter threads), "python"
        engine, threads = ("native", 2) if name == "native2" else (name, 1)
        cfg = JsonlTransformConfig.model_validate({"dest": {"type": "local", "path": "unused/"}, "engine": engine,
                                                  "columns": SHAPE_COLUMNS[shape]})
        fmt = CsvFormat(cfg.delimiter, cfg.quoting, cfg.newline)
        kernel = kernel_for(cfg.engine, cfg.columns, fmt, cfg.null_text)
        cpu: dict[str, list[float]] = {"on": [], "off": []}
        wall: dict[str, list[float]] = {"on": [], "off": []}
        sampler_s, sampled = [], 0
        for r in range(rounds):
            for mode in (("on", "off") if r % 2 == 0 else ("off", "on")):
                sampler = drift_module.Sampler(cfg.columns) if mode == "on" else None
                converter = Converter(cfg, fmt, None, kernel, threads, sampler)
                spent[0] = 0.0
                t, w = process_time(), perf_counter()
                converter.convert(io.BytesIO(data), EncodedOutput(Discard()))
                cpu[mode].append(process_time() - t)
                wall[mode].append(perf_counter() - w)
                if sampler is not None:
                    sampler_s.append(spent[0])
                    sampled = sampler.lines
        out[name] = {"cpu_on": cpu["on"], "cpu_off": cpu["off"], "wall_on": wall["on"], "wall_off": wall["off"],
                     "sampler_s": sampler_s, "lines_sampled": sampled,
                       "rows": converter.rows}
    return out


def convert_once(mode: str, src: str, shape: str) -> None:
    """Run in a child under callgrind: start-up and set-up only (mode none), or one conversion
    with drift off or on (native kernel, 1 thread, file in memory, output discarded)."""
    import io

    from bench.datagen import SHAPE_COLUMNS
    from pipeline.config import JsonlTransformConfig
    from processors.transform import drift as drift_module
    from processors.transform.jsonl import Converter
    from processors.transform.kernel import kernel_for
    from writers.csv_text import CsvFormat, EncodedOutput

    data = Path(src).read_bytes()
    cfg = JsonlTransformConfig.model_validate({"dest": {"type": "local", "path": "unused/"}, "engine": "native",
                                              "columns": SHAPE_COLUMNS[shape]})
    fmt = CsvFormat(cfg.delimiter, cfg.quoting, cfg.newline)
    kernel = kernel_for(cfg.engine, cfg.columns, fmt, cfg.null_text)

    class Discard:
        def write(self, b) -> int:
            return len(b)

    if mode != "none":
        sampler = drift_module.Sampler(cfg.columns) if mode == "on" else None
        Converter(cfg, fmt, None, kernel, 1, sampler).convert(io.BytesIO(data), EncodedOutput(Discard()))


def callgrind_section(src: Path, shape: str, work: Path, verdicts: list[str]) -> list[str]:
    import re

    counts = {}
    for mode in ("none", "off", "on"):
        log(f"  callgrind: {mode}")
        proc = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={work}/cg.{mode}",
                               sys.executable, "-m", "bench.drift_cost", "--ir-child", mode, str(src), shape],
                              cwd=ROOT, capture_output=True, text=True, check=True)
        counts[mode] = int(re.search(r"Collected : (\d+)", proc.stderr).group(1))
    conversion = counts["off"] - counts["none"]
    cost = (counts["on"] - counts["off"]) / conversion
    verdicts.append(f"- {shape}, native 1 thread, instructions (callgrind): drift costs {cost:+.2%} of the conversion's "
                    f"<= {TARGET_LOSS:.0%} -> {'PASS' if cost <= TARGET_LOSS else 'MISS'}")
    return [f"Instructions (callgrind; native kernel, 1 thread, file in memory): start-up {counts['none']:,}; "
            f"conversion with drift off {conversion:,}; drift on adds {counts['on'] - counts['off']:,} "
            f"(**{cost:+.2%}** of the conversion).", ""]


def in_process_section(src: Path, shape: str, mb: float, rounds: int, engines: list[str], verdicts: list[str]) -> list[str]:
    log(f"  in-process: {rounds} rounds, engines {', '.join(engines)}")
    proc = subprocess.run([sys.executable, "-m", "bench.drift_cost", "--child", str(src), shape, str(rounds),
                           ",".join(engines)], cwd=ROOT, capture_output=True, text=True, check=True)
    result = json.loads(proc.stdout)
    lines = [f"In one process ({rounds} rounds, drift on and off alternating; file in memory, output discarded; "
             "CPU = process_time per conversion, wall = perf_counter; native = 1 converter thread, native2 = 2):", "",
             "| engine | CPU s, drift off | CPU s, drift on | CPU cost | wall s off | wall s on | wall cost | "
             "wall cost per round | sampler's own CPU s | sampler / CPU off | lines sampled | rows |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for engine, r in result.items():
        off, on, own, w_off, w_on = (statistics.median(r[k]) for k in ("cpu_off", "cpu_on", "sampler_s",
                                                                       "wall_off", "wall_on"))
        rounds_cost = [a / b - 1 for a, b in zip(r["wall_on"], r["wall_off"])]
        lines.append(f"| {engine} | {off:.3f} ({mb / off:.0f} MB/s) | {on:.3f} | {on / off - 1:+.1%} | {w_off:.3f} | "
                     f"{w_on:.3f} | {w_on / w_off - 1:+.1%} | median {statistics.median(rounds_cost):+.1%} | "
                     f"{own:.4f} | {own / off:.2%} | {r['lines_sampled']} | {r['rows']} |")
        if engine.startswith("native"):
            verdicts.append(f"- {shape}, {engine}, in-process: CPU {on / off - 1:+.1%}, wall {w_on / w_off - 1:+.1%} "
                            f"(medians), the sampler's own CPU {own / off:.2%} of the conversion's <= "
                            f"{TARGET_LOSS:.0%} -> {'PASS' if own / off <= TARGET_LOSS else 'MISS'}")
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=100)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--shapes", default="events,social")
    parser.add_argument("--baseline", metavar="REV", help="also run REV's code (e.g. main), all cores, no drift")
    parser.add_argument("--python", action="store_true", help="also the pure-Python path, drift on and off")
    parser.add_argument("--results", default=str(RESULTS / "drift.md"))
    parser.add_argument("--in-process-rounds", type=int, default=11, help="rounds of the in-process measurement (0: none)")
    parser.add_argument("--skip-cli", action="store_true", help="only the in-process measurement")
    parser.add_argument("--callgrind", action="store_true", help="also count instructions with callgrind")
    parser.add_argument("--ir-child", nargs=3, metavar=("MODE", "SRC", "SHAPE"), help=argparse.SUPPRESS)
    parser.add_argument("--child", nargs=4, metavar=("SRC", "SHAPE", "ROUNDS", "ENGINES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ir_child:
        convert_once(*args.ir_child)
        return
    if args.child:
        src, shape, rounds, engines = args.child
        print(json.dumps(in_process(src, shape, int(rounds), engines.split(","))))
        return
    threads = nproc()
    work = Path(tempfile.mkdtemp(prefix="bench-drift-"))
    os.environ["PIPELINE_LOCAL_ROOTS"] = os.pathsep.join([str(ROOT), str(work), str(DATA)])
    children = Children(work)
    baseline = Children(work, export(args.baseline, work)) if args.baseline else None
    compile_project()
    if baseline is not None:
        compile_project(baseline.root)
    report = ["# Drift sample cost: transform with drift on vs off", "", *machine_facts(),
              f"- reps: {args.reps} rounds, interleaved; medians; MB = 10^6 bytes; cores: {threads}", ""]
    verdicts = []
    try:
        for shape in args.shapes.split(","):
            src = ensure_input(children, "jsonl", args.mb, args.seed, shape)
            warm(src)
            mb = src.stat().st_size / 1e6
            configs: list[Config] = []

            def config(key: str, label: str, runner: Children = children, **options) -> Config:
                c = Config(key, label, [], work / f"out-{shape}-{key}", mb)
                c.children = runner
                c.argv = ["cli", "run", write_config(work, f"{shape}-{key}", transform_config(src, c.out, shape, **options)),
                          "-q"]
                configs.append(c)
                return c

            pairs = [(config("on", f"native, {threads} threads, drift on"),
                      config("off", f"native, {threads} threads, drift off", drift=False)),
                     (config("on1", "native, 1 thread, drift on", threads=1),
                      config("off1", "native, 1 thread, drift off", threads=1, drift=False))]
            if args.python:
                pairs.append((config("py-on", "pure Python, drift on", engine="python"),
                              config("py-off", "pure Python, drift off", engine="python", drift=False)))
            if baseline is not None:
                config("base", f"{args.baseline} (before), native, {threads} threads", baseline)
            log(f"{shape}: {mb:.0f} MB")
            for r in range(0 if args.skip_cli else args.reps):
                order = configs[r % len(configs):] + configs[: r % len(configs)]
                for c in order:
                    shutil.rmtree(c.out, ignore_errors=True)
                    c.out.mkdir(parents=True)
                    c.runs.append(c.children.run(c.argv))
                    log(f"  round {r + 1}/{args.reps}: {c.label}: {c.runs[-1]['seconds']:.2f} s")
            lines = [f"## shape `{shape}`: {mb:.0f} MB", ""]
            if args.in_process_rounds:
                lines += in_process_section(src, shape, mb, args.in_process_rounds,
                                            ["native", "native2"] + (["python"] if args.python else []), verdicts)
            if args.callgrind:
                lines += callgrind_section(src, shape, work, verdicts)
            if args.skip_cli:
                print("\n".join(lines) + "\n", flush=True)
                report += [*lines, ""]
                continue
            same = len({sha256(c.out / src.with_suffix(".csv").name) for c in configs}) == 1
            rows = ["| configuration | median s | MB/s | in-unit s | CPU s | peak RSS MB | lines sampled | runs (s) |",
                    "|---|---|---|---|---|---|---|---|"]
            for c in configs:
                rows.append(f"| {c.label} | {c.seconds:.2f} | {c.mb_s:.1f} | {statistics.median(c.unit_s()):.2f} | "
                            f"{c.cpu:.2f} | {c.rss:.1f} | {c.lines_sampled() or ''} | "
                            + " / ".join(f"{r['seconds']:.2f}" for r in c.runs) + " |")
            lines += ["CLI, one child per run:", "", *rows, "",
                      f"- outputs byte-identical across configurations: {'YES' if same else 'NO'}"]
            for on, off in pairs:
                wall = loss([r["seconds"] for r in on.runs], [r["seconds"] for r in off.runs])
                unit = loss(on.unit_s(), off.unit_s())
                cpu = loss([r["cpu_s"] for r in on.runs], [r["cpu_s"] for r in off.runs])
                rounds = [a["seconds"] / b["seconds"] - 1 for a, b in zip(on.runs, off.runs)]
                lines.append(f"- {on.label} vs off: wall {wall:+.1%}, in-unit {unit:+.1%}, CPU {cpu:+.1%} "
                             f"(wall per round: {', '.join(f'{x:+.1%}' for x in rounds)})")
                if "native" in on.label:
                    verdicts.append(f"- {shape}, {on.label}: throughput loss {max(wall, 0):.1%} (in-unit {unit:+.1%}, "
                                    f"CPU {cpu:+.1%}) <= {TARGET_LOSS:.0%} -> {'PASS' if wall <= TARGET_LOSS else 'MISS'}")
            base = next((c for c in configs if c.key == "base"), None)
            if base is not None:
                off = pairs[0][1]
                lines.append(f"- drift off vs {base.label}: wall {off.seconds / base.seconds - 1:+.1%}, "
                             f"CPU {off.cpu / base.cpu - 1:+.1%} (the progress counters and the code around them)")
            print("\n".join(lines) + "\n", flush=True)
            report += [*lines, ""]
        report += ["## Target", "", *verdicts,
                   f"- load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}"]
        print("\n".join(verdicts), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = Path(args.results)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(report) + "\n")
    log(f"written to {out} at {time.strftime('%H:%M:%S')}")


if __name__ == "__main__":
    main()
