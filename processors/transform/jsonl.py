"""transform JSONL -> CSV, streamed in chunks of whole lines (about 256 KiB each).

Two paths write the same bytes: the native kernel (processors/transform/kernel.py, C++, GIL
released, on `threads` converter threads) and the pure-Python path below, which also does every
chunk the kernel refuses. The rest of this docstring is the Python path.

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
from pipeline.errors import DataError, LimitExceeded
from processors.stream import replace_suffix, source_stats
from processors.transform.budget import check_reject_budget
from writers.csv_text import CsvFormat, EncodedOutput

from .kernel import cores, kernel_for

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
    """(folder, name) of what a unit may write, for the collision check at planning time; a name
    ending in '/' is a folder of outputs whose names are known only when it runs (an archive's members)."""
    names = [(output_name, "dest")] + ([(rejects_name, "rejects")] if cfg.get("on_error") == "quarantine" else [])
    archive = cfg.get("archive")
    if archive is None:
        return [(cfg[key], name(src_name)) for name, key in names]
    from processors.transform.archive import stem

    base = stem(archive, src_name)
    if archive == "gzip":
        return [(cfg[key], name(base)) for name, key in names]
    return [(cfg[key], base + "/") for _, key in names]


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
        code.append("        if c0 == '': c0 = '\"\"'")  # a lone empty field would read back as a blank line (an int 0 is not empty)
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
    """Streams one JSONL source into CSV text; counts rows and rejects.

    With the native kernel, chunks are converted by `threads` threads while this thread reads the
    next ones (a bounded, ordered pipeline: at most threads + 1 chunks in flight, written in order);
    a chunk the kernel refuses is redone here, in order, by the Python path."""

    def __init__(self, cfg, fmt: CsvFormat, reject, kernel=None, threads: int = 1):
        self.lines_fn = build_line_function(cfg.columns, fmt, cfg.null_text)
        self.kernel = kernel
        self.threads = threads
        self.on_error = cfg.on_error
        self.reject = reject  # reject(raw line) under on_error=quarantine
        self.rows = 0
        self.rejects = 0
        self.first_reject: dict | None = None
        self.native_chunks = 0  # chunks the kernel wrote (the rest went through the Python path)
        self.python_chunks = 0

    def convert(self, src, out) -> None:
        """out: writers.csv_text.EncodedOutput (write(str), write_utf8(bytes))."""
        with gc_paused():
            if self.kernel is None:
                for body, line_no in chunks(src):
                    out.write(self._python(body, line_no))
            elif self.threads <= 1:
                for body, line_no in chunks(src):
                    self._write(out, body, line_no, self.kernel.convert(body))
            else:
                self._parallel(src, out)

    def _parallel(self, src, out) -> None:
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor

        pending: deque = deque()
        with ThreadPoolExecutor(self.threads, thread_name_prefix="jsonl-kernel") as pool:
            try:
                for body, line_no in chunks(src):
                    if len(pending) > self.threads:
                        self._write(out, *pending.popleft())
                    pending.append((body, line_no, pool.submit(self.kernel.convert, body)))
                while pending:
                    self._write(out, *pending.popleft())
            finally:
                for *_, future in pending:
                    future.cancel()

    def _write(self, out, body: bytes, line_no: int, result) -> None:
        if not isinstance(result, tuple) and result is not None:
            result = result.result()  # a future
        if result is None:
            out.write(self._python(body, line_no))
        else:
            data, rows = result
            self.native_chunks += 1
            self.rows += rows
            out.write_utf8(data)

    def _python(self, body: bytes, line_no: int) -> str:
        self.python_chunks += 1
        return self._chunk(body.split(b"\n"), line_no, has_long_number(body))

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


def chunks(src):
    """(body, line_no): the source's whole lines about CHUNK bytes at a time, without their last
    newline; line_no counts the lines before them. A UTF-8 BOM at the start is dropped."""
    read = src.read
    line_no = 0
    pending: list[bytes] = []  # the start of a line that continues in the next chunk
    pending_size = 0
    first = True
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
        yield body, line_no
        line_no += body.count(b"\n") + 1
    if pending:
        yield b"".join(pending), line_no


def run(processor, src: dict, outs) -> dict:
    cfg = processor.processor_config
    fmt = CsvFormat(cfg.delimiter, cfg.quoting, cfg.newline)
    kernel = kernel_for(cfg.engine, cfg.columns, fmt, cfg.null_text)
    unit = _Unit(cfg, fmt, kernel, cfg.threads or cores())
    with open_source(src["location"], seekable=cfg.archive == "zip") as f, ExitStack() as rejects_stack:
        if cfg.archive is None:
            unit.convert(f, outs, rejects_stack, src["name"])
        else:
            from processors.transform.archive import members

            for name, stream, out_name in members(cfg.archive, cfg.members, f, src["name"], cfg.limits,
                                                  lambda: open_source(src["location"])):
                unit.convert(stream, outs, rejects_stack, out_name, member=name)
        stats = source_stats(f, src)
    result = {**stats, "rows": unit.rows, "rejects": unit.rejects,
              "engine": "native" if kernel is not None else "python"}
    if unit.first_reject:
        result["first_reject"] = unit.first_reject
    return result


class _Unit:
    """One unit's conversions (one source file, or each member of an archive) and their totals."""

    def __init__(self, cfg, fmt: CsvFormat, kernel, threads: int):
        self.cfg, self.fmt, self.kernel, self.threads = cfg, fmt, kernel, threads
        self.rows = self.rejects = 0
        self.first_reject: dict | None = None

    def convert(self, f, outs, rejects_stack, name: str, member: str | None = None) -> None:
        cfg, fmt = self.cfg, self.fmt
        reject = None
        if cfg.on_error == "quarantine":
            rejects_sink = None

            def reject(line: bytes) -> None:
                nonlocal rejects_sink
                if rejects_sink is None:  # created on the first reject: no rejects, no file
                    rejects_sink = rejects_stack.enter_context(outs.create(cfg.rejects.model_dump(), rejects_name(name)))
                rejects_sink.write(line.rstrip(b"\r") + b"\n")

        converter = Converter(cfg, fmt, reject, self.kernel, self.threads)
        with outs.create(cfg.dest.model_dump(), output_name(name)) as sink:
            out = EncodedOutput(sink, encoding=cfg.encoding, errors=cfg.encoding_errors)
            try:
                if cfg.header:
                    out.write(fmt.line([fmt.text(c.name) for c in cfg.columns]))
                converter.convert(f, out)
            except UnicodeEncodeError as exc:
                where = f"member {member!r}: " if member is not None else ""
                raise DataError(f"{where}output encoding {cfg.encoding} cannot represent "
                                 f"{exc.object[exc.start:exc.end]!r} (encoding_errors 'replace' writes '?')") from None
            except BadLine as exc:
                if member is None:
                    raise
                raise BadLine(f"member {member!r} line {exc.line}: {exc}") from None
        try:  # each file (or member) within its reject budget, before anything is committed
            check_reject_budget(cfg, converter.rows, converter.rejects, converter.first_reject)
        except LimitExceeded as exc:
            if member is None:
                raise
            raise LimitExceeded(f"member {member!r}: {exc}", member=member) from None
        self.rows += converter.rows
        self.rejects += converter.rejects
        if converter.first_reject and self.first_reject is None:
            self.first_reject = {**({"member": member} if member is not None else {}), **converter.first_reject}
