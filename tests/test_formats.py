"""Input formats (jsonl_arrays, json), input encodings, and what an error says when a file set up
as JSONL is something else (issue 11). Every file here is written by the test."""

import codecs
import csv
import io
import json

import pytest

from pipeline.config import ConfigError, validate_config
from processors import UnitError, run_unit
from processors.transform import kernel as native

# The same records in every format: strings with quotes, commas, line breaks and non-ASCII; floats
# that have a shortest form (1.10, 1e16, 0.1); a 30-digit integer; nested objects and lists
# (holding floats and a big integer); null; a missing key.
RECORDS = [
    {"id": 1, "name": 'say "hi", then\nbye', "price": 1.10, "big": 123456789012345678901234567890,
     "user": {"city": "Zürich", "tags": [1.5, 2, "x"]}, "items": [{"sku": "S1", "n": 10 ** 25}], "note": None},
    {"id": 2, "name": "Łukasz", "price": 1e16, "big": -5, "user": {"city": "東京"}, "items": [], "note": "ok"},
    {"id": 3, "name": "", "price": 0.1, "big": 0, "user": None, "items": [{"sku": "S3"}, {"sku": "S4"}]},
]
COLUMNS = [{"name": n, "path": p} for n, p in [
    ("id", "id"), ("name", "name"), ("price", "price"), ("big", "big"), ("city", "user.city"),
    ("tags", "user.tags"), ("first_sku", "items.0.sku"), ("items", "items"), ("note", "note"), ("ä", "ä")]]
KEYS = ["id", "name", "price", "big", "user", "items", "note", "ä"]


def jsonl_bytes(records, encoding="utf-8") -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode(encoding)


def arrays_bytes(records, header=True, encoding="utf-8") -> bytes:
    rows = ([KEYS] if header else []) + [[r.get(k) for k in KEYS] for r in records]
    return jsonl_bytes(rows, encoding)


