"""Schema drift of a transform's input (processors/transform/drift.py): the report in each unit's
result and the run manifest, fail_on_drift, the sampling, and the same report on both engines."""

import json
import random

import pytest

from pipeline.config import Column
from processors import UnitError, run_unit
from processors.transform import drift
from processors.transform import kernel as native
from tests.conftest import run_cli

COLUMNS = [{"name": "id", "path": "id"}, {"name": "name", "path": "user.name"},
           {"name": "addr", "path": "user.address"}, {"name": "sku", "path": "items.0.sku"},
           {"name": "email", "path": ["user", "email"]}]


def engines():
    return ["python"] + (["native"] if native.available() else [])


def halfway_change(i: int, n: int) -> dict:
    """The first half as mapped; from the middle on a new field (geo), user.name gone, user.address an object."""
    r = {"id": i, "user": {"name": f"u{i}", "address": "Main St 1"}, "items": [{"sku": "a"}, {"sku": "b"}]}
    if i >= n // 2:
        r["user"]["address"] = {"city": "Zürich", "zip": "8000"}
        r["geo"] = {"lat": 47.3, "lon": 8.5}
        del r["user"]["name"]
    return r


def write(path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in records))
    return path


def transform(tmp_path, src, columns=COLUMNS, dest="dest", **options):
    cfg = {"dest": {"type": "local", "path": f"{tmp_path}/{dest}/"}, "columns": columns, **options}
    return run_unit({"processor": {"processor_name": "transform", "processor_type": "JSONL", "processor_config": cfg},
                     "src": {"location": {"type": "local", "path": str(src)}, "name": src.name, "size": None}})


@pytest.mark.parametrize("engine", engines())
def test_a_schema_change_halfway_is_named_with_counts(tmp_path, engine):
    src = write(tmp_path / "in.jsonl", [halfway_change(i, 200) for i in range(200)])
    report = transform(tmp_path, src, engine=engine)["drift"]
    assert report["lines_sampled"] == 200  # a small file is sampled whole
    assert report["unmapped"] == [{"path": "geo.lat", "lines": 100}, {"path": "geo.lon", "lines": 100}]
    assert report["unmapped_paths"] == 2
    # user.address.city is under a mapped path (written as JSON text), items.*.sku under items.0.sku: mapped.
    assert report["missing"] == [{"column": "email", "path": '["user", "email"]'}]
    assert report["vanished"] == [{"column": "name", "path": "user.name", "lines": 100, "absent_after": 100}]
    assert report["type_changes"] == [{"column": "addr", "path": "user.address",
                                       "types": {"string": 100, "object": 100}}]


@pytest.mark.parametrize("engine", engines())
def test_no_drift_reports_empty_lists(tmp_path, engine):
    records = [{"id": i, "user": {"name": "n", "address": None if i % 3 else "x", "email": "e"},
                "items": [{"sku": "s"}]} for i in range(50)]
    report = transform(tmp_path, write(tmp_path / "in.jsonl", records), engine=engine)["drift"]
    assert report == {"lines_sampled": 50, "unmapped": [], "unmapped_paths": 0, "missing": [], "vanished": [],
                      "type_changes": []}  # null between strings is not a type change


@pytest.mark.parametrize("engine", engines())
def test_fail_on_drift_fails_the_unit_and_publishes_nothing(tmp_path, engine):
    src = write(tmp_path / "in.jsonl", [halfway_change(i, 200) for i in range(200)])
    with pytest.raises(UnitError) as err:
        transform(tmp_path, src, engine=engine, fail_on_drift=True)
    assert err.value.permanent
    message = str(err.value)
    assert "geo.lat (100 lines)" in message and "geo.lon" in message and "user\", \"email" in message
    assert "drift_ignore" in message and "nothing was published" in message
    assert not list((tmp_path / "dest").glob("*"))  # no CSV, no temp file
    # Ignoring what drifted lets it through, and the report leaves the ignored paths out.
    result = transform(tmp_path, src, engine=engine, fail_on_drift=True, drift_ignore=["geo.*", "*email*"])
    assert result["rows"] == 200 and result["drift"]["unmapped"] == [] and result["drift"]["missing"] == []
    assert (tmp_path / "dest" / "in.csv").exists()


