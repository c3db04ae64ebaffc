"""Collisions are errors at planning time (issue 9, item 2): two sources whose outputs would share a
name fail the run before any data moves, and the error names both sources."""

import gzip
import json
import os
import zipfile

from local_runner.executor import run_orchestration
from pipeline.activities import ACTIVITIES
from pipeline.orchestration import orchestrate
from tests.conftest import run_cli


def transform(src, dest, **cfg):
    p = {"processor_name": "transform", "processor_type": "JSONL",
         "processor_config": {"dest": {"type": "local", "path": dest}, "columns": [{"name": "id", "path": "id"}], **cfg}}
    if src:
        p["processor_config"]["src"] = {"type": "local", "path": src}
    return p


def run(tmp_path, processors, *args):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"processors": processors}))
    return run_cli("run", str(path), "-q", *args)


def tree(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs)


def test_jsonl_and_ndjson_to_one_csv_fail_before_anything_is_written(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl").write_text('{"id": 1}\n')
    (tmp_path / "in" / "a.ndjson").write_text('{"id": 2}\n')
    (tmp_path / "in" / "b.jsonl").write_text('{"id": 3}\n')
    for args in ((), ("--dry-run",)):
        proc = run(tmp_path, [transform(f"{tmp_path}/in/", f"{tmp_path}/csv/")], *args)
        assert proc.returncode == 1, proc.stdout
        assert (f"local:{tmp_path}/in/a.jsonl (processor 1, transform:JSONL) and local:{tmp_path}/in/a.ndjson "
                f"(processor 1, transform:JSONL) would both write local:{tmp_path}/csv/a.csv") in proc.stderr
        assert not (tmp_path / "csv").exists()  # not even b.csv


def test_collision_across_processors_fails_before_the_first_runs(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.jsonl").write_text('{"id": 1}\n')
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "x.ndjson").write_text('{"id": 2}\n')
    proc = run(tmp_path, [transform(f"{tmp_path}/in/", f"{tmp_path}/csv/"),
                          transform(f"{tmp_path}/more/", f"{tmp_path}/csv/")])
    assert proc.returncode == 1
    assert (f"local:{tmp_path}/in/x.jsonl (processor 1, transform:JSONL) and local:{tmp_path}/more/x.ndjson "
            f"(processor 2, transform:JSONL) would both write local:{tmp_path}/csv/x.csv") in proc.stderr
    assert not (tmp_path / "csv").exists()


def test_collision_through_a_chained_processor_is_found_up_front(tmp_path):
    # gzip writes raw/x.jsonl and raw/x.ndjson; the transform that reads them would write csv/x.csv twice.
    (tmp_path / "in").mkdir()
    for name in ("x.jsonl.gz", "x.ndjson.gz"):
        (tmp_path / "in" / name).write_bytes(gzip.compress(b'{"id": 1}\n'))
    gunzip = {"processor_name": "decompress", "processor_type": "gzip", "processor_config": {
        "src": {"type": "local", "path": f"{tmp_path}/in/"}, "dest": {"type": "local", "path": f"{tmp_path}/raw/"}}}
    proc = run(tmp_path, [gunzip, transform(None, f"{tmp_path}/csv/")])
    assert proc.returncode == 1 and f"would both write local:{tmp_path}/csv/x.csv" in proc.stderr
    assert f"local:{tmp_path}/raw/x.jsonl (processor 2, transform:JSONL)" in proc.stderr
    assert not (tmp_path / "raw").exists() and not (tmp_path / "csv").exists()


def test_two_archives_extracting_into_one_folder_and_members_colliding_downstream(tmp_path):
    (tmp_path / "in").mkdir()
    for name in ("d.zip", "d.ZIP"):
        with zipfile.ZipFile(tmp_path / "in" / name, "w") as zf:
            zf.writestr("m.jsonl", '{"id": 1}\n')
    unzip = {"processor_name": "decompress", "processor_type": "zip", "processor_config": {
        "src": {"type": "local", "path": f"{tmp_path}/in/*"}, "dest": {"type": "local", "path": f"{tmp_path}/raw/"}}}
    proc = run(tmp_path, [unzip])
    assert proc.returncode == 1 and f"would both write local:{tmp_path}/raw/d" in proc.stderr
    assert "d.ZIP" in proc.stderr and "d.zip" in proc.stderr and not (tmp_path / "raw").exists()

    # Members are known only once unpacked: the transform's own listing refuses its collision
    # before the transform writes anything.
    os.remove(tmp_path / "in" / "d.ZIP")
    with zipfile.ZipFile(tmp_path / "in" / "d.zip", "w") as zf:
        zf.writestr("m.jsonl", '{"id": 1}\n')
        zf.writestr("m.ndjson", '{"id": 2}\n')
    proc = run(tmp_path, [unzip, transform(None, f"{tmp_path}/csv/")])
    assert proc.returncode == 1
    assert (f"local:{tmp_path}/raw/d/m.jsonl and local:{tmp_path}/raw/d/m.ndjson would both write "
            f"local:{tmp_path}/csv/d/m.csv") in proc.stderr
    assert not (tmp_path / "csv").exists()


def test_a_file_and_a_folder_of_one_name(tmp_path):
    # copy writes out/d (a file); the zip's members would go under out/d/ (a folder).
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "d").write_text('{"id": 1}\n')
    with zipfile.ZipFile(tmp_path / "in" / "d.zip", "w") as zf:
        zf.writestr("m.jsonl", '{"id": 1}\n')
    out = {"type": "local", "path": f"{tmp_path}/out/"}
    copy = {"processor_name": "copy", "processor_type": "copy", "processor_config": {
        "src": {"type": "local", "path": f"{tmp_path}/in/d"}, "dest": out}}
    unzip = {"processor_name": "decompress", "processor_type": "zip", "processor_config": {
        "src": {"type": "local", "path": f"{tmp_path}/in/d.zip"}, "dest": out}}
    proc = run(tmp_path, [copy, unzip])
    assert proc.returncode == 1 and f"would write a file and a folder at local:{tmp_path}/out/d" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_distinct_outputs_still_run(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl").write_text('{"id": 1}\n')
    (tmp_path / "in" / "b.ndjson").write_text('{"id": 2}\n')
    manifest = run_orchestration(orchestrate, {"config": {"processors": [
        transform(f"{tmp_path}/in/", f"{tmp_path}/csv/")]}}, ACTIVITIES)
    assert manifest["totals"]["outputs"] == 2 and tree(tmp_path / "csv") == ["a.csv", "b.csv"]


def test_a_later_processor_reading_an_earlier_ones_output_is_planned_when_it_runs(tmp_path):
    # Processor 2 selects with its own src what processor 1 writes: nothing is there before the run,
    # so it is listed when its turn comes (not refused up front as "matches no files").
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl").write_text('{"id": 1}\n')
    copy = {"processor_name": "copy", "processor_type": "copy", "processor_config": {
        "src": {"type": "local", "path": f"{tmp_path}/in/"}, "dest": {"type": "local", "path": f"{tmp_path}/raw/"}}}
    manifest = run_orchestration(orchestrate, {"config": {"processors": [
        copy, transform(f"{tmp_path}/raw/*.jsonl", f"{tmp_path}/csv/")]}}, ACTIVITIES)
    assert manifest["totals"]["outputs"] == 2 and tree(tmp_path / "csv") == ["a.csv"]
