"""python -m local_runner {run,serve,validate,schema,suggest}: run a sourcemart/table config on this machine.

  run CONFIG [--dry-run] [--workers N] [--manifest FILE]   run it; print the manifest (JSON)
      [--fail-on-drift] [--progress-interval S]           fail on schema drift; progress lines every S s
  serve [--host H] [--port P] [--workers N]               the function app's HTTP contract, locally
  validate CONFIG...                                      check configs; errors name file and JSON path
  schema [--write FILE]                                   print (or write) the config's JSON Schema
  suggest SOURCE [--rows N] [--format F] [--records-path P] [--input-encoding E] [--report FILE] [--dest D]
                                                          sample a source; print a transform config for it

Exit codes: 0 done, 1 the run failed, 2 a config is invalid or reaches beyond the policy.
Relative local paths in a config are relative to the current directory.

`run` applies the operator's policy (pipeline.policy) like the function app does, with one
difference: when PIPELINE_LOCAL_ROOTS is unset, local locations may be anywhere under the current
directory (the app and `serve` allow no local files by default).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from pipeline.config import ConfigError, json_schema, load_config
from pipeline.settings import redact


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), None
        return True


def _setup_logging(verbose: bool, log_format: str = "text") -> None:
    from pipeline.telemetry import JsonFormatter

    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RedactingFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
    logging.getLogger("azure").setLevel(logging.WARNING)  # the SDK logs every request at INFO
    if log_format == "text" and not verbose:  # a failure is already said in one line: records only when asked
        logging.getLogger("pipeline.telemetry").setLevel(logging.CRITICAL + 1)


def _version() -> str:
    """The installed distribution's version (pyproject.toml), or the source tree's when run from a checkout."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sourcemart")
    except PackageNotFoundError:
        import tomllib
        from pathlib import Path

        with open(Path(__file__).resolve().parent.parent / "pyproject.toml", "rb") as f:
            return tomllib.load(f)["project"]["version"]


class _VersionAction(argparse.Action):
    """--version, looked up only when asked: importlib.metadata's scan of the installed
    distributions costs ~20 ms, which every `run` would otherwise pay at start-up."""

    def __call__(self, parser, namespace, values, option_string=None):
        sys.stdout.write(f"{parser.prog} {_version()}\n")
        parser.exit()


def _dump(obj) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False)


def cmd_validate(args) -> int:
    bad = 0
    for path in args.configs:
        model, _ = _load(path)
        if model is None:
            bad += 1
        else:
            print(f"{path}: ok")
    return 2 if bad else 0


