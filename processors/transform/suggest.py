"""`suggest`: sample a source and write the transform config that converts it.

The source is any source location (local, blob, http), also an archive (zip, gzip, tar: its first
member that looks like JSON is sampled, and the config reads the archive directly). The input
encoding and format are detected from the first bytes unless given:

    encoding   a UTF-16 byte-order mark or NUL bytes -> utf-16 / utf-16-le / utf-16-be; bytes that are
               not UTF-8 -> cp1252 (latin-1 when cp1252 leaves a byte undefined); else utf-8
    format     line 1 a whole JSON object -> jsonl (unless it is the only line and holds an array of
               objects: then a one-line document, json); a whole array of values -> jsonl_arrays (with
               header_row when it holds distinct names and the next row does not look like it);
               anything else -> json, records_path the first array of objects in the document

Up to `rows` records are read with the same parsers the transform uses, and every path seen
becomes a column, in first-seen order: objects are walked into; a list of objects gets a column
for the whole list (as JSON) and the paths of its first element ('items.0.sku'); a key holding
a '.' or characters outside [A-Za-z0-9_-] gets a list-form path. The same sample gives the same
config. For each column the JSON types seen and the fill rate (present and not null) go to the
report.
"""

from __future__ import annotations

import codecs
import glob
import re
from itertools import islice

import orjson

from pipeline.errors import DataError
from processors.transform.formats.jsonl import loads_or_none

HEAD = 1 << 20  # decoded bytes looked at to detect the format (and a document's records_path)
MAX_DEPTH = 12
MAX_COLUMNS = 1000
_SUFFIXES = (".jsonl", ".ndjson", ".json", ".txt")
_PLAIN = re.compile(r"^[A-Za-z0-9_-]+$")
_NAME_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_ .$-]*$")


def archive_kind(name: str) -> str | None:
    lower = name.lower()
    for suffixes, kind in (((".tar.gz", ".tgz"), "tar.gz"), ((".tar",), "tar"), ((".zip",), "zip"),
                           ((".gz", ".gzip"), "gzip")):
        if lower.endswith(suffixes):
            return kind
    return None


def suggest(location: dict, *, rows: int = 1000, input_format: str | None = None, records_path: str | None = None,
            input_encoding: str | None = None, dest: str = "out/") -> tuple[dict, dict]:
    """(the pipeline config, the report) for the source at `location`."""
    from mounters import describe, list_files, open_source

    if records_path is not None and input_format not in (None, "json"):
        raise DataError(f"--records-path is for the json format, not {input_format}")
    files = list_files(location)
    if not files:
        raise DataError(f"{describe(location)}: no file to sample")
    src = files[0]
    kind = archive_kind(src["name"])
    with open_source(src["location"], seekable=kind == "zip") as f:
        member: str | None = None
        stream = f
        if kind is not None:
            from pipeline.config import ArchiveLimits
            from processors.transform.archive import members

            found = None
            for name, member_stream, _ in members(kind, "*", f, src["name"], ArchiveLimits(),
                                                  lambda: open_source(src["location"])):
                if found is None or (name.lower().endswith(_SUFFIXES) and not found[0].lower().endswith(_SUFFIXES)):
                    found = (name, member_stream)
                if name.lower().endswith(_SUFFIXES):
                    break
            if found is None:
                raise DataError(f"{describe(src['location'])}: the {kind} archive holds no file to sample")
            member, stream = found
        sample = _Sample(stream, rows, input_format, records_path, input_encoding)
    cfg: dict = {"src": location, "dest": {"type": "local", "path": dest}, "input_format": sample.format}
    if sample.header_row:
        cfg["header_row"] = True
    if sample.records_path:
        cfg["records_path"] = sample.records_path
    if codecs.lookup(sample.encoding).name != "utf-8":
        cfg["input_encoding"] = sample.encoding
    if kind is not None:
        cfg["archive"] = kind
        if kind != "gzip" and member is not None:  # members like the one sampled (not a README, images...)
            suffix = next((x for x in _SUFFIXES if member.lower().endswith(x)), None)
            cfg["members"] = f"**/*{member[-len(suffix):]}" if suffix else glob.escape(member)
    columns, report_columns, skipped = sample.columns()
    if not columns:
        raise DataError(f"{describe(src['location'])}: no fields to suggest columns from: {sample.count} record(s) "
                        f"sampled, {sample.unparsable} not "
                        + ("arrays" if sample.format == "jsonl_arrays" else "JSON objects") + " or not valid JSON")
    cfg["columns"] = columns
    config = {"processors": [{"processor_name": "transform", "processor_type": "JSONL", "processor_config": cfg}]}
    report = {"source": describe(src["location"]), "file": src["name"],
              **({"member": member} if member is not None else {}),
              "input_format": sample.format, "header_row": sample.header_row, "records_path": sample.records_path,
              "input_encoding": sample.encoding, "records_sampled": sample.count, "unparsable": sample.unparsable,
              "columns": report_columns, "skipped_paths": skipped}
    return config, report


