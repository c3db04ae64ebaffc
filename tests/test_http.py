"""HTTP sources against real HTTP servers on 127.0.0.1 (http.server in a thread): tokens from
settings, Range reads for zips, truncated bodies, redirects, errors that name the URL and never the
token, and URLs with credentials refused by config validation."""

import gzip
import hashlib
import http.server
import io
import json
import os
import re
import socket
import tarfile
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

import mounters
from mounters.base import TEMP_PREFIX
from pipeline.config import ConfigError, validate_config
from processors import UnitError, run_unit
from tests.conftest import header_origin

TOKEN_VALUE = "tok-9f8e7d6c5b4a3210"
TOKEN = f"Bearer {TOKEN_VALUE}"


@dataclass
class State:
    """What a test server does; tests change it between requests."""

    root: Path
    token: str | None = None  # required Authorization value (None: no auth)
    echo_auth: bool = False  # put the Authorization it got into the 401 reason (a careless server)
    ranges: bool = True  # answer Range requests with 206; False: ignore Range, answer 200
    max_range: int | None = None  # answer at most this many bytes per Range request (allowed by RFC 9110)
    fail: int | None = None  # answer every request with this status
    truncate_at: int | None = None  # send only this many body bytes, then close the connection
    chunked: bool = False  # Transfer-Encoding: chunked instead of Content-Length
    redirects: dict = field(default_factory=dict)  # path -> Location
    etag: str | None = None  # "strict": ETag + honour If-Match (412); "header": send an ETag, ignore If-Match
    after_request: object = None  # callable(state, method, path, range) run after each answer
    log: list = field(default_factory=list)  # (method, path, Range, Authorization) per request


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self._serve(body=False)

    def do_GET(self):
        self._serve(body=True)

    def _empty(self, status, reason=None, headers=()):
        self.send_response(status, reason)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _serve(self, body):
        st: State = self.server.state
        path = urlsplit(self.path).path
        rng, auth = self.headers.get("Range"), self.headers.get("Authorization")
        st.log.append((self.command, path, rng, auth))
        try:
            self._answer(st, path, rng, auth, body)
        finally:
            if st.after_request:
                st.after_request(st, self.command, path, rng)

    def _answer(self, st, path, rng, auth, body):
        if path in st.redirects:
            return self._empty(302, headers=[("Location", st.redirects[path])])
        if st.fail:
            return self._empty(st.fail)
        if st.token is not None and auth != st.token:
            return self._empty(401, f"Unauthorized: bad credentials {auth}" if st.echo_auth else "Unauthorized")
        file = st.root / path.lstrip("/")
        if not file.is_file():
            return self._empty(404)
        data = file.read_bytes()
        status, headers = 200, []
        if st.etag:
            tag = '"%s"' % hashlib.sha1(data).hexdigest()
            headers.append(("ETag", tag))
            if st.etag == "strict" and self.headers.get("If-Match") not in (None, tag):
                return self._empty(412, "Precondition Failed")
        if st.ranges:
            headers.append(("Accept-Ranges", "bytes"))
            if rng:
                m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng)
                start, end = int(m[1]), min(int(m[2] or len(data) - 1), len(data) - 1)
                if st.max_range:
                    end = min(end, start + st.max_range - 1)
                if start >= len(data):
                    return self._empty(416, headers=[("Content-Range", f"bytes */{len(data)}")])
                status, data = 206, data[start:end + 1]
                headers.append(("Content-Range", f"bytes {start}-{end}/{file.stat().st_size}"))
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Transfer-Encoding" if st.chunked else "Content-Length", "chunked" if st.chunked else str(len(data)))
        self.end_headers()
        if not body:
            return
        sent = data if st.truncate_at is None else data[:st.truncate_at]
        if st.chunked:
            for i in range(0, len(sent), 1000):
                piece = sent[i:i + 1000]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            if st.truncate_at is None:
                self.wfile.write(b"0\r\n\r\n")
        else:
            self.wfile.write(sent)
        if st.truncate_at is not None:
            self.close_connection = True


@pytest.fixture
def start_server(tmp_path):
    started = []

    def start(name="www", **options):
        root = tmp_path / name
        root.mkdir()
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        httpd.state = State(root, **options)
        thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        thread.start()
        started.append((httpd, thread))
        return f"http://127.0.0.1:{httpd.server_address[1]}", httpd.state

    yield start
    for httpd, thread in started:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def server(start_server, monkeypatch):
    """A server that requires the token; ACME_TOKEN holds it, as an app setting would."""
    monkeypatch.setenv("ACME_TOKEN", TOKEN)
    base, state = start_server(token=TOKEN)
    header_origin(monkeypatch, "ACME_TOKEN", base)
    return base, state


