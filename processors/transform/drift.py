"""Schema drift of a transform's input: what the data holds that the columns do not map, mapped
paths that never occur, and mapped paths whose JSON type changes within the file.

Gathered from a *sample* of parsed records, so it costs the transform almost nothing: the native
kernel converts chunks without building Python objects, and parsing and walking every record here
would cost more than the conversion. `Sampler.observe(record)` takes records already parsed, so
any input format can feed it; for JSONL, `LineSampler` picks the lines to parse from each chunk
(WARMUP bytes of lines, then about RATE of the bytes, spread over each chunk, and
always the file's last line), identically on the native and the Python path.

Path semantics are the transform's (jsonl.build_line_function, config.Column): a mapped path's
segments are object keys, and a segment of digits also indexes a list. In the report, a data path
is dotted with `*` for "any element of a list" (`items.*.sku`); a path with a key holding a '.' is
shown in the config's list form (`["a.b", "c"]`). A data path is mapped when it lies under a mapped
path (that column writes it as JSON text) or on the way to one; a mapped digit segment maps `*`.
"""

from __future__ import annotations

import json
from fnmatch import fnmatchcase

import orjson

from pipeline.errors import SchemaDrift
from processors.transform.paths import parent_holder

RATE = 1 / 5000  # share of the input's bytes parsed for the sample, beyond WARMUP bytes
WARMUP = 32 << 10  # a small file is sampled whole
# Other input formats hand over parsed records (they run on the Python path, ~10x slower than the
# kernel, so a record's walk is cheap beside its parse): the first WARMUP_RECORDS, then 1 in RECORD_STRIDE.
WARMUP_RECORDS = 200
RECORD_STRIDE = 256
VANISHED_TAIL = 10  # a mapped path absent from the last max(this, a quarter) of the sampled lines "vanished"
TOP = 20  # unmapped paths listed (the count of all of them is given too)
MAX_PATHS = 10_000  # distinct data paths tracked per unit: memory stays bounded on any input
MAX_DEPTH = 32
MAX_ELEMENTS = 16  # elements walked per list: their paths collapse to `*` anyway


class _List:
    """The segment of a data path that stands for any element of a list."""

    def __repr__(self) -> str:
        return "*"


LIST = _List()
_MISSING = object()
_TYPES = {str: "string", int: "number", float: "number", bool: "boolean", dict: "object", list: "array",
          type(None): "null"}


def show(segments) -> str:
    if any(s is not LIST and "." in s for s in segments):
        return json.dumps(["*" if s is LIST else s for s in segments], ensure_ascii=False)
    return ".".join("*" if s is LIST else s for s in segments)


def resolve(record, segments):
    """The value at a mapped path, as the transform finds it (or _MISSING)."""
    value = record
    for key in segments:
        if value.__class__ is dict:
            value = value.get(key, _MISSING)
        elif value.__class__ is list and key.isdigit() and len(value) > int(key):
            value = value[int(key)]
        else:
            return _MISSING
        if value is _MISSING:
            return _MISSING
    return value


def _maps(mapped: tuple, data: tuple) -> bool:
    """Whether mapped path and data path lie on one line (one a prefix of the other)."""
    for m, d in zip(mapped, data):
        if not (m == d or (d is LIST and m.isdigit())):
            return False
    return True


def _column_function(paths: list[tuple]):
    """Generate `seen(record, present, last, types, line)`: for each mapped path, resolve it as
    resolve() does (inlined, a shared prefix looked up once, as jsonl.build_line_function does) and,
    when present, count it and its JSON type. A Python call per column would cost more than the walk."""
    code = ["def seen(o, present, last, types, line):"]
    nodes: dict[tuple, str] = {}

    def lookup(target: str, holder: str, key: str) -> None:
        get = f"{holder}.get({key!r}, M) if {holder}.__class__ is dict else "
        if key.isdigit():
            n = int(key)
            code.append(f"    {target} = {get}({holder}[{n}] if {holder}.__class__ is list and len({holder}) > {n} else M)")
        else:
            code.append(f"    {target} = {get}M")

    for i, segments in enumerate(paths):
        holder = parent_holder(segments, nodes, lookup)
        lookup("v", holder, segments[-1])
        code += ["    if v is not M:",
                 f"        present[{i}] += 1",
                 f"        last[{i}] = line",
                 f"        t = types[{i}]",
                 "        k = T.get(v.__class__, 'number')",
                 "        t[k] = t.get(k, 0) + 1"]
    env = {"M": _MISSING, "T": _TYPES}
    exec(compile("\n".join(code), "<drift-columns>", "exec"), env)
    return env["seen"]


