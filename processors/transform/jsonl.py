"""transform JSONL -> CSV, streamed in chunks of whole lines (about 1 MiB each).

Per chunk: orjson parses each line, and a function *generated for the configured columns*
walks each path, formats and escapes every value and builds the CSV line, with no Python call
per column on the common path. A chunk with anything unusual (a bad line, a line that is not an
object, a blank line, a number of 20+ digits) is redone line by line on the slow path, which
names the bad line (file:line), applies on_error, and parses long numbers exactly. Both paths
share the generated function, so they write the same bytes.

Values: strings as they are; integers exactly (big ones too); other numbers as the shortest text
that reads back as the same double (1.10 -> 1.1, 1e5 -> 100000.0, 1e16 -> 1e+16); booleans `true`/`false`;
lists and objects as compact JSON; JSON null as `null_text`; a missing key, or a path through
something that is not an object, as empty.
"""

from __future__ import annotations

import gc
import json
import math
import threading
from contextlib import ExitStack, contextmanager

import orjson

from mounters import open_source
from pipeline.errors import DataError
from processors.stream import replace_suffix, source_stats
from processors.transform.budget import check_reject_budget
from writers import OutputSet
from writers.csv_text import CsvFormat, open_text

# 256 KiB of lines per chunk: parsed objects take ~10x their text, so this bounds memory at a few MB
# per unit; larger chunks measured no faster.
CHUNK = 256 << 10
# A single JSON line has to be in memory to be parsed; beyond this it is an error, not an OOM kill.
MAX_LINE = 64 << 20
_BOM = b"\xef\xbb\xbf"
_SUFFIXES = (".jsonl", ".ndjson", ".json", ".txt")

# orjson reads integers outside -2**63..2**64-1 as floats, silently losing digits. A chunk with an
# integer of 20+ digits (or a negative one of 19+) goes to the slow path, where such lines use the
# stdlib parser. The check maps digits to '0' and the bytes that can precede a JSON number to ':'
# (a fraction's digits follow '.', so they never match), then does two substring searches:
# ~1 GB/s, where a regex manages ~70 MB/s.
_NUMBER_SHAPE = bytes.maketrans(b"123456789[, \t\r\n", b"000000000::::::")
_LONG = b":" + b"0" * 20
_LONG_NEGATIVE = b"-" + b"0" * 19


def has_long_number(data: bytes) -> bool:
    t = data.translate(_NUMBER_SHAPE)
    return _LONG in t or _LONG_NEGATIVE in t


class BadLine(DataError):
    """A line that is not a JSON object. `line` is its 1-based number in the source file."""

    def __init__(self, reason: str, line: int | None = None):
        super().__init__(reason, line=line)


class _Missing:
    pass


MISSING = _Missing()


def output_name(src_name: str) -> str:
    return replace_suffix(src_name, _SUFFIXES, ".csv")


def rejects_name(src_name: str) -> str:
    return replace_suffix(src_name, _SUFFIXES, ".rejects.jsonl")


def planned_outputs(cfg: dict, src_name: str) -> list[tuple[dict, str]]:
    """(folder, name) of what a unit may write, for the collision check at planning time."""
    planned = [(cfg["dest"], output_name(src_name))]
    if cfg.get("on_error") == "quarantine":
        planned.append((cfg["rejects"], rejects_name(src_name)))
    return planned


def _reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text} is out of range")
    return value


def exact_loads(line: bytes):
    """The slow path's parser for long numbers: stdlib json keeps big integers exact."""
    return json.loads(line, parse_constant=_reject_constant, parse_float=_finite)


