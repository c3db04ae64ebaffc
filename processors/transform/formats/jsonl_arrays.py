"""jsonl_arrays: one JSON array per line (a row of values), optionally after a header line.

With `header_row`, the first non-blank line is an array of strings naming the columns, and a
column path may start with such a name or with an index; without it, paths start with an index
('0', '3.name'). Each row becomes a dict keyed by the first segments of the configured paths, so
the transform's generated row function (and its value formatting) applies unchanged; a value
past the end of a short row is missing (empty).
"""

from __future__ import annotations

import orjson

from . import InputError, Records, Reject, Where

BATCH = 2000  # rows per Records batch


def diagnose(line_no: int, line: bytes, reason: str, cfg) -> str:
    """A bad line's error, plus what it suggests about the input encoding."""
    from processors.transform.encoding import encoding_hint

    hint = encoding_hint(line, cfg.input_encoding)
    return f"{reason}; {hint}" if hint else reason


def batches(src, cfg):
    from processors.transform.jsonl import chunks, exact_loads, has_long_number

    picks: list[tuple[str, int]] | None = None if cfg.header_row else _picks(cfg.columns, None)
    for view, line_no in chunks(src):
        body = bytes(view)  # chunks may hand out a memoryview of what it read (the kernel's input)
        records: list[dict] = []
        lines: list[int] = []
        raws: list[bytes] = []
        long_numbers = has_long_number(body)
        for i, line in enumerate(body.split(b"\n"), start=line_no + 1):
            if not line or line.isspace():
                continue
            try:
                row = exact_loads(line) if long_numbers and has_long_number(line) else orjson.loads(line)
            except (ValueError, RecursionError) as exc:
                if picks is None:  # a header that cannot be read: no line after it can be placed
                    reason = diagnose(i, line, str(exc).split(": line 1 column")[0], cfg)
                    raise InputError(f"the header row is not valid JSON: {reason}", line=i) from None
                yield Reject(Where(line=i), line, str(exc).split(": line 1 column")[0])
                continue
            if row.__class__ is not list:
                if picks is None:
                    raise InputError("the header row (header_row: true) must be a JSON array of column names",
                                    line=i)
                yield Reject(Where(line=i), line, "not a JSON array (input_format jsonl_arrays: one array per line)")
                continue
            if picks is None:  # the header line
                picks = _picks(cfg.columns, _header(row, i), i)
                continue
            records.append({key: row[index] for key, index in picks if index < len(row)})
            lines.append(i)
            raws.append(line)
            if len(records) >= BATCH:
                yield _batch(records, lines, raws)
                records, lines, raws = [], [], []
        if records:
            yield _batch(records, lines, raws)


def _batch(records: list, lines: list[int], raws: list[bytes]) -> Records:
    return Records(records, lambda k: Where(line=lines[k]), raws.__getitem__)


def _header(row: list, line: int) -> list[str]:
    if not all(isinstance(name, str) for name in row):
        raise InputError("the header row (header_row: true) must be an array of column names (strings)", line=line)
    return row


def _picks(columns, header: list[str] | None, line: int = 1) -> list[tuple[str, int]]:
    """(first path segment, its index in a row) for each distinct first segment of the columns."""
    picks: dict[str, int] = {}
    for column in columns:
        key = column.segments[0]
        if key in picks:
            continue
        if header is not None and key in header:
            picks[key] = header.index(key)
        elif key.isdigit():
            picks[key] = int(key)
        else:
            names = ", ".join(repr(n) for n in header[:20]) if header else ""
            raise InputError(f"column {column.name!r}: path starts with {key!r}, which is neither a column index "
                            f"nor a name in the header row ({names})", line=line)
    return list(picks.items())
