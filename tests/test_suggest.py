"""`python -m local_runner suggest`: a sample of a source -> a transform config that `validate`
accepts and that converts its own sample with zero rejects, for every input format and encoding,
inside archives and over HTTP; the same sample gives the same config."""

import gzip
import json
import tarfile
import zipfile

import pytest

from tests.conftest import http_file, run_cli

RECORDS = [
    {"id": i, "user": {"id": i * 7, "name": f"Zoë {i}", "a.b": i % 2 == 0},
     "items": [{"sku": f"S{i}", "price": 1.5 + i}, {"sku": "X"}], "tags": ["x", "y"][: i % 3],
     "note": None if i % 2 else 'say "hi"', "empty": {}, "odd key": 1.10}
    for i in range(20)]
RECORDS[12]["late"] = {"first": "z", "deep": {"er": [1]}}

EXPECTED_COLUMNS = [
    {"name": "id", "path": "id"}, {"name": "user_id", "path": "user.id"}, {"name": "user_name", "path": "user.name"},
    {"name": "user_a_b", "path": ["user", "a.b"]}, {"name": "items", "path": "items"},
    {"name": "items_0_sku", "path": "items.0.sku"}, {"name": "items_0_price", "path": "items.0.price"},
    {"name": "tags", "path": "tags"}, {"name": "note", "path": "note"}, {"name": "empty", "path": "empty"},
    {"name": "odd_key", "path": ["odd key"]}, {"name": "late_first", "path": "late.first"},
    {"name": "late_deep_er", "path": "late.deep.er"}]


def jsonl(records, encoding="utf-8") -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode(encoding)


