"""CLI input errors and failed runs (issue 9, item 7): a missing config, a folder given as config
and a bad --manifest path exit 2 with one line (the manifest path is checked before any data
moves); a failed run writes a manifest with status `failed` and the error."""

import json

import pytest

from tests.conftest import run_cli


def config(tmp_path, bad_line=False):
    (tmp_path / "in").mkdir(exist_ok=True)
    (tmp_path / "in" / "a.jsonl").write_text('{"id": 1}\n' + ('{"id": \n' if bad_line else ""))
    cfg = {"sourcemart": "acme", "table": "t", "processors": [{"processor_name": "transform", "processor_type": "JSONL",
           "processor_config": {"src": {"type": "local", "path": f"{tmp_path}/in/"},
                                "dest": {"type": "local", "path": f"{tmp_path}/csv/"},
                                "columns": [{"name": "id", "path": "id"}]}}]}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    return str(path)


@pytest.mark.parametrize("command", ["run", "validate"])
def test_missing_config_and_a_folder_as_config(tmp_path, command):
    for target, reason in ((tmp_path / "nope.json", "No such file or directory"), (tmp_path, "Is a directory")):
        proc = run_cli(command, str(target))
        assert proc.returncode == 2 and proc.stdout == ""
        assert proc.stderr.splitlines() == [f"{target}: cannot read the config: {reason}"]


@pytest.mark.parametrize("where, reason", [
    ("missing/m.json", "cannot be written: folder {tmp}/missing does not exist"),
    (".", "is a folder"),
])
def test_bad_manifest_path_is_refused_before_anything_runs(tmp_path, where, reason):
    path = str(tmp_path / where) if where != "." else str(tmp_path)
    proc = run_cli("run", config(tmp_path), "-q", "--manifest", path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [f"--manifest {path}: {reason.format(tmp=tmp_path)}"]
    assert not (tmp_path / "csv").exists()  # checked before running: nothing was written


def test_a_failed_run_writes_a_failed_manifest(tmp_path):
    manifest = tmp_path / "manifest.json"
    proc = run_cli("run", config(tmp_path, bad_line=True), "-q", "--manifest", str(manifest))
    assert proc.returncode == 1 and proc.stdout == ""
    written = json.loads(manifest.read_text())
    assert written["status"] == "failed" and written["sourcemart"] == "acme" and written["table"] == "t"
    assert f"{tmp_path}/in/a.jsonl:2: " in written["error"]
    assert proc.stderr.strip() == written["error"]
    assert "Traceback" not in proc.stderr


def test_a_succeeded_run_still_writes_its_manifest(tmp_path):
    manifest = tmp_path / "manifest.json"
    proc = run_cli("run", config(tmp_path), "-q", "--manifest", str(manifest))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(manifest.read_text()) == json.loads(proc.stdout)
    assert json.loads(proc.stdout)["status"] == "succeeded"