def transform(tmp_path, data: bytes, *, name="in.jsonl", member=None, **config):
    src = tmp_path / "src" / name
    src.parent.mkdir(exist_ok=True)
    if member is not None:
        import zipfile

        with zipfile.ZipFile(src, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr(member, data)
        config["archive"] = "zip"
    else:
        src.write_bytes(data)
    cfg = {"dest": {"type": "local", "path": f"{tmp_path}/dest/"}, "columns": config.pop("columns", COLUMNS),
           **config}
    validate_config({"processors": [{"processor_name": "transform", "processor_type": "JSONL",
                                     "processor_config": {"src": {"type": "local", "path": str(src)}, **cfg}}]})
    unit = {"processor": {"processor_name": "transform", "processor_type": "JSONL", "processor_config": cfg},
            "src": {"location": {"type": "local", "path": str(src)}, "name": name, "size": None}}
    return run_unit(unit)


def output(result) -> bytes:
    with open(result["outputs"][0]["location"]["path"], "rb") as f:
        return f.read()


def engines():
    return ["python", "native"] if native.available() else ["python"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The JSONL object path's CSV for RECORDS (the bytes every other format must write)."""
    tmp = tmp_path_factory.mktemp("ref")
    result = transform(tmp, jsonl_bytes(RECORDS), engine="python")
    data = output(result)
    assert list(csv.reader(io.StringIO(data.decode())))[1][:4] == ["1", 'say "hi", then\nbye', "1.1",
                                                                      "123456789012345678901234567890"]
    return data


def test_array_rows_with_header_by_name_and_index(tmp_path, reference):
    result = transform(tmp_path, arrays_bytes(RECORDS), input_format="jsonl_arrays", header_row=True)
    assert (result["rows"], result["rejects"], result["engine"]) == (3, 0, "python")
    assert output(result) == reference
    by_index = [{"name": c["name"], "path": c["path"].replace(c["path"].split(".")[0], str(
        KEYS.index(c["path"].split(".")[0])), 1)} for c in COLUMNS]
    assert by_index[4]["path"] == "4.city"
    assert output(transform(tmp_path, arrays_bytes(RECORDS), input_format="jsonl_arrays", header_row=True,
                            columns=by_index)) == reference
    assert output(transform(tmp_path, arrays_bytes(RECORDS, header=False), input_format="jsonl_arrays",
                            columns=by_index)) == reference


def test_array_rows_short_rows_bad_rows_and_unknown_names(tmp_path):
    data = b'["a","b"]\n[1]\n\n[2,"x",99]\n{"a": 3}\n'
    cols = [{"name": "a", "path": "a"}, {"name": "b", "path": "b"}]
    with pytest.raises(UnitError) as exc:
        transform(tmp_path, data, input_format="jsonl_arrays", header_row=True, columns=cols)
    assert str(exc.value).endswith("in.jsonl:5: not a JSON array (input_format jsonl_arrays: one array per line)")
    result = transform(tmp_path, data, input_format="jsonl_arrays", header_row=True, columns=cols,
                       on_error="skip", max_reject_ratio=0.5)
    assert (result["rows"], result["rejects"], result["first_reject"]["line"]) == (2, 1, 5)
    assert output(result) == b"a,b\r\n1,\r\n2,x\r\n"
    with pytest.raises(UnitError) as exc:
        transform(tmp_path, data, input_format="jsonl_arrays", header_row=True,
                  columns=[{"name": "c", "path": "c.d"}])
    assert "in.jsonl:1: column 'c': path starts with 'c', which is neither a column index nor a name in the " \
           "header row ('a', 'b')" in str(exc.value)


@pytest.mark.parametrize("path, wrap", [
    (None, lambda recs: recs),
    ("statuses", lambda recs: {"search_metadata": {"count": 3, "list": [{"x": 1}]}, "statuses": recs}),
    ("data.items", lambda recs: {"meta": {"statuses": []}, "data": {"page": 1, "items": recs}, "after": [1]}),
])
@pytest.mark.parametrize("indent", [None, 2])
def test_json_document_top_level_or_records_path(tmp_path, reference, path, wrap, indent):
    doc = json.dumps(wrap(RECORDS), indent=indent, ensure_ascii=False).encode()
    result = transform(tmp_path, doc, name="dump.json", input_format="json",
                       **({"records_path": path} if path else {}))
    assert (result["rows"], result["rejects"]) == (3, 0)
    assert output(result) == reference


def test_json_record_that_is_not_an_object_is_named_by_index_and_offset(tmp_path, reference):
    doc = json.dumps({"data": {"items": RECORDS[:2] + [42] + RECORDS[2:]}}).encode()
    with pytest.raises(UnitError) as exc:
        transform(tmp_path, doc, name="d.json", input_format="json", records_path="data.items")
    assert f"d.json: record data.items[2] (at or before byte {len(doc)}): not a JSON object" in str(exc.value)
    result = transform(tmp_path, doc, name="d.json", input_format="json", records_path="data.items",
                       on_error="quarantine", rejects={"type": "local", "path": f"{tmp_path}/rejects/"},
                       max_reject_ratio=0.5)
    assert (result["rows"], result["rejects"]) == (3, 1)
    assert result["first_reject"] == {"record": "data.items[2]", "byte": len(doc), "error": "not a JSON object"}
    assert output(result) == reference
    assert (tmp_path / "rejects" / "d.rejects.jsonl").read_bytes() == b"42\n"


def test_json_syntax_error_names_the_byte_and_the_last_good_record(tmp_path):
    good = json.dumps(RECORDS).encode()
    doc = good[:-1] + b', {"id": 4,, }]'
    for on_error in ("fail", "skip"):
        with pytest.raises(UnitError) as exc:
            transform(tmp_path, doc, name="d.json", input_format="json", on_error=on_error)
        assert f"d.json: not valid JSON at or before byte {len(doc)} (after record [2]): parse error" in str(exc.value)
    assert not (tmp_path / "dest" / "d.csv").exists()
    with pytest.raises(UnitError) as exc:  # a cut-off document is not a success with fewer rows
        transform(tmp_path, good[: len(good) // 2], name="d.json", input_format="json")
    assert "not valid JSON" in str(exc.value) and "premature EOF" in str(exc.value)


@pytest.mark.parametrize("data, expected", [
    (jsonl_bytes(RECORDS), 'parse error: trailing garbage; the file holds more than one JSON value: if it is JSON '
                           'Lines, set "input_format": "jsonl"'),
    (json.dumps([{"a": "x"}, {"a": "café"}], ensure_ascii=False).encode("latin-1"),
     'lexical error: invalid bytes in UTF8 string; the input is not UTF-8 (byte b\'\\xe9\' at byte 23): set '
     '"input_encoding" to its encoding'),
    (json.dumps(RECORDS).encode("utf-16"), 'lexical error: invalid char in json text; the input looks UTF-16'),
])
def test_a_json_document_that_is_something_else_says_which_option_fixes_it(tmp_path, data, expected):
    with pytest.raises(UnitError) as exc:
        transform(tmp_path, data, name="d.json", input_format="json")
    assert expected in str(exc.value)


def test_json_without_records_where_the_config_says_names_the_fix(tmp_path):
    doc = json.dumps({"search_metadata": {"count": 3}, "statuses": RECORDS}).encode()
    with pytest.raises(UnitError) as exc:
        transform(tmp_path, doc, name="d.json", input_format="json")
    assert 'the document\'s top level is an object, not an array of records: set "records_path" to the array ' \
           'of records (its first array of objects is at "statuses")' in str(exc.value)
    with pytest.raises(UnitError) as exc:
        transform(tmp_path, doc, name="d.json", input_format="json", records_path="search_metadata")
    assert 'records_path "search_metadata" is not an array in the document (the first array of objects is at ' \
           '"statuses", top level: an object)' in str(exc.value)
    empty = transform(tmp_path, b'{"statuses": []}', name="d.json", input_format="json", records_path="statuses")
    assert (empty["rows"], output(empty)) == (0, b",".join(c["name"].encode() for c in COLUMNS) + b"\r\n")


def test_json_document_inside_a_zip(tmp_path, reference):
    doc = json.dumps({"data": {"items": RECORDS}}, indent=1).encode()
    result = transform(tmp_path, doc, name="a.zip", member="x/dump.json", input_format="json",
                       records_path="data.items")
    assert result["rows"] == 3 and output(result) == reference
    with pytest.raises(UnitError) as exc:
        transform(tmp_path, doc[:-5], name="a.zip", member="x/dump.json", input_format="json",
                  records_path="data.items")
    assert f"a.zip: member 'x/dump.json': not valid JSON at or before byte {len(doc) - 5}" in str(exc.value)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "latin-1", "cp1252", "utf-8-sig"])
@pytest.mark.parametrize("fmt", ["jsonl", "jsonl_arrays", "json"])
def test_input_encodings(tmp_path, encoding, fmt):
    # Characters each encoding has (latin-1 has no en dash), beyond ASCII, in keys and values.
    text = "Zürich café ÿ" if encoding == "latin-1" else "Zürich – café"
    records = [json.loads(json.dumps(r).replace("\\u6771\\u4eac", "Köln")) | {"name": text, "ä": 1} for r in RECORDS]
    make = {"jsonl": jsonl_bytes, "jsonl_arrays": arrays_bytes,
            "json": lambda recs, encoding: json.dumps(recs, indent=1, ensure_ascii=False).encode(encoding)}[fmt]
    extra = {"jsonl_arrays": {"header_row": True}}.get(fmt, {})
    expected = output(transform(tmp_path, make(records, encoding="utf-8"), input_format=fmt, **extra))
    for engine in engines() if fmt == "jsonl" else ["auto"]:
        result = transform(tmp_path, make(records, encoding=encoding), input_format=fmt, input_encoding=encoding,
                           engine=engine, **extra)
        assert result["rows"] == 3 and output(result) == expected, (engine, encoding)
        if engine == "native":
            assert result["engine"] == "native"


def test_input_not_valid_in_its_encoding_names_the_byte(tmp_path):
    data = jsonl_bytes(RECORDS, "utf-16-le") + b"\x00"  # an odd byte at the end: a cut-off character
    with pytest.raises(UnitError) as exc:
        transform(tmp_path, data, input_encoding="utf-16-le")
    assert f"in.jsonl: input is not valid utf-16-le near byte {len(data) - 1}: truncated data " \
           '(set "input_encoding" to the encoding the file is written in)' in str(exc.value)


@pytest.mark.parametrize("engine", engines())
@pytest.mark.parametrize("data, expected", [
    (json.dumps({"statuses": RECORDS}, indent=2).encode(),
     'in.jsonl:1: unexpected end of data; the file looks like one multi-line JSON document, not JSON Lines: '
     'set "input_format": "json"; its records under a key: add "records_path"'),
    (json.dumps(RECORDS, indent=2).encode(),
     'in.jsonl:1: unexpected end of data; the file looks like one multi-line JSON document, not JSON Lines: '
     'set "input_format": "json"'),
    (arrays_bytes(RECORDS),
     'in.jsonl:1: not a JSON object; its rows are JSON arrays, not objects: set "input_format": "jsonl_arrays" '
     '(and "header_row": true when the first line names the columns)'),
    (jsonl_bytes(RECORDS, "utf-16"),
     'in.jsonl:1: str is not valid UTF-8: surrogates not allowed; the input looks UTF-16 (it has a UTF-16 '
     'byte-order mark or NUL bytes): set "input_encoding": "utf-16"'),
    (jsonl_bytes(RECORDS, "utf-16-be"), 'in.jsonl:1: str is not valid UTF-8: surrogates not allowed; the input '
                                        'looks UTF-16'),
    (jsonl_bytes([{"a": 1}, {"a": "café"}], "latin-1"),  # (on line 2: the encoding hint on any line)
     'in.jsonl:2: str is not valid UTF-8: surrogates not allowed; the input is not UTF-8 (byte b\'\\xe9\' at '
     'column 11): set "input_encoding" to its encoding (e.g. "latin-1" or "cp1252")'),
])
def test_a_file_that_is_not_jsonl_of_objects_says_which_option_fixes_it(tmp_path, engine, data, expected):
    with pytest.raises(UnitError) as exc:
        transform(tmp_path, data, engine=engine)
    assert expected in str(exc.value)
    try:  # with skip: the first reject says it too (and a file whose every line is rejected fails, saying it)
        text = transform(tmp_path, data, engine=engine, on_error="skip", max_reject_ratio=1.0)["first_reject"]["error"]
    except UnitError as exc:
        text = str(exc)
    assert expected.split("; ", 1)[1] in text


def test_array_rows_in_another_encoding_say_so(tmp_path):
    with pytest.raises(UnitError) as exc:
        transform(tmp_path, arrays_bytes(RECORDS, encoding="utf-16"), input_format="jsonl_arrays", header_row=True)
    assert 'in.jsonl:1: the header row is not valid JSON: str is not valid UTF-8: surrogates not allowed; the ' \
           'input looks UTF-16' in str(exc.value)
    data = jsonl_bytes([[1, "x"], [2, "é"]], encoding="latin-1")
    with pytest.raises(UnitError) as exc:
        transform(tmp_path, data, input_format="jsonl_arrays", columns=[{"name": "n", "path": "1"}])
    assert 'in.jsonl:2: str is not valid UTF-8: surrogates not allowed; the input is not UTF-8 (byte ' \
           'b\'\\xe9\' at column 6): set "input_encoding"' in str(exc.value)


def test_a_bad_line_later_in_real_jsonl_gets_no_format_hint(tmp_path):
    with pytest.raises(UnitError) as exc:
        transform(tmp_path, jsonl_bytes(RECORDS) + b"[1, 2]\n")
    assert str(exc.value).endswith("in.jsonl:4: not a JSON object")


@pytest.mark.parametrize("config, error", [
    ({"header_row": True}, "processor_config.header_row: only used with input_format jsonl_arrays"),
    ({"records_path": "data"}, "processor_config.records_path: only used with input_format json"),
    ({"input_format": "json", "records_path": "data..items"}, "processor_config.records_path: must be non-empty"),
    ({"input_format": "json", "engine": "native"}, "processor_config.engine: the native kernel reads input_format "
                                                   "jsonl only"),
    ({"input_format": "jsonl_arrays"}, "processor_config.columns[0].path: with jsonl_arrays and no header_row a "
                                       "path starts with a column index"),
    ({"input_encoding": "hex"}, "processor_config.input_encoding: 'hex' is not a text encoding"),
    ({"input_encoding": "nope"}, "processor_config.input_encoding: unknown encoding 'nope'"),
    ({"input_format": "xml"}, "processor_config.input_format: Input should be 'jsonl', 'jsonl_arrays' or 'json'"),
])
def test_format_options_are_checked_before_any_data_moves(config, error):
    with pytest.raises(ConfigError) as exc:
        validate_config({"processors": [{"processor_name": "transform", "processor_type": "JSONL", "processor_config": {
            "src": {"type": "local", "path": "in/"}, "dest": {"type": "local", "path": "out/"},
            "columns": [{"name": "a", "path": "a"}], **config}}]})
    assert any(e.startswith("processors[0]." + error) for e in exc.value.errors), exc.value.errors


def test_every_python_text_codec_name_is_accepted():
    for name in ("utf-16", "utf_16_le", "UTF-16BE", "latin-1", "iso8859-15", "cp1252", "shift_jis", "utf-8-sig"):
        codecs.lookup(name)
        validate_config({"processors": [{"processor_name": "transform", "processor_type": "JSONL",
                                         "processor_config": {"src": {"type": "local", "path": "in/"},
                                                              "dest": {"type": "local", "path": "out/"},
                                                              "columns": [{"name": "a", "path": "a"}],
                                                              "input_encoding": name}}]})


def test_json_byte_offsets_point_into_a_small_window(tmp_path):
    """A bad record deep in a large document is placed within the parser's 4 KiB read window."""
    records = [{"id": i, "pad": "x" * 100} for i in range(5000)]
    records[4321] = "not an object"
    doc = json.dumps(records).encode()
    start = doc.index(b'"not an object"')
    with pytest.raises(UnitError) as exc:
        transform(tmp_path, doc, name="d.json", input_format="json", columns=[{"name": "id", "path": "id"}])
    text = str(exc.value)
    assert "record [4321] (at or before byte " in text
    byte = int(text.split("at or before byte ")[1].split(")")[0])
    assert start < byte <= start + len(b'"not an object"') + 4096


def test_a_json_record_larger_than_the_limit_fails_before_it_is_built(tmp_path):
    """A record has to be in memory to be converted: one bigger than MAX_RECORD (JSONL's MAX_LINE)
    fails the unit naming the limit, while the parser reads it, not after building it whole."""
    from processors.transform.formats import json as json_format

    big = json_format.MAX_RECORD + (1 << 20)
    doc = b'{"data": [{"id": 1, "text": "ok"}, {"id": 2, "text": "' + b"x" * big + b'"}]}'
    with pytest.raises(UnitError) as exc:
        transform(tmp_path, doc, name="d.json", input_format="json", records_path="data", on_error="skip")
    assert f"a record is larger than {json_format.MAX_RECORD >> 20} MiB" in str(exc.value)
    assert "d.json" in str(exc.value) and not (tmp_path / "dest" / "d.csv").exists()
    # Just under the limit converts.
    doc = b'{"data": [{"id": 2, "text": "' + b"x" * (json_format.MAX_RECORD - 100) + b'"}]}'
    assert transform(tmp_path, doc, name="e.json", input_format="json", records_path="data")["rows"] == 1
