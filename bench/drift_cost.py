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
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

from bench.run import DATA, RESULTS, ROOT, Children, Competitor, ensure_input, log, machine_facts, nproc, \
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=100)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--shapes", default="events,social")
    parser.add_argument("--baseline", metavar="REV", help="also run REV's code (e.g. main), all cores, no drift")
    parser.add_argument("--python", action="store_true", help="also the pure-Python path, drift on and off")
    parser.add_argument("--results", default=str(RESULTS / "drift.md"))
    args = parser.parse_args()
    threads = nproc()
    work = Path(tempfile.mkdtemp(prefix="bench-drift-"))
    os.environ["PIPELINE_LOCAL_ROOTS"] = os.pathsep.join([str(ROOT), str(work), str(DATA)])
    children = Children(work)
    baseline = Children(work, export(args.baseline, work)) if args.baseline else None
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
            for r in range(args.reps):
                order = configs[r % len(configs):] + configs[: r % len(configs)]
                for c in order:
                    shutil.rmtree(c.out, ignore_errors=True)
                    c.out.mkdir(parents=True)
                    c.runs.append(c.children.run(c.argv))
                    log(f"  round {r + 1}/{args.reps}: {c.label}: {c.runs[-1]['seconds']:.2f} s")
            same = len({sha256(c.out / src.with_suffix(".csv").name) for c in configs}) == 1
            rows = ["| configuration | median s | MB/s | in-unit s | CPU s | peak RSS MB | lines sampled | runs (s) |",
                    "|---|---|---|---|---|---|---|---|"]
            for c in configs:
                rows.append(f"| {c.label} | {c.seconds:.2f} | {c.mb_s:.1f} | {statistics.median(c.unit_s()):.2f} | "
                            f"{c.cpu:.2f} | {c.rss:.1f} | {c.lines_sampled() or ''} | "
                            + " / ".join(f"{r['seconds']:.2f}" for r in c.runs) + " |")
            lines = [f"## shape `{shape}`: {mb:.0f} MB", "", *rows, "",
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
