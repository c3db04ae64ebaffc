"""transform JSON records -> CSV: JSONL streamed in chunks of whole lines (about 256 KiB each);
other input formats (array rows, one JSON document) and input encodings through the readers in
processors/transform/formats/ and processors/transform/encoding.py.

For JSONL, two paths write the same bytes: the native kernel (processors/transform/kernel.py, C++, GIL
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

Other input formats go through the Python path: their readers yield parsed records, which
Converter.emit writes with the same generated function (a JSON document's non-integer numbers
arrive as Decimal and are written as the same shortest float text).
"""

from __future__ import annotations

import gc
import json
import math
import threading
from contextlib import ExitStack, contextmanager
from decimal import Decimal

import orjson

from mounters import open_source
from pipeline.errors import DataError, LimitExceeded
from processors.stream import replace_suffix, source_stats, unbuffered
from processors.transform.budget import check_reject_budget
from writers import output_format
from writers.csv_text import CsvFormat

from .encoding import utf8_stream
from .formats import InputError, Records, Reject, Where, reader_for
from . import drift as schema_drift
from .kernel import cores, count_newlines, kernel_for, release_free_memory
from .observe import Watch
from .paths import parent_holder

# 128 KiB of lines per chunk: parsed objects take ~10x their text, so this bounds memory at a few MB
# per unit, and with converter threads each chunk in flight holds its text and its CSV; the kernel
# measured as fast at 128 KiB as at 256 KiB (and slower at 64 KiB: more calls), the Python path too.
CHUNK = 128 << 10
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
    return replace_suffix(src_name, _SUFFIXES, output_format().SUFFIX)


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
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_decimal_float)


def _decimal_float(value) -> float:
    """A JSON document's non-integer number (ijson gives Decimal) as the double orjson would parse;
    out of range, it is an error, as orjson's parser makes it one."""
    if value.__class__ is Decimal:
        f = float(value)
        if math.isinf(f):
            raise ValueError(f"number {value} is out of range")
        return f
    raise TypeError(f"{type(value).__name__} is not JSON")


def _decimal_text(value) -> str:
    return orjson.dumps(_decimal_float(value)).decode()


def _dumps_decimals(value) -> bytes:
    try:
        return orjson.dumps(value, default=_decimal_float)
    except orjson.JSONEncodeError as exc:  # out of range: a bad record, not an unencodable one
        if isinstance(exc.__cause__, ValueError):
            raise exc.__cause__ from None
        raise