def suggest_and_run(tmp_path, source: str, *args: str, records: int = len(RECORDS)):
    """suggest -> validate -> run; returns (config, report, manifest)."""
    proc = run_cli("suggest", source, "--dest", f"{tmp_path}/out/", "--report", str(tmp_path / "report.json"),
                   *args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    config = json.loads(proc.stdout)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["records_sampled"] == records
    (tmp_path / "suggested.json").write_text(proc.stdout)
    check = run_cli("validate", str(tmp_path / "suggested.json"), cwd=tmp_path)
    assert check.returncode == 0 and check.stdout.endswith(": ok\n"), check.stderr
    ran = run_cli("run", "-q", str(tmp_path / "suggested.json"), cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    manifest = json.loads(ran.stdout)
    assert manifest["status"] == "succeeded"
    assert (manifest["totals"]["rows"], manifest["totals"]["rejects"]) == (records, 0)
    again = run_cli("suggest", source, "--dest", f"{tmp_path}/out/", *args, cwd=tmp_path)
    assert again.stdout == proc.stdout  # deterministic
    return config["processors"][0]["processor_config"], report, manifest


def test_jsonl_columns_paths_types_and_fill(tmp_path):
    (tmp_path / "events.jsonl").write_bytes(jsonl(RECORDS))
    cfg, report, _ = suggest_and_run(tmp_path, "events.jsonl")
    assert cfg["src"] == {"type": "local", "path": "events.jsonl"} and cfg["input_format"] == "jsonl"
    assert "input_encoding" not in cfg and "records_path" not in cfg and "archive" not in cfg
    assert cfg["columns"] == EXPECTED_COLUMNS
    by_name = {c["name"]: c for c in report["columns"]}
    assert by_name["note"]["types"] == {"string": 10, "null": 10} and by_name["note"]["fill"] == 0.5
    assert by_name["odd_key"]["types"] == {"number": 20} and by_name["late_first"]["fill"] == 0.05
    assert by_name["tags"]["types"] == {"array": 20} and by_name["empty"]["types"] == {"object": 20}
    csv = (tmp_path / "out" / "events.csv").read_text(encoding="utf-8").splitlines()
    assert csv[0] == ",".join(c["name"] for c in EXPECTED_COLUMNS)
    assert csv[1] == '0,0,Zoë 0,true,"[{""sku"":""S0"",""price"":1.5},{""sku"":""X""}]",S0,1.5,[],' \
                     '"say ""hi""",{},1.1,,'
    # On stderr without --report: a line per column
    proc = run_cli("suggest", "events.jsonl", cwd=tmp_path)
    assert "local:events.jsonl: jsonl, utf-8, 20 records sampled" in proc.stderr
    assert "note" in proc.stderr and "fill  50.00%  string:10,null:10" in proc.stderr


def test_rows_limits_the_sample(tmp_path):
    (tmp_path / "events.jsonl").write_bytes(jsonl(RECORDS))
    proc = run_cli("suggest", "events.jsonl", "--rows", "5", cwd=tmp_path)
    names = [c["name"] for c in json.loads(proc.stdout)["processors"][0]["processor_config"]["columns"]]
    assert names == [c["name"] for c in EXPECTED_COLUMNS[:11]]  # 'late' first appears in record 12


def test_array_rows_with_header(tmp_path):
    rows = [["asin", "name", "rating", "dims.cm"]] + [[f"B{i:03d}", f"Prod, {i}", 4.5 if i % 3 else None,
                                                        {"w": i}] for i in range(30)]
    (tmp_path / "products.jsonl").write_bytes(jsonl(rows))
    cfg, report, _ = suggest_and_run(tmp_path, "products.jsonl", records=30)
    assert (cfg["input_format"], cfg["header_row"]) == ("jsonl_arrays", True)
    assert cfg["columns"] == [{"name": "asin", "path": "asin"}, {"name": "name", "path": "name"},
                              {"name": "rating", "path": "rating"}, {"name": "dims_cm_w", "path": "3.w"}]
    assert report["columns"][2]["types"] == {"number": 20, "null": 10}
    assert (tmp_path / "out" / "products.csv").read_text().splitlines()[1] == 'B000,"Prod, 0",,0'


def test_array_rows_without_header(tmp_path):
    (tmp_path / "rows.jsonl").write_bytes(jsonl([[i, f"n{i}", True] for i in range(10)]))
    cfg, _, _ = suggest_and_run(tmp_path, "rows.jsonl", records=10)
    assert (cfg["input_format"], cfg.get("header_row")) == ("jsonl_arrays", None)
    assert cfg["columns"] == [{"name": "col_0", "path": "0"}, {"name": "col_1", "path": "1"},
                              {"name": "col_2", "path": "2"}]


@pytest.mark.parametrize("wrap, path", [
    (lambda r: r, None),
    (lambda r: {"search_metadata": {"count": 20, "refresh": [1, 2]}, "statuses": r}, "statuses"),
    (lambda r: {"meta": {"pages": [3]}, "data": {"total": 20, "items": r}}, "data.items"),
])
def test_json_documents_and_their_records_path(tmp_path, wrap, path):
    (tmp_path / "dump.json").write_text(json.dumps(wrap(RECORDS), indent=2, ensure_ascii=False), encoding="utf-8")
    cfg, report, _ = suggest_and_run(tmp_path, "dump.json")
    assert cfg["input_format"] == "json" and cfg.get("records_path") == path and report["records_path"] == path
    assert cfg["columns"] == EXPECTED_COLUMNS
    given = run_cli("suggest", "dump.json", "--format", "json", *(["--records-path", path] if path else []),
                    cwd=tmp_path)
    assert json.loads(given.stdout)["processors"][0]["processor_config"]["columns"] == EXPECTED_COLUMNS


@pytest.mark.parametrize("encoding, detected", [("utf-16", "utf-16"), ("utf-16-le", "utf-16-le"),
                                                ("latin-1", "cp1252"), ("cp1252", "cp1252")])
def test_input_encodings_are_detected(tmp_path, encoding, detected):
    records = [{"city": "Zürich", "n": i, "ß": "café"} for i in range(8)]
    (tmp_path / "in.jsonl").write_bytes(jsonl(records, encoding))
    cfg, _, _ = suggest_and_run(tmp_path, "in.jsonl", records=8)
    assert cfg["input_encoding"] == detected and cfg["input_format"] == "jsonl"
    assert (tmp_path / "out" / "in.csv").read_text(encoding="utf-8").splitlines()[1] == "Zürich,0,café"
    given = run_cli("suggest", "in.jsonl", "--input-encoding", encoding, cwd=tmp_path)
    assert json.loads(given.stdout)["processors"][0]["processor_config"]["input_encoding"] == encoding


@pytest.mark.parametrize("kind", ["gzip", "zip", "tar.gz"])
def test_inside_an_archive(tmp_path, kind):
    doc = json.dumps({"data": {"items": RECORDS}}).encode()
    if kind == "gzip":
        name = "dump.json.gz"
        (tmp_path / name).write_bytes(gzip.compress(doc))
    elif kind == "zip":
        name = "dump.zip"
        with zipfile.ZipFile(tmp_path / name, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("README.md", "not data")
            z.writestr("x/dump.json", doc)
    else:
        name = "dump.tar.gz"
        (tmp_path / "dump.json").write_bytes(doc)
        with tarfile.open(tmp_path / name, "w:gz") as t:
            t.add(tmp_path / "dump.json", "x/dump.json")
    cfg, report, _ = suggest_and_run(tmp_path, name, *(["--rows", "20"] if kind != "zip" else []))
    assert cfg["archive"] == kind and cfg["records_path"] == "data.items"
    assert report["member"] == ("dump.json" if kind == "gzip" else "x/dump.json")
    assert cfg.get("members") == (None if kind == "gzip" else "**/*.json")
    assert cfg["columns"] == EXPECTED_COLUMNS


def test_over_http_and_as_a_json_location(tmp_path):
    with http_file(jsonl(RECORDS), "feed.jsonl") as url:
        cfg, _, _ = suggest_and_run(tmp_path, url)
        assert cfg["src"] == {"type": "http", "url": url} and cfg["columns"] == EXPECTED_COLUMNS
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl").write_bytes(jsonl(RECORDS))
    location = json.dumps({"type": "local", "path": "in/*.jsonl"})
    cfg, _, _ = suggest_and_run(tmp_path, location)
    assert cfg["src"] == {"type": "local", "path": "in/*.jsonl"}


def test_a_blob_location(tmp_path, blob_env):
    client, container = blob_env
    doc = json.dumps({"statuses": RECORDS}, indent=1).encode("utf-16")
    client.get_blob_client(container, "landing/dump.json").upload_blob(doc)
    location = json.dumps({"type": "blob", "connection": "RAW_STORAGE", "container": container,
                           "path": "landing/*.json"})
    cfg, report, _ = suggest_and_run(tmp_path, location)
    assert cfg["src"]["container"] == container and report["source"].startswith("blob:RAW_STORAGE/")
    assert (cfg["input_format"], cfg["records_path"], cfg["input_encoding"]) == ("json", "statuses", "utf-16")
    assert cfg["columns"] == EXPECTED_COLUMNS


@pytest.mark.parametrize("data, args, error, code", [
    (b"", (), "suggest failed: the sample is empty", 1),
    (b"hello\n", (), "suggest failed: the sample is neither JSON Lines nor a JSON document", 1),
    (b'{"a": {"b": 1}}', ("--format", "json"), "suggest failed: found no array of objects in the document's first MiB: give "
                             "--records-path", 1),
    (b'{"a": 1}\n', ("--rows", "0"), "--rows: must be at least 1", 2),
    (b'{"a": 1}\n', ("--format", "jsonl", "--records-path", "a"), "--records-path is for the json format", 1),
    (b'[1, 2, 3]', ("--format", "json"), "no fields to suggest columns from: 0 record(s) sampled, 3 not JSON objects",
     1),
    (b'{"a": 1}\n', ("--input-encoding", "base64"), "'base64' is not a text encoding", 1),
])
def test_what_cannot_be_suggested_says_why(tmp_path, data, args, error, code):
    (tmp_path / "in.json").write_bytes(data)
    proc = run_cli("suggest", "in.json", *args, cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (code, "") and error in proc.stderr, proc.stderr


def test_the_operators_policy_applies_before_anything_is_read(tmp_path):
    (tmp_path / "in.jsonl").write_bytes(jsonl(RECORDS))
    elsewhere = tmp_path / "allowed"
    elsewhere.mkdir()
    proc = run_cli("suggest", str(tmp_path / "in.jsonl"), cwd=tmp_path, env={"PIPELINE_LOCAL_ROOTS": str(elsewhere)})
    assert (proc.returncode, proc.stdout) == (2, "") and "SOURCE: local path" in proc.stderr \
        and "outside the allowed folders" in proc.stderr, proc.stderr
    proc = run_cli("suggest", json.dumps({"type": "blob", "connection": "OTHER_SECRET", "container": "abc"}),
                   cwd=tmp_path)
    assert proc.returncode == 2 and "SOURCE: " in proc.stderr and "OTHER_SECRET" in proc.stderr, proc.stderr
