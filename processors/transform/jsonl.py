"""transform JSONL -> CSV, streamed in chunks of lines.

Per chunk (1 MiB of whole lines): orjson parses each line, a row function *generated for the
configured columns* pulls the values out without a Python call per column, and csv.writer
writes the whole chunk at once. If anything in a chunk is off (a bad line, a non-object line,
an integer too big for orjson) the chunk is redone line by line on the slow path, which finds
the line, names it (file:line) and applies on_error. So the common case pays nothing for
error handling, and the output is the same either way.

Values: strings as they are; integers exactly; floats as the shortest text that parses back
to the same double (1.10 -> 1.1); booleans `true`/`false`; lists and objects as compact JSON;
JSON null as `null_text`; a missing key (or a path through a non-object) as empty.
"""

from __future__ import annotations

import json
import math
import re
from contextlib import ExitStack

import orjson

from mounters import open_source
from processors.stream import replace_suffix, source_stats
from writers import OutputSet
from writers.csv_text import open_csv

CHUNK = 1 << 20
_BOM = b"\xef\xbb\xbf"
# orjson parses integers beyond 64 bits as floats, silently losing digits. On the slow path a
# line holding a run of 19+ digits is parsed by the stdlib parser instead (exact big integers).
_LONG_DIGITS = re.compile(rb"\d{19}")
_SUFFIXES = (".jsonl", ".ndjson", ".json", ".txt")


class BadLine(ValueError):
    """A line that is not a JSON object. `line` is its 1-based number in the source file."""

    def __init__(self, reason: str, line: int | None = None):
        super().__init__(reason)
        self.line = line


class _Missing:
    pass


MISSING = _Missing()


def output_name(src_name: str) -> str:
    return replace_suffix(src_name, _SUFFIXES, ".csv")


def _reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def _exact_loads(line: bytes):
    """The slow path's parser: stdlib json keeps big integers exact; NaN/Infinity are errors."""
    def finite(text):
        value = float(text)
        if math.isinf(value):
            raise ValueError(f"number {text} is out of range")
        return value

    return json.loads(line, parse_constant=_reject_constant, parse_float=finite)


class _MaybeInexact(Exception):
    """A float that may be a big integer orjson rounded; the chunk is redone exactly."""


# orjson parses -2**63 .. 2**64-1 exactly; a float this large may have been an integer literal.
_BIG = 9.2e18
# Exponent notation in orjson's output of a list/object: the same doubt, nested.
_EXPONENT = re.compile(rb"\de")


def build_row_function(columns, null_text: str, check_exact: bool):
    """Generate `rows(objs) -> list[tuple]` specialised to the columns (one inlined path per column).

    check_exact: raise _MaybeInexact on a float that could be a rounded big integer (fast path)."""
    distinguish_null = null_text != ""
    env = {"MISSING": MISSING, "BadLine": BadLine, "Inexact": _MaybeInexact, "BIG": _BIG}
    env["SPECIAL"] = frozenset([bool, dict, list] + ([type(None), _Missing] if distinguish_null else []))
    lines = ["def rows(objs):", "    out = []", "    append = out.append", "    for o in objs:",
             "        if o.__class__ is not dict:",
             "            raise BadLine('not a JSON object')"]
    names = []
    miss = "MISSING" if distinguish_null else "None"  # null and missing both print as '' by default
    default = ", MISSING" if distinguish_null else ""
    for i, column in enumerate(columns):
        v = f"c{i}"
        names.append(v)
        for depth, key in enumerate(column.segments):
            holder, k = ("o" if depth == 0 else v), repr(key)
            get = f"{holder}.get({k}{default})"
            if key.isdigit():  # a list index, or a key that looks like one
                n = int(key)
                lines.append(f"        {v} = {get} if {holder}.__class__ is dict else "
                             f"({holder}[{n}] if {holder}.__class__ is list and len({holder}) > {n} else {miss})")
            elif depth == 0:
                lines.append(f"        {v} = {get}")
            else:
                lines.append(f"        {v} = {get} if {holder}.__class__ is dict else {miss}")
        lines.append(f"        if {v}.__class__ in SPECIAL: {v} = fmt({v})")
        if check_exact:
            lines.append(f"        elif {v}.__class__ is float and not -BIG < {v} < BIG: raise Inexact")
    lines.append(f"        append(({', '.join(names)},))")
    lines.append("    return out")

    def fmt(value):
        if value is True:
            return "true"
        if value is False:
            return "false"
        if value is None:
            return null_text
        if value is MISSING:
            return ""
        try:
            text = orjson.dumps(value)
        except TypeError:  # an integer beyond 64 bits, from the exact parser
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        if check_exact and _EXPONENT.search(text):
            raise _MaybeInexact
        return text.decode()

    env["fmt"] = fmt
    exec(compile("\n".join(lines), "<jsonl-rows>", "exec"), env)
    return env["rows"]


