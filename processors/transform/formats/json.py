"""json: one JSON document holding an array of records, at the top level or at `records_path`
('statuses', 'data.items'). The document is parsed incrementally by ijson's C backend (yajl2_c),
so a 1 GB array converts in the same flat memory as JSONL: only one batch of records is alive.

Records are named by their JSON path (`statuses[12]`) and the byte offset the parser had read up
to when the record ended (it reads 4 KiB at a time, so the record ends in the 4 KiB before it). A syntax
error cannot be skipped (nothing after it can be placed), so it fails the unit whatever on_error
says; a record that is not an object is rejected like a bad line.
"""

from __future__ import annotations

import ijson

from . import InputError, Records, Where

try:  # the C backend, by name: ijson would otherwise fall back silently to its pure-Python one (~13x slower)
    _ijson = ijson.get_backend("yajl2_c")
except ImportError:  # a platform without the wheel's C extension: correct, only slower
    _ijson = ijson

DECIMALS = True  # ijson gives non-integer numbers as Decimal (exact); the row function writes them as floats
# A Records batch ends at BATCH records or BATCH_BYTES of the document, whichever comes first:
# parsed records take ~10x their text, so a batch of wide records (a few KB each) stays a few MB.
BATCH = 500
BATCH_BYTES = 256 << 10
READ = 4 << 10  # bytes per parser read: the window a byte offset points into (no slower than 64 KiB: measured)
BIG_READ = 1 << 20  # bytes per read once a record has taken this much (see _Counted.read)
HEAD = 1 << 20  # bytes kept from the start, to say what the document holds when no records are found
_BOM = b"\xef\xbb\xbf"
# A record has to be in memory to be converted; like JSONL's MAX_LINE, a bigger one is an error, not
# an OOM kill. Counted as the document's bytes since the previous record ended (so what precedes the
# first record, or lies between two, counts too: over this much of it is as suspect).
MAX_RECORD = 64 << 20


class JsonDocumentError(InputError):
    """The document is not valid JSON, or holds no array of records where the config says."""


class _Counted:
    """The source minus a leading UTF-8 BOM, counting the bytes read and keeping the first HEAD."""

    def __init__(self, src):
        self._src = src
        self.count = 0
        self.head = bytearray()  # from after the BOM
        self.bom = 0
        self.record_end = 0  # where the last record ended (batches() sets it)
        self._first = True

    def read(self, n: int = -1) -> bytes:
        if n == 0:  # ijson asks which type read() returns; not every source reads 0 bytes as b""
            return b""
        if self.count - self.record_end > BIG_READ:
            # Deep inside one record: yajl re-scans a token that spans reads from its start on every
            # read, so a long string read 4 KiB at a time costs time quadratic in its length (8 MiB: 3 s).
            n = max(n, BIG_READ)
        data = self._src.read(n)
        if self._first and data:
            self._first = False
            if data.startswith(_BOM):
                data = data[3:]
                self.count += 3
                self.bom = 3
        self.count += len(data)
        if self.count - self.record_end > MAX_RECORD + READ:
            raise JsonDocumentError(f"a record is larger than {MAX_RECORD >> 20} MiB (over {MAX_RECORD >> 20} MiB "
                                    f"of the document after byte {self.record_end} hold no complete record): "
                                    "a record has to fit in memory to be converted")
        if len(self.head) < HEAD:
            self.head += data[: HEAD - len(self.head)]
        return data


