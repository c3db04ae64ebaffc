"""Memory and result size independent of member and file count (issue 9, item 4): a unit with many
outputs lists them in an output manifest committed with them, its result carries counts and that
manifest's reference, the next processor runs at most MAX_UNITS activities (batches planned from
the manifests), and the run manifest stays small."""

import json
import os
import zipfile

import orjson
import pytest

from local_runner.executor import run_orchestration
from pipeline.activities import ACTIVITIES
from pipeline.orchestration import RESULTS_LISTED, orchestrate
from pipeline.units import MAX_UNITS
from tests.conftest import run_cli, run_cli_peak_rss
from writers.base import MANIFEST_PREFIX, OUTPUTS_INLINE, OutputSet


def members_zip(path, n, extra=()):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for i in range(n):
            z.writestr(f"d{i % 7}/m{i:05d}.jsonl", f'{{"id": {i}}}\n')
        for name, data in extra:
            z.writestr(name, data)


def chain(src, out, csv, **dest_extra):
    return {"sourcemart": "t", "table": "members", "processors": [
        {"processor_name": "decompress", "processor_type": "zip",
         "processor_config": {"src": {"type": "local", "path": str(src)}, "dest": {**out}}},
        {"processor_name": "transform", "processor_type": "JSONL",
         "processor_config": {"dest": {**csv}, "columns": [{"name": "id", "path": "id"}], "header": False}}]}


def local(path):
    return {"type": "local", "path": str(path) + "/"}


def files(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs)


def run(config):
    return run_orchestration(orchestrate, {"config": config}, ACTIVITIES, workers=2)


