"""Side-by-side benchmarks, all in one run: the machine is shared and noisy, so competitors run
interleaved (round robin, the order rotating each round), repeated, and are compared by medians
and ratios.

    python -m bench.run [--mb 200] [--reps 3] [--seed 7] [--flat-sizes 100,1000] [--skip-flat]
                        [--skip-duckdb] [--workers N] [--profile auto|always|never]

1. JSONL -> CSV of one seeded file with the nested columns of bench.datagen.COLUMNS by
   (a) this project: the real CLI (`python -m local_runner run CONFIG -q`, transform:JSONL), and
       processors.run_unit called directly; (b) a plain orjson + csv.writer line loop;
   (c) DuckDB read_json -> COPY TO csv with as many threads as this machine has.
2. zip -> CSV end to end (the sample's shape: decompress:zip then transform:JSONL, local files)
   next to transform alone, in the same rounds.
3. Flat memory: zip -> CSV at two sizes (default 100 MB and 1 GB uncompressed): peak RSS of each.
Every competitor runs in its own child process (bench.child), which reports its own peak RSS.
Results go to stdout and bench/results/latest.md; see bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from bench.datagen import COLUMNS

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data"
RESULTS = ROOT / "bench" / "results"
PY = sys.executable

# Targets the project must meet.
TARGET_RATIO = 1.5  # this project's transform throughput / the line loop's
TARGET_RSS_MB = 64.0  # zip -> CSV peak RSS at every flat-memory size
TARGET_RSS_SPREAD_MB = 5.0  # ... and within this much of each other


def nproc() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- children --------------------------------------------------------------------------------

class Children:
    """Runs `python -m bench.child REPORT ...` and collects wall time, own peak RSS, CPU time."""

    def __init__(self, work: Path):
        self.work = work
        self.count = 0

    def run(self, argv: list[str]) -> dict:
        self.count += 1
        base = self.work / f"child-{self.count}"
        report, out, err = (Path(f"{base}.{s}") for s in ("report.json", "stdout", "stderr"))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        with open(out, "wb") as so, open(err, "wb") as se:
            start = time.perf_counter()
            proc = subprocess.Popen([PY, "-m", "bench.child", str(report), *argv], cwd=ROOT, env=env,
                                    stdout=so, stderr=se)
            _, status, usage = os.wait4(proc.pid, 0)
            seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        try:
            if proc.returncode:
                raise RuntimeError(f"child {argv[:3]} exited {proc.returncode}:\n{err.read_text(errors='replace')[-3000:]}")
            own = json.loads(report.read_text())
            return {"seconds": seconds, "peak_rss_mb": own["peak_rss_mb"] or usage.ru_maxrss / 1024,
                    "wait4_maxrss_mb": usage.ru_maxrss / 1024, "cpu_s": usage.ru_utime + usage.ru_stime,
                    "stdout": out.read_text(errors="replace")}
        finally:
            for p in (report, out, err):
                p.unlink(missing_ok=True)


@dataclass
class Competitor:
    key: str
    label: str
    argv: list[str]
    out: Path  # this competitor's output folder, emptied before each of its runs
    input_mb: float
    runs: list[dict] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return statistics.median(r["seconds"] for r in self.runs)

    @property
    def mb_s(self) -> float:
        return self.input_mb / self.seconds

    @property
    def rss(self) -> float:
        return max(r["peak_rss_mb"] for r in self.runs)

    @property
    def cpu(self) -> float:
        return statistics.median(r["cpu_s"] for r in self.runs)

    @property
    def unit_seconds(self) -> float | None:
        """Median time inside the units (from the manifest): the wall time less start-up and orchestration."""
        values = []
        for r in self.runs:
            try:
                m = json.loads(r["stdout"])
            except ValueError:
                return None
            if "unit_seconds" in m:
                values.append(m["unit_seconds"])
            elif "steps" in m:
                values.append(sum(u["seconds"] for s in m["steps"] for u in s["results"]))
            else:
                return None
        return statistics.median(values)


def run_rounds(children: Children, competitors: list[Competitor], reps: int, title: str) -> None:
    """Round robin: every competitor once per round; the order rotates so none always goes first."""
    for r in range(reps):
        order = competitors[r % len(competitors):] + competitors[: r % len(competitors)]
        for c in order:
            shutil.rmtree(c.out, ignore_errors=True)
            c.out.mkdir(parents=True)
            result = children.run(c.argv)
            c.runs.append(result)
            log(f"  {title} round {r + 1}/{reps}: {c.label}: {result['seconds']:.2f} s, "
                f"peak RSS {result['peak_rss_mb']:.1f} MB")


# --- inputs ----------------------------------------------------------------------------------

def size_tag(mb: float) -> str:
    return f"{mb:g}mb"


def ensure_input(children: Children, kind: str, mb: float, seed: int) -> Path:
    """A seeded input in bench/data/, cached by kind, size and seed; generated in a child process
    (the generator's record pool must not raise this driver's own memory, see bench/child.py)."""
    path = DATA / f"events-{size_tag(mb)}-seed{seed}.{kind}"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        log(f"generating {path.relative_to(ROOT)} ...")
        t = time.perf_counter()
        children.run(["gen", kind, str(path), str(mb), str(seed)])
        log(f"  done in {time.perf_counter() - t:.0f} s")
    return path


def uncompressed_mb(zip_path: Path) -> float:
    with zipfile.ZipFile(zip_path) as zf:
        return sum(i.file_size for i in zf.infolist()) / 1e6


def warm(path: Path) -> None:
    """Read a file once so every competitor finds it in the page cache (not the first one only)."""
    buf = bytearray(1 << 20)
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buf):
            pass


# --- configs ---------------------------------------------------------------------------------

def write_config(work: Path, name: str, config: dict) -> str:
    path = work / f"{name}.json"
    path.write_text(json.dumps(config, indent=1))
    return str(path)


def transform_config(src: Path, out: Path) -> dict:
    return {"sourcemart": "bench", "table": "transform", "processors": [
        {"processor_name": "transform", "processor_type": "JSONL", "processor_config": {
            "src": {"type": "local", "path": str(src)}, "dest": {"type": "local", "path": f"{out}/"},
            "columns": COLUMNS}}]}


def zip_config(src: Path, out: Path) -> dict:
    """samples/acme/events.json on local files: unpack the JSONL members, convert each, quarantine rejects."""
    return {"sourcemart": "bench", "table": "zip", "processors": [
        {"processor_name": "decompress", "processor_type": "zip", "processor_config": {
            "src": {"type": "local", "path": str(src)}, "dest": {"type": "local", "path": f"{out}/extracted/"},
            "members": "**/*.jsonl"}},
        {"processor_name": "transform", "processor_type": "JSONL", "processor_config": {
            "dest": {"type": "local", "path": f"{out}/csv/"}, "columns": COLUMNS,
            "on_error": "quarantine", "rejects": {"type": "local", "path": f"{out}/rejects/"}}}]}


# --- checks ----------------------------------------------------------------------------------

def count_lines(path: Path) -> int:
    n, buf = 0, bytearray(1 << 20)
    with open(path, "rb", buffering=0) as f:
        while k := f.readinto(buf):
            n += buf.count(b"\n", 0, k)
    return n


def csv_rows(path: Path) -> int:
    with open(path, newline="", encoding="utf-8") as f:
        return sum(1 for _ in csv.reader(f)) - 1  # less the header


def compare_csv(ours: Path, theirs: Path) -> tuple[int, int, dict[str, int]]:
    """(our data rows, their data rows, per column: rows whose text differs)."""
    csv.field_size_limit(1 << 30)
    diff = {c["name"]: 0 for c in COLUMNS}
    names = list(diff)
    n_ours = n_theirs = 0
    with open(ours, newline="", encoding="utf-8") as a, open(theirs, newline="", encoding="utf-8") as b:
        ra, rb = csv.reader(a), csv.reader(b)
        next(ra), next(rb)
        for row_a in ra:
            n_ours += 1
            row_b = next(rb, None)
            if row_b is None:
                continue
            n_theirs += 1
            for name, x, y in zip(names, row_a, row_b):
                if x != y:
                    diff[name] += 1
        n_theirs += sum(1 for _ in rb)
    return n_ours, n_theirs, diff


# --- report ----------------------------------------------------------------------------------

def package_versions() -> str:
    out = []
    for name in ("orjson", "pydantic", "pydantic-core", "duckdb", "azure-storage-blob"):
        try:
            out.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            out.append(f"{name} (not installed)")
    return ", ".join(out)


def machine_facts() -> list[str]:
    cpu = mem = "?"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
        mem = next(line.split(":", 1)[1].strip() for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    except (OSError, StopIteration):
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "processors", "writers", "mounters",
                                "pipeline", "local_runner"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        commit += " (uncommitted changes under the project's code)" if dirty else " (project code clean)"
    except OSError:
        commit = "?"
    return [f"- date: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}",
            f"- machine: nproc {nproc()} (os.cpu_count {os.cpu_count()}), {cpu}, {mem} RAM, "
            f"{platform.system()} {platform.release()} {platform.machine()}",
            f"- Python {platform.python_version()} ({platform.python_implementation()}), {PY}",
            f"- packages: {package_versions()}",
            f"- project commit: {commit}",
            f"- load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}"]


def table(rows: list[Competitor], baseline: Competitor | None, input_label: str = "MB/s (input)",
          ratio_label: str = "vs line loop") -> str:
    head = ["competitor", "median s", input_label, "peak RSS MB", "CPU s", "in-unit s", "runs (s)"]
    if baseline:
        head.append(ratio_label)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in rows:
        unit = c.unit_seconds
        cells = [c.label, f"{c.seconds:.2f}", f"{c.mb_s:.1f}", f"{c.rss:.1f}", f"{c.cpu:.2f}",
                 f"{unit:.2f}" if unit is not None else "", " / ".join(f"{r['seconds']:.2f}" for r in c.runs)]
        if baseline:
            cells.append(f"{c.mb_s / baseline.mb_s:.2f}x")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_round_ratios(ours: Competitor, base: Competitor) -> list[float]:
    """Throughput ratio within each round (both ran within seconds of each other)."""
    return [b["seconds"] / a["seconds"] for a, b in zip(ours.runs, base.runs)]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


# --- main ------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=200, help="JSONL input size in MB (10^6 bytes); default 200")
    parser.add_argument("--reps", type=int, default=3, help="rounds of every comparison; default 3")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--flat-sizes", default="100,1000", help="zip -> CSV sizes, MB uncompressed; default 100,1000")
    parser.add_argument("--skip-flat", action="store_true", help="leave out the flat-memory comparison")
    parser.add_argument("--skip-duckdb", action="store_true")
    parser.add_argument("--workers", type=int, help="--workers for the CLI (default: the CLI's own, min(4, nproc))")
    parser.add_argument("--profile", choices=["auto", "always", "never"], default="auto",
                        help="profile this project's transform (bench.profile): auto = when a speed target is missed")
    parser.add_argument("--results", default=str(RESULTS / "latest.md"), help="markdown report path")
    args = parser.parse_args()
    threads = nproc()
    workers = ["--workers", str(args.workers)] if args.workers else []
    cli_workers = args.workers or min(4, os.cpu_count() or 1)

    work = Path(tempfile.mkdtemp(prefix="bench-"))
    children = Children(work)
    report = ["# Benchmark results", "", *machine_facts(),
              f"- reps: {args.reps} rounds, interleaved (median time, max peak RSS over rounds); "
              f"MB = 10^6 bytes; CLI workers: {cli_workers}; DuckDB threads: {threads}", ""]
    targets: list[str] = []
    rows_agree = True
    started = time.perf_counter()
    try:
        src = ensure_input(children, "jsonl", args.mb, args.seed)
        zsrc = ensure_input(children, "zip", args.mb, args.seed)
        flat_sizes = [] if args.skip_flat else [float(s) for s in args.flat_sizes.split(",") if s.strip()]
        flat_zips = [ensure_input(children, "zip", size, args.seed) for size in flat_sizes]
        for p in (src, zsrc, *flat_zips):
            warm(p)
        mb = src.stat().st_size / 1e6
        zmb = uncompressed_mb(zsrc)
        cli = ["cli", "run"]

        # 1 + 2: transform competitors and zip -> CSV, all in the same rounds.
        c_cli = Competitor("cli", "this project: CLI transform:JSONL", [], work / "out-cli", mb)
        c_cli.argv = [*cli, write_config(work, "transform", transform_config(src, c_cli.out)), "-q", *workers]
        c_unit = Competitor("unit", "this project: processors.run_unit in-process", [], work / "out-unit", mb)
        c_unit.argv = ["unit", write_config(work, "transform-unit", transform_config(src, c_unit.out))]
        c_loop = Competitor("loop", "line loop: orjson + csv.writer", [], work / "out-loop", mb)
        c_loop.argv = ["loop", str(src), str(c_loop.out / "loop.csv")]
        c_zip = Competitor("zip", "zip -> CSV: CLI decompress:zip + transform:JSONL", [], work / "out-zip", zmb)
        c_zip.argv = [*cli, write_config(work, "zip", zip_config(zsrc, c_zip.out)), "-q", *workers]
        competitors = [c_cli, c_unit, c_loop]
        c_duck = None
        if not args.skip_duckdb:
            c_duck = Competitor("duckdb", f"DuckDB {metadata.version('duckdb')} read_json -> COPY ({threads} threads)",
                                [], work / "out-duckdb", mb)
            c_duck.argv = ["duckdb", str(src), str(c_duck.out / "duck.csv"), str(threads)]
            competitors.append(c_duck)
        competitors.append(c_zip)
        log(f"JSONL -> CSV on {src.relative_to(ROOT)} ({mb:.0f} MB) and zip -> CSV on {zsrc.relative_to(ROOT)}:")
        run_rounds(children, competitors, args.reps, "transform")

        # Same rows? (outputs of each competitor's last round are still there)
        lines = count_lines(src)
        ours_csv = c_cli.out / src.with_suffix(".csv").name
        n_ours, n_loop, diff = compare_csv(ours_csv, c_loop.out / "loop.csv")
        manifest_rows = json.loads(c_cli.runs[-1]["stdout"])["totals"]["rows"]
        unit_rows = json.loads(c_unit.runs[-1]["stdout"])["totals"]["rows"]
        checks = [f"- input lines: {lines}; data rows written: this project (CLI) {n_ours} "
                  f"(manifest: {manifest_rows}), run_unit {unit_rows}, line loop {n_loop}"
                  + (f", DuckDB {csv_rows(c_duck.out / 'duck.csv')}" if c_duck else "")
                  + f" -> this project and the line loop {'AGREE' if n_ours == n_loop else 'DIFFER'}",
                  "- cells whose text differs between this project and the line loop, per column: "
                  + ", ".join(f"{k} {v}" for k, v in diff.items())
                  + " (expected only where Python's str() differs from this project's text: items, tags "
                  "(Python repr vs JSON), active (True/False vs true/false) and some score values "
                  "(1e-05 vs 0.00001); everything else should be 0)"]
        rows_agree = n_ours == n_loop == manifest_rows
        if not rows_agree:
            log(f"ROW COUNTS DIFFER: this project {n_ours} (manifest {manifest_rows}), line loop {n_loop}")

        ratio = c_cli.mb_s / c_loop.mb_s
        rounds = per_round_ratios(c_cli, c_loop)
        section1 = [f"## 1. JSONL -> CSV: {mb:.0f} MB, {lines} lines, {len(COLUMNS)} columns (nested paths)", "",
                    table([c for c in competitors if c is not c_zip], c_loop), "", *checks,
                    f"- this project (CLI) vs line loop per round: {', '.join(f'{x:.2f}x' for x in rounds)}"
                    f" (median {statistics.median(rounds):.2f}x)"]
        if c_duck:
            section1.append("- DuckDB: read_json(format='newline_delimited') with its default schema sampling; "
                            "it types `ts` as TIMESTAMPTZ, so its ts text differs (2024-01-01 00:00:00+00)")
        targets.append(f"- this project's transform (CLI) throughput >= {TARGET_RATIO}x the line loop: "
                       f"{ratio:.2f}x (per-round median {statistics.median(rounds):.2f}x) -> "
                       f"{verdict(ratio >= TARGET_RATIO)}")

        section2 = [f"## 2. zip -> CSV end to end vs transform alone ({zmb:.0f} MB uncompressed in 3 members, "
                    f"zip {zsrc.stat().st_size / 1e6:.0f} MB, deflate level 1; same rounds as 1.)", "",
                    table([c_zip, c_cli], c_cli, "MB/s (uncompressed)", "vs transform alone"), "",
                    f"- zip -> CSV rows: {json.loads(c_zip.runs[-1]['stdout'])['totals']['rows']} "
                    f"(the manifest's total over both steps; the decompress step counts no rows)"]
        for s in (section1, section2):
            print("\n".join(s) + "\n", flush=True)

        section3: list[str] = []
        if flat_sizes:
            flat = []
            for size, z in zip(flat_sizes, flat_zips):
                c = Competitor(f"flat-{size:g}", f"zip -> CSV, {uncompressed_mb(z):.0f} MB uncompressed", [],
                               work / f"out-flat-{size:g}", uncompressed_mb(z))
                c.argv = [*cli, write_config(work, f"flat-{size:g}", zip_config(z, c.out)), "-q", *workers]
                flat.append(c)
            log("flat memory:")
            run_rounds(children, flat, args.reps, "flat")
            spread = max(c.rss for c in flat) - min(c.rss for c in flat)
            section3 = ["## 3. Flat memory: zip -> CSV on local files (CLI, as 2.)", "",
                        table(flat, None, "MB/s (uncompressed)"), "",
                        "- peak RSS per size: " + ", ".join(f"{c.input_mb:.0f} MB -> {c.rss:.1f} MB "
                                                            f"(rounds: {' / '.join(f'{r['peak_rss_mb']:.1f}' for r in c.runs)})"
                                                            for c in flat),
                        f"- difference between sizes: {spread:.1f} MB"]
            print("\n".join(section3) + "\n", flush=True)
            targets.append(f"- zip -> CSV peak RSS <= {TARGET_RSS_MB:.0f} MB at every size: "
                           + ", ".join(f"{c.rss:.1f} MB" for c in flat)
                           + f" -> {verdict(all(c.rss <= TARGET_RSS_MB for c in flat))}")
            targets.append(f"- ... and within {TARGET_RSS_SPREAD_MB:.0f} MB of each other: {spread:.1f} MB -> "
                           f"{verdict(spread <= TARGET_RSS_SPREAD_MB)}")

        profile_section: list[str] = []
        if args.profile == "always" or (args.profile == "auto" and ratio < TARGET_RATIO):
            log("profiling this project's transform (bench.profile) ...")
            proc = subprocess.run([PY, "-m", "bench.profile", str(src)], cwd=ROOT, capture_output=True, text=True,
                                  env={**os.environ, "PYTHONPATH": str(ROOT)})
            if proc.returncode:
                profile_section = ["## 4. Profile", "", "bench.profile failed:", "```", proc.stderr[-3000:], "```"]
            else:
                profile_section = [proc.stdout.rstrip()]
            print("\n".join(profile_section) + "\n", flush=True)

        driver_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        notes = [f"- load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
                 f"whole benchmark {time.perf_counter() - started:.0f} s",
                 f"- peak RSS is each child's own VmHWM; this driver's own peak was {driver_rss:.1f} MB "
                 f"(wait4's ru_maxrss of a child can never read below that; see bench/child.py)"]
        report += ["## Targets", "", *targets, "", *section1, "", *section2, ""]
        if section3:
            report += [*section3, ""]
        if profile_section:
            report += [*profile_section, ""]
        report += ["## Notes", "", *notes]
        print("## Targets\n\n" + "\n".join(targets) + "\n\n" + "\n".join(notes), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = Path(args.results)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text("\n".join(report) + "\n")
    os.replace(tmp, out)
    log(f"written to {out}")
    if not rows_agree:
        raise SystemExit("this project and the line loop wrote different numbers of rows")


if __name__ == "__main__":
    main()
