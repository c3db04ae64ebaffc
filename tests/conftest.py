"""Shared fixtures: real parts only. Azurite (npm azurite@3.35.0 from package-lock.json) and a
local HTTP server are started by the test session on 127.0.0.1 and stopped afterwards."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The test policy (pipeline.policy), set as an operator would, in the environment, so every child
# process (the CLI, `serve`) inherits it: local files under the temp folder and the repository, the
# settings the tests name, plain http and private addresses only for 127.0.0.1 (the test servers).
# Header settings are bound to a test server's origin by the test that starts it (header_origin).
TEST_POLICY = {
    "PIPELINE_LOCAL_ROOTS": os.pathsep.join([tempfile.gettempdir(), str(ROOT)]),
    "PIPELINE_ALLOWED_SETTINGS": "RAW_STORAGE,ACME_TOKEN",
    "PIPELINE_PLAIN_HTTP_HOSTS": "127.0.0.1,localhost",  # plain http, but localhost is not private-allowed
    "PIPELINE_PRIVATE_HOSTS": "127.0.0.1",
}
os.environ.update(TEST_POLICY)


def header_origin(monkeypatch, setting: str, *origins: str) -> None:
    """Bind a header setting to test servers' origins (PIPELINE_HEADER_ORIGINS), as an operator would."""
    pairs = [p for p in os.environ.get("PIPELINE_HEADER_ORIGINS", "").split(",") if p]
    monkeypatch.setenv("PIPELINE_HEADER_ORIGINS", ",".join(pairs + [f"{setting}={o}" for o in origins]))


# Azurite's documented development account: public, not a secret.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


@pytest.fixture(scope="session")
def azurite():
    """A real Azurite blob service; yields its connection string."""
    binary = ROOT / "node_modules" / ".bin" / "azurite-blob"
    if not binary.exists():
        pytest.fail("Azurite is not installed: run `make test` (it runs npm ci from package-lock.json)")
    workspace = tempfile.mkdtemp(prefix="azurite-")
    port = free_port()
    log = open(os.path.join(workspace, "azurite.log"), "w")
    proc = subprocess.Popen(
        [str(binary), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", workspace,
         "--skipApiVersionCheck", "--disableTelemetry", "--loose", "--silent"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, proc)
        yield (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
               f"BlobEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        shutil.rmtree(workspace, ignore_errors=True)


@pytest.fixture
def blob_env(azurite, monkeypatch):
    """RAW_STORAGE names the Azurite connection string, as an app setting would in Azure.
    Yields a BlobServiceClient for arranging and checking blobs, and a fresh container name."""
    from azure.storage.blob import BlobServiceClient

    monkeypatch.setenv("RAW_STORAGE", azurite)
    client = BlobServiceClient.from_connection_string(azurite)
    name = f"t{os.urandom(6).hex()}"
    client.create_container(name)
    yield client, name
    client.delete_container(name)


@contextlib.contextmanager
def serve_process(folder: Path, env: dict, *args: str):
    """`python -m local_runner serve` in a child process on a free port, its output in folder/serve.log;
    yields (base URL, the open log file). env adds to this process's environment (the test policy)."""
    port = free_port()
    log = open(folder / "serve.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "local_runner", *args, "serve", "--port", str(port)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT), **env}, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}", log
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def run_cli(*args: str, cwd: Path | str = ROOT, env: dict | None = None, timeout: float = 600):
    """Run `python -m local_runner ...` in a child process (as a user would)."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "local_runner", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def run_cli_peak_rss(*args: str, cwd: Path | str = ROOT, env: dict | None = None, timeout: float = 900):
    """Run the CLI in a child process; return (returncode, stdout, stderr, the child's own peak RSS in MB).
    The peak is the child's VmHWM as bench/child.py reports it (ru_maxrss would include this pytest process)."""
    import json

    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "report.json")
        full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        proc = subprocess.run([sys.executable, "-m", "bench.child", report, "cli", *args], cwd=cwd,
                              env=full_env, capture_output=True, text=True, timeout=timeout)
        with open(report) as f:
            peak = json.load(f)["peak_rss_mb"]
    return proc.returncode, proc.stdout, proc.stderr, peak


class FailingReader(io.RawIOBase):
    """A source that breaks after `limit` bytes, like a dropped connection (seeks pass through)."""

    def __init__(self, f, limit):
        self.f, self.left = f, limit

    def readable(self):
        return True

    def seekable(self):
        return self.f.seekable()

    def seek(self, *args):
        return self.f.seek(*args)

    def tell(self):
        return self.f.tell()

    def readinto(self, b):
        if self.left <= 0:
            raise ConnectionResetError("connection reset by peer")
        n = self.f.readinto(memoryview(b)[: self.left])
        self.left -= n
        return n


@contextlib.contextmanager
def local_http_server(handler):
    """A real HTTP server on 127.0.0.1 (a free port) answering with `handler`, in a thread; yields it
    (its base URL is f"http://127.0.0.1:{server.server_address[1]}") and stops it afterwards."""
    import http.server
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def http_file(body: bytes, name: str = "feed.jsonl", before=None):
    """A one-file HTTP source on 127.0.0.1 serving `body` at /<name>. before(n), if given, runs as
    the n-th GET (1-based) arrives; it may block, or return an HTTP status to answer instead.
    Yields the URL."""
    import http.server

    gets = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            gets.append(self.path)
            status = before(len(gets)) if before else None
            if status:
                self.send_error(status)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    with local_http_server(Handler) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}/{name}"
