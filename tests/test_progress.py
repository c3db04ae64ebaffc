"""Progress on stderr (local_runner/progress.py) when it is not a terminal: a line every
--progress-interval seconds with the bytes read of the sources' known total, rows and rejects."""

import json
import re

from tests.conftest import run_cli

LINE = re.compile(r"^processor 1/1 transform:JSONL \| (?P<stage>[^|]+) \| read (?P<read>[\d.]+) MB"
                  r"(?: of (?P<total>[\d.]+) MB \((?P<pct>\d+)%\))?, [\d.]+ MB/s(?:, ETA \S+)? \| "
                  r"(?P<rows>[\d,]+) rows, (?P<rejects>[\d,]+) rejects \| [\d.]+ MB written \| \S+$")


def test_progress_lines_carry_bytes_percent_rows_and_rejects(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    total = 0
    # Long enough for several 0.05 s ticks on any machine: the Python path (~40-50 MB/s here) on
    # ~21 MB; the native kernel did 4 MB in under one tick, leaving only the final line.
    for k in range(2):
        with open(folder / f"part-{k}.jsonl", "w") as f:
            for i in range(200_000):
                f.write(json.dumps({"id": i, "v": {"x": "y" * (i % 50)}}) + "\n")
            f.write("not json\n" * (k + 1))  # rejected (on_error skip): 3 in all
        total += (folder / f"part-{k}.jsonl").stat().st_size
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"processors": [{
        "processor_name": "transform", "processor_type": "JSONL", "processor_config": {
            "src": {"type": "local", "path": f"{folder}/*.jsonl"}, "dest": {"type": "local", "path": f"{tmp_path}/csv/"},
            "columns": [{"name": "id", "path": "id"}, {"name": "x", "path": "v.x"}], "on_error": "skip",
            "engine": "python"}}]}))
    proc = run_cli("run", str(config), "--progress-interval", "0.05", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    lines = [m for m in map(LINE.match, proc.stderr.splitlines()) if m]
    assert len(lines) >= 2, proc.stderr  # periodic lines, then the final one
    last = lines[-1]
    assert last["stage"].strip() == "units 2/2"
    assert float(last["total"]) == round(total / 1e6, 1) and float(last["read"]) == float(last["total"])
    assert last["pct"] == "100"
    assert last["rows"] == "400,000" and last["rejects"] == "3"
    rows = [int(m["rows"].replace(",", "")) for m in lines]
    assert rows == sorted(rows)


def test_progress_interval_must_be_sane(tmp_path):
    proc = run_cli("run", str(tmp_path / "missing.json"), "--progress-interval", "0")
    assert proc.returncode == 2 and "--progress-interval" in proc.stderr


def test_progress_counts_an_archives_own_bytes(tmp_path):
    """A transform reading a zip: bytes read are the archive's (compressed), against its size."""
    import zipfile

    (tmp_path / "in").mkdir()
    with zipfile.ZipFile(tmp_path / "in" / "drop.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        for m in range(2):
            zf.writestr(f"part-{m}.jsonl", "".join(json.dumps({"id": i, "m": m}) + "\n" for i in range(30_000)))
    size = (tmp_path / "in" / "drop.zip").stat().st_size
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"processors": [{
        "processor_name": "transform", "processor_type": "JSONL", "processor_config": {
            "src": {"type": "local", "path": f"{tmp_path}/in/drop.zip"}, "archive": "zip",
            "dest": {"type": "local", "path": f"{tmp_path}/csv/"}, "columns": [{"name": "id", "path": "id"}]}}]}))
    proc = run_cli("run", str(config), "--progress-interval", "0.05")
    assert proc.returncode == 0, proc.stderr
    last = [m for m in map(LINE.match, proc.stderr.splitlines()) if m][-1]
    assert float(last["total"]) == round(size / 1e6, 1) and last["pct"] == "100"
    assert abs(float(last["read"]) - float(last["total"])) <= 0.1 and last["rows"] == "60,000"
