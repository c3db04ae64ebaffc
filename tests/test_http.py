"""HTTP sources against a real local server: auth headers from settings, Range reads for zips,
errors that name the URL and never the token."""

import http.server
import json
import os
import threading
import zipfile

import pytest

from pipeline.config import ConfigError, validate_config
from processors import UnitError, run_unit

TOKEN = "Bearer tok-9f8e7d6c5b4a"


class Handler(http.server.BaseHTTPRequestHandler):
    root = ""
    ranges = True
    ranged_gets = 0

    def log_message(self, *args):
        pass

    def _body(self):
        if self.headers.get("Authorization") != TOKEN:
            self.send_error(401, "Unauthorized")
            return None
        path = os.path.join(self.root, self.path.split("?")[0].lstrip("/"))
        if not os.path.isfile(path):
            self.send_error(404)
            return None
        return open(path, "rb").read()

    def do_HEAD(self):
        data = self._body()
        if data is not None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            if self.ranges:
                self.send_header("Accept-Ranges", "bytes")
            self.end_headers()

    def do_GET(self):
        data = self._body()
        if data is None:
            return
        rng = self.headers.get("Range")
        if rng and self.ranges:
            start, end = (int(x) for x in rng.split("=")[1].split("-"))
            type(self).ranged_gets += 1
            part = data[start:end + 1]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{start + len(part) - 1}/{len(data)}")
            data = part
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server(tmp_path, monkeypatch):
    root = tmp_path / "www"
    root.mkdir()
    handler = type("H", (Handler,), {"root": str(root), "ranges": True, "ranged_gets": 0})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    monkeypatch.setenv("ACME_TOKEN", TOKEN)
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root, handler
    httpd.shutdown()
    httpd.server_close()


def http_unit(tmp_path, url, processor="copy", kind="copy", **cfg):
    src = {"type": "http", "url": url, "headers_from_env": {"Authorization": "ACME_TOKEN"}, "timeout_s": 10}
    return {"processor": {"processor_name": processor, "processor_type": kind, "processor_config": {
        "src": src, "dest": {"type": "local", "path": f"{tmp_path}/out/"}, **cfg}},
        "src": {"location": src, "name": url.rsplit("/", 1)[-1], "size": None}}


def test_copy_with_token_from_a_setting(server, tmp_path):
    base, root, _ = server
    (root / "data.jsonl").write_bytes(b'{"a": 1}\n' * 1000)
    result = run_unit(http_unit(tmp_path, f"{base}/data.jsonl"))
    assert (tmp_path / "out/data.jsonl").read_bytes() == b'{"a": 1}\n' * 1000
    assert "tok-9f8e7d6c5b4a" not in json.dumps(result)


def test_missing_token_error_names_url_not_token(server, tmp_path, monkeypatch):
    base, root, _ = server
    (root / "data.jsonl").write_bytes(b"{}\n")
    monkeypatch.setenv("ACME_TOKEN", "Bearer wrong-token-123456")
    with pytest.raises(UnitError) as info:
        run_unit(http_unit(tmp_path, f"{base}/data.jsonl"))
    assert f"http:{base}/data.jsonl: GET answered 401" in str(info.value)
    assert "wrong-token-123456" not in str(info.value)
    monkeypatch.delenv("ACME_TOKEN")
    with pytest.raises(UnitError, match="app setting 'ACME_TOKEN' is not set"):
        run_unit(http_unit(tmp_path, f"{base}/data.jsonl"))


def test_zip_over_http_uses_range_requests(server, tmp_path):
    base, root, handler = server
    with zipfile.ZipFile(root / "drop.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(3):
            zf.writestr(f"m{i}.jsonl", os.urandom(300_000).hex().encode())
    size = (root / "drop.zip").stat().st_size
    result = run_unit(http_unit(tmp_path, f"{base}/drop.zip", "decompress", "zip"))
    assert [o["name"] for o in result["outputs"]] == [f"drop/m{i}.jsonl" for i in range(3)]
    assert result["bytes_fetched"] <= 1.05 * size and handler.ranged_gets == result["fetch_requests"]


def test_zip_needs_range_support(server, tmp_path):
    base, root, handler = server
    handler.ranges = False
    with zipfile.ZipFile(root / "drop.zip", "w") as zf:
        zf.writestr("a.jsonl", b"{}\n")
    with pytest.raises(UnitError, match="does not answer Range requests"):
        run_unit(http_unit(tmp_path, f"{base}/drop.zip", "decompress", "zip"))


def test_transform_from_http(server, tmp_path):
    base, root, _ = server
    (root / "feed.jsonl").write_bytes(b'{"a": {"b": 1}}\n{"a": {"b": 2}}\n')
    result = run_unit(http_unit(tmp_path, f"{base}/feed.jsonl", "transform", "JSONL",
                                columns=[{"name": "b", "path": "a.b"}]))
    assert result["rows"] == 2 and (tmp_path / "out/feed.csv").read_bytes() == b"b\r\n1\r\n2\r\n"


def test_credential_in_url_is_rejected_with_path():
    with pytest.raises(ConfigError) as info:
        validate_config({"processors": [{"processor_name": "copy", "processor_config": {
            "src": {"type": "http", "url": "https://api.example.com/x?sv=1&sig=abcd"},
            "dest": {"type": "local", "path": "o/"}}}]})
    assert info.value.errors[0].startswith("processors[0].processor_config.src.url: ")
    assert "abcd" not in str(info.value)