def _dumps_big(value) -> str:
    """Lists/objects holding an integer beyond 64 bits (from the exact parser), which orjson refuses."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def build_line_function(columns, fmt: CsvFormat, null_text: str):
    """Generate `lines(objs) -> str`: the CSV text of those objects, one inlined path per column.

    Per value, by type: str (escaped only if needed), int (str), float (orjson's shortest
    round-trip text: 3x faster than repr), list/object (compact JSON, escaped), and the constants
    true/false/null/missing (escaped once, here)."""
    distinguish_null = null_text != ""
    minimal = fmt.quoting == "minimal"
    env = {"MISSING": MISSING, "BadLine": BadLine, "NEEDS": fmt.needs_quote, "Q": fmt.quote, "TEXT": fmt.text,
           "NUM": fmt.number, "DUMPS": orjson.dumps, "DUMPS_BIG": _dumps_big,
           "CONST": {True: fmt.text("true"), False: fmt.text("false"), None: fmt.text(null_text),
                     MISSING: fmt.text("")}}
    code = ["def lines(objs):", "    out = []", "    append = out.append", "    for o in objs:",
            "        if o.__class__ is not dict:", "            raise BadLine('not a JSON object')"]
    miss = "MISSING" if distinguish_null else "None"  # null and missing both print as null_text=''
    default = ", MISSING" if distinguish_null else ""
    number = "{}" if fmt.quoting != "all" else "NUM({})"
    names = []
    nodes: dict[tuple, str] = {}  # a shared path prefix ('user' of user.id, user.name) is looked up once per row

    def lookup(target: str, holder: str, key: str) -> None:
        get, k = f"{holder}.get({key!r}{default})", key
        if k.isdigit():  # a list index (or an object key that looks like one)
            n = int(k)
            code.append(f"        {target} = {get} if {holder}.__class__ is dict else "
                        f"({holder}[{n}] if {holder}.__class__ is list and len({holder}) > {n} else {miss})")
        elif holder == "o":
            code.append(f"        {target} = {get}")
        else:
            code.append(f"        {target} = {get} if {holder}.__class__ is dict else {miss}")

    for i, column in enumerate(columns):
        v = f"c{i}"
        names.append(v)
        segments = tuple(column.segments)
        holder = "o"
        for depth in range(len(segments) - 1):
            prefix = segments[: depth + 1]
            if prefix not in nodes:
                nodes[prefix] = f"n{len(nodes)}"
                lookup(nodes[prefix], holder, segments[depth])
            holder = nodes[prefix]
        lookup(v, holder, segments[-1])
        escape = "if NEEDS({0}): {0} = '\"' + {0}.replace('\"', '\"\"') + '\"'" if minimal else "{0} = TEXT({0})"
        code += [
            f"        if {v}.__class__ is str:",
            "            " + escape.format(v),
            # An int is left for the f-string below to format (same text as str(), one call fewer).
            f"        elif {v}.__class__ is int: " + ("pass" if fmt.quoting != "all" else f"{v} = NUM(str({v}))"),
            f"        elif {v}.__class__ is float: {v} = " + number.format(f"DUMPS({v}).decode()"),
            f"        elif {v}.__class__ is list or {v}.__class__ is dict:",
            f"            try: {v} = DUMPS({v}).decode()",
            f"            except TypeError: {v} = DUMPS_BIG({v})",
            "            " + escape.format(v),
            f"        else: {v} = CONST[{v}]",
        ]
    if len(names) == 1:
        code.append("        if not c0: c0 = '\"\"'")  # a lone empty field would read back as a blank line
    delimiter = fmt.delimiter.replace("{", "{{").replace("}", "}}")
    template = delimiter.join("{%s}" % n for n in names) + fmt.newline
    code.append(f"        append(f{template!r})")
    code.append("    return ''.join(out)")
    exec(compile("\n".join(code), "<jsonl-to-csv>", "exec"), env)
    return env["lines"]


_gc_lock = threading.Lock()
_gc_users = 0
_gc_was_enabled = True


@contextmanager
def gc_paused():
    """Parsed JSON holds no reference cycles, so reference counting frees all of it; the cyclic
    collector would only re-scan each chunk's objects over and over (it halves parse speed).
    Counted, so concurrent units in one process restore the collector only when the last ends."""
    global _gc_users, _gc_was_enabled
    with _gc_lock:
        if _gc_users == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_users += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_users -= 1
            if _gc_users == 0 and _gc_was_enabled:
                gc.enable()


class Converter:
    """Streams one JSONL source into CSV text; counts rows and rejects."""

    def __init__(self, cfg, fmt: CsvFormat, reject):
        self.lines_fn = build_line_function(cfg.columns, fmt, cfg.null_text)
        self.on_error = cfg.on_error
        self.reject = reject  # reject(raw line) under on_error=quarantine
        self.rows = 0
        self.rejects = 0
        self.first_reject: dict | None = None

    def convert(self, src, out) -> None:
        read, write = src.read, out.write
        line_no = 0  # lines before the current chunk
        pending: list[bytes] = []  # the start of a line that continues in the next chunk
        pending_size = 0
        first = True
        with gc_paused():
            while True:
                chunk = read(CHUNK)
                if not chunk:
                    break
                if first:
                    first = False
                    if chunk.startswith(_BOM):
                        chunk = chunk[3:]
                cut = chunk.rfind(b"\n")
                if cut < 0:
                    pending.append(chunk)
                    pending_size += len(chunk)
                    if pending_size > MAX_LINE:
                        raise BadLine(f"line is longer than {MAX_LINE >> 20} MiB", line_no + 1)
                    continue
                body = b"".join((*pending, chunk[:cut])) if pending else chunk[:cut]
                rest = chunk[cut + 1:]
                pending, pending_size = ([rest], len(rest)) if rest else ([], 0)
                lines = body.split(b"\n")
                write(self._chunk(lines, line_no, has_long_number(body)))
                line_no += len(lines)
            if pending:
                tail = b"".join(pending)
                write(self._chunk([tail], line_no, has_long_number(tail)))

    def _chunk(self, lines: list[bytes], line_no: int, long_numbers: bool) -> str:
        if not long_numbers:
            try:
                loads = orjson.loads
                text = self.lines_fn(map(loads, lines))  # lazily: one chunk's objects are never all alive
                self.rows += len(lines)
                return text
            except ValueError:  # orjson.JSONDecodeError and BadLine: find the line
                pass
        return self._slow(lines, line_no)

    def _slow(self, lines: list[bytes], line_no: int) -> str:
        out = []
        lines_fn = self.lines_fn
        for i, line in enumerate(lines, start=line_no + 1):
            if not line or line.isspace():
                continue  # blank lines (CRLF ones too) are normal input
            try:
                obj = exact_loads(line) if has_long_number(line) else orjson.loads(line)
                out.append(lines_fn((obj,)))
            except (ValueError, RecursionError) as exc:
                self._bad(i, line, exc)
        self.rows += len(out)
        return "".join(out)

    def _bad(self, line_no: int, line: bytes, exc: Exception) -> None:
        reason = str(exc).split(": line 1 column")[0]
        if self.on_error == "fail":
            raise BadLine(reason, line_no) from None
        self.rejects += 1
        if self.first_reject is None:
            self.first_reject = {"line": line_no, "error": reason}
        if self.reject is not None:
            self.reject(line)


def run(processor, src: dict) -> dict:
    cfg = processor.processor_config
    fmt = CsvFormat(cfg.delimiter, cfg.quoting, cfg.newline)
    with open_source(src["location"]) as f, OutputSet() as outs, ExitStack() as rejects_stack:
        reject = None
        if cfg.on_error == "quarantine":
            rejects_sink = None

            def reject(line: bytes) -> None:
                nonlocal rejects_sink
                if rejects_sink is None:  # created on the first reject: no rejects, no file
                    rejects_sink = rejects_stack.enter_context(outs.create(cfg.rejects.model_dump(),
                                                                           rejects_name(src["name"])))
                rejects_sink.write(line.rstrip(b"\r") + b"\n")

        converter = Converter(cfg, fmt, reject)
        with outs.create(cfg.dest.model_dump(), output_name(src["name"])) as sink:
            text = open_text(sink, encoding=cfg.encoding, errors=cfg.encoding_errors)
            try:
                if cfg.header:
                    text.write(fmt.line([fmt.text(c.name) for c in cfg.columns]))
                converter.convert(f, text)
                text.flush()
            except UnicodeEncodeError as exc:
                raise DataError(f"output encoding {cfg.encoding} cannot represent "
                                 f"{exc.object[exc.start:exc.end]!r} (encoding_errors 'replace' writes '?')") from None
            finally:
                text.detach()  # the OutputSet commits the sink; the text layer must not close it
        check_reject_budget(cfg, converter.rows, converter.rejects, converter.first_reject)  # before the commit
        stats = source_stats(f, src)
    result = {**stats, "outputs": outs.outputs, "rows": converter.rows, "rejects": converter.rejects}
    if converter.first_reject:
        result["first_reject"] = converter.first_reject
    return result
