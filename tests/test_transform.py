"""JSONL -> CSV: values, options, bad lines, and streaming across chunk boundaries."""

import csv
import io
import json
import os

import pytest

from processors import UnitError, run_unit
from processors.transform import jsonl
from processors.transform import kernel as native

ENGINE = ["python"]


@pytest.fixture(autouse=True, params=["python", "native"])
def engine(request):
    """Every test here runs on both paths: the pure-Python one and the native kernel."""
    if request.param == "native" and not native.available():
        pytest.skip("the native kernel is not built (make test requires it when the build succeeded)")
    ENGINE[0] = request.param
    yield request.param
    ENGINE[0] = "python"


def transform(tmp_path, lines, *, name="in.jsonl", raw=None, **config):
    src = tmp_path / "src" / name
    src.parent.mkdir(exist_ok=True)
    src.write_bytes(raw if raw is not None else b"".join(
        (l if isinstance(l, bytes) else json.dumps(l, ensure_ascii=False).encode()) + b"\n" for l in lines))
    cfg = {"dest": {"type": "local", "path": f"{tmp_path}/dest/"}, "engine": ENGINE[0],
           "columns": config.pop("columns", [{"name": "a", "path": "a"}]), **config}
    unit = {"processor": {"processor_name": "transform", "processor_type": "JSONL", "processor_config": cfg},
            "src": {"location": {"type": "local", "path": str(src)}, "name": name, "size": None}}
    return run_unit(unit)


def read_csv(result, encoding="utf-8", **fmt):
    with open(result["outputs"][0]["location"]["path"], newline="", encoding=encoding) as f:
        return list(csv.reader(f, **fmt))


COLUMNS = [{"name": n, "path": p} for n, p in [
    ("id", "id"), ("user_id", "user.id"), ("city", "user.address.city"), ("first", "items.0.sku"),
    ("items", "items"), ("flag", "flag"), ("n", "n"), ("f", "f"), ("note", "note")]]


def test_values_paths_and_types(tmp_path):
    rows = [
        {"id": "a", "user": {"id": 7, "address": {"city": "Zürich"}}, "items": [{"sku": "S1"}, {"sku": "S2"}],
         "flag": True, "n": 123456789012345678901234567890, "f": 1.10, "note": 'say "hi", then\nbye'},
        {"id": "b", "user": None, "items": [], "flag": False, "n": -5, "f": 1e16, "note": None},
        {"id": "c", "user": {"id": None, "address": "not an object"}, "items": {"0": {"sku": "K"}}, "f": 0.1},
    ]
    result = transform(tmp_path, rows, columns=COLUMNS)
    assert result["rows"] == 3 and result["rejects"] == 0 and result["engine"] == ENGINE[0]
    assert read_csv(result) == [
        [c["name"] for c in COLUMNS],
        ["a", "7", "Zürich", "S1", '[{"sku":"S1"},{"sku":"S2"}]', "true", "123456789012345678901234567890", "1.1",
         'say "hi", then\nbye'],
        ["b", "", "", "", "[]", "false", "-5", "1e+16", ""],
        ["c", "", "", "K", '{"0":{"sku":"K"}}', "", "", "0.1", ""],
    ]


def test_big_integers_inside_lists_stay_exact(tmp_path):
    result = transform(tmp_path, [b'{"a": [1, 123456789012345678901234567890, {"b": -98765432109876543210}]}'])
    assert read_csv(result)[1] == ['[1,123456789012345678901234567890,{"b":-98765432109876543210}]']


def test_null_text_distinguishes_null_from_missing(tmp_path):
    result = transform(tmp_path, [{"a": None}, {}, {"a": {"b": None}}], null_text="NULL",
                       columns=[{"name": "a", "path": "a"}, {"name": "ab", "path": "a.b"}])
    assert read_csv(result)[1:] == [["NULL", ""], ["", ""], ['{"b":null}', "NULL"]]


def test_keys_with_dots_via_list_path(tmp_path):
    result = transform(tmp_path, [{"a.b": {"c": 1}}], columns=[{"name": "x", "path": ["a.b", "c"]}])
    assert read_csv(result)[1] == ["1"]


