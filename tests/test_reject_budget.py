"""The reject budget (issue 9, item 1): with on_error skip or quarantine, a file that loses all of
its lines, or more than its budget, fails and publishes nothing; rejects within the budget are
reported on stderr and in the run manifest, never silently."""

import json
import os

from tests.conftest import run_cli


def write(tmp_path, name, lines):
    src = tmp_path / "in" / name
    src.parent.mkdir(exist_ok=True)
    src.write_bytes(b"".join(l + b"\n" for l in lines))
    return src


def cfg(tmp_path, **transform):
    return {"sourcemart": "acme", "table": "t", "processors": [
        {"processor_name": "transform", "processor_type": "JSONL",
         "processor_config": {"src": {"type": "local", "path": f"{tmp_path}/in/"},
                              "dest": {"type": "local", "path": f"{tmp_path}/csv/"},
                              "columns": [{"name": "id", "path": "id"}], **transform}}]}


def run(tmp_path, config, *args):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return run_cli("run", str(path), "-q", *args)


def published(tmp_path):
    return sorted(os.path.relpath(os.path.join(d, f), tmp_path) for folder in ("csv", "rejects")
                  for d, _, fs in os.walk(tmp_path / folder) for f in fs)


def test_every_line_rejected_fails_and_publishes_nothing(tmp_path):
    write(tmp_path, "arrays.jsonl", [b"[%d, 2]" % i for i in range(50)])  # every line is an array
    for on_error, extra in (("skip", {}), ("quarantine", {"rejects": {"type": "local", "path": f"{tmp_path}/rejects/"}})):
        proc = run(tmp_path, cfg(tmp_path, on_error=on_error, **extra))
        assert proc.returncode == 1, (on_error, proc.stdout)
        assert "arrays.jsonl: all 50 lines were rejected (first: line 1: not a JSON object; its rows are " \
               'JSON arrays, not objects: set "input_format": "jsonl_arrays"' in proc.stderr
        assert "nothing was published" in proc.stderr and proc.stdout == ""
        assert published(tmp_path) == []


def test_over_the_default_one_percent_fails(tmp_path):
    # 3 bad lines in 200 (1.5%): over the default max_reject_ratio of 0.01.
    write(tmp_path, "part.jsonl", [b'{"id": %d}' % i if i % 60 else b"not json" for i in range(1, 201)])
    proc = run(tmp_path, cfg(tmp_path, on_error="quarantine", rejects={"type": "local", "path": f"{tmp_path}/rejects/"}))
    assert proc.returncode == 1
    assert "part.jsonl: 3 of 200 lines were rejected (1.50%) (first: line 60: " in proc.stderr
    assert "more than max_reject_ratio 0.01" in proc.stderr
    assert published(tmp_path) == []  # neither the CSV nor the rejects file


def test_max_rejects_caps_the_count(tmp_path):
    write(tmp_path, "part.jsonl", [b'{"id": %d}' % i if i % 500 else b"[]" for i in range(1, 1001)])  # 2 of 1000
    proc = run(tmp_path, cfg(tmp_path, on_error="skip", max_rejects=1))
    assert proc.returncode == 1 and "2 of 1000 lines were rejected (first: line 500: " in proc.stderr
    assert "more than max_rejects 1" in proc.stderr and published(tmp_path) == []


def test_rejects_within_budget_are_reported_on_stderr_and_in_the_manifest(tmp_path):
    write(tmp_path, "a.jsonl", [b'{"id": %d}' % i if i % 10 else b"[]" for i in range(1, 101)])  # 10%
    write(tmp_path, "b.jsonl", [b'{"id": 1}'])
    proc = run(tmp_path, cfg(tmp_path, on_error="skip", max_reject_ratio=0.2), "--manifest", str(tmp_path / "m.json"))
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads(proc.stdout)
    assert manifest["status"] == "succeeded" and manifest["totals"]["rejects"] == 10
    assert manifest["rejects"] == {"lines": 10, "files": 1, "listed": [
        {"processor": "transform:JSONL", "src": f"local:{tmp_path}/in/a.jsonl", "rejects": 10,
         "first_reject": {"line": 10, "error": "not a JSON object"}}]}
    assert "warning: 10 line(s) rejected in 1 file(s)" in proc.stderr
    assert f"local:{tmp_path}/in/a.jsonl: 10 rejected, first at line 10: not a JSON object" in proc.stderr
    assert published(tmp_path) == ["csv/a.csv", "csv/b.csv"]


def test_budget_options_need_a_rejecting_on_error(tmp_path):
    proc = run_cli("validate", str(_write(tmp_path, cfg(tmp_path, max_rejects=5))))
    assert proc.returncode == 2
    assert "processors[0].processor_config.max_rejects: only used with on_error skip or quarantine" in proc.stderr
    proc = run_cli("validate", str(_write(tmp_path, cfg(tmp_path, on_error="skip", max_reject_ratio=1.5))))
    assert proc.returncode == 2 and "processors[0].processor_config.max_reject_ratio: " in proc.stderr


def _write(tmp_path, config):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(config))
    return path
