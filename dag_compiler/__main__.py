"""python -m dag_compiler [compile] [--sourcemarts DIR] [--out FILE] [--check]
   python -m dag_compiler describe [--compiled FILE]

compile   validate sourcemarts/*.json and write the compiled DAG plan (default dags/sourcemarts.compiled.json);
          --check: write nothing, exit 1 if the file on disk is not what the sourcemarts compile to
describe  a Markdown table of the DAGs and assets in a compiled plan (for the README and reviews)

Exit codes: 0 done, 1 --check found a stale file, 2 the sourcemarts do not compile.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dag_compiler.compile import CompileError, compile_sourcemarts, dumps

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCEMARTS = ROOT / "sourcemarts"
DEFAULT_OUT = ROOT / "dags" / "sourcemarts.compiled.json"


def read_sourcemarts(folder: Path) -> list[tuple[str, object]]:
    """Parsed files; a JSON syntax error names file, line and column."""
    docs, errors = [], []
    for path in sorted(folder.glob("*.json")):
        name = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
        try:
            docs.append((name, json.loads(path.read_text(encoding="utf-8-sig"))))
        except json.JSONDecodeError as exc:
            errors.append(f"{name}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}")
    if errors:
        raise CompileError(errors)
    if not docs:
        raise CompileError([f"{folder}: no sourcemart files (*.json)"])
    return docs


def describe(compiled: dict) -> str:
    def schedule(d):
        return f"cron `{d['schedule']['cron']}`" if "cron" in d["schedule"] else "<br>".join(
            f"`{u}`" for u in d["schedule"]["assets"])

    lines = ["| DAG | runs on | tasks | updates |", "|---|---|---|---|"]
    for d in compiled["dags"]:
        tasks = " → ".join(f"{t['task_id']} (Functions)" if t["type"] == "processors" else t["task_id"] for t in d["tasks"])
        lines.append(f"| `{d['dag_id']}` | {schedule(d)} | {tasks} | `{d['outlets'][0]}` |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dag_compiler", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("compile")
    for q in (parser, p):
        q.add_argument("--sourcemarts", type=Path, default=DEFAULT_SOURCEMARTS)
        q.add_argument("--out", type=Path, default=DEFAULT_OUT)
        q.add_argument("--check", action="store_true")
    d = sub.add_parser("describe")
    d.add_argument("--compiled", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if args.command == "describe":
        sys.stdout.write(describe(json.loads(args.compiled.read_text())))
        return 0
    try:
        text = dumps(compile_sourcemarts(read_sourcemarts(args.sourcemarts)))
    except CompileError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    if args.check:
        current = args.out.read_text() if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is stale: run python -m dag_compiler", file=sys.stderr)
            return 1
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(args.out)  # a deploy never picks up half a file
    n = text.count('"dag_id"')
    print(f"{args.out}: {n} DAGs", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
