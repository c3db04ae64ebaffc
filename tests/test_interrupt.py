"""Interruption (issue 9, item 5), with real signals to a real child process: SIGINT and SIGTERM
stop scheduling, abort the running units (nothing is published after the signal), remove their
temp files, and exit 130/143 with one line; a unit removes its output's stale temp (kill -9)
before writing it again; a failed unit leaves no new empty folder."""

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from mounters.base import TEMP_PREFIX
from processors import UnitError, run_unit
from tests.conftest import ROOT

LINE = b'{"id": 1, "pad": "' + b"x" * 100 + b'"}\n'
FIRST = LINE * (3 * (1 << 20) // len(LINE))  # ~3 MiB sent at once, then the server waits
REST = LINE * 1000


class GatedFeed:
    """An HTTP source that sends FIRST, then waits for `release` before sending REST."""

    def __init__(self):
        self.release = threading.Event()
        gate = self.release

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", str(len(FIRST) + len(REST)))
                self.end_headers()
                try:
                    self.wfile.write(FIRST)
                    self.wfile.flush()
                    gate.wait(60)
                    self.wfile.write(REST)
                except OSError:  # the client went away (killed)
                    pass

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/feed.jsonl"

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def feed():
    f = GatedFeed()
    yield f
    f.close()


def write_config(tmp_path, url):
    config = {"processors": [
        {"processor_name": "copy", "processor_type": "copy", "processor_config": {
            "src": {"type": "http", "url": url, "timeout_s": 60},
            "dest": {"type": "local", "path": f"{tmp_path}/out/new/deeper/"}}},
        {"processor_name": "copy", "processor_type": "copy", "processor_config": {
            "dest": {"type": "local", "path": f"{tmp_path}/out2/"}}}]}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return str(path)


def start(tmp_path, url, *extra):
    return subprocess.Popen([sys.executable, "-m", "local_runner", "run", write_config(tmp_path, url), "-q", *extra],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_temp(tmp_path, proc, timeout=60.0):
    folder = tmp_path / "out" / "new" / "deeper"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if folder.is_dir() and any(n.startswith(TEMP_PREFIX) for n in os.listdir(folder)):
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError("the unit never started writing")


def every_file(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_aborts_running_units_publishes_nothing_and_cleans_up(tmp_path, feed, sig, code):
    proc = start(tmp_path, feed.url, "--manifest", str(tmp_path / "manifest.json"))
    try:
        wait_for_temp(tmp_path, proc)
        proc.send_signal(sig)
        time.sleep(0.5)
        feed.release.set()  # the unit now gets the rest of its source: it must not publish it
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err
    assert err.strip().splitlines() == [
        f"interrupted by {sig.name}: stopped scheduling and aborted the running units; "
        "nothing was published after the signal"]
    assert out == ""
    # No output, no temp file, no folder the aborted unit had made; the next processor never ran.
    assert not (tmp_path / "out").exists() and not (tmp_path / "out2").exists()
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["error"].startswith(f"interrupted by {sig.name}")


def test_kill_9_leaves_a_temp_that_the_next_run_of_the_unit_removes(tmp_path, feed):
    proc = start(tmp_path, feed.url)
    try:
        wait_for_temp(tmp_path, proc)
        proc.kill()  # SIGKILL: nothing can clean up
        proc.communicate(timeout=30)
    finally:
        feed.release.set()
    folder = tmp_path / "out" / "new" / "deeper"
    stale = [n for n in os.listdir(folder) if n.startswith(TEMP_PREFIX)]
    assert len(stale) == 1 and stale[0].startswith(f"{TEMP_PREFIX}feed.jsonl")  # the temp names its output

    again = GatedFeed()
    again.release.set()
    try:
        proc = start(tmp_path, again.url)
        out, err = proc.communicate(timeout=120)
    finally:
        again.close()
    assert proc.returncode == 0, err
    assert every_file(tmp_path / "out") == ["new/deeper/feed.jsonl"]  # the stale temp is gone
    assert (folder / "feed.jsonl").stat().st_size == len(FIRST) + len(REST)


def test_a_failed_unit_leaves_no_new_empty_folder(tmp_path):
    (tmp_path / "in.jsonl").write_bytes(b'{"a": 1}\n{"a": \n')
    (tmp_path / "csv").mkdir()  # exists before: stays
    src = {"type": "local", "path": str(tmp_path / "in.jsonl")}
    unit = {"processor": {"processor_name": "transform", "processor_type": "JSONL", "processor_config": {
        "src": src, "dest": {"type": "local", "path": f"{tmp_path}/csv/new/deep/"},
        "columns": [{"name": "a", "path": "a"}]}}, "src": {"location": src, "name": "in.jsonl", "size": None}}
    with pytest.raises(UnitError, match="in.jsonl:2: "):
        run_unit(unit)
    assert os.listdir(tmp_path / "csv") == []