def big_drifting_file(path, n=60_000, seed=3):
    """Several MB (many chunks, beyond the sample's warm-up): from 2/5 on, a new field in ~1/3 of
    lines, and `note` changes from string to object; the very last line has a field of its own."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        r = {"id": i, "user": {"name": "x" * rng.randrange(5, 60), "address": "a"}, "items": [{"sku": "k"}],
             "note": "text"}
        if i > 2 * n // 5:
            if rng.random() < 0.33:
                r["extra"] = {"tag": rng.choice(["p", "q"])}
            r["note"] = {"long": "y" * rng.randrange(0, 80)}
        records.append(r)
    records[-1]["only_last"] = True
    return write(path, records)


def test_sampling_is_a_sample_and_the_same_on_both_engines(tmp_path):
    src = big_drifting_file(tmp_path / "big.jsonl")
    columns = COLUMNS[:4] + [{"name": "note", "path": "note"}]
    results = [transform(tmp_path, src, columns, dest=f"out-{e}-{t}", engine=e, threads=t)
               for e, t in [("python", 1)] + ([("native", 1), ("native", 2)] if native.available() else [])]
    reports = [r["drift"] for r in results]
    assert all(r == reports[0] for r in reports)
    report = reports[0]
    rows = results[0]["rows"]
    assert rows == 60_000 and 200 < report["lines_sampled"] < rows // 20  # a sample, not every line
    paths = {u["path"]: u["lines"] for u in report["unmapped"]}
    assert set(paths) == {"extra.tag", "only_last"} and paths["only_last"] == 1  # the last line is always sampled
    assert 0 < paths["extra.tag"] < report["lines_sampled"]
    assert [(c["path"], list(c["types"])) for c in report["type_changes"]] == [("note", ["string", "object"])]
    assert report["missing"] == [] and report["vanished"] == []


def test_path_semantics_follow_the_transform():
    columns = [Column(name="a", path=["k.dot", "x"]), Column(name="b", path="list.1"), Column(name="c", path="obj"),
               Column(name="d", path="m.0")]
    s = drift.Sampler(columns)
    s.observe({"k.dot": {"x": 1, "y": 2}, "list": [{"z": 1}, "second"], "obj": {"deep": [1, {"e": 2}]},
               "m": {"0": "a digit key"}, "arr": [[1, 2], []], "empty": {}})
    s.observe(["not", "a", "record"])
    report = s.report()
    assert report["lines_sampled"] == 1
    # list.1 is present (a digit indexes a list); list.*.z is on a mapped path's line (list.1 maps list.*);
    # everything under obj is written as JSON; m.0 reads the key "0" of an object.
    assert report["missing"] == []
    assert [u["path"] for u in report["unmapped"]] == ["[\"k.dot\", \"y\"]", "arr.*", "arr.*.*", "empty"]
    assert drift.Sampler([Column(name="a", path="list.5")]).report()["missing"] == []  # nothing sampled: no judgement
    s2 = drift.Sampler([Column(name="a", path="list.5")])
    s2.observe({"list": [1, 2]})
    assert s2.report()["missing"] == [{"column": "a", "path": "list.5"}]  # out of range is missing, as in the CSV


def test_the_manifest_aggregates_drift_and_the_cli_fails_on_drift(tmp_path):
    for k in range(3):
        n = 100 if k else 40  # file 0 has no drift
        write(tmp_path / "in" / f"part-{k}.jsonl", [halfway_change(i, n if k else 10 ** 9) for i in range(n)])
    cfg = {"sourcemart": "acme", "table": "t", "processors": [{
        "processor_name": "transform", "processor_type": "JSONL", "processor_config": {
            "src": {"type": "local", "path": f"{tmp_path}/in/*.jsonl"}, "dest": {"type": "local", "path": f"{tmp_path}/csv/"},
            "columns": COLUMNS[:4]}}]}
    config = tmp_path / "config.json"
    config.write_text(json.dumps(cfg))
    proc = run_cli("run", str(config), "-q")
    assert proc.returncode == 0, proc.stderr
    (step,) = json.loads(proc.stdout)["drift"]
    assert step["units"] == 3 and step["units_with_drift"] == 2 and step["lines_sampled"] == 240
    assert step["unmapped"] == [{"path": "geo.lat", "lines": 100, "units": 2}, {"path": "geo.lon", "lines": 100, "units": 2}]
    assert step["type_changes"] == [{"column": "addr", "path": "user.address", "units": 2,
                                     "types": {"string": 100, "object": 100}}]
    assert step["vanished"] == [{"column": "name", "path": "user.name", "units": 2}] and step["missing"] == []
    assert "warning: schema drift in 2 of 3 file(s)" in proc.stderr and "geo.lat (100 lines)" in proc.stderr

    proc = run_cli("run", str(config), "-q", "--fail-on-drift")
    assert proc.returncode == 1 and "geo.lat" in proc.stderr and "drift_ignore" in proc.stderr


def test_drift_options_are_validated(tmp_path):
    from pipeline.config import ConfigError, validate_config

    def config(**options):
        return {"processors": [{"processor_name": "transform", "processor_type": "JSONL", "processor_config": {
            "src": {"type": "local", "path": "in/"}, "dest": {"type": "local", "path": "out/"},
            "columns": [{"name": "a", "path": "a"}], **options}}]}

    for options, field in [({"drift": False, "fail_on_drift": True}, "fail_on_drift"),
                           ({"drift": False, "drift_ignore": ["x.*"]}, "drift_ignore"),
                           ({"drift_ignore": [""]}, "drift_ignore[0]"), ({"fail_on_drift": "yes"}, "fail_on_drift")]:
        with pytest.raises(ConfigError) as err:
            validate_config(config(**options))
        assert f"processors[0].processor_config.{field}" in str(err.value)
    validate_config(config(fail_on_drift=True, drift_ignore=["debug.*"]))


@pytest.mark.parametrize("engine", engines())
def test_an_archive_unit_reports_drift_over_its_members(tmp_path, engine):
    import zipfile

    (tmp_path / "in").mkdir()
    with zipfile.ZipFile(tmp_path / "in" / "drop.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.jsonl", "".join(json.dumps(halfway_change(i, 10 ** 9)) + "\n" for i in range(30)))
        zf.writestr("b.jsonl", "".join(json.dumps(halfway_change(i, 40)) + "\n" for i in range(40)))
    src = tmp_path / "in" / "drop.zip"
    columns = COLUMNS[:4]
    result = transform(tmp_path, src, columns, engine=engine, archive="zip")
    report = result["drift"]
    assert report["lines_sampled"] == 70 and result["rows"] == 70
    assert report["unmapped"] == [{"path": "geo.lat", "lines": 20}, {"path": "geo.lon", "lines": 20}]
    assert report["type_changes"] == [{"column": "addr", "path": "user.address", "types": {"string": 50, "object": 20}}]
    with pytest.raises(UnitError, match="geo.lat"):
        transform(tmp_path, src, columns, dest="strict", engine=engine, archive="zip", fail_on_drift=True)
    assert not (tmp_path / "strict").exists() or not list((tmp_path / "strict").rglob("*.csv"))  # neither member


def test_a_json_document_reports_drift_from_its_records(tmp_path):
    """Other input formats feed the sampler parsed records (LineSampler.records): a `json` document
    whose records change halfway is reported like the JSONL file, sampled by count past the warm-up."""
    n = 2 * drift.WARMUP_RECORDS + 3 * drift.RECORD_STRIDE
    src = tmp_path / "in.json"
    src.write_text(json.dumps({"data": {"items": [halfway_change(i, n) for i in range(n)]}}, ensure_ascii=False))
    report = transform(tmp_path, src, input_format="json", records_path="data.items")["drift"]
    sampled = drift.WARMUP_RECORDS + len(range(drift.WARMUP_RECORDS, n, drift.RECORD_STRIDE))
    sampled += (n - 1) % drift.RECORD_STRIDE != 0  # the last record is always taken
    assert report["lines_sampled"] == sampled < n
    assert [u["path"] for u in report["unmapped"]] == ["geo.lat", "geo.lon"]
    assert report["missing"] == [{"column": "email", "path": '["user", "email"]'}]
    assert [t["path"] for t in report["type_changes"]] == ["user.address"]
