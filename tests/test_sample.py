"""The README's sample command: a zip of nested JSONL files -> CSVs in a local folder."""

import csv
import json
import shutil

from tests.conftest import ROOT, run_cli


def test_sample_runs_and_manifest_matches_files(tmp_path):
    shutil.copytree(ROOT / "samples", tmp_path / "samples")
    proc = run_cli("run", "samples/acme/events.json", "-q", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads(proc.stdout)
    unpack, transform = manifest["steps"]
    assert unpack["processor"] == "decompress:zip" and unpack["outputs"] == 3
    assert transform["processor"] == "transform:JSONL" and transform["units"] == 3
    rows = 0
    for result in transform["results"]:
        (out,) = result["outputs"]
        path = tmp_path / out["location"]["path"]
        assert path.suffix == ".csv" and path.stat().st_size == out["bytes"]
        with open(path, newline="", encoding="utf-8") as f:
            data = list(csv.reader(f))
        assert data[0][:3] == ["event_id", "ts", "user_id"]
        rows += len(data) - 1
    assert rows == manifest["totals"]["rows"] > 1000
    assert manifest["totals"]["rejects"] == 0