def batches(src, cfg):
    path = cfg.records_path
    label = path or ""
    prefix = f"{path}.item" if path else "item"
    reader = _Counted(src)
    records: list = []
    ends: list[int] = []
    index = 0  # records before this batch
    start = 0  # the document's bytes before this batch
    try:
        for record in _ijson.items(reader, prefix, buf_size=READ):
            records.append(record)
            ends.append(reader.count)
            reader.record_end = reader.count
            if len(records) >= BATCH or reader.count - start >= BATCH_BYTES:
                yield _batch(records, ends, label, index)
                index += len(records)
                start = reader.count
                records, ends = [], []
    except ijson.JSONError as exc:
        done = index + len(records)
        after = f" (after record {label}[{done - 1}])" if done else ""
        reason = parse_error(exc)
        hint = _hint(bytes(reader.head), reader.bom, reason, cfg)
        raise JsonDocumentError(f"not valid JSON at or before byte {reader.count}{after}: {reason}"
                                + (f"; {hint}" if hint else "")) from None
    if records:
        yield _batch(records, ends, label, index)
        index += len(records)
    if index == 0:
        _no_records(bytes(reader.head), reader.count > len(reader.head), path)


def parse_error(exc: Exception) -> str:
    """yajl's reason, without the excerpt of the data it appends (its message may arrive as bytes)."""
    text = exc.args[0] if exc.args else ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    lines = str(text).strip().splitlines()
    return lines[0].rstrip(".") if lines else type(exc).__name__


def _hint(head: bytes, offset: int, reason: str, cfg) -> str | None:
    """What the start of a document that failed to parse suggests, and the option that fixes it."""
    from processors.transform.encoding import encoding_hint

    hint = encoding_hint(head, cfg.input_encoding, "byte", offset)
    if hint:
        return hint
    if "trailing garbage" in reason:  # yajl: a second value after the first (JSON Lines, concatenated JSON)
        return 'the file holds more than one JSON value: if it is JSON Lines, set "input_format": "jsonl"'
    return None


def _batch(records: list, ends: list[int], label: str, base: int) -> Records:
    return Records(records, lambda i: Where(record=f"{label}[{base + i}]", byte=ends[i]),
                   lambda i: _raw(records[i]))


def _raw(record) -> bytes:
    from processors.transform.jsonl import _dumps_big, _dumps_decimals

    try:
        return _dumps_decimals(record)
    except (TypeError, ValueError):
        return _dumps_big(record).encode()


def _no_records(head: bytes, truncated: bool, path: str | None) -> None:
    """No records were found: fine if the array is there and empty; else say what the document holds."""
    shape = document_shape(head)
    if path is None:
        if shape.top == "array":
            return
        hint = f' (its first array of objects is at "{shape.first_records}")' if shape.first_records else ""
        raise JsonDocumentError(f"the document's top level is {_a(shape.top)}, not an array of records: set "
                                f'"records_path" to the array of records{hint}')
    if path in shape.arrays:
        return
    if truncated:
        hint = "in its first MiB, " if not shape.first_records else \
            f'in its first MiB the first array of objects is at "{shape.first_records}", '
    else:
        hint = f'the first array of objects is at "{shape.first_records}", ' if shape.first_records else ""
    raise JsonDocumentError(f'records_path "{path}" is not an array in the document ({hint}top level: '
                            f"{_a(shape.top)})")


def _a(kind: str | None) -> str:
    return {"object": "an object", "array": "an array", None: "empty"}.get(kind, kind or "empty")


class Shape:
    def __init__(self):
        self.top: str | None = None
        self.arrays: list[str] = []  # dotted paths of arrays (not inside arrays), in document order
        self.first_records: str | None = None  # the first of them whose first item is an object ('' = top)


def document_shape(head: bytes) -> Shape:
    """What the start of a document holds: its top-level type and its arrays (a cut-off head is fine)."""
    shape = Shape()
    opened: str | None = None
    try:
        for prefix, event, _ in _ijson.parse(head):
            if shape.top is None:
                shape.top = {"start_map": "object", "start_array": "array"}.get(event, "a " + event)
            if opened is not None:  # the event after an array opens: its first item, or its end
                if event == "start_map" and shape.first_records is None:
                    shape.first_records = opened
                opened = None
            if event == "start_array" and "item" not in prefix.split("."):
                shape.arrays.append(prefix)
                opened = prefix
    except ijson.JSONError:
        pass
    return shape