@pytest.mark.parametrize("quoting, expected", [
    ("minimal", 'h1;h2\n1;"x;y"\n'),
    ("all", '"h1";"h2"\n"1";"x;y"\n'),
    ("nonnumeric", '"h1";"h2"\n1;"x;y"\n'),
    ("none", 'h1;h2\n1;x\\;y\n'),
])
def test_delimiter_quoting_newline(tmp_path, quoting, expected):
    result = transform(tmp_path, [{"a": 1, "b": "x;y"}], delimiter=";", quoting=quoting, newline="\n",
                       columns=[{"name": "h1", "path": "a"}, {"name": "h2", "path": "b"}])
    assert open(result["outputs"][0]["location"]["path"], newline="").read() == expected


def test_header_off_and_crlf_default(tmp_path):
    result = transform(tmp_path, [{"a": 1}, {"a": 2}], header=False)
    assert open(result["outputs"][0]["location"]["path"], "rb").read() == b"1\r\n2\r\n"


def test_single_column_empty_value_is_not_a_blank_line(tmp_path):
    result = transform(tmp_path, [{"a": ""}, {}], header=False)
    assert read_csv(result) == [[""], [""]]


@pytest.mark.parametrize("encoding, bom", [("utf-8-sig", b"\xef\xbb\xbf"), ("cp1252", b""), ("utf-8", b"")])
def test_output_encodings(tmp_path, encoding, bom):
    result = transform(tmp_path, [{"a": "Müller €"}], encoding=encoding)
    data = open(result["outputs"][0]["location"]["path"], "rb").read()
    assert data.startswith(bom + b"a\r\n") and data[len(bom) + 3:] == "Müller €\r\n".encode(encoding.replace("-sig", ""))


def test_unencodable_character_fails_or_is_replaced(tmp_path):
    with pytest.raises(UnitError, match="cp1252 cannot represent '📦'"):
        transform(tmp_path, [{"a": "box 📦"}], encoding="cp1252")
    assert not os.path.exists(tmp_path / "dest" / "in.csv")
    result = transform(tmp_path, [{"a": "box 📦"}], encoding="cp1252", encoding_errors="replace")
    assert read_csv(result, encoding="cp1252")[1] == ["box ?"]


def test_normal_input_quirks_are_not_errors(tmp_path):
    raw = b'\xef\xbb\xbf{"a": 1}\r\n\r\n   \n{"a": 2}\r\n\n{"a": 3}'  # BOM, CRLF, blank lines, no final newline
    result = transform(tmp_path, None, raw=raw)
    assert read_csv(result)[1:] == [["1"], ["2"], ["3"]] and result["rows"] == 3


def big_file_with(bad_at: int, total: int, bad: bytes = b'{"a": 1,, }') -> bytes:
    filler = "x" * 300
    return b"".join(bad if i == bad_at else json.dumps({"a": i, "pad": filler}).encode() + b"\n"
                    for i in range(1, total + 1)).replace(bad, bad + b"\n")


def test_bad_line_fails_naming_file_and_line_and_keeps_old_output(tmp_path):
    dest = tmp_path / "dest" / "in.csv"
    dest.parent.mkdir()
    dest.write_text("previous good output\n")
    raw = big_file_with(bad_at=9000, total=10000)  # ~3 MB: the bad line is in the third chunk
    with pytest.raises(UnitError) as info:
        transform(tmp_path, None, raw=raw)
    assert f"{tmp_path}/src/in.jsonl:9000: " in str(info.value)
    assert dest.read_text() == "previous good output\n"
    assert os.listdir(dest.parent) == ["in.csv"]  # no temp file left behind


@pytest.mark.parametrize("line, reason", [(b"[1, 2]", "not a JSON object"), (b'{"a": NaN}', ""),
                                          (b'{"a": 1e999}', ""), (b'{"a": "\xff"}', "")])