class _Stat:
    __slots__ = ("types", "filled", "leaf")

    def __init__(self):
        self.types: dict[str, int] = {}
        self.filled = 0
        self.leaf = False  # a column: its value was something other than a non-empty object


def _json_type(v) -> str:
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, str):
        return "string"
    if v is None:
        return "null"
    if isinstance(v, dict):
        return "object"
    if isinstance(v, list):
        return "array"
    return "number"  # float, Decimal


class _Reader:
    """The head of a readable (already consumed) followed by the rest of it."""

    def __init__(self, head: bytes, f):
        self._head, self._f = head, f

    def read(self, n: int = -1) -> bytes:
        if self._head:
            data, self._head = (self._head, b"") if n is None or n < 0 else (self._head[:n], self._head[n:])
            return data
        return self._f.read(n)


class _Sample:
    def __init__(self, stream, rows: int, input_format, records_path, input_encoding):
        from processors.transform.encoding import utf8_stream

        raw_head = _read(stream, 64 << 10)
        self.encoding = input_encoding or detect_encoding(raw_head)
        text = utf8_stream(_Reader(raw_head, stream), self.encoding)
        head = _read(text, HEAD)
        body = head[3:] if head.startswith(b"\xef\xbb\xbf") else head
        self.format = input_format or ("json" if records_path else detect_format(body))
        self.header_row = False
        self.records_path = records_path
        self.header: list[str] | None = None
        self.count = 0
        self.unparsable = 0
        self.stats: dict[tuple, _Stat] = {}
        reader = _Reader(head, text)
        if self.format == "json":
            if records_path is None:
                self.records_path = _guess_records_path(body)
            records = self._json_records(reader, rows)
        elif self.format == "jsonl_arrays":
            self.header_row = _has_header(body)
            records = self._lines(reader, rows, list)
        else:
            records = self._lines(reader, rows, dict)
        for record in records:
            self.count += 1
            self._walk(record, (), 0)

    def _lines(self, reader, rows: int, kind):
        from processors.transform.jsonl import chunks, exact_loads, has_long_number

        first = True
        for body, _ in chunks(reader):
            for line in bytes(body).split(b"\n"):  # chunks may hand out a memoryview
                if not line or line.isspace():
                    continue
                try:
                    value = exact_loads(line) if has_long_number(line) else orjson.loads(line)
                except (ValueError, RecursionError):
                    self.unparsable += 1
                    continue
                if first and self.header_row:
                    first = False
                    self.header = [str(v) for v in value]
                    continue
                first = False
                if value.__class__ is not kind:
                    self.unparsable += 1
                    continue
                if kind is list:
                    value = _ArrayRow(value)
                yield value
                rows -= 1
                if rows <= 0:
                    return

    def _json_records(self, reader, rows: int):
        import ijson

        from processors.transform.formats.json import _ijson

        prefix = f"{self.records_path}.item" if self.records_path else "item"
        try:
            for record in islice(_ijson.items(_Debommed(reader), prefix), rows):
                if record.__class__ is dict:
                    yield record
                else:
                    self.unparsable += 1
        except ijson.JSONError as exc:
            if self.count == 0:
                from processors.transform.formats.json import parse_error

                raise DataError(f"the sample is not a valid JSON document: {parse_error(exc)}"
                                ) from None  # else the sample ends at the bad part

    def _walk(self, value, path: tuple, depth: int) -> None:
        if path:
            stat = self.stats.get(path)
            if stat is None:
                stat = self.stats[path] = _Stat()
            t = _json_type(value)
            stat.types[t] = stat.types.get(t, 0) + 1
            if value is not None:
                stat.filled += 1
        if value.__class__ is _ArrayRow:
            for i, v in enumerate(value.row):
                self._walk(v, path + (self._row_key(i),), depth + 1)
            return
        if value.__class__ is dict and value and depth < MAX_DEPTH:
            for k, v in value.items():
                self._walk(v, path + (k,), depth + 1)
        else:
            if path:
                stat.leaf = True
            if value.__class__ is list and value and value[0].__class__ is dict and depth < MAX_DEPTH:
                self._walk(value[0], path + ("0",), depth + 1)  # the first element's fields

    def _row_key(self, i: int) -> str:
        if self.header is not None and i < len(self.header) and _PLAIN.match(self.header[i]) \
                and self.header.count(self.header[i]) == 1 and not self.header[i].isdigit():
            return self.header[i]
        return str(i)

    def columns(self) -> tuple[list[dict], list[dict], list[dict]]:
        columns: list[dict] = []
        report: list[dict] = []
        skipped: list[dict] = []
        names: set[str] = set()
        for path, stat in self.stats.items():
            if not stat.leaf:
                continue
            types = dict(sorted(stat.types.items(), key=lambda kv: _TYPE_ORDER.index(kv[0])))
            fill = round(stat.filled / self.count, 4) if self.count else 0.0
            if any(k == "" or _NAME_UNSAFE.search(k) for k in path):
                skipped.append({"path": list(path), "why": "a key that is empty or holds control characters "
                                                           "cannot be named in a config", "types": types})
                continue
            if len(columns) >= MAX_COLUMNS:
                skipped.append({"path": list(path), "why": f"more than {MAX_COLUMNS} columns", "types": types})
                continue
            name = self._name(path, names)
            config_path: str | list[str] = ".".join(path) if all(_PLAIN.match(k) for k in path) else list(path)
            columns.append({"name": name, "path": config_path})
            report.append({"name": name, "path": config_path, "types": types, "fill": fill})
        return columns, report, skipped

    def _name(self, path: tuple, names: set[str]) -> str:
        parts = list(path)
        if self.header is not None and parts[0].isdigit() and int(parts[0]) < len(self.header):
            parts[0] = self.header[int(parts[0])] or parts[0]  # an index path still gets the header's name
        elif self.header is None and self.format == "jsonl_arrays":
            parts[0] = f"col_{parts[0]}"
        base = re.sub(r"[^\w]+", "_", "_".join(parts)).strip("_") or "column"  # plain CSV header names
        name, n = base, 2
        while name in names:
            name, n = f"{base}_{n}", n + 1
        names.add(name)
        return name