def build_line_function(columns, fmt: CsvFormat, null_text: str, decimals: bool = False):
    """Generate `lines(objs) -> str`: the CSV text of those objects, one inlined path per column.

    Per value, by type: str (escaped only if needed), int (str), float (orjson's shortest
    round-trip text: 3x faster than repr), list/object (compact JSON, escaped), and the constants
    true/false/null/missing (escaped once, here). decimals: values may also be decimal.Decimal (a
    JSON document's non-integer numbers), written as the float text above."""
    distinguish_null = null_text != ""
    minimal = fmt.quoting == "minimal"
    env = {"MISSING": MISSING, "BadLine": BadLine, "NEEDS": fmt.needs_quote, "Q": fmt.quote, "TEXT": fmt.text,
           "NUM": fmt.number, "DUMPS": _dumps_decimals if decimals else orjson.dumps,
           "DUMPS_BIG": _dumps_big, "DEC": Decimal, "DEC_TEXT": _decimal_text,
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
        holder = parent_holder(segments, nodes, lookup)
        lookup(v, holder, segments[-1])
        escape = "if NEEDS({0}): {0} = '\"' + {0}.replace('\"', '\"\"') + '\"'" if minimal else "{0} = TEXT({0})"
        code += [
            f"        if {v}.__class__ is str:",
            "            " + escape.format(v),
            # An int is left for the f-string below to format (same text as str(), one call fewer).
            f"        elif {v}.__class__ is int: " + ("pass" if fmt.quoting != "all" else f"{v} = NUM(str({v}))"),
            f"        elif {v}.__class__ is float: {v} = " + number.format(f"DUMPS({v}).decode()"),
            *([f"        elif {v}.__class__ is DEC: {v} = " + number.format(f"DEC_TEXT({v})")] if decimals else []),
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

    def __init__(self, cfg, fmt: CsvFormat, reject, kernel=None, threads: int = 1, drift=None):
        self.reader = reader_for(cfg.input_format)
        self._line_function_args = (cfg.columns, fmt, cfg.null_text, getattr(self.reader, "DECIMALS", False))
        self._lines_fn = None
        self.cfg = cfg
        self.diagnose = getattr(self.reader, "diagnose", None)  # says what a bad first line suggests
        self.kernel = kernel
        self.threads = threads
        self.on_error = cfg.on_error
        self.reject = reject  # reject(raw line) under on_error=quarantine
        self.rows = 0
        self.rejects = 0
        self.first_reject: dict | None = None
        self.native_chunks = 0  # chunks the kernel wrote (the rest went through the Python path)
        self.python_chunks = 0
        self.drift = drift  # a drift.Sampler fed a sample of the lines, or None

    def emit(self, records) -> str:
        """The CSV text of parsed records: every record of every input format that is parsed in
        Python passes here (the native kernel's chunks are converted in C++ and do not)."""
        return self.lines_fn(records)

    @property
    def lines_fn(self):
        """The generated per-row function, built when the Python path first needs it: with the
        kernel it usually never does, and compiling it costs ~1.5 MB of peak memory."""
        if self._lines_fn is None:
            self._lines_fn = build_line_function(*self._line_function_args)
        return self._lines_fn

    def convert(self, src, out) -> None:
        """src: the source's bytes (any input encoding); out: writers.csv_text.EncodedOutput
        (write(str), write_utf8(bytes))."""
        watch = Watch(self)  # drift sample and progress counters, per batch (observe.py)
        batches = watch.batches(self.reader.batches(utf8_stream(src, self.cfg.input_encoding), self.cfg))
        if self.kernel is not None:
            release_free_memory()
        with gc_paused():
            if self.kernel is None:
                for batch in batches:
                    if batch.__class__ is tuple:  # Lines: (body, line_no)
                        out.write(self._python(*batch))
                    elif batch.__class__ is Records:
                        out.write(self._records(batch))
                    else:
                        self._reject(batch)
            elif self.threads <= 1:
                for body, line_no in batches:  # with the kernel the reader is jsonl's: Lines only
                    self._write(out, body, line_no, self.kernel.convert(body))
            else:
                self._parallel(batches, out)
        watch.flush()

    def _records(self, batch: Records) -> str:
        records = batch.records
        try:
            text = self.emit(records)
            self.rows += len(records)
            return text
        except (ValueError, TypeError, RecursionError):  # BadLine (not an object), a number out of range
            pass
        out = []
        for i, record in enumerate(records):
            try:
                out.append(self.emit((record,)))
            except (ValueError, TypeError, RecursionError) as exc:
                self._bad(batch.where(i), batch.raw(i), exc)
        self.rows += len(out)
        return "".join(out)

    def _reject(self, item: Reject) -> None:
        self._bad(item.where, item.raw, ValueError(item.reason))

    def _parallel(self, batches, out) -> None:
        """`threads` converters: threads - 1 pool threads, and this thread, which also reads and
        writes. It converts a chunk itself whenever the pool already has a chunk waiting beyond
        those it is converting (so a pool thread that finishes always finds its next chunk), so
        `threads` threads are busy, not threads + 1 (a reader idling in future.result() while a
        core it could use is free, or one more thread than cores competing for them). Written in
        order; at most threads + 1 chunks in flight."""
        from collections import deque
        from concurrent.futures import Future, ThreadPoolExecutor

        pending: deque = deque()  # (body, line_no, Future | result), in source order
        helpers = self.threads - 1
        with ThreadPoolExecutor(helpers, thread_name_prefix="jsonl-kernel") as pool:
            try:
                for body, line_no in batches:
                    while len(pending) > self.threads:
                        self._write(out, *pending.popleft())
                    busy = sum(1 for *_, r in pending if type(r) is Future and not r.done())
                    if busy <= helpers:  # one more than the pool threads: the next one waits queued
                        pending.append((body, line_no, pool.submit(self.kernel.convert, body)))
                    else:
                        pending.append((body, line_no, self.kernel.convert(body)))
                    while pending and (type(pending[0][2]) is not Future or pending[0][2].done()):
                        self._write(out, *pending.popleft())
                while pending:
                    self._write(out, *pending.popleft())
            finally:
                for *_, future in pending:
                    if type(future) is Future:
                        future.cancel()

    def _write(self, out, body: bytes, line_no: int, result) -> None:
        if result is not None and type(result) is not tuple:
            result = result.result()  # a future
        if result is None:
            out.write(self._python(body, line_no))
        else:
            data, rows = result
            self.native_chunks += 1
            self.rows += rows
            out.write_utf8(data)

    def _python(self, body: bytes | memoryview, line_no: int) -> str:
        self.python_chunks += 1
        body = bytes(body)
        return self._chunk(body.split(b"\n"), line_no, has_long_number(body))

    def _chunk(self, lines: list[bytes], line_no: int, long_numbers: bool) -> str:
        if not long_numbers:
            try:
                loads = orjson.loads
                text = self.emit(map(loads, lines))  # lazily: one chunk's objects are never all alive
                self.rows += len(lines)
                return text
            except ValueError:  # orjson.JSONDecodeError and BadLine: find the line
                pass
        return self._slow(lines, line_no)

    def _slow(self, lines: list[bytes], line_no: int) -> str:
        out = []
        emit = self.emit
        for i, line in enumerate(lines, start=line_no + 1):
            if not line or line.isspace():
                continue  # blank lines (CRLF ones too) are normal input
            try:
                obj = exact_loads(line) if has_long_number(line) else orjson.loads(line)
                out.append(emit((obj,)))
            except (ValueError, RecursionError) as exc:
                self._bad(Where(line=i), line, exc)
        self.rows += len(out)
        return "".join(out)

    def _bad(self, where: Where, raw: bytes, exc: Exception) -> None:
        reason = str(exc).split(": line 1 column")[0]
        first = self.on_error == "fail" or self.first_reject is None
        if first and self.diagnose is not None and where.line is not None:
            reason = self.diagnose(where.line, raw, reason, self.cfg)  # + what the line suggests, once
        if self.on_error == "fail":
            if where.line is not None:
                raise BadLine(reason, where.line) from None
            raise BadLine(f"{where}: {reason}") from None
        self.rejects += 1
        if self.first_reject is None:
            self.first_reject = {**where.as_dict(), "error": reason}
        if self.reject is not None:
            self.reject(raw)


def chunks(src):
    """(body, line_no): the source's whole lines about CHUNK bytes at a time, without their last
    newline; line_no counts the lines before them. A UTF-8 BOM at the start is dropped. A body is
    bytes, or a memoryview of the bytes read when the chunk held whole lines only (no copy; the
    kernel reads it as it is, the Python path takes bytes(body))."""
    read = unbuffered(src).read  # a local file: no 1 MiB buffer, no copy
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
        lines = count_newlines(chunk, cut) + 1
        if pending:
            body: bytes | memoryview = b"".join((*pending, memoryview(chunk)[:cut]))
            lines += sum(count_newlines(p, len(p)) for p in pending)
        else:
            body = memoryview(chunk)[:cut]
        rest = chunk[cut + 1:]
        pending, pending_size = ([rest], len(rest)) if rest else ([], 0)
        yield body, line_no
        line_no += lines
    if pending:
        yield b"".join(pending), line_no


def run(processor, src: dict, outs) -> dict:
    cfg = processor.processor_config
    output = output_format()
    # The kernel reads JSONL objects (in any input encoding: the others are transcoded to UTF-8 first).
    native = cfg.input_format == "jsonl" and output.NATIVE
    kernel = kernel_for(cfg.engine, cfg.columns, output.text_format(cfg), cfg.null_text) if native else None
    unit = _Unit(cfg, output, kernel, cfg.threads or cores())
    with open_source(src["location"], seekable=cfg.archive == "zip") as f, ExitStack() as rejects_stack:
        if cfg.archive is None:
            unit.convert(f, outs, rejects_stack, src["name"])
        else:
            from processors.transform.archive import members

            for name, stream, out_name in members(cfg.archive, cfg.members, f, src["name"], cfg.limits,
                                                  lambda: open_source(src["location"])):
                unit.convert(stream, outs, rejects_stack, out_name, member=name)
        drift = schema_drift.unit_report(unit.drift, cfg)  # fail_on_drift raises here: before anything is committed
        stats = source_stats(f, src)
    result = {**stats, "rows": unit.rows, "rejects": unit.rejects,
              "engine": "native" if kernel is not None else "python", **({"drift": drift} if drift else {})}
    if unit.first_reject:
        result["first_reject"] = unit.first_reject
    return result


class _Unit:
    """One unit's conversions (one source file, or each member of an archive) and their totals."""

    def __init__(self, cfg, output, kernel, threads: int):
        self.cfg, self.output, self.kernel, self.threads = cfg, output, kernel, threads
        self.rows = self.rejects = 0
        self.first_reject: dict | None = None
        self.drift = schema_drift.Sampler(cfg.columns) if cfg.drift else None

    def convert(self, f, outs, rejects_stack, name: str, member: str | None = None) -> None:
        cfg = self.cfg
        reject = None
        if cfg.on_error == "quarantine":
            rejects_sink = None

            def reject(line: bytes) -> None:
                nonlocal rejects_sink
                if rejects_sink is None:  # created on the first reject: no rejects, no file
                    rejects_sink = rejects_stack.enter_context(outs.create(cfg.rejects.model_dump(), rejects_name(name)))
                rejects_sink.write(line.rstrip(b"\r") + b"\n")

        converter = Converter(cfg, self.output.text_format(cfg), reject, self.kernel, self.threads, self.drift)
        with outs.create(cfg.dest.model_dump(), output_name(name)) as sink:
            try:
                converter.convert(f, self.output.open_output(sink, cfg))
            except UnicodeEncodeError as exc:
                where = f"member {member!r}: " if member is not None else ""
                raise DataError(f"{where}output encoding {cfg.encoding} cannot represent "
                                 f"{exc.object[exc.start:exc.end]!r} (encoding_errors 'replace' writes '?')") from None
            except (BadLine, InputError) as exc:
                if member is None:
                    raise
                at = f" line {exc.line}" if exc.line is not None else ""
                raise BadLine(f"member {member!r}{at}: {exc}") from None
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