def test_not_an_object_or_not_json(tmp_path, line, reason):
    with pytest.raises(UnitError, match=f"in.jsonl:2: {reason}"):
        transform(tmp_path, None, raw=b'{"a": 1}\n' + line + b'\n{"a": 3}\n')


def test_skip_counts_and_quarantine_keeps_rejected_lines(tmp_path):
    raw = big_file_with(bad_at=4000, total=5000) + b"not json\n"
    result = transform(tmp_path, None, raw=raw, on_error="skip")
    assert result["rows"] == 5000 - 1 and result["rejects"] == 2
    assert result["first_reject"]["line"] == 4000
    result = transform(tmp_path, None, raw=raw, on_error="quarantine",
                       rejects={"type": "local", "path": f"{tmp_path}/rejects/"})
    assert result["rejects"] == 2
    rejects = [o for o in result["outputs"] if "rejects" in o["location"]["path"]]
    assert open(rejects[0]["location"]["path"], "rb").read() == b'{"a": 1,, }\nnot json\n'
    assert rejects[0]["name"] == "in.rejects.jsonl"


def test_no_rejects_no_rejects_file(tmp_path):
    result = transform(tmp_path, [{"a": 1}], on_error="quarantine",
                       rejects={"type": "local", "path": f"{tmp_path}/rejects/"})
    assert len(result["outputs"]) == 1 and not (tmp_path / "rejects").exists()


def reference_csv(raw: bytes, columns) -> list[list[str]]:
    """A slow, obvious implementation of the documented value rules, to compare with."""
    out = [[c["name"] for c in columns]]
    for line in raw.decode("utf-8-sig").splitlines():
        if not line.strip():
            continue
        obj = json.loads(line)
        row = []
        for c in columns:
            v = obj
            for k in c["path"].split("."):
                if isinstance(v, dict):
                    v = v.get(k)
                elif isinstance(v, list) and k.isdigit():
                    v = v[int(k)] if int(k) < len(v) else None
                else:
                    v = None
            if v is None:
                row.append("")
            elif isinstance(v, bool):
                row.append("true" if v else "false")
            elif isinstance(v, (dict, list)):
                row.append(json.dumps(v, separators=(",", ":"), ensure_ascii=False))
            elif isinstance(v, float):
                row.append(repr(v))  # compared by value below: the text is orjson's, e.g. 0.0000952 for 9.52e-05
            else:
                row.append(str(v))
        out.append(row)
    return out


def test_matches_reference_on_generated_data_across_chunks(tmp_path):
    from bench.datagen import COLUMNS as GEN_COLUMNS, write_jsonl

    buf = io.BytesIO()
    write_jsonl(buf, 5 * jsonl.CHUNK + 12345, seed=11)  # several chunks; lines straddle every boundary
    raw = buf.getvalue()
    result = transform(tmp_path, None, raw=raw, columns=GEN_COLUMNS)
    got = read_csv(result)
    expected = reference_csv(raw, GEN_COLUMNS)
    assert len(got) == len(expected) and result["rows"] == len(expected) - 1
    floats = {i for i, c in enumerate(GEN_COLUMNS) if c["name"] in ("total", "score")}
    for i, (g, e) in enumerate(zip(got, expected)):
        if i:
            for j in floats:
                if e[j]:
                    assert float(g[j]) == float(e[j]), f"row {i} column {j}: exact round trip"
                    g[j] = e[j]
        assert g == e, f"row {i}"


def test_line_longer_than_a_chunk(tmp_path):
    long = "y" * (3 * jsonl.CHUNK + 7)
    csv.field_size_limit(len(long) + 1)
    result = transform(tmp_path, [{"a": 1}, {"a": long}, {"a": 3}])
    assert read_csv(result)[1:] == [["1"], [long], ["3"]]


def test_line_beyond_the_limit_is_an_error_not_an_oom(tmp_path, monkeypatch):
    monkeypatch.setattr(jsonl, "MAX_LINE", 2 * jsonl.CHUNK)
    with pytest.raises(UnitError, match=r"in.jsonl:2: line is longer than"):
        transform(tmp_path, [{"a": 1}, {"a": "z" * (3 * jsonl.CHUNK)}])