class Sampler:
    """Drift over the records it is shown. observe() per sampled record; report() at the end."""

    def __init__(self, columns):
        self.columns = [(c.name, c.path if isinstance(c.path, str) else json.dumps(c.path, ensure_ascii=False),
                         tuple(c.segments)) for c in columns]
        self._seen = _column_function([segments for _, _, segments in self.columns])
        self.lines = 0
        self.paths: dict[tuple, int] = {}  # leaf path in the data -> sampled records holding it
        self.paths_dropped = False  # more than MAX_PATHS distinct paths: the rest were not tracked
        self.present = [0] * len(self.columns)
        self.last = [0] * len(self.columns)  # per column: the sampled line it was last present in
        self.types: list[dict[str, int]] = [{} for _ in self.columns]  # per column: JSON type -> records, in order seen

    def observe(self, record) -> None:
        if record.__class__ is not dict:
            return  # not a record: the converter rejects or fails it
        self.lines += 1
        leaves: set[tuple] = set()
        _leaves(record, (), leaves.add)
        paths = self.paths
        get = paths.get
        for p in leaves:
            n = get(p)
            if n is not None:
                paths[p] = n + 1
            elif len(paths) < MAX_PATHS:
                paths[p] = 1
            else:
                self.paths_dropped = True
        self._seen(record, self.present, self.last, self.types, self.lines)

    def report(self, ignore: list[str] | tuple = ()) -> dict:
        """{"lines_sampled", "unmapped" (top TOP: path, lines), "unmapped_paths" (how many), "missing"
        (mapped paths never present), "vanished" (mapped paths present at first, then absent from the
        last VANISHED_TAIL or quarter of the sampled lines, whichever is more; informative only),
        "type_changes" (mapped paths with more than one non-null type)}.
        Paths matching an `ignore` glob are left out. With no record sampled nothing is judged."""
        def ignored(path: str) -> bool:
            return any(fnmatchcase(path, g) for g in ignore)

        mapped = [segments for _, _, segments in self.columns]
        unmapped = sorted(((show(p), n) for p, n in self.paths.items() if not any(_maps(m, p) for m in mapped)),
                          key=lambda pn: (-pn[1], pn[0]))
        unmapped = [(p, n) for p, n in unmapped if not ignored(p)]
        missing, vanished, changes = [], [], []
        tail = max(VANISHED_TAIL, self.lines // 4)
        for (name, path, _), present, last, types in zip(self.columns, self.present, self.last, self.types):
            if ignored(path):
                continue
            if self.lines and not present:
                missing.append({"column": name, "path": path})
            elif present and self.lines - last >= tail:
                vanished.append({"column": name, "path": path, "lines": present, "absent_after": last})
            if len([t for t in types if t != "null"]) > 1:
                changes.append({"column": name, "path": path, "types": types})
        report = {"lines_sampled": self.lines, "unmapped": [{"path": p, "lines": n} for p, n in unmapped[:TOP]],
                  "unmapped_paths": len(unmapped), "missing": missing, "vanished": vanished, "type_changes": changes}
        if self.paths_dropped:
            report["paths_truncated"] = MAX_PATHS
        return report



def combine(reports: list[dict]) -> dict:
    """One report for several files' reports (a batch unit's files): sampled lines and unmapped
    paths summed (top TOP; `unmapped_paths` counts the distinct paths the files listed, so it may
    undercount past their own top TOP), `missing` the mapped paths none of the files held, vanished
    and type changes from every file (type counts summed)."""
    unmapped: dict[str, int] = {}
    for r in reports:
        for u in r["unmapped"]:
            unmapped[u["path"]] = unmapped.get(u["path"], 0) + u["lines"]
    judged = [r for r in reports if r["lines_sampled"]]
    missing = [m for m in (judged[0]["missing"] if judged else [])
               if all(m in r["missing"] for r in judged[1:])]
    vanished: list[dict] = []
    changes: dict[tuple, dict] = {}
    for r in reports:
        vanished += [v for v in r["vanished"] if v not in vanished]
        for c in r["type_changes"]:
            item = changes.setdefault((c["column"], c["path"]), {"column": c["column"], "path": c["path"], "types": {}})
            for t, n in c["types"].items():
                item["types"][t] = item["types"].get(t, 0) + n
    top = sorted(unmapped.items(), key=lambda pn: (-pn[1], pn[0]))
    return {"lines_sampled": sum(r["lines_sampled"] for r in reports),
            "unmapped": [{"path": p, "lines": n} for p, n in top[:TOP]],
            "unmapped_paths": max([len(unmapped)] + [r["unmapped_paths"] for r in reports]),
            "missing": missing, "vanished": vanished, "type_changes": list(changes.values())}

def _leaves(value, prefix: tuple, add, depth: int = 0) -> None:
    """add() the paths of the scalars (and empty objects/lists) in a record, list elements as LIST."""
    if depth >= MAX_DEPTH:
        add(prefix)
    elif value.__class__ is dict:
        if not value:
            add(prefix)
        for key, v in value.items():
            c = v.__class__
            if c is dict or c is list:
                _leaves(v, (*prefix, key), add, depth + 1)
            else:
                add((*prefix, key))
    else:  # a list
        if not value:
            add(prefix)
        inner = (*prefix, LIST)
        scalar = False
        for v in value[:MAX_ELEMENTS]:
            c = v.__class__
            if c is dict or c is list:
                _leaves(v, inner, add, depth + 1)
            else:
                scalar = True
        if scalar:
            add(inner)


class LineSampler:
    """Which lines of a JSONL file's chunks are parsed for the Sampler: a byte budget of
    WARMUP + RATE x bytes seen, spent on lines spread evenly over each chunk, plus the file's
    last line. Lines that do not parse are skipped (the converter rejects or fails them)."""

    def __init__(self, sampler: Sampler):
        self.sampler = sampler
        self.seen = 0
        self.spent = 0
        self.average = 0.0  # line length, from the lines sampled so far
        self._tail: bytes | None = None  # the last chunk, unless its last line was sampled
        self.seen_records = 0  # records of other input formats (records())
        self._last_record = None

    def chunk(self, body: bytes) -> None:
        size = len(body)
        self.seen += size + 1
        budget = WARMUP + self.seen * RATE - self.spent
        self._tail = body
        if budget < size and budget < (self.average or 1):
            return
        if body.__class__ is not bytes:  # a memoryview of the chunk read (jsonl.chunks): only sampled ones are copied
            body = bytes(body)
        if budget >= size:
            for line in body.split(b"\n"):
                self._take(line)
            self._tail = None
            return
        start_end = body.find(b"\n")
        first = body[: start_end if start_end >= 0 else size]
        if not self.average:
            self.average = float(len(first) + 1)
        count = int(budget // self.average)
        if count < 1:
            return
        previous, limit = -1, self.spent + budget
        for j in range(count):
            if self.spent >= limit:
                break  # lines longer than the average so far: the budget is spent
            at = j * size // count
            start = 0 if at == 0 else body.find(b"\n", at) + 1
            if at and start == 0:
                break
            if start <= previous:
                continue  # two points in one line: it is taken once
            previous = start
            end = body.find(b"\n", start)
            if end < 0:
                end = size
                self._tail = None
            self._take(body[start:end])

    def records(self, records: list) -> None:
        """Records parsed by another input format (json, jsonl_arrays): they are Python objects
        already, so the sample is taken by count: the first WARMUP_RECORDS, then one in
        RECORD_STRIDE, and the file's last record."""
        base, taken = self.seen_records, False
        for i, record in enumerate(records):
            taken = base + i < WARMUP_RECORDS or (base + i) % RECORD_STRIDE == 0
            if taken:
                self.sampler.observe(record)
        self.seen_records += len(records)
        if records:
            self._last_record = None if taken else records[-1]

    def finish(self) -> None:
        """The file's last line or record (if not sampled already)."""
        if self._tail is not None:
            tail = bytes(self._tail)
            self._take(tail[tail.rfind(b"\n") + 1:])
            self._tail = None
        if self._last_record is not None:
            self.sampler.observe(self._last_record)
            self._last_record = None

    def _take(self, line: bytes) -> None:
        self.spent += len(line) + 1
        if not line or line.isspace():
            return
        try:
            record = orjson.loads(line)
        except ValueError:
            return
        n = self.sampler.lines
        self.sampler.observe(record)
        if self.sampler.lines > n:
            self.average += (len(line) + 1 - self.average) / min(self.sampler.lines, 64)


def unit_report(sampler: Sampler | None, cfg) -> dict | None:
    """A unit's drift report (None with drift off); with fail_on_drift, SchemaDrift if it holds
    unmapped or missing paths. Called before the unit's outputs are committed."""
    if sampler is None:
        return None
    report = sampler.report(cfg.drift_ignore)
    if cfg.fail_on_drift:
        check(report)
    return report


def check(report: dict) -> None:
    """fail_on_drift: raise (a permanent DataError) if the report has unmapped or missing paths."""
    if not report["unmapped"] and not report["missing"]:
        return
    parts = []
    if report["unmapped"]:
        shown = ", ".join(f"{u['path']} ({u['lines']} lines)" for u in report["unmapped"][:5])
        more = report["unmapped_paths"] - min(5, len(report["unmapped"]))
        parts.append(f"{report['unmapped_paths']} path(s) in the data are not mapped: {shown}"
                     + (f" and {more} more" if more > 0 else ""))
    if report["missing"]:
        shown = ", ".join(f"{m['path']} (column {m['column']})" for m in report["missing"][:5])
        more = len(report["missing"]) - 5
        parts.append(f"{len(report['missing'])} mapped path(s) never occur: {shown}"
                     + (f" and {more} more" if more > 0 else ""))
    raise SchemaDrift(f"schema drift (fail_on_drift, from {report['lines_sampled']} sampled lines): "
                        + "; ".join(parts) + "; nothing was published. Map them in the columns, or add globs "
                        "matching them to the transform's drift_ignore")