class Converter:
    """Streams one JSONL source into a csv.writer; counts rows and rejects."""

    def __init__(self, cfg, reject):
        self.fast_rows = build_row_function(cfg.columns, cfg.null_text, check_exact=True)
        self.exact_rows = build_row_function(cfg.columns, cfg.null_text, check_exact=False)
        self.on_error = cfg.on_error
        self.reject = reject  # reject(raw_line_bytes) for quarantine
        self.rows = 0
        self.rejects = 0
        self.first_reject: dict | None = None

    def convert(self, src, writer) -> None:
        read = src.read
        line_no = 0  # lines before the current chunk
        tail = b""
        first = True
        while True:
            chunk = read(CHUNK)
            if not chunk:
                break
            if first:
                first = False
                if chunk.startswith(_BOM):
                    chunk = chunk[3:]
            data = tail + chunk if tail else chunk
            cut = data.rfind(b"\n")
            if cut < 0:
                tail = data
                continue
            tail = data[cut + 1:]
            lines = data[:cut].split(b"\n")
            self._chunk(lines, line_no, writer)
            line_no += len(lines)
        if tail:
            self._chunk([tail], line_no, writer)

    def _chunk(self, lines: list[bytes], line_no: int, writer) -> None:
        try:
            loads = orjson.loads
            rows = self.fast_rows([loads(line) for line in lines if line])
        except (ValueError, _MaybeInexact):  # orjson.JSONDecodeError and BadLine are ValueErrors
            rows = self._slow(lines, line_no)
        writer.writerows(rows)
        self.rows += len(rows)

    def _slow(self, lines: list[bytes], line_no: int) -> list[tuple]:
        """Line by line: finds the bad line, and parses big integers exactly."""
        rows = []
        rows_fn = self.exact_rows
        for i, line in enumerate(lines, start=line_no + 1):
            if not line or line.isspace():
                continue  # blank lines (and CRLF blank lines) are normal input
            try:
                obj = _exact_loads(line) if _LONG_DIGITS.search(line) else orjson.loads(line)
                rows.extend(rows_fn((obj,)))
            except (ValueError, RecursionError) as exc:
                self._bad(i, line, exc)
        return rows

    def _bad(self, line_no: int, line: bytes, exc: Exception) -> None:
        reason = str(exc).split(": line 1 column")[0] if isinstance(exc, orjson.JSONDecodeError) else str(exc)
        if self.on_error == "fail":
            raise BadLine(reason, line_no) from None
        self.rejects += 1
        if self.first_reject is None:
            self.first_reject = {"line": line_no, "error": reason}
        if self.reject is not None:
            self.reject(line)


def run(processor, src: dict) -> dict:
    cfg = processor.processor_config
    with open_source(src["location"]) as f, OutputSet() as outs, ExitStack() as rejects_stack:
        reject = None
        if cfg.on_error == "quarantine":
            rejects_sink = None

            def reject(line: bytes) -> None:
                nonlocal rejects_sink
                if rejects_sink is None:  # created on the first reject: no rejects, no file
                    name = replace_suffix(src["name"], _SUFFIXES, ".rejects.jsonl")
                    rejects_sink = rejects_stack.enter_context(outs.create(cfg.rejects.model_dump(), name))
                rejects_sink.write(line.rstrip(b"\r") + b"\n")

        converter = Converter(cfg, reject)
        with outs.create(cfg.dest.model_dump(), output_name(src["name"])) as sink:
            text, writer = open_csv(sink, encoding=cfg.encoding, errors=cfg.encoding_errors,
                                    newline=cfg.newline, delimiter=cfg.delimiter, quoting=cfg.quoting)
            try:
                if cfg.header:
                    writer.writerow([c.name for c in cfg.columns])
                converter.convert(f, writer)
                text.flush()
            except UnicodeEncodeError as exc:
                raise ValueError(f"output encoding {cfg.encoding} cannot represent "
                                 f"{exc.object[exc.start:exc.end]!r} (encoding_errors 'replace' writes '?')") from None
            finally:
                text.detach()  # the OutputSet commits the sink; the text layer must not close it
        stats = source_stats(f, src)
    result = {**stats, "outputs": outs.outputs, "rows": converter.rows, "rejects": converter.rejects}
    if converter.first_reject:
        result["first_reject"] = converter.first_reject
    return result
