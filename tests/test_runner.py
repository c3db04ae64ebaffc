"""The local runner: validate, dry-run, run, failures, and the portable orchestration it drives."""

import json
import os
import zipfile

import pytest

from local_runner.executor import run_orchestration
from pipeline.activities import ACTIVITIES
from pipeline.orchestration import orchestrate
from tests.conftest import run_cli


def make_zips(folder, n=3, members=2, bad_member=None):
    folder.mkdir(parents=True, exist_ok=True)
    for z in range(n):
        with zipfile.ZipFile(folder / f"drop-{z}.zip", "w", zipfile.ZIP_DEFLATED) as zf:
            for m in range(members):
                body = "".join(json.dumps({"id": f"{z}-{m}-{i}", "v": {"x": i}}) + "\n" for i in range(50))
                if (z, m) == bad_member:
                    body += "{broken\n"
                zf.writestr(f"data/part-{m}.jsonl", body)


def config(tmp_path, **transform):
    return {"sourcemart": "acme", "table": "t1", "processors": [
        {"processor_name": "decompress", "processor_type": "zip",
         "processor_config": {"src": {"type": "local", "path": f"{tmp_path}/in/drop-*.zip"},
                              "dest": {"type": "local", "path": f"{tmp_path}/raw/"}}},
        {"processor_name": "transform", "processor_type": "JSONL",
         "processor_config": {"dest": {"type": "local", "path": f"{tmp_path}/csv/"},
                              "columns": [{"name": "id", "path": "id"}, {"name": "x", "path": "v.x"}], **transform}}]}


def write_config(tmp_path, cfg) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    return str(path)


def test_fan_out_one_unit_per_file_and_manifest(tmp_path):
    make_zips(tmp_path / "in")
    manifest = run_orchestration(orchestrate, {"config": config(tmp_path)}, ACTIVITIES, workers=3)
    unzip, transform = manifest["steps"]
    assert unzip["units"] == 3 and unzip["outputs"] == 6
    assert transform["units"] == 6 and transform["rows"] == 300
    names = sorted(o["name"] for r in transform["results"] for o in r["outputs"])
    assert names == sorted(f"drop-{z}/data/part-{m}.csv" for z in range(3) for m in range(2))
    for r in transform["results"]:
        (o,) = r["outputs"]
        assert os.path.getsize(o["location"]["path"]) == o["bytes"] and len(o["sha256"]) == 64
    assert manifest["totals"] == {"units": 9, "outputs": 12, "bytes_written": manifest["totals"]["bytes_written"],
                                  "rows": 300, "rejects": 0}


def test_rerun_is_idempotent(tmp_path):
    make_zips(tmp_path / "in", n=1)
    first = run_orchestration(orchestrate, {"config": config(tmp_path)}, ACTIVITIES)
    second = run_orchestration(orchestrate, {"config": config(tmp_path)}, ACTIVITIES)
    files = sorted(os.path.relpath(os.path.join(d, f), tmp_path) for d, _, fs in os.walk(tmp_path / "csv") for f in fs)
    assert files == ["csv/drop-0/data/part-0.csv", "csv/drop-0/data/part-1.csv"]
    sha = lambda m: [o["sha256"] for s in m["steps"] for r in s["results"] for o in r["outputs"]]  # noqa: E731
    assert sha(first) == sha(second)


def test_orchestration_sees_unit_failures_as_exceptions(tmp_path):
    make_zips(tmp_path / "in", n=2, bad_member=(1, 0))

    def catching(ctx, request):  # the generator gets the failure thrown in, as under Durable
        try:
            return (yield from orchestrate(ctx, request))
        except Exception as exc:
            return {"caught": str(exc)}

    out = run_orchestration(catching, {"config": config(tmp_path)}, ACTIVITIES)
    assert f"{tmp_path}/raw/drop-1/data/part-0.jsonl:51: " in out["caught"]


def test_cli_validate(tmp_path):
    good = write_config(tmp_path, config(tmp_path))
    proc = run_cli("validate", good)
    assert proc.returncode == 0 and proc.stdout.strip() == f"{good}: ok"
    bad = config(tmp_path)
    bad["processors"][1]["processor_config"]["columns"][1]["path"] = "v."
    proc = run_cli("validate", write_config(tmp_path, bad))
    assert proc.returncode == 2
    assert "processors[1].processor_config.columns[1].path: must be non-empty keys" in proc.stderr


def test_cli_dry_run_plans_and_moves_nothing(tmp_path):
    make_zips(tmp_path / "in")
    proc = run_cli("run", write_config(tmp_path, config(tmp_path)), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)["plan"]
    assert plan[0]["units"] == 3 and [s["name"] for s in plan[0]["sources"]] == [f"drop-{i}.zip" for i in range(3)]
    assert plan[1]["units"] == "one per output of processor 0"
    assert not (tmp_path / "raw").exists() and not (tmp_path / "csv").exists()


def test_cli_run_failure_exit_code_and_message(tmp_path):
    make_zips(tmp_path / "in", n=1, bad_member=(0, 1))
    proc = run_cli("run", write_config(tmp_path, config(tmp_path)), "-q")
    assert proc.returncode == 1 and proc.stdout == ""
    assert "raw/drop-0/data/part-1.jsonl:51: " in proc.stderr
    assert not (tmp_path / "csv" / "drop-0" / "data" / "part-1.csv").exists()


def test_cli_no_match_is_an_error(tmp_path):
    (tmp_path / "in").mkdir()
    proc = run_cli("run", write_config(tmp_path, config(tmp_path)), "-q")
    assert proc.returncode == 1 and "matches no files" in proc.stderr


def test_cli_progress_lines_when_not_a_terminal(tmp_path):
    make_zips(tmp_path / "in", n=1)
    proc = run_cli("run", write_config(tmp_path, config(tmp_path)))
    assert proc.returncode == 0
    assert "processor 2/2 transform:JSONL | units 2/2" in proc.stderr


def test_secret_in_a_setting_never_reaches_output(tmp_path):
    token = "tok-SUPERSECRET-123456"
    cfg = {"processors": [{"processor_name": "copy", "processor_type": "copy", "processor_config": {
        "src": {"type": "http", "url": "http://127.0.0.1:9/data.jsonl", "headers_from_env": {"Authorization": "ACME_TOKEN"},
                "timeout_s": 2},
        "dest": {"type": "local", "path": f"{tmp_path}/out/"}}}]}
    proc = run_cli("run", write_config(tmp_path, cfg), "-q", env={"ACME_TOKEN": f"Bearer {token}",
                                                                  "PIPELINE_HEADER_ORIGINS": "ACME_TOKEN=http://127.0.0.1:9"})
    assert proc.returncode == 1 and "http://127.0.0.1:9/data.jsonl" in proc.stderr
    assert token not in proc.stderr + proc.stdout


def test_fail_fast_cancels_units_not_started():
    from local_runner.executor import ActivityFailed

    def one(payload):
        if payload == 0:
            raise ValueError("unit 0 is broken")
        import time
        time.sleep(0.05)
        return payload

    def fan_out(ctx, request):
        return (yield ctx.task_all([ctx.call_activity("one", i) for i in range(20)]))

    with pytest.raises(ActivityFailed, match="unit 0 is broken"):
        run_orchestration(fan_out, {}, {"one": one}, workers=2)