def test_thousands_of_members_run_in_at_most_max_units_batched_activities(tmp_path):
    n = 2500
    members_zip(tmp_path / "big.zip", n)
    manifest = run(chain(tmp_path / "big.zip", local(tmp_path / "raw"), local(tmp_path / "csv")))
    decompress, transform = manifest["steps"]
    # the archive: one unit, its result counts and references its output manifest, no inline list
    (unit,) = decompress["results"]
    assert decompress["outputs"] == n and unit["output_count"] == n and "outputs" not in unit
    ref = unit["outputs_manifest"]
    assert ref["name"] == f"{MANIFEST_PREFIX}decompress-big.zip.jsonl" and ref["outputs"] == n
    listed = [orjson.loads(line) for line in (tmp_path / "raw" / ref["name"]).read_bytes().splitlines()]
    assert [o["name"] for o in listed] == [f"big/d{i % 7}/m{i:05d}.jsonl" for i in range(n)]
    assert all(o["bytes"] == os.path.getsize(o["location"]["path"]) for o in listed)
    # the transform: batches (3 files each), so no more than MAX_UNITS activities; every CSV written
    assert transform["units"] == -(-n // 3) <= MAX_UNITS and transform["outputs"] == n
    assert files(tmp_path / "csv") == sorted(
        [f"big/d{i % 7}/m{i:05d}.csv" for i in range(n)] +
        [f"{MANIFEST_PREFIX}transform-batch-{b:05d}.jsonl" for b in range(transform["units"])])
    assert (tmp_path / "csv" / f"big/d3/m{3:05d}.csv").read_bytes() == b"3\r\n"
    assert manifest["totals"]["rows"] == n
    # the run manifest: counts, and at most RESULTS_LISTED results per step, none with an output list
    assert len(transform["results"]) == RESULTS_LISTED and transform["results_listed"] == RESULTS_LISTED
    assert all("outputs" not in r and r["outputs_manifest"]["outputs"] == 3 for r in transform["results"])
    assert len(json.dumps(manifest)) < 60_000


def test_a_processor_reading_the_folder_does_not_take_the_manifest_for_data(tmp_path):
    members_zip(tmp_path / "a.zip", OUTPUTS_INLINE + 5)
    config = chain(tmp_path / "a.zip", local(tmp_path / "raw"), local(tmp_path / "csv"))
    config["processors"][1]["processor_config"]["src"] = {"type": "local", "path": f"{tmp_path}/raw/**"}
    manifest = run(config)
    assert (tmp_path / "raw" / f"{MANIFEST_PREFIX}decompress-a.zip.jsonl").exists()
    assert manifest["steps"][1]["outputs"] == OUTPUTS_INLINE + 5  # the members, not the manifest
    assert not any(MANIFEST_PREFIX in f and f.endswith(".csv") for f in files(tmp_path / "csv"))


def test_few_outputs_stay_inline_and_write_no_manifest(tmp_path):
    members_zip(tmp_path / "a.zip", OUTPUTS_INLINE)
    manifest = run(chain(tmp_path / "a.zip", local(tmp_path / "raw"), local(tmp_path / "csv")))
    (unit,) = manifest["steps"][0]["results"]
    assert len(unit["outputs"]) == OUTPUTS_INLINE and "outputs_manifest" not in unit
    assert not any(f.startswith(MANIFEST_PREFIX) for f in files(tmp_path / "raw"))
    assert manifest["steps"][1]["units"] == OUTPUTS_INLINE  # few files: one unit each


def test_a_failed_unit_with_many_outputs_publishes_nothing_not_even_its_manifest(tmp_path):
    dest = local(tmp_path / "out")
    with pytest.raises(RuntimeError):
        with OutputSet((dest, f"{MANIFEST_PREFIX}x.jsonl")) as outs:
            for i in range(OUTPUTS_INLINE * 3):
                with outs.create(dest, f"f{i % 4}/o{i}.txt") as sink:
                    sink.write(b"x")
            raise RuntimeError("the unit failed after writing its outputs")
    assert not (tmp_path / "out").exists() or files(tmp_path / "out") == []  # no output, temp, manifest
    assert not (tmp_path / "out").exists()  # nor the folders the unit created
    with OutputSet((dest, f"{MANIFEST_PREFIX}x.jsonl")) as outs:
        for i in range(OUTPUTS_INLINE * 3):
            with outs.create(dest, f"f{i % 4}/o{i}.txt") as sink:
                sink.write(b"x")
    assert outs.outputs == [] and outs.manifest["outputs"] == OUTPUTS_INLINE * 3
    assert len(files(tmp_path / "out")) == OUTPUTS_INLINE * 3 + 1


def test_collision_among_members_is_found_when_planning_from_the_manifest(tmp_path):
    # a.jsonl and a.ndjson, both members of a large archive, would both become csv/.../a.csv
    members_zip(tmp_path / "a.zip", OUTPUTS_INLINE + 5, extra=[("x/a.jsonl", b'{"id": 1}\n'),
                                                               ("x/a.ndjson", b'{"id": 2}\n')])
    config = chain(tmp_path / "a.zip", local(tmp_path / "raw"), local(tmp_path / "csv"))
    (tmp_path / "c.json").write_text(json.dumps(config))
    proc = run_cli("run", str(tmp_path / "c.json"), "-q")
    assert proc.returncode == 1
    assert (f"local:{tmp_path}/raw/a/x/a.jsonl and local:{tmp_path}/raw/a/x/a.ndjson would both write "
            f"local:{tmp_path}/csv/a/x/a.csv") in proc.stderr, proc.stderr
    assert not (tmp_path / "csv").exists()


def test_an_edited_manifest_fails_the_run(tmp_path):
    members_zip(tmp_path / "a.zip", OUTPUTS_INLINE + 5)
    config = chain(tmp_path / "a.zip", local(tmp_path / "raw"), local(tmp_path / "csv"))
    first = run({**config, "processors": config["processors"][:1]})
    ref = first["steps"][0]["results"][0]["outputs_manifest"]
    path = tmp_path / "raw" / ref["name"]
    path.write_bytes(path.read_bytes() + b'{"name": "../../etc/passwd", "location": {"type": "local", '
                     b'"path": "/etc/passwd"}, "bytes": 1}\n')
    result = ACTIVITIES["list"]({"processor": config["processors"][1], "previous_outputs": [{"manifest": ref}]})
    assert "failed" in result and f"lists {OUTPUTS_INLINE + 6} outputs, not the {OUTPUTS_INLINE + 5}" in result["failed"]


def test_members_to_blob_in_batches(tmp_path, blob_env):
    client, container = blob_env
    n = 1200  # two files per transform unit
    members_zip(tmp_path / "big.zip", n)
    blob = {"type": "blob", "connection": "RAW_STORAGE", "container": container}
    manifest = run(chain(tmp_path / "big.zip", {**blob, "path": "raw/"}, {**blob, "path": "csv/"}))
    assert [s["outputs"] for s in manifest["steps"]] == [n, n] and manifest["steps"][1]["units"] == n // 2
    names = [b.name for b in client.get_container_client(container).list_blobs()]
    csvs = [b for b in names if b.startswith("csv/big/") and b.endswith(".csv")]
    assert len(csvs) == n and f"raw/{MANIFEST_PREFIX}decompress-big.zip.jsonl" in names
    lines = client.get_blob_client(container, f"raw/{MANIFEST_PREFIX}decompress-big.zip.jsonl").download_blob().readall()
    assert len(lines.splitlines()) == n
    assert client.get_blob_client(container, "csv/big/d5/m00012.csv").download_blob().readall() == b"12\r\n"


MEMORY_MEMBERS = 30_000
MEMORY_LIMIT_MB = 64


@pytest.mark.slow
def test_peak_rss_does_not_grow_with_member_count(tmp_path):
    members_zip(tmp_path / "many.zip", MEMORY_MEMBERS)
    config = chain(tmp_path / "many.zip", local(tmp_path / "raw"), local(tmp_path / "csv"))
    (tmp_path / "c.json").write_text(json.dumps(config))
    code, out, err, peak = run_cli_peak_rss("run", str(tmp_path / "c.json"), "-q", cwd=tmp_path)
    assert code == 0, err
    manifest = json.loads(out)
    assert [s["outputs"] for s in manifest["steps"]] == [MEMORY_MEMBERS, MEMORY_MEMBERS]
    assert manifest["steps"][1]["units"] <= MAX_UNITS
    print(f"\n{MEMORY_MEMBERS} members -> local, then CSV: peak RSS {peak:.1f} MB")
    assert peak < MEMORY_LIMIT_MB, f"peak RSS {peak:.1f} MB >= {MEMORY_LIMIT_MB} MB"


def test_a_src_with_more_files_than_max_units_runs_in_batches(tmp_path):
    n = MAX_UNITS + 500  # batches of two files
    (tmp_path / "in").mkdir()
    for i in range(n):
        (tmp_path / "in" / f"f{i:05d}.jsonl").write_text(f'{{"id": {i}}}\n')
    config = {"processors": [{"processor_name": "transform", "processor_type": "JSONL", "processor_config": {
        "src": {"type": "local", "path": f"{tmp_path}/in/"}, "dest": local(tmp_path / "csv"),
        "columns": [{"name": "id", "path": "id"}], "header": False}}]}
    (tmp_path / "c.json").write_text(json.dumps(config))
    proc = run_cli("run", str(tmp_path / "c.json"), "--dry-run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (plan,) = json.loads(proc.stdout)["plan"]
    assert plan["units"] == -(-n // 2) and len(plan["sources"]) == n
    assert not (tmp_path / "csv").exists()  # a dry run writes nothing, not even the listing manifest
    # The plan does not carry the file list: its units are byte ranges of the listing manifest,
    # written to the destination as it was listed, so the list activity's result (the Durable
    # history's) stays ~MAX_UNITS small references whatever the file count.
    units = ACTIVITIES["list"]({"processor": config["processors"][0], "previous_outputs": None,
                               "run": config["processors"]})
    listing = tmp_path / "csv" / f"{MANIFEST_PREFIX}list-transform.jsonl"
    assert [orjson.loads(line)["name"] for line in listing.read_bytes().splitlines()] == [
        f"f{i:05d}.jsonl" for i in range(n)]
    segments = [seg for u in units for seg in u["batch"]["segments"]]
    assert all("manifest" in seg and "files" not in seg for seg in segments)
    per_unit = len(orjson.dumps(units[0]["processor"])) + 400  # the (validated) processor, a batch index and one range
    assert sum(seg["count"] for seg in segments) == n and len(orjson.dumps(units)) < per_unit * len(units)
    manifest = run(config)
    (step,) = manifest["steps"]
    assert step["units"] == -(-n // 2) <= MAX_UNITS and step["outputs"] == n and manifest["totals"]["rows"] == n
    assert (tmp_path / "csv" / "f01234.csv").read_bytes() == b"1234\r\n"
    assert len([f for f in files(tmp_path / "csv") if f.endswith(".csv")]) == n


def test_a_stop_in_the_middle_of_a_large_unit_leaves_no_temp_and_publishes_nothing(tmp_path, monkeypatch):
    import threading

    from pipeline import stop

    monkeypatch.setattr(stop, "_event", threading.Event())
    monkeypatch.setattr(stop, "_reason", [])
    dest = local(tmp_path / "out")
    with pytest.raises(Exception):
        with OutputSet((dest, f"{MANIFEST_PREFIX}x.jsonl")) as outs:
            for i in range(OUTPUTS_INLINE * 2):
                if i == OUTPUTS_INLINE + 7:
                    stop.request_stop("SIGTERM")  # the next write (an output's, or the manifest's) stops the unit
                with outs.create(dest, f"f{i % 3}/o{i}.txt") as sink:
                    sink.write(b"x")
    assert not (tmp_path / "out").exists(), files(tmp_path / "out")


def test_rejected_lines_in_batch_units_are_reported_per_file(tmp_path):
    n = MAX_UNITS + 2  # batches of two files
    (tmp_path / "in").mkdir()
    bad = {7, 500, 1001}
    for i in range(n):
        extra = "[1, 2]\n" if i in bad else ""
        (tmp_path / "in" / f"f{i:05d}.jsonl").write_text(f'{{"id": {i}}}\n{extra}{{"id": {i}}}\n')
    config = {"processors": [{"processor_name": "transform", "processor_type": "JSONL", "processor_config": {
        "src": {"type": "local", "path": f"{tmp_path}/in/"}, "dest": local(tmp_path / "csv"),
        "columns": [{"name": "id", "path": "id"}], "on_error": "skip", "max_reject_ratio": 0.5}}]}
    manifest = run(config)
    assert manifest["steps"][0]["units"] == -(-n // 2) and manifest["totals"]["rows"] == 2 * n
    assert manifest["rejects"]["lines"] == 3 and manifest["rejects"]["files"] == 3
    assert [(f["src"], f["rejects"], f["first_reject"]["line"]) for f in manifest["rejects"]["listed"]] == [
        (f"local:{tmp_path}/in/f{i:05d}.jsonl", 1, 2) for i in sorted(bad)]


@pytest.mark.parametrize("comment", [b"", b"a comment", b"PK\x05\x06 looks like an end record" * 3, b"x" * 65_000])
def test_the_central_directory_is_found_past_any_comment(tmp_path, comment):
    from processors.decompress.zip import Directory, ZipMember

    with zipfile.ZipFile(tmp_path / "c.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a.txt", "x" * 1000)
        z.writestr("b/c.txt", "yy")
        z.comment = comment
    with open(tmp_path / "c.zip", "rb") as f:
        entries = list(Directory(f))
        assert [e.filename for e in entries] == ["a.txt", "b/c.txt"]
        assert ZipMember(f, entries[0]).read() == b"x" * 1000


def test_a_zip64_directory_of_70000_members_is_read_in_chunks(tmp_path):
    from processors.decompress.zip import Directory, ZipMember

    n = 70_000  # past 65,535 entries: zip64 end records
    with zipfile.ZipFile(tmp_path / "big.zip", "w", zipfile.ZIP_STORED) as z:
        for i in range(n):
            z.writestr(f"d/{i}.txt", str(i))
    with open(tmp_path / "big.zip", "rb") as f:
        directory = Directory(f)
        assert directory.count == n
        seen = 0
        for i, entry in enumerate(directory):
            assert entry.filename == f"d/{i}.txt"
            seen += 1
        assert seen == n and ZipMember(f, entry).read() == str(n - 1).encode()


def test_drift_covers_every_unit_and_every_file_of_a_batch(tmp_path, monkeypatch):
    """The run's drift report counts every unit (not only the RESULTS_LISTED results the manifest
    lists), and a batch unit's drift covers all of its files (processors/transform/drift.combine).
    MAX_UNITS is lowered so a few dozen files make batches (the orchestration runs in this process)."""
    import pipeline.units

    monkeypatch.setattr(pipeline.units, "MAX_UNITS", RESULTS_LISTED + 5)
    n = 2 * (RESULTS_LISTED + 5)  # batches of 2 files: more units than the manifest lists
    with zipfile.ZipFile(tmp_path / "big.zip", "w", zipfile.ZIP_DEFLATED) as z:
        for i in range(n):  # every file holds "new"; the second file of each batch holds "late" too
            z.writestr(f"m{i:05d}.jsonl", json.dumps({"id": i, "new": 1, **({"late": 1} if i % 2 else {})}) + "\n")
    manifest = run(chain(tmp_path / "big.zip", local(tmp_path / "raw"), local(tmp_path / "csv")))
    transform = manifest["steps"][1]
    assert transform["units"] == n // 2 > RESULTS_LISTED == len(transform["results"]) and "drift" not in transform
    (step,) = manifest["drift"]
    assert step["units"] == n // 2 == step["units_with_drift"] and step["lines_sampled"] == n
    assert step["unmapped"] == [{"path": "new", "lines": n, "units": n // 2},
                                {"path": "late", "lines": n // 2, "units": n // 2}]
    assert transform["results"][0]["drift"]["unmapped"] == [{"path": "new", "lines": 2}, {"path": "late", "lines": 1}]


def test_a_collision_in_a_listing_beyond_max_units_names_both_files_and_writes_nothing(tmp_path, monkeypatch):
    import pipeline.units

    monkeypatch.setattr(pipeline.units, "MAX_UNITS", 5)  # the listing goes to a manifest beyond 5 files
    (tmp_path / "in").mkdir()
    for i in range(12):
        (tmp_path / "in" / f"f{i:02d}.jsonl").write_text(f'{{"id": {i}}}\n')
    (tmp_path / "in" / "a.jsonl").write_text('{"id": 1}\n')
    (tmp_path / "in" / "a.ndjson").write_text('{"id": 2}\n')
    processor = {"processor_name": "transform", "processor_type": "JSONL", "processor_config": {
        "src": {"type": "local", "path": f"{tmp_path}/in/"}, "dest": local(tmp_path / "csv"),
        "columns": [{"name": "id", "path": "id"}]}}
    for run_ in ([processor], None):  # the run's first listing, and a processor's own
        result = ACTIVITIES["list"]({"processor": processor, "previous_outputs": None, "run": run_})
        assert f"local:{tmp_path}/in/a.jsonl" in result["failed"] and f"local:{tmp_path}/in/a.ndjson" in result["failed"]
        assert f"would both write local:{tmp_path}/csv/a.csv" in result["failed"]
        assert not os.path.exists(tmp_path / "csv") or files(tmp_path / "csv") == []