def cmd_schema(args) -> int:
    text = _dump(json_schema()) + "\n"
    if args.write:
        with open(args.write, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


def dry_run(config: dict) -> dict:
    """The planned units of each processor. A processor that reads the previous one's outputs
    is planned as 'one unit per output' (they exist only once that one has run)."""
    from mounters import describe
    from pipeline.units import plan_run, processor_label, unit_sources
    from processors import module_for, processor_model

    plan = []
    planned = plan_run(config["processors"], write_listings=False)  # refuses collisions, as the run's first listing does; writes nothing
    for i, p in enumerate(config["processors"]):
        dest = describe(p["processor_config"]["dest"])
        if p["processor_config"].get("src") is None:
            plan.append({"index": i, "processor": processor_label(p), "units": f"one per output of processor {i - 1}",
                         "dest": dest})
            continue
        units = planned[i]
        if units is None:  # its src selects what an earlier processor writes
            plan.append({"index": i, "processor": processor_label(p), "dest": dest,
                         "units": "listed when it runs: its src selects what an earlier processor writes"})
            continue
        refs = list(unit_sources(units))  # a batch unit's files too
        sources = [{"src": describe(r["location"]), "name": r["name"], "bytes": r["size"]} for r in refs]
        if p["processor_name"] == "decompress":  # what each archive declares: members and their sizes
            module, model = module_for(p), processor_model(p)
            for s, r in zip(sources, refs):
                s["archive"] = module.declared(model, r)
        plan.append({"index": i, "processor": processor_label(p), "dest": dest, "units": len(units),
                     "sources": sources})
    return {"dry_run": True, "sourcemart": config.get("sourcemart"), "table": config.get("table"), "plan": plan}


def report_rejects(rejects: dict | None, shown: int = 10) -> None:
    """Rejected lines on stderr: a run that dropped lines within its budget still says so."""
    from processors.transform.budget import reject_place

    if not rejects or not rejects["lines"]:
        return
    print(f"warning: {rejects['lines']} line(s) rejected in {rejects['files']} file(s) (manifest: rejects)",
          file=sys.stderr)
    for f in rejects["listed"][:shown]:
        first = f["first_reject"] or {}
        print(f"  {f['src']}: {f['rejects']} rejected, first at {reject_place(first)}: {first.get('error')}",
              file=sys.stderr)
    if rejects["files"] > shown:
        print(f"  ... and {rejects['files'] - shown} more file(s)", file=sys.stderr)


def report_drift(drift: list[dict] | None, shown: int = 5) -> None:
    """Schema drift on stderr, one line per transform processor that found some (manifest: drift)."""
    for d in drift or []:
        if not d["units_with_drift"]:
            continue
        parts = []
        if d["unmapped"]:
            parts.append("unmapped " + ", ".join(f"{u['path']} ({u['lines']} lines)" for u in d["unmapped"][:shown])
                         + (f" +{d['unmapped_paths'] - shown} more" if d["unmapped_paths"] > shown else ""))
        for key, label in (("missing", "never present"), ("vanished", "vanished"), ("type_changes", "type changed")):
            if d[key]:
                parts.append(f"{label} " + ", ".join(m["path"] for m in d[key][:shown]))
        print(f"warning: schema drift in {d['units_with_drift']} of {d['units']} file(s) of processor "
              f"{d['index'] + 1} ({d['processor']}), from {d['lines_sampled']} sampled lines: {'; '.join(parts)} "
              "(manifest: drift)", file=sys.stderr)


def with_fail_on_drift(config: dict) -> dict:
    """--fail-on-drift: every transform of the run fails on drift (and samples for it)."""
    processors = [{**p, "processor_config": {**p["processor_config"], "drift": True, "fail_on_drift": True}}
                  if p["processor_name"] == "transform" else p for p in config["processors"]]
    return {**config, "processors": processors}


# After SIGINT/SIGTERM, units stuck in a read (a silent source) see the stop only when the read
# returns; past this many seconds the run exits anyway (their temps go at the next run of each).
STOP_GRACE_S = 20.0


def _stop_on_signals() -> None:
    """SIGINT and SIGTERM stop the run: no more units start, running ones abort at their next
    write or commit (nothing is published after the signal) and remove their temp files."""
    import signal
    import threading

    from pipeline.stop import request_stop, stop_requested

    def give_up(name: str, code: int) -> None:
        print(f"interrupted by {name}: units still running after {STOP_GRACE_S:g} s were abandoned; "
              "nothing was published after the signal", file=sys.stderr)
        os._exit(code)

    def on_signal(signum, frame) -> None:
        name, code = signal.Signals(signum).name, 128 + signum
        if stop_requested():  # a second signal: stop now
            os._exit(code)
        request_stop(name)
        timer = threading.Timer(STOP_GRACE_S, give_up, (name, code))
        timer.daemon = True
        timer.start()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)


