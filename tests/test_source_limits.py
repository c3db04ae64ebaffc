"""Sources in bounded time and size, one version per read, and storage errors that say what they
mean: HTTP bodies capped by max_bytes and the download by deadline_s (real local servers that send
forever or trickle), blob reads pinned to the first ETag (a blob overwritten mid-read in Azurite),
glob listings by literal prefix, a missing container failing once and named, a concurrent commit
with its cause, and a frozen storage endpoint failing in bounded time."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time

import pytest

from mounters import list_files, open_source
from pipeline.activities import ACTIVITIES
from processors import UnitError, run_unit
from tests.conftest import free_port


def serve_raw(handler):
    """A TCP server on 127.0.0.1 whose connections are handed to handler(conn); returns its base URL."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    stop = threading.Event()

    def loop():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            threading.Thread(target=_guard, args=(handler, conn), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    return f"http://127.0.0.1:{srv.getsockname()[1]}", lambda: (stop.set(), srv.close())


def _guard(handler, conn):
    try:
        conn.recv(65536)
        handler(conn)
    except OSError:
        pass
    finally:
        conn.close()


def copy_unit(src: dict, dest: str) -> dict:
    return {"processor": {"processor_name": "copy", "processor_type": "copy",
                          "processor_config": {"src": src, "dest": {"type": "local", "path": dest}}},
            "src": {"location": src, "name": "data.bin", "size": None}}


def endless(conn):
    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
    while True:
        conn.sendall(chunk)


def huge_declared(conn):
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000000\r\n\r\n" + b"x" * 1000)
    time.sleep(1)


def trickle(conn):
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
    for _ in range(1000):
        conn.sendall(b"x")
        time.sleep(1)


@pytest.mark.parametrize("handler, complaint", [(endless, "more than max_bytes=1048576"),
                                                (huge_declared, "the body is 10000000000 bytes, more than max_bytes")])
def test_an_http_body_beyond_max_bytes_fails_and_publishes_nothing(tmp_path, handler, complaint):
    base, stop = serve_raw(handler)
    try:
        src = {"type": "http", "url": f"{base}/data.bin", "max_bytes": 1 << 20, "timeout_s": 5}
        with pytest.raises(UnitError, match=complaint) as info:
            run_unit(copy_unit(src, f"{tmp_path}/out/"))
        assert info.value.permanent  # the same source is as big next time
    finally:
        stop()
    assert not any(f for _, _, fs in os.walk(tmp_path) for f in fs)  # no output, no temp file


def test_a_trickling_http_source_fails_at_its_deadline(tmp_path):
    """One byte a second never trips the per-read timeout (timeout_s=2); the deadline does."""
    base, stop = serve_raw(trickle)
    try:
        src = {"type": "http", "url": f"{base}/data.bin", "timeout_s": 2, "deadline_s": 3}
        started = time.monotonic()
        with pytest.raises(UnitError, match=r"did not finish within deadline_s=3 s") as info:
            run_unit(copy_unit(src, f"{tmp_path}/out/"))
        assert time.monotonic() - started < 8
        assert not info.value.permanent  # I/O: the executor may retry
    finally:
        stop()


def test_a_retried_error_answer_is_not_read_to_its_end(tmp_path):
    """A 503 whose body never ends: the transport retries without reading it (urllib3's own status
    retries would drain it first, forever)."""
    answers = []

    def handler(conn):
        answers.append(1)
        if len(answers) == 1:
            conn.sendall(b"HTTP/1.1 503 Busy\r\nRetry-After: 0\r\nTransfer-Encoding: chunked\r\n\r\n")
            chunk = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
            while True:
                conn.sendall(chunk)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\n0123456789")

    base, stop = serve_raw(handler)
    try:
        started = time.monotonic()
        result = run_unit(copy_unit({"type": "http", "url": f"{base}/data.bin", "timeout_s": 5}, f"{tmp_path}/out/"))
        assert result["outputs"][0]["bytes"] == 10 and len(answers) == 2
        assert time.monotonic() - started < 10
    finally:
        stop()


# --- blob ----------------------------------------------------------------------------------------

def blob(container, path="", **extra):
    return {"type": "blob", "connection": "RAW_STORAGE", "container": container, "path": path, **extra}


def test_a_blob_overwritten_while_it_is_read_fails_instead_of_mixing_versions(blob_env):
    client, c = blob_env
    old, new = os.urandom(12 << 20), os.urandom(12 << 20)
    client.get_blob_client(c, "big.bin").upload_blob(old)
    with open_source(blob(c, "big.bin")) as f:
        first = f.read(4 << 20)
        assert first == old[: 4 << 20]
        client.get_blob_client(c, "big.bin").upload_blob(new, overwrite=True)
        with pytest.raises(OSError, match="the blob changed while it was read"):
            f.read()
    # the unit's retry reads the new version whole
    with open_source(blob(c, "big.bin")) as f:
        assert hashlib.sha256(f.read()).digest() == hashlib.sha256(new).digest()


def test_a_blob_glob_lists_by_its_literal_prefix(blob_env, monkeypatch):
    from azure.storage.blob import ContainerClient

    client, c = blob_env
    for n in ["acme/2024-01-01.zip", "acme/2024-02-01.zip", "acme/2024-01-x/y.zip"]:
        client.get_blob_client(c, n).upload_blob(b"x")
    asked, real = [], ContainerClient.list_blobs

    def spy(self, name_starts_with=None, **kw):
        asked.append(name_starts_with)
        return real(self, name_starts_with=name_starts_with, **kw)

    monkeypatch.setattr(ContainerClient, "list_blobs", spy)
    assert [f["name"] for f in list_files(blob(c, "acme/2024-01-*.zip"))] == ["2024-01-01.zip"]
    assert [f["name"] for f in list_files(blob(c, "acme/"))] == ["2024-01-01.zip", "2024-01-x/y.zip", "2024-02-01.zip"]
    assert asked == ["acme/2024-01-", "acme/"]


def test_a_missing_container_fails_once_and_is_named(blob_env):
    processor = {"processor_name": "copy", "processor_type": "copy", "processor_config": {
        "src": blob("no-such-container", "landing/"), "dest": {"type": "local", "path": "/tmp/x/"}}}
    result = ACTIVITIES["list"]({"processor": processor, "previous_outputs": None})
    assert result == {"failed": "blob:RAW_STORAGE/no-such-container/landing/: container 'no-such-container' does not "
                                "exist (create it, or fix `container`)"}


def test_a_concurrent_commit_names_its_cause(blob_env):
    from writers import open_sink

    client, c = blob_env
    first, second = open_sink(blob(c, "out/"), "a.csv"), open_sink(blob(c, "out/"), "a.csv")
    for sink in (first, second):
        sink.write(b"x" * 1000)
        sink.finish()
        # Blocks are staged on background threads: the second writer's block must be staged before
        # the first commits (a commit discards the blob's uncommitted blocks), else it is staged
        # after, survives, and both commits succeed (a flake seen once in a fresh-clone run).
        sink.settle()
    first.commit()
    with pytest.raises(OSError, match="another writer committed this blob while this unit was writing it"):
        second.commit()
    second.close()
    assert client.get_blob_client(c, "out/a.csv").download_blob().readall() == b"x" * 1000


def test_a_frozen_storage_endpoint_fails_in_bounded_time(monkeypatch):
    """A storage endpoint that accepts connections and never answers."""
    frozen = socket.socket()
    frozen.bind(("127.0.0.1", free_port()))
    frozen.listen(16)
    held = []
    threading.Thread(target=lambda: [held.append(frozen.accept()) for _ in range(16)], daemon=True).start()
    port = frozen.getsockname()[1]
    monkeypatch.setenv("RAW_STORAGE", "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
                                      f"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;")
    started = time.monotonic()
    try:
        with pytest.raises(OSError, match="listing failed"):
            list_files(blob("landing", "x/", timeout_s=1))
        assert time.monotonic() - started < 40
    finally:
        frozen.close()
