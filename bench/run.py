"""Side-by-side benchmarks, all in one run: the machine is shared and noisy, so competitors run
interleaved (round robin, the order rotating each round), repeated, and are compared by medians
and ratios.

    python -m bench.run [--mb 200] [--reps 3] [--warmup 1] [--seed 7] [--shapes events,social] [--flat-sizes 100,1000]
                        [--skip-flat] [--skip-duckdb] [--skip-polars]

1. JSONL -> CSV per data shape (events: small nested records; social: wide, deep, long text), by
   this project's CLI (transform:JSONL with the native kernel on all cores and on 1 thread, and the
   pure-Python path), a plain orjson + csv.writer line loop, DuckDB (1 and 2 threads) and polars.
2. zip -> CSV and gzip -> CSV end to end (events; the CLI: a transform reading the archive, and
   for zip also decompress-to-disk then transform), in the same rounds as 1.
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

from bench.datagen import SHAPE_COLUMNS

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data"
RESULTS = ROOT / "bench" / "results"
PY = sys.executable

# Targets the project must meet (issue 10).
TARGET_VS_DUCKDB = 2.0  # transform throughput / DuckDB's with the same number of threads
TARGET_ZIP_VS_DUCKDB = 1.5  # zip -> CSV throughput / DuckDB's on the uncompressed file (all cores)
TARGET_RSS_MB = 40.0  # peak RSS of the transform and of zip -> CSV at every flat-memory size
TARGET_RSS_SPREAD_MB = 5.0  # ... and within this much of each other


def nproc() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# The code every child imports: byte-compiled once before measuring, so no child pays for
# compiling it (a fresh clone has no __pycache__; with PYTHONDONTWRITEBYTECODE set nothing is ever
# cached) and the first round is not slower than the rest.
PROJECT_PACKAGES = ("local_runner", "pipeline", "processors", "writers", "mounters", "backends", "bench")


def compile_project(root: Path = ROOT) -> None:
    import compileall

    for package in PROJECT_PACKAGES:
        if (root / package).is_dir():
            compileall.compile_dir(root / package, quiet=1)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- children --------------------------------------------------------------------------------

class Children:
    """Runs `python -m bench.child REPORT ...` and collects wall time, own peak RSS, CPU time."""

    def __init__(self, work: Path, root: Path = ROOT):
        self.work = work
        self.root = root  # the code the children run (bench.drift_cost: a baseline revision's)
        self.count = 0

    def run(self, argv: list[str]) -> dict:
        self.count += 1
        base = self.work / f"child-{self.count}"
        report, out, err = (Path(f"{base}.{s}") for s in ("report.json", "stdout", "stderr"))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(self.root), os.environ.get("PYTHONPATH")])),
               # the CLI's local files: the inputs (bench/data) and this run's outputs (a temp folder)
               "PIPELINE_LOCAL_ROOTS": os.pathsep.join([str(DATA), str(self.work)])}
        with open(out, "wb") as so, open(err, "wb") as se:
            start = time.perf_counter()
            proc = subprocess.Popen([PY, "-m", "bench.child", str(report), *argv], cwd=self.root, env=env,
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


def run_rounds(children: Children, competitors: list[Competitor], reps: int, title: str, warmup: int = 0) -> None:
    """Round robin: every competitor once per round; the order rotates so none always goes first.
    The first `warmup` rounds are not counted: a competitor's first run after another's pays for
    loading its code and libraries from disk (the page cache), which later runs do not."""
    for r in range(-warmup, reps):
        order = competitors[r % len(competitors):] + competitors[: r % len(competitors)]
        for c in order:
            shutil.rmtree(c.out, ignore_errors=True)
            c.out.mkdir(parents=True)
            result = children.run(c.argv)
            if r >= 0:
                c.runs.append(result)
            log(f"  {title} round {f'{r + 1}/{reps}' if r >= 0 else 'warm-up'}: {c.label}: "
                f"{result['seconds']:.2f} s, peak RSS {result['peak_rss_mb']:.1f} MB")


# --- inputs ----------------------------------------------------------------------------------

def size_tag(mb: float) -> str:
    return f"{mb:g}mb"


def ensure_input(children: Children, kind: str, mb: float, seed: int, shape: str = "events") -> Path:
    """A seeded input in bench/data/, cached by shape, kind, size and seed; generated in a child
    process (the generator's record pool must not raise this driver's own memory, see bench/child.py)."""
    path = DATA / f"{shape}-{size_tag(mb)}-seed{seed}.{kind}"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        log(f"generating {path.relative_to(ROOT)} ...")
        t = time.perf_counter()
        children.run(["gen", kind, str(path), str(mb), str(seed), shape])
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


def transform_config(src: Path, out: Path, shape: str, **options) -> dict:
    return {"sourcemart": "bench", "table": "transform", "processors": [
        {"processor_name": "transform", "processor_type": "JSONL", "processor_config": {
            "src": {"type": "local", "path": str(src)}, "dest": {"type": "local", "path": f"{out}/"},
            "columns": SHAPE_COLUMNS[shape], **options}}]}


def archive_config(kind: str, src: Path, out: Path, shape: str) -> dict:
    """One stream: a transform whose src is the archive (members read straight into the converter)."""
    members = {"members": "**/*.jsonl"} if kind == "zip" else {}
    return {"sourcemart": "bench", "table": kind, "processors": [
        {"processor_name": "transform", "processor_type": "JSONL", "processor_config": {
            "src": {"type": "local", "path": str(src)}, "archive": kind, **members,
            "dest": {"type": "local", "path": f"{out}/csv/"}, "columns": SHAPE_COLUMNS[shape],
            "on_error": "quarantine", "rejects": {"type": "local", "path": f"{out}/rejects/"}}}]}


def two_step_config(kind: str, src: Path, out: Path, shape: str) -> dict:
    """samples/acme/events.json on local files: unpack the JSONL members, convert each, quarantine rejects."""
    members = {"members": "**/*.jsonl"} if kind == "zip" else {}
    return {"sourcemart": "bench", "table": kind, "processors": [
        {"processor_name": "decompress", "processor_type": kind, "processor_config": {
            "src": {"type": "local", "path": str(src)}, "dest": {"type": "local", "path": f"{out}/extracted/"},
            **members}},
        {"processor_name": "transform", "processor_type": "JSONL", "processor_config": {
            "dest": {"type": "local", "path": f"{out}/csv/"}, "columns": SHAPE_COLUMNS[shape],
            "on_error": "quarantine", "rejects": {"type": "local", "path": f"{out}/rejects/"}}}]}


# --- checks ----------------------------------------------------------------------------------

def count_lines(path: Path) -> int:
    n, buf = 0, bytearray(1 << 20)
    with open(path, "rb", buffering=0) as f:
        while k := f.readinto(buf):
            n += buf.count(b"\n", 0, k)
    return n


def csv_rows(path: Path) -> int:
    csv.field_size_limit(1 << 30)
    with open(path, newline="", encoding="utf-8") as f:
        return sum(1 for _ in csv.reader(f)) - 1  # less the header


def sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


# --- report ----------------------------------------------------------------------------------

def package_versions() -> str:
    out = []
    for name in ("orjson", "pydantic", "pydantic-core", "duckdb", "polars", "sourcemart-kernel"):
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
          ratio_label: str = "vs DuckDB") -> str:
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


# --- the README's measured section -----------------------------------------------------------

README_BEGIN = "<!-- bench:begin (written by `make bench`: bench/run.py --readme) -->"
README_END = "<!-- bench:end -->"
SHAPE_NOTES = {"events": "small nested records, ", "social": "a social-media API dump: ~3.3 KB records, "
                                                              "8-level nesting, long text; "}


def readme_table(competitors: list[Competitor], ducks: dict[int, Competitor], threads: int) -> str:
    """One shape's table for the README: each competitor's throughput, peak RSS, CPU seconds, and
    for this project's native runs the ratio to DuckDB with the same threads (with each round's)."""
    lines = ["| competitor | MB/s | peak RSS MB | CPU s | vs DuckDB, same threads (per round) |", "|---|---|---|---|---|"]
    for c in competitors:
        n = threads if c.key == "native" else 1 if c.key == "native1" else None
        duck = ducks.get(n) if n else (c if c.key.startswith("duckdb") else None)
        ratio = ""
        if duck is c:
            ratio = "1.00x"
        elif duck is not None:
            ratio = (f"**{c.mb_s / duck.mb_s:.2f}x** (" + " / ".join(f"{x:.2f}" for x in per_round_ratios(c, duck)) + ")")
        lines.append(f"| {c.label} | {c.mb_s:.1f} | {c.rss:.1f} | {c.cpu:.2f} | {ratio} |")
    return "\n".join(lines)


def update_readme(path: Path, section: list[str]) -> None:
    """Replace what lies between the README's bench markers with this run's section."""
    text = path.read_text()
    if README_BEGIN not in text or README_END not in text:
        log(f"{path}: no {README_BEGIN!r} ... {README_END!r} markers: README left alone")
        return
    before, rest = text.split(README_BEGIN, 1)
    after = rest.split(README_END, 1)[1]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(before + README_BEGIN + "\n" + "\n".join(section) + "\n" + README_END + after)
    os.replace(tmp, path)
    log(f"README section updated: {path}")


# --- main ------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=200, help="JSONL input size in MB (10^6 bytes); default 200")
    parser.add_argument("--reps", type=int, default=3, help="rounds of every comparison; default 3")
    parser.add_argument("--warmup", type=int, default=1, help="uncounted rounds before them; default 1")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--shapes", default="events,social", help="data shapes (bench.datagen); default events,social")
    parser.add_argument("--flat-sizes", default="100,1000", help="zip -> CSV sizes, MB uncompressed; default 100,1000")
    parser.add_argument("--skip-flat", action="store_true", help="leave out the flat-memory comparison")
    parser.add_argument("--skip-duckdb", action="store_true")
    parser.add_argument("--skip-polars", action="store_true")
    parser.add_argument("--results", default=str(RESULTS / "latest.md"), help="markdown report path")
    parser.add_argument("--readme", default=str(ROOT / "README.md"),
                        help="the README whose measured section (between the bench:begin/end markers) is "
                             "replaced by this run's tables; '' leaves it alone")
    args = parser.parse_args()
    threads = nproc()
    shapes = [s for s in args.shapes.split(",") if s]
    try:
        import polars  # noqa: F401
    except ImportError:
        args.skip_polars = True

    compile_project()
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    children = Children(work)
    at_start = machine_facts()  # the README's line quotes these too: the date and load when the run began
    report = ["# Benchmark results", "", *at_start,
              f"- reps: {args.reps} rounds after {args.warmup} uncounted warm-up round(s), interleaved "
              f"(median time, max peak RSS over counted rounds); "
              f"MB = 10^6 bytes; cores: {threads}", ""]
    targets: list[str] = []
    sections: list[list[str]] = []
    readme: list[str] = []  # the README's measured section (readme_table per shape, archive and flat lines)
    agree = True
    started = time.perf_counter()
    cli = ["cli", "run"]
    try:
        for shape in shapes:
            src = ensure_input(children, "jsonl", args.mb, args.seed, shape)
            archives = {}
            if shape == "events":
                archives = {"zip": ensure_input(children, "zip", args.mb, args.seed, shape),
                            "gzip": ensure_input(children, "jsonl.gz", args.mb, args.seed, shape)}
            for p in (src, *archives.values()):
                warm(p)
            mb = src.stat().st_size / 1e6

            def ours(key: str, label: str, **options) -> Competitor:
                c = Competitor(key, label, [], work / f"out-{shape}-{key}", mb)
                c.argv = [*cli, write_config(work, f"{shape}-{key}", transform_config(src, c.out, shape, **options)), "-q"]
                return c

            c_native = ours("native", f"this project: native kernel, {threads} threads")
            c_native1 = ours("native1", "this project: native kernel, 1 thread", threads=1)
            c_python = ours("python", "this project: pure-Python path", engine="python")
            c_loop = Competitor("loop", "line loop: orjson + csv.writer", [], work / f"out-{shape}-loop", mb)
            c_loop.argv = ["loop", str(src), str(c_loop.out / "loop.csv"), shape]
            competitors = [c_native, c_native1, c_python, c_loop]
            ducks = {}
            if not args.skip_duckdb:
                for n in sorted({1, 2, threads}):
                    d = Competitor(f"duckdb{n}", f"DuckDB {metadata.version('duckdb')} read_json -> COPY, {n} thread{'s' * (n > 1)}",
                                   [], work / f"out-{shape}-duckdb{n}", mb)
                    d.argv = ["duckdb", str(src), str(d.out / "duck.csv"), str(n), shape]
                    ducks[n] = d
                    competitors.append(d)
            if not args.skip_polars:
                c_pl = Competitor("polars", f"polars {metadata.version('polars')} scan_ndjson -> sink_csv", [],
                                  work / f"out-{shape}-polars", mb)
                c_pl.argv = ["polars", str(src), str(c_pl.out / "polars.csv"), shape]
                competitors.append(c_pl)
            arch = []
            for kind, path in archives.items():
                umb = uncompressed_mb(path) if kind == "zip" else mb
                c = Competitor(kind, f"{kind} -> CSV, one stream (CLI: transform:JSONL, archive {kind})", [],
                               work / f"out-{shape}-{kind}", umb)
                c.argv = [*cli, write_config(work, f"{shape}-{kind}", archive_config(kind, path, c.out, shape)), "-q"]
                arch.append(c)
            if "zip" in archives:
                c = Competitor("zip2", "zip -> CSV, two steps (CLI: decompress:zip to disk, then transform:JSONL)", [],
                               work / f"out-{shape}-zip2", uncompressed_mb(archives["zip"]))
                c.argv = [*cli, write_config(work, f"{shape}-zip2", two_step_config("zip", archives["zip"], c.out, shape)), "-q"]
                arch.append(c)
            log(f"{shape}: JSONL -> CSV on {src.relative_to(ROOT)} ({mb:.0f} MB)" + (" and zip/gzip -> CSV" if arch else "") + ":")
            run_rounds(children, competitors + arch, args.reps, shape, args.warmup)

            # Same output? (each competitor's last round's output is still there)
            lines = count_lines(src)
            name = src.with_suffix(".csv").name
            same = sha256(c_native.out / name) == sha256(c_native1.out / name) == sha256(c_python.out / name)
            rows = {c.label: json.loads(c.runs[-1]["stdout"])["totals"]["rows"] for c in (c_native, c_native1, c_python)}
            loop_rows = csv_rows(c_loop.out / "loop.csv")
            agree = agree and same and len(set(rows.values())) == 1 and loop_rows == lines
            checks = [f"- input lines: {lines}; rows (manifest): " + ", ".join(f"{k} {v}" for k, v in rows.items())
                      + f"; line loop {loop_rows}"
                      + "".join(f"; DuckDB {n} {csv_rows(d.out / 'duck.csv')}" for n, d in list(ducks.items())[:1]),
                      f"- native (all threads), native (1 thread) and pure-Python outputs byte-identical (sha256): "
                      f"{'YES' if same else 'NO'}"]
            base = ducks.get(1)
            lines_out = [f"## 1. JSONL -> CSV, shape `{shape}`: {mb:.0f} MB, {lines} lines, "
                         f"{len(SHAPE_COLUMNS[shape])} columns", "",
                         table(competitors, base, ratio_label="vs DuckDB 1 thread"), "", *checks]
            if ducks:
                pairs = [(c_native1, ducks[1]), (c_native, ducks[max(ducks)])]
                for ours_c, duck in pairs:
                    ratio = ours_c.mb_s / duck.mb_s
                    rounds = per_round_ratios(ours_c, duck)
                    lines_out.append(f"- {ours_c.label} vs {duck.label}: {ratio:.2f}x (per round: "
                                     + ", ".join(f"{x:.2f}x" for x in rounds) + ")")
                    targets.append(f"- {shape}: {ours_c.label} >= {TARGET_VS_DUCKDB}x {duck.label}: {ratio:.2f}x -> "
                                   f"{verdict(ratio >= TARGET_VS_DUCKDB)}")
            targets.append(f"- {shape}: native transform peak RSS <= {TARGET_RSS_MB:.0f} MB: "
                           f"{c_native.rss:.1f} MB (1 thread {c_native1.rss:.1f} MB) -> "
                           f"{verdict(max(c_native.rss, c_native1.rss) <= TARGET_RSS_MB)}")
            sections.append(lines_out)
            readme += [f"`{shape}` ({SHAPE_NOTES.get(shape, '')}{lines:,} lines, {len(SHAPE_COLUMNS[shape])} columns, "
                       f"{mb:.0f} MB; outputs of the three paths byte-identical: {'yes' if same else 'NO'}):", "",
                       readme_table(competitors, ducks, threads), ""]
            if arch:
                duck = ducks.get(max(ducks)) if ducks else None
                sec2 = [f"## 2. zip -> CSV and gzip -> CSV end to end, shape `{shape}` (same rounds as 1.; "
                        f"zip: 3 members, deflate level 1, {archives['zip'].stat().st_size / 1e6:.0f} MB; "
                        f"gzip level 1, {archives['gzip'].stat().st_size / 1e6:.0f} MB)", "",
                        table(arch + ([duck] if duck else []) + [c_native], duck, "MB/s (uncompressed)",
                              f"vs {duck.label if duck else ''} on the uncompressed file")]
                if duck:
                    readme.append("Decompress -> transform as one stream (`transform` with `archive`), events, "
                                  f"{mb:.0f} MB uncompressed: " + "; ".join(
                                      f"{c.key} -> CSV {c.mb_s:.1f} MB/s, {c.rss:.1f} MB peak, CPU {c.cpu:.2f} s, "
                                      f"**{c.mb_s / duck.mb_s:.2f}x {duck.label}** on the uncompressed file"
                                      for c in arch[:2]) + ".")
                    readme.append("")
                    for c in arch[:2]:
                        ratio = c.mb_s / duck.mb_s
                        targets.append(f"- {c.key} -> CSV >= {TARGET_ZIP_VS_DUCKDB}x {duck.label} on the uncompressed "
                                       f"file: {ratio:.2f}x -> {verdict(ratio >= TARGET_ZIP_VS_DUCKDB)}")
                sections.append(sec2)
            for sec in sections[-2:] if arch else sections[-1:]:
                print("\n".join(sec) + "\n", flush=True)

        if not args.skip_flat:
            flat = []
            for size in [float(s) for s in args.flat_sizes.split(",") if s.strip()]:
                z = ensure_input(children, "zip", size, args.seed)
                warm(z)
                c = Competitor(f"flat-{size:g}", f"zip -> CSV, {uncompressed_mb(z):.0f} MB uncompressed", [],
                               work / f"out-flat-{size:g}", uncompressed_mb(z))
                c.argv = [*cli, write_config(work, f"flat-{size:g}", archive_config("zip", z, c.out, "events")), "-q"]
                flat.append(c)
            log("flat memory:")
            run_rounds(children, flat, args.reps, "flat", args.warmup)
            spread = max(c.rss for c in flat) - min(c.rss for c in flat)
            sec3 = ["## 3. Flat memory: zip -> CSV on local files (CLI, as 2.)", "",
                    table(flat, None, "MB/s (uncompressed)"), "",
                    "- peak RSS per size: " + ", ".join(f"{c.input_mb:.0f} MB -> {c.rss:.1f} MB "
                                                        f"(rounds: {' / '.join(f'{r['peak_rss_mb']:.1f}' for r in c.runs)})"
                                                        for c in flat),
                    f"- difference between sizes: {spread:.1f} MB"]
            sections.append(sec3)
            readme += ["Flat memory, zip -> CSV one stream: " + ", ".join(f"**{c.rss:.1f} MB at {c.input_mb:.0f} MB**"
                                                                     for c in flat)
                       + f" uncompressed ({spread:.1f} MB apart).", ""]
            print("\n".join(sec3) + "\n", flush=True)
            targets.append(f"- zip -> CSV peak RSS <= {TARGET_RSS_MB:.0f} MB at every size: "
                           + ", ".join(f"{c.rss:.1f} MB" for c in flat)
                           + f" -> {verdict(all(c.rss <= TARGET_RSS_MB for c in flat))}")
            targets.append(f"- ... and within {TARGET_RSS_SPREAD_MB:.0f} MB of each other: {spread:.1f} MB -> "
                           f"{verdict(spread <= TARGET_RSS_SPREAD_MB)}")

        driver_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        notes = [f"- load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
                 f"whole benchmark {time.perf_counter() - started:.0f} s",
                 f"- peak RSS is each child's own VmHWM; this driver's own peak was {driver_rss:.1f} MB "
                 f"(wait4's ru_maxrss of a child can never read below that; see bench/child.py)"]
        report += ["## Targets", "", *targets, ""]
        for sec in sections:
            report += [*sec, ""]
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
    if args.readme and readme:
        facts = dict((k[2:], v.strip()) for k, _, v in (line.partition(":") for line in at_start))
        head = [f"Run of {facts.get('date')}, project commit {facts.get('project commit')}, load average at start "
                f"{facts.get('load average at start')}, {args.reps} interleaved rounds after {args.warmup} uncounted (`make bench`; the full report "
                f"with every round is `bench/results/latest.md`). MB/s of input per median wall second, start-up "
                f"included; peak RSS = the child's own VmHWM; CPU s = its user + system time.", ""]
        update_readme(Path(args.readme), head + readme + ["Targets (issue 10) in this run:", "", *targets, ""])
    if not agree:
        raise SystemExit("row counts or bytes differ between this project's paths (see the checks)")


if __name__ == "__main__":
    main()