def _manifest_problem(path: str) -> str | None:
    """Why the manifest could not be written there, checked before the run moves any data."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        return "is a folder"
    if not os.path.isdir(folder):
        return f"cannot be written: folder {folder} does not exist"
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        return "cannot be written: permission denied"
    return None


def _write_manifest(path: str | None, text: str) -> str | None:
    if not path:
        return None
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        return f"--manifest {path}: cannot be written: {exc.strerror}"
    return None


def _load(path: str):
    """The validated config, or (None, exit code) after one message on stderr."""
    try:
        return load_config(path), 0
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
    except OSError as exc:  # missing, a folder, unreadable: one line, no traceback
        print(f"{path}: cannot read the config: {exc.strerror or exc}", file=sys.stderr)
    return None, 2


def cmd_run(args) -> int:
    from local_runner.executor import run_orchestration
    from local_runner.progress import Progress
    from pipeline.activities import ACTIVITIES
    from pipeline.stop import reason, stop_requested
    from pipeline.telemetry import observed_orchestration

    from pipeline.policy import config_errors, use_local_roots_default

    use_local_roots_default([os.getcwd()], "the current directory: the local `run` default; "
                                            "set PIPELINE_LOCAL_ROOTS to change it")
    interval = args.progress_interval
    if interval is not None and not 0.05 <= interval <= 86400:  # also refuses nan
        print(f"--progress-interval {interval:g}: must be between 0.05 and 86400 seconds", file=sys.stderr)
        return 2
    _stop_on_signals()
    model, code = _load(args.config)
    if model is None:
        return code
    config = model.model_dump(mode="json", exclude_none=True)
    if args.fail_on_drift:
        config = with_fail_on_drift(config)
    errors = config_errors(config)
    if errors:
        print(redact(str(ConfigError(errors, f"{args.config} (under the operator's policy)"))), file=sys.stderr)
        return 2
    problem = args.manifest and _manifest_problem(args.manifest)
    if problem:
        print(f"--manifest {args.manifest}: {problem}", file=sys.stderr)
        return 2
    try:
        if args.dry_run:
            result = dry_run(config)
        else:
            with Progress(enabled=not args.quiet, interval=args.progress_interval) as progress:
                result = run_orchestration(observed_orchestration, {"config": config}, ACTIVITIES, workers=args.workers,
                                           on_status=progress.on_status, on_unit_done=progress.on_unit_done)
    except Exception as exc:
        if stop_requested():
            error = f"interrupted by {reason()}: stopped scheduling and aborted the running units; " \
                    "nothing was published after the signal"
            code = 130 if reason() == "SIGINT" else 143
        else:
            error, code = f"run failed: {redact(str(exc))}", 1
        print(error, file=sys.stderr)
        failed = {"sourcemart": config.get("sourcemart"), "table": config.get("table"), "status": "failed",
                  "error": error}
        problem = _write_manifest(args.manifest, _dump(failed) + "\n")
        if problem:
            print(problem, file=sys.stderr)
        return code
    report_rejects(result.get("rejects"))
    report_drift(result.get("drift"))
    text = _dump(result) + "\n"
    problem = _write_manifest(args.manifest, text)
    if problem:
        print(problem, file=sys.stderr)
        return 1
    sys.stdout.write(text)
    return 0


def _source_location(text: str) -> dict:
    """SOURCE as a location: JSON ({"type": "blob", ...}), an http(s) URL, or a local path."""
    from pydantic import BaseModel, ConfigDict

    from pipeline.config import SourceLocation, validate_model

    class Source(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        location: SourceLocation

    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError([f"SOURCE: not valid JSON: {exc.msg}"], "SOURCE") from None
    elif text.startswith(("http://", "https://")):
        data = {"type": "http", "url": text}
    else:
        data = {"type": "local", "path": text}
    validate_model(Source, {"location": data}, "SOURCE")
    return data


def cmd_suggest(args) -> int:
    from pipeline.errors import PipelineError, PolicyError
    from pipeline.policy import current, use_local_roots_default
    from processors.transform.suggest import suggest

    use_local_roots_default([os.getcwd()], "the current directory: the local default; "
                                            "set PIPELINE_LOCAL_ROOTS to change it")
    try:
        if args.rows < 1:
            raise ConfigError(["--rows: must be at least 1"], "suggest")
        if args.input_encoding:
            from pipeline.config import _text_codec

            _text_codec(args.input_encoding, "utf-8, utf-16, latin-1, cp1252, ...")
        location = _source_location(args.source)
        try:  # the operator's policy, as `run` applies it, before anything is read
            current().check_location(location)
        except PolicyError as exc:
            raise ConfigError([f"SOURCE: {exc}"], "suggest (under the operator's policy)") from None
        config, report = suggest(location, rows=args.rows, input_format=args.format, records_path=args.records_path,
                                 input_encoding=args.input_encoding, dest=args.dest)
        load_config_data(config)
    except ConfigError as exc:
        print(redact(str(exc)), file=sys.stderr)
        return 2
    except (PipelineError, OSError, ValueError) as exc:
        print(f"suggest failed: {redact(str(exc))}", file=sys.stderr)
        return 1
    if args.report:
        with open(args.report, "w", encoding="utf-8") as f:
            f.write(_dump(report) + "\n")
    else:
        _print_report(report)
    sys.stdout.write(_dump(config) + "\n")
    return 0


def load_config_data(config: dict) -> None:
    """The suggested config must be one that `validate` accepts (else it is a bug here, said now)."""
    from pipeline.config import validate_config

    validate_config(json.loads(json.dumps(config)), "the suggested config")


def _print_report(report: dict) -> None:
    fmt = report["input_format"] + (f" records_path={report['records_path']}" if report["records_path"] else "") + \
        (" header_row" if report["header_row"] else "")
    print(f"# {report['source']}{' member ' + report['member'] if 'member' in report else ''}: {fmt}, "
          f"{report['input_encoding']}, {report['records_sampled']} records sampled"
          f"{', ' + str(report['unparsable']) + ' unparsable' if report['unparsable'] else ''}", file=sys.stderr)
    width = max((len(c["name"]) for c in report["columns"]), default=4)
    for c in report["columns"]:
        types = ",".join(f"{t}:{n}" for t, n in c["types"].items())
        print(f"  {c['name']:<{width}}  fill {c['fill']:>7.2%}  {types}", file=sys.stderr)
    for s in report["skipped_paths"]:
        print(f"  skipped {s['path']!r}: {s['why']}", file=sys.stderr)


def cmd_serve(args) -> int:
    from azure_shim.local_host.server import serve

    serve(args.host, args.port, args.workers)
    return 0


def main(argv: list[str] | None = None, prog: str = "python -m local_runner") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--log-format", choices=("text", "json"), default="text",
                        help="stderr logs as text, or one JSON object per line (telemetry records with their fields)")
    parser.add_argument("--version", action=_VersionAction, nargs=0, help="show the version and exit")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run a sourcemart/table config (local files: under PIPELINE_LOCAL_ROOTS, "
                                   "default the current directory's tree)")
    p.add_argument("config")
    p.add_argument("--dry-run", action="store_true", help="print the planned units; move no data")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="units run at once")
    p.add_argument("--manifest", help="also write the manifest to this file")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    p.add_argument("--progress-interval", type=float, default=None, metavar="SECONDS",
                   help="seconds between progress lines when stderr is not a terminal (default 5; a terminal's "
                        "live line redraws twice a second)")
    p.add_argument("--fail-on-drift", action="store_true",
                   help="every transform fails (publishing nothing) on unmapped or never-present paths (fail_on_drift)")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("serve", help="serve the function app's HTTP contract (start, status) on this machine")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7071)
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="activities run at once")
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("validate", help="validate configs")
    p.add_argument("configs", nargs="+")
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("suggest", help="sample a source; print a transform config for it (types and fill rates "
                                       "of each column on stderr or in --report)")
    p.add_argument("source", help="a local path, an http(s) URL, or a location as JSON ({\"type\": \"blob\", ...})")
    p.add_argument("--rows", type=int, default=1000, help="records sampled (default 1000)")
    p.add_argument("--format", choices=("jsonl", "jsonl_arrays", "json"), help="input format (default: detected)")
    p.add_argument("--records-path", help="with json: the array of records (default: the first array of objects)")
    p.add_argument("--input-encoding", help="input encoding (default: detected)")
    p.add_argument("--dest", default="out/", help="the config's local destination folder (default out/)")
    p.add_argument("--report", metavar="FILE", help="write the report (JSON) here instead of stderr")
    p.set_defaults(func=cmd_suggest)
    p = sub.add_parser("schema", help="print the config JSON Schema")
    p.add_argument("--write", metavar="FILE")
    p.set_defaults(func=cmd_schema)
    args = parser.parse_args(argv)
    _setup_logging(args.verbose, args.log_format)
    return args.func(args)


def console() -> None:
    """The `sourcemart` command (pyproject.toml [project.scripts]): the same CLI."""
    sys.exit(main(prog="sourcemart"))