def http_unit(tmp_path, url, processor="copy", kind="copy", headers=None, **cfg):
    src = {"type": "http", "url": url, "timeout_s": 10,
           "headers_from_env": {"Authorization": "ACME_TOKEN"} if headers is None else headers}
    return {"processor": {"processor_name": processor, "processor_type": kind, "processor_config": {
        "src": src, "dest": {"type": "local", "path": f"{tmp_path}/out/"}, **cfg}},
        "src": mounters.list_files(src)[0]}


def files(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs)


def assert_no_temp_files(tmp_path):
    assert not [f for f in files(tmp_path) if TEMP_PREFIX in f]


# --- copy, auth, errors --------------------------------------------------------------------------

def test_copy_with_token_from_a_setting(server, tmp_path):
    base, state = server
    body = b'{"a": 1}\n' * 10_000
    (state.root / "data.jsonl").write_bytes(body)
    result = run_unit(http_unit(tmp_path, f"{base}/data.jsonl"))
    assert (tmp_path / "out/data.jsonl").read_bytes() == body
    assert result["outputs"] == [{"location": {"type": "local", "path": f"{tmp_path}/out/data.jsonl"},
                                  "name": "data.jsonl", "bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}]
    assert result["src"] == f"http:{base}/data.jsonl"
    assert result["src_bytes"] == len(body) and result["bytes_fetched"] == len(body)
    assert state.log == [("GET", "/data.jsonl", None, TOKEN)]  # the header was sent, once
    assert json.loads(json.dumps(result)) == result  # a small JSON result, as executors carry it
    assert TOKEN_VALUE not in json.dumps(result)  # it names the setting, never its value
    assert result["src_location"]["headers_from_env"] == {"Authorization": "ACME_TOKEN"}
    assert files(tmp_path / "out") == ["data.jsonl"]


def test_wrong_token_401_names_the_url_never_the_token(server, tmp_path, monkeypatch):
    base, state = server
    (state.root / "data.jsonl").write_bytes(b"{}\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "out/data.jsonl").write_bytes(b"previous")
    wrong = "Bearer wrong-secret-123456"
    monkeypatch.setenv("ACME_TOKEN", wrong)
    state.echo_auth = True  # the server even puts the credential it got into its reason phrase
    with pytest.raises(UnitError) as info:
        run_unit(http_unit(tmp_path, f"{base}/data.jsonl?page=2"))
    message = str(info.value)
    assert message.startswith(f"http:{base}/data.jsonl: GET answered 401 Unauthorized")
    assert "/data.jsonl" in message and "wrong-secret-123456" not in message and "page=2" not in message
    assert (tmp_path / "out/data.jsonl").read_bytes() == b"previous"
    assert_no_temp_files(tmp_path)


def test_missing_token_401_and_unset_setting(server, tmp_path, monkeypatch):
    base, state = server
    (state.root / "data.jsonl").write_bytes(b"{}\n")
    # No header configured: the server answers 401.
    with pytest.raises(UnitError) as info:
        run_unit(http_unit(tmp_path, f"{base}/api/v1/data.jsonl", headers={}))
    assert str(info.value) == f"http:{base}/api/v1/data.jsonl: GET answered 401 Unauthorized"
    assert TOKEN_VALUE not in str(info.value)
    # The setting the config names is not set: that is the error, before any request.
    monkeypatch.delenv("ACME_TOKEN")
    requests = len(state.log)
    with pytest.raises(UnitError, match="app setting 'ACME_TOKEN' is not set"):
        run_unit(http_unit(tmp_path, f"{base}/data.jsonl"))
    assert len(state.log) == requests
    assert not (tmp_path / "out").exists()


def test_server_error_fails_and_keeps_previous_output(server, tmp_path):
    base, state = server
    (state.root / "data.jsonl").write_bytes(b"new\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "out/data.jsonl").write_bytes(b"previous")
    state.fail = 500
    with pytest.raises(UnitError, match=re.escape(f"http:{base}/data.jsonl: GET answered 500")):
        run_unit(http_unit(tmp_path, f"{base}/data.jsonl"))
    state.fail = None
    with pytest.raises(UnitError, match=re.escape(f"http:{base}/missing.jsonl: GET answered 404")):
        run_unit(http_unit(tmp_path, f"{base}/missing.jsonl"))
    assert files(tmp_path / "out") == ["data.jsonl"] and (tmp_path / "out/data.jsonl").read_bytes() == b"previous"


def test_connection_refused_names_the_url(tmp_path):
    with socket.socket() as s:  # a port nobody listens on once it is closed
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    with pytest.raises(UnitError, match=re.escape(f"http:http://127.0.0.1:{dead}/x.jsonl: GET failed: ")):
        run_unit(http_unit(tmp_path, f"http://127.0.0.1:{dead}/x.jsonl", headers={}))


@pytest.mark.parametrize("chunked", [False, True])
def test_body_cut_short_fails_and_publishes_nothing(server, tmp_path, chunked):
    """http.client reports a body that stops before its Content-Length as a normal end."""
    base, state = server
    (state.root / "data.jsonl").write_bytes(b'{"a": 1}\n' * 50_000)
    (tmp_path / "out").mkdir()
    (tmp_path / "out/data.jsonl").write_bytes(b"previous")
    state.truncate_at, state.chunked = 200_000, chunked
    with pytest.raises(UnitError) as info:
        run_unit(http_unit(tmp_path, f"{base}/data.jsonl"))
    assert str(info.value).startswith(f"http:{base}/data.jsonl: ")
    assert ("IncompleteRead" if chunked else "the body ended after 200000 of 450000 bytes") in str(info.value)
    assert files(tmp_path / "out") == ["data.jsonl"] and (tmp_path / "out/data.jsonl").read_bytes() == b"previous"


def test_chunked_body_is_copied(server, tmp_path):
    base, state = server
    body = os.urandom(123_457)
    (state.root / "blob.bin").write_bytes(body)
    state.chunked = True
    result = run_unit(http_unit(tmp_path, f"{base}/blob.bin"))
    assert (tmp_path / "out/blob.bin").read_bytes() == body and result["bytes_fetched"] == len(body)
    assert result["src_bytes"] is None  # no Content-Length


def test_redirect_to_another_origin_drops_the_token(server, start_server, tmp_path):
    base, state = server
    other, other_state = start_server("other")  # another port: another origin
    (other_state.root / "data.jsonl").write_bytes(b"moved\n")
    (state.root / "data.jsonl").write_bytes(b"same origin\n")
    state.redirects = {"/moved.jsonl": f"{other}/data.jsonl", "/old.jsonl": "/data.jsonl"}
    run_unit(http_unit(tmp_path, f"{base}/moved.jsonl"))
    assert (tmp_path / "out/moved.jsonl").read_bytes() == b"moved\n"
    assert other_state.log == [("GET", "/data.jsonl", None, None)]  # the token stayed home
    run_unit(http_unit(tmp_path, f"{base}/old.jsonl"))  # same origin: the token goes along
    assert (tmp_path / "out/old.jsonl").read_bytes() == b"same origin\n"
    assert state.log[-1] == ("GET", "/data.jsonl", None, TOKEN)


def test_output_name_from_config_cannot_escape_the_destination(start_server):
    base, _ = start_server()
    assert mounters.list_files({"type": "http", "url": f"{base}/export?id=7", "name": "day-1.jsonl"})[0]["name"] == "day-1.jsonl"
    assert mounters.list_files({"type": "http", "url": f"{base}/a/export.jsonl"})[0]["name"] == "export.jsonl"
    for bad in ["../evil.jsonl", "/etc/evil.jsonl", "a/../../evil.jsonl"]:
        with pytest.raises(ValueError, match="is not a safe relative file name"):
            mounters.list_files({"type": "http", "url": f"{base}/x", "name": bad})


# --- zip over Range requests ---------------------------------------------------------------------

def make_zip(path, members):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data, compress_type=zipfile.ZIP_STORED if name.endswith(".bin") else zipfile.ZIP_DEFLATED)
    return path.stat().st_size


def check_outputs(result, expected):
    assert [o["name"] for o in result["outputs"]] == list(expected)
    for o in result["outputs"]:
        data = Path(o["location"]["path"]).read_bytes()
        assert data == expected[o["name"]] and o["sha256"] == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("max_range", [None, 100_000])
def test_zip_over_http_uses_range_requests(server, tmp_path, max_range):
    base, state = server
    state.max_range = max_range  # a server may answer less than asked: the rest is asked for again
    body = {f"day/{i}/m{i}.jsonl": os.urandom(150_000).hex().encode() for i in range(3)}
    size = make_zip(state.root / "drop.zip", body)
    result = run_unit(http_unit(tmp_path, f"{base}/drop.zip", "decompress", "zip"))
    check_outputs(result, {f"drop/{n}": d for n, d in body.items()})
    assert result["src_bytes"] == size
    assert result["bytes_fetched"] <= 1.05 * size, result
    gets = [entry for entry in state.log if entry[0] == "GET"]
    assert all(rng and auth == TOKEN for _, _, rng, auth in gets)  # never a whole-file GET
    assert gets[0][2] == "bytes=0-0"  # the probe: size and proof that Range works
    if max_range is None:
        assert len(gets) == result["fetch_requests"] + 1
    else:
        assert len(gets) > result["fetch_requests"] + 1


def test_zip_over_http_beyond_max_bytes_fails_before_reading_it(server, tmp_path):
    base, state = server
    size = make_zip(state.root / "big.zip", {"a.jsonl": os.urandom(300_000)})
    unit = http_unit(tmp_path, f"{base}/big.zip", "decompress", "zip")
    unit["processor"]["processor_config"]["src"]["max_bytes"] = unit["src"]["location"]["max_bytes"] = 100_000
    with pytest.raises(UnitError, match=f"the file is {size} bytes, more than max_bytes=100000"):
        run_unit(unit)
    assert [r for _, _, r, _ in state.log] == ["bytes=0-0"]  # the probe only


def test_zip_over_http_does_not_fetch_members_left_out(server, tmp_path):
    base, state = server
    body = {"big/video.bin": os.urandom(6 << 20), "data/x.jsonl": b'{"a": 1}\n' * 1000}
    size = make_zip(state.root / "drop.zip", body)
    result = run_unit(http_unit(tmp_path, f"{base}/drop.zip", "decompress", "zip", members="**/*.jsonl"))
    check_outputs(result, {"drop/data/x.jsonl": body["data/x.jsonl"]})
    assert result["members_skipped"] == 1
    assert result["bytes_fetched"] < 0.05 * size


def test_zip_needs_range_support(server, tmp_path):
    base, state = server
    state.ranges = False
    make_zip(state.root / "drop.zip", {"a.jsonl": b"{}\n"})
    with pytest.raises(UnitError) as info:
        run_unit(http_unit(tmp_path, f"{base}/drop.zip", "decompress", "zip"))
    assert str(info.value).startswith(f"http:{base}/drop.zip: this processor needs a seekable source and the "
                                      "server does not answer Range requests")
    assert not (tmp_path / "out").exists()


def test_zip_that_changes_between_range_requests_fails(server, tmp_path):
    base, state = server
    make_zip(state.root / "drop.zip", {"a.jsonl": os.urandom(50_000).hex().encode()})

    def grow_after_probe(st, method, path, rng):
        if rng == "bytes=0-0":
            with open(st.root / "drop.zip", "ab") as f:
                f.write(b"appended by a new upload")

    state.after_request = grow_after_probe
    with pytest.raises(UnitError, match="did the file change"):
        run_unit(http_unit(tmp_path, f"{base}/drop.zip", "decompress", "zip"))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("etag, expected", [("strict", "the file changed since it was first read"),
                                             ("header", "the file changed while it was read")])
def test_zip_rewritten_in_place_between_range_requests_fails(server, tmp_path, etag, expected):
    """Same size, other bytes: only the ETag can tell. A server that honours If-Match answers 412;
    for one that ignores it, the ETag of each answer is compared."""
    base, state = server
    state.etag = etag
    make_zip(state.root / "drop.zip", {"a.jsonl": os.urandom(50_000).hex().encode()})

    def rewrite_after_probe(st, method, path, rng):
        if rng == "bytes=0-0":
            data = bytearray((st.root / "drop.zip").read_bytes())
            data[100] ^= 0xFF
            (st.root / "drop.zip").write_bytes(bytes(data))

    state.after_request = rewrite_after_probe
    with pytest.raises(UnitError, match=expected):
        run_unit(http_unit(tmp_path, f"{base}/drop.zip", "decompress", "zip"))
    assert not (tmp_path / "out").exists()


def test_zip_with_etag_reads_normally(server, tmp_path):
    base, state = server
    state.etag = "strict"
    make_zip(state.root / "drop.zip", {"a.jsonl": b'{"id": 1}\n'})
    result = run_unit(http_unit(tmp_path, f"{base}/drop.zip", "decompress", "zip"))
    assert [o["name"] for o in result["outputs"]] == ["drop/a.jsonl"]
    assert all(entry[0] == "GET" for entry in state.log)


def test_gzip_and_tar_gz_over_http_stream_without_ranges(server, tmp_path):
    base, state = server
    state.ranges = False  # they read one stream front to back
    (state.root / "a.jsonl.gz").write_bytes(gzip.compress(b'{"a": 1}\n' * 1000))
    with tarfile.open(state.root / "b.tgz", "w:gz") as tf:
        info = tarfile.TarInfo("d/b.jsonl")
        info.size = 9
        tf.addfile(info, io.BytesIO(b'{"b": 2}\n'))
    run_unit(http_unit(tmp_path, f"{base}/a.jsonl.gz", "decompress", "gzip"))
    run_unit(http_unit(tmp_path, f"{base}/b.tgz", "decompress", "tar.gz"))
    assert files(tmp_path / "out") == ["a.jsonl", "b/d/b.jsonl"]
    assert (tmp_path / "out/a.jsonl").read_bytes() == b'{"a": 1}\n' * 1000


# --- transform -----------------------------------------------------------------------------------

def test_jsonl_transform_from_http(server, tmp_path):
    base, state = server
    lines = [{"a": 1, "b": "x"}, {"a": "two, with comma"}, {"b": 3}, {"a": None}]
    (state.root / "feed.jsonl").write_bytes(b"".join(json.dumps(l).encode() + b"\n" for l in lines))
    result = run_unit(http_unit(tmp_path, f"{base}/feed.jsonl", "transform", "JSONL",
                                columns=[{"name": "a", "path": "a"}]))
    assert result["rows"] == 4 and result["rejects"] == 0
    assert (tmp_path / "out/feed.csv").read_bytes() == b'a\r\n1\r\n"two, with comma"\r\n""\r\n""\r\n'
    assert TOKEN_VALUE not in json.dumps(result)


def test_jsonl_transform_bad_line_names_url_and_line(server, tmp_path):
    base, state = server
    (state.root / "feed.jsonl").write_bytes(b'{"a": 1}\n{"a": 2}\nnot json\n')
    with pytest.raises(UnitError, match=re.escape(f"http:{base}/feed.jsonl:3: ")):
        run_unit(http_unit(tmp_path, f"{base}/feed.jsonl", "transform", "JSONL", columns=[{"name": "a", "path": "a"}]))
    assert not (tmp_path / "out").exists() or files(tmp_path / "out") == []


# --- config --------------------------------------------------------------------------------------

def config_with_url(url, index=0):
    copy = {"processor_name": "copy", "processor_config": {
        "src": {"type": "local", "path": "in/"}, "dest": {"type": "local", "path": "o/"}}}
    http_step = {"processor_name": "transform", "processor_type": "JSONL", "processor_config": {
        "src": {"type": "http", "url": url, "headers_from_env": {"Authorization": "ACME_TOKEN"}},
        "dest": {"type": "local", "path": "csv/"}, "columns": [{"name": "a", "path": "a"}]}}
    return {"sourcemart": "acme", "processors": [http_step] if index == 0 else [copy, http_step]}


@pytest.mark.parametrize("url, complaint", [
    ("https://api.example.com/x?sv=2024&sig=abcdSECRET", "query parameter 'sig' looks like a credential"),
    ("https://api.example.com/x?code=abcdSECRET", "query parameter 'code' looks like a credential"),
    ("https://user:abcdSECRET@api.example.com/x", "must not embed credentials"),
])
@pytest.mark.parametrize("index", [0, 1])
def test_credential_in_url_is_rejected_with_its_json_path(url, complaint, index):
    with pytest.raises(ConfigError) as info:
        validate_config(config_with_url(url, index))
    assert info.value.errors == [f"processors[{index}].processor_config.src.url: {complaint}; use headers_from_env"]
    assert "abcdSECRET" not in str(info.value)


def test_url_without_credentials_is_accepted():
    config = validate_config(config_with_url("https://api.example.com/export?day=2024-01-01&page=2"))
    assert config.processors[0].processor_config.src.url.endswith("page=2")