_TYPE_ORDER = ["string", "integer", "number", "boolean", "null", "object", "array"]


class _ArrayRow:
    """A jsonl_arrays row (its values are walked by index, or by header name)."""

    __slots__ = ("row",)

    def __init__(self, row: list):
        self.row = row


class _Debommed:
    def __init__(self, f):
        self._f, self._first = f, True

    def read(self, n: int = -1) -> bytes:
        if n == 0:
            return b""
        data = self._f.read(n)
        if self._first and data:
            self._first = False
            if data.startswith(b"\xef\xbb\xbf"):
                data = data[3:]
        return data


def _read(f, n: int) -> bytes:
    parts, size = [], 0
    while size < n:
        data = f.read(min(n - size, 256 << 10))
        if not data:
            break
        parts.append(data)
        size += len(data)
    return b"".join(parts)


def detect_encoding(head: bytes) -> str:
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8"
    if b"\x00" in head[:4096]:
        sample = head[:4096]
        return "utf-16-le" if sample[1::2].count(0) > sample[0::2].count(0) else "utf-16-be"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        head.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError:
        return "latin-1"


def _first_lines(body: bytes, n: int) -> list[bytes]:
    lines = []
    for line in body.split(b"\n"):
        if line.strip():
            lines.append(line)
            if len(lines) == n:
                break
    return lines


def detect_format(body: bytes) -> str:
    lines = _first_lines(body, 2)
    if not lines:
        raise DataError("the sample is empty: nothing to suggest columns from")
    first = loads_or_none(lines[0])
    if first.__class__ is dict:
        if len(lines) == 1:  # a one-line document with its records under a key (an API dump), not one row
            from processors.transform.formats.json import document_shape

            if document_shape(lines[0]).first_records:
                return "json"
        return "jsonl"
    if first.__class__ is list and not any(v.__class__ is dict for v in first) and \
            (len(lines) < 2 or loads_or_none(lines[1]).__class__ is list):
        return "jsonl_arrays"  # one array of values per line (a one-line array of objects is a document)
    if lines[0].lstrip()[:1] in (b"{", b"["):
        return "json"
    raise DataError("the sample is neither JSON Lines nor a JSON document (it does not start with '{' or '[')")


def _has_header(body: bytes) -> bool:
    lines = _first_lines(body, 2)
    first = loads_or_none(lines[0]) if lines else None
    if not first or not all(isinstance(v, str) and v for v in first) or len(set(first)) != len(first):
        return False
    second = loads_or_none(lines[1]) if len(lines) > 1 else None
    if isinstance(second, list) and any(not isinstance(v, str) for v in second):
        return True  # names over values
    return all(_IDENTIFIER.match(v) for v in first)


def _guess_records_path(body: bytes) -> str | None:
    from processors.transform.formats.json import document_shape

    shape = document_shape(body)
    if shape.top == "array":
        return None
    if shape.first_records is None:
        raise DataError("found no array of objects in the document's first MiB: give --records-path")
    return shape.first_records or None
