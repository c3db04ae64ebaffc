"""The transform's input formats: one reader module each, behind one small interface (the way
dlt keeps its writers in one registry, ALL_WRITERS).

A reader module provides

    batches(src, cfg) -> iterator of Lines | Records | Reject

over `src`, a readable of UTF-8 bytes (processors/transform/encoding.py has transcoded any other
input encoding), for the transform config `cfg`:

    Lines    (body, line_no): whole lines of JSON objects, as processors.transform.jsonl.chunks
             yields them; the native kernel's input (only the jsonl reader yields these)
    Records  parsed records and where each is; each goes through Converter.emit, the one place
             every parsed record of every format passes, which writes it with the generated row
             function (so a value renders the same whatever format it came from)
    Reject   an item that could not be parsed: its place, its raw text and why; on_error applies

A reader may set DECIMALS = True when its records hold decimal.Decimal numbers (ijson's), which
the row function then renders as the same shortest float text the JSONL path writes; and may
provide diagnose(line_no, raw, reason, cfg) -> reason, which adds to a bad line's error what the
line suggests (another format, another encoding) and the option that fixes it.
The next input format is one more module here and one more name in ALL_READERS (and in
pipeline/config.py's InputFormat).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from pipeline.errors import DataError


class InputError(DataError):
    """The input is not what its input_format or input_encoding says (and cannot be skipped past)."""

ALL_READERS = {
    "jsonl": "processors.transform.formats.jsonl",
    "jsonl_arrays": "processors.transform.formats.jsonl_arrays",
    "json": "processors.transform.formats.json",
}


@dataclass(frozen=True, slots=True)
class Where:
    """A record's place: a line of a line-based format, or a JSON document's record (its JSON path
    and the byte offset the parser had read up to when the record ended)."""

    line: int | None = None
    record: str | None = None
    byte: int | None = None

    def __str__(self) -> str:
        if self.line is not None:
            return f"line {self.line}"
        return f"record {self.record} (at or before byte {self.byte})"

    def as_dict(self) -> dict:
        if self.line is not None:
            return {"line": self.line}
        return {"record": self.record, "byte": self.byte}


@dataclass(slots=True)
class Records:
    """records: parsed records (each should be a dict); where(i): the i-th one's place; raw(i): its
    text for the rejects file."""

    records: list
    where: Callable[[int], Where]
    raw: Callable[[int], bytes]


@dataclass(slots=True)
class Reject:
    where: Where
    raw: bytes
    reason: str


def reader_for(input_format: str):
    try:
        return importlib.import_module(ALL_READERS[input_format])
    except KeyError:
        raise ValueError(f"unknown input_format {input_format!r}") from None
