"""Blob mounter and writer against a real Azurite: listing, ranged reads (bytes fetched ~ 1x the
zip), staged-block writes that commit only on success, failures mid-stream, and the CLI end to end."""

import csv
import io
import json
import zipfile

import pytest

import mounters.blob
from pipeline.errors import MissingSource
import writers.blob
from mounters import list_files
from processors import UnitError, run_unit
from tests.conftest import AZURITE_KEY, FailingReader, run_cli, run_cli_peak_rss
from writers import OutputSet


def loc(container, path=""):
    return {"type": "blob", "connection": "RAW_STORAGE", "container": container, "path": path}


def upload(client, container, name, data: bytes):
    client.get_blob_client(container, name).upload_blob(data, overwrite=True)


def blob_bytes(client, container, name) -> bytes:
    return client.get_blob_client(container, name).download_blob().readall()


def names(client, container):
    return sorted(b.name for b in client.get_container_client(container).list_blobs())


def test_listing_file_folder_glob(blob_env):
    client, c = blob_env
    for n in ["acme/2024-01-01.zip", "acme/2024-01-02.zip", "acme/2024-02-01.zip", "acme/deep/x/2024-01-09.zip", "other/a"]:
        upload(client, c, n, b"x")
    assert [f["name"] for f in list_files(loc(c, "acme/2024-01-*.zip"))] == ["2024-01-01.zip", "2024-01-02.zip"]
    assert [f["name"] for f in list_files(loc(c, "acme/**/2024-01-*.zip"))] == [
        "2024-01-01.zip", "2024-01-02.zip", "deep/x/2024-01-09.zip"]
    assert len(list_files(loc(c, "acme/"))) == 4 and len(list_files(loc(c))) == 5
    (one,) = list_files(loc(c, "other/a"))
    assert one["name"] == "a" and one["size"] == 1 and one["location"]["path"] == "other/a"


def test_missing_blob_and_container_errors_name_location_not_secret(blob_env):
    client, c = blob_env
    with pytest.raises(MissingSource) as info:
        list_files(loc(c, "nope.zip"))
    assert f"blob:RAW_STORAGE/{c}/nope.zip" in str(info.value) and AZURITE_KEY not in str(info.value)
    with pytest.raises(MissingSource, match="container 'no-such-container' does not exist") as info:
        list_files(loc("no-such-container", "x"))
    assert AZURITE_KEY not in str(info.value)


def test_staged_blocks_round_trip_and_commit_only_on_success(blob_env):
    client, c = blob_env
    data = bytes(range(256)) * 1000  # 256 KB -> 4 blocks of 64 KiB
    folder = {**loc(c, "out/"), "block_size": 65536}
    with OutputSet() as outs:
        with outs.create(folder, "a.bin") as sink:
            for i in range(0, len(data), 10_000):
                sink.write(data[i:i + 10_000])
            assert names(client, c) == []  # staged, not visible
    assert blob_bytes(client, c, "out/a.bin") == data
    (out,) = outs.outputs
    import base64
    import hashlib
    assert out["sha256"] == hashlib.sha256(data).hexdigest() and out["bytes"] == len(data)
    # The SDK base64-encodes the ids it is given: on the wire they must fit 64 characters (Azurite's
    # SQL store keeps them in a VARCHAR(64) and answered 500 to ids we had encoded a second time),
    # and every block of a blob has an id of the same length.
    committed, _ = client.get_container_client(c).get_blob_client("out/a.bin").get_block_list("committed")
    wire = [base64.b64encode(b.id.encode()) for b in committed]
    assert len(wire) == 4 and len({len(w) for w in wire}) == 1 and len(wire[0]) <= 64, wire


def test_failure_leaves_pre_existing_blob_untouched(blob_env):
    client, c = blob_env
    upload(client, c, "out/a.bin", b"previous")
    with pytest.raises(RuntimeError):
        with OutputSet() as outs:
            with outs.create({**loc(c, "out/"), "block_size": 65536}, "a.bin") as sink:
                sink.write(b"x" * 300_000)
                raise RuntimeError("boom")
    assert blob_bytes(client, c, "out/a.bin") == b"previous" and names(client, c) == ["out/a.bin"]


def jsonl(n):
    return b"".join(json.dumps({"id": i, "v": {"x": "é" * (i % 7)}}).encode() + b"\n" for i in range(n))


def transform_unit(c, name, src_size=None, **cfg):
    return {"processor": {"processor_name": "transform", "processor_type": "JSONL", "processor_config": {
        "dest": {**loc(c, "csv/"), "block_size": 65536}, "columns": [{"name": "id", "path": "id"}, {"name": "x", "path": "v.x"}],
        **cfg}}, "src": {"location": loc(c, name), "name": name, "size": src_size}}


def test_destination_failing_on_a_staged_block(blob_env, monkeypatch):
    client, c = blob_env
    upload(client, c, "in.jsonl", jsonl(50_000))
    upload(client, c, "csv/in.csv", b"previous")
    real_stage, calls = writers.blob.BlobSink._stage, []

    def failing_stage(self, data):
        calls.append(len(data))
        if len(calls) == 3:
            raise OSError(f"{self.label}: staging block 2 failed: ServiceRequestError")
        return real_stage(self, data)

    monkeypatch.setattr(writers.blob.BlobSink, "_stage", failing_stage)
    with pytest.raises(UnitError, match="staging block 2 failed"):
        run_unit(transform_unit(c, "in.jsonl"))
    assert len(calls) == 3
    assert blob_bytes(client, c, "csv/in.csv") == b"previous" and names(client, c) == ["csv/in.csv", "in.jsonl"]


@pytest.mark.parametrize("kind", ["transform", "zip"])
def test_source_failing_mid_stream(blob_env, monkeypatch, kind):
    client, c = blob_env
    if kind == "transform":
        upload(client, c, "in.jsonl", jsonl(60_000))
        unit, existing = transform_unit(c, "in.jsonl"), "csv/in.csv"
    else:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
            for m in range(3):
                zf.writestr(f"m{m}.jsonl", jsonl(20_000))
        upload(client, c, "a.zip", buf.getvalue())
        unit = {"processor": {"processor_name": "decompress", "processor_type": "zip", "processor_config": {
            "src": loc(c, "a.zip"), "dest": loc(c, "x/")}}, "src": {"location": loc(c, "a.zip"), "name": "a.zip", "size": None}}
        existing = "x/a/m0.jsonl"
    upload(client, c, existing, b"previous")
    before = names(client, c)
    real_open = mounters.blob.open_source
    monkeypatch.setattr(mounters.blob, "open_source",
                        lambda l, seekable=False: io.BufferedReader(FailingReader(real_open(l, seekable), 1_500_000)))
    with pytest.raises(UnitError, match="connection reset by peer"):
        run_unit(unit)
    assert names(client, c) == before and blob_bytes(client, c, existing) == b"previous"


def test_zip_from_blob_fetches_each_byte_about_once(blob_env, tmp_path):
    from bench.datagen import write_zip

    client, c = blob_env
    path = tmp_path / "big.zip"
    write_zip(str(path), 60_000_000, files=6, level=1)
    size = path.stat().st_size
    with open(path, "rb") as f:
        client.get_blob_client(c, "big.zip").upload_blob(f, overwrite=True)
    unit = {"processor": {"processor_name": "decompress", "processor_type": "zip", "processor_config": {
        "src": loc(c, "big.zip"), "dest": loc(c, "x/")}}, "src": {"location": loc(c, "big.zip"), "name": "big.zip", "size": size}}
    result = run_unit(unit)
    ratio = result["bytes_fetched"] / size
    print(f"\nzip of {size / 1e6:.1f} MB from Azurite: fetched {result['bytes_fetched'] / 1e6:.1f} MB "
          f"in {result['fetch_requests']} ranged GETs = {ratio:.4f}x")
    assert len(result["outputs"]) == 6 and sum(o["bytes"] for o in result["outputs"]) >= 60_000_000
    assert ratio <= 1.05, ratio


def test_naive_seek_would_refetch(blob_env, tmp_path):
    """Why the ranged reader sits under a BufferedReader: unbuffered, every small zipfile read is a GET."""
    from mounters.ranged import RangedRaw, open_ranged

    client, c = blob_env
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("a.jsonl", jsonl(20_000))
    data = buf.getvalue()
    upload(client, c, "a.zip", data)
    blob = client.get_blob_client(c, "a.zip")
    fetch = lambda off, view: blob.download_blob(  # noqa: E731
        offset=off, length=len(view)).readinto(mounters.blob._ViewWriter(view))
    counts = {}
    for label, f in [("unbuffered", RangedRaw(fetch, len(data), "a.zip")),
                     ("buffered", open_ranged(fetch, len(data), "a.zip", 4 << 20))]:
        with zipfile.ZipFile(f) as zf, zf.open("a.jsonl") as m:
            while m.read(4096):
                pass
        raw = f if isinstance(f, RangedRaw) else f.raw
        counts[label] = (raw.requests, raw.bytes_fetched)
    print(f"\n{len(data)} byte zip, GETs / bytes fetched: {counts}")
    assert counts["unbuffered"][0] >= 20 * counts["buffered"][0]
    assert counts["buffered"][1] <= 1.05 * len(data)


def test_cli_zip_to_csv_in_azurite(blob_env, azurite, tmp_path):
    client, c = blob_env
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("d/one.jsonl", jsonl(1000))
        zf.writestr("d/two.jsonl", jsonl(500))
    upload(client, c, "landing/acme-2024-01-01.zip", buf.getvalue())
    cfg = {"processors": [
        {"processor_name": "decompress", "processor_type": "zip",
         "processor_config": {"src": loc(c, "landing/acme-*.zip"), "dest": loc(c, "raw/")}},
        {"processor_name": "transform", "processor_type": "JSONL",
         "processor_config": {"dest": loc(c, "csv/"), "columns": [{"name": "id", "path": "id"}, {"name": "x", "path": "v.x"}]}}]}
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    proc = run_cli("-v", "run", str(tmp_path / "c.json"), env={"RAW_STORAGE": azurite})
    assert proc.returncode == 0, proc.stderr
    assert AZURITE_KEY not in proc.stdout + proc.stderr
    for name, n in [("one", 1000), ("two", 500)]:
        rows = list(csv.reader(io.StringIO(blob_bytes(client, c, f"csv/acme-2024-01-01/d/{name}.csv").decode())))
        assert rows[0] == ["id", "x"] and len(rows) == n + 1
        assert rows[1:] == [[str(i), "é" * (i % 7)] for i in range(n)]
    props = client.get_blob_client(c, "csv/acme-2024-01-01/d/one.csv").get_blob_properties()
    assert props.content_settings.content_type == "text/csv"


@pytest.mark.slow
def test_300mb_zip_from_and_to_azurite_peak_rss(blob_env, azurite, tmp_path):
    from bench.datagen import write_zip

    client, c = blob_env
    lines = write_zip(str(tmp_path / "big.zip"), 300_000_000, files=3, level=1)
    with open(tmp_path / "big.zip", "rb") as f:
        client.get_blob_client(c, "landing/big.zip").upload_blob(f, overwrite=True, max_concurrency=2)
    (tmp_path / "big.zip").unlink()
    cfg = {"processors": [
        {"processor_name": "decompress", "processor_type": "zip",
         "processor_config": {"src": loc(c, "landing/big.zip"), "dest": loc(c, "raw/")}},
        {"processor_name": "transform", "processor_type": "JSONL",
         "processor_config": {"dest": loc(c, "csv/"), "columns": [
             {"name": "id", "path": "event_id"}, {"name": "city", "path": "user.address.city"},
             {"name": "items", "path": "order.items"}]}}]}
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    code, out, err, peak = run_cli_peak_rss("run", str(tmp_path / "c.json"), "-q", "--workers", "2",
                                            env={"RAW_STORAGE": azurite})
    assert code == 0, err
    manifest = json.loads(out)
    assert manifest["totals"]["rows"] == lines and manifest["steps"][0]["bytes_written"] >= 300_000_000
    fetched = manifest["steps"][0]["results"][0]
    print(f"\n300 MB zip -> CSV (Azurite -> Azurite): {lines} rows, peak RSS {peak:.1f} MB, "
          f"zip fetched {fetched['bytes_fetched'] / fetched['src_bytes']:.4f}x")
    assert peak < 128, f"peak RSS {peak:.1f} MB"


def members_unit(client, c, n: int) -> dict:
    """A zip of n one-line members in the container, and a decompress unit writing them to x/."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(n):
            zf.writestr(f"d{i % 5}/m{i:04d}.jsonl", f'{{"id": {i}}}\n')
    upload(client, c, "many.zip", buf.getvalue())
    return {"processor": {"processor_name": "decompress", "processor_type": "zip", "processor_config": {
        "src": loc(c, "many.zip"), "dest": loc(c, "x/")}}, "src": {"location": loc(c, "many.zip"), "name": "many.zip",
                                                                 "size": None}}


def wrap_blob_client(monkeypatch, method: str, before):
    """Wrap BlobClient.<method> (the real SDK call to Azurite): `before(call_number)` runs first."""
    import threading

    from azure.storage.blob import BlobClient

    real, lock, calls = getattr(BlobClient, method), threading.Lock(), [0]

    def wrapped(self, *args, **kwargs):
        with lock:
            calls[0] += 1
            number = calls[0]
        before(number)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(BlobClient, method, wrapped)
    return calls


def test_many_members_stage_and_commit_concurrently_within_bounds(blob_env, monkeypatch):
    """100,000 members must not be 200,000 round trips one after another: blocks are staged and
    blobs committed several at a time, never more than the writer's thread counts."""
    import threading
    import time

    from writers.base import COMMIT_THREADS

    client, c = blob_env
    peaks = {}
    for method in ("stage_block", "commit_block_list"):
        state = {"now": 0, "max": 0}
        lock = threading.Lock()

        def before(number, state=state, lock=lock):
            with lock:
                state["now"] += 1
                state["max"] = max(state["max"], state["now"])
            time.sleep(0.02)  # a round trip to a far service
            with lock:
                state["now"] -= 1

        wrap_blob_client(monkeypatch, method, before)
        peaks[method] = state
    n = 120
    result = run_unit(members_unit(client, c, n))
    assert result["outputs_manifest"]["outputs"] == n
    assert len([b for b in names(client, c) if b.startswith("x/many/d")]) == n
    assert 1 < peaks["stage_block"]["max"] <= writers.blob.STAGE_THREADS, peaks
    assert 1 < peaks["commit_block_list"]["max"] <= COMMIT_THREADS, peaks


def test_a_block_failing_on_a_staging_thread_fails_the_unit_with_nothing_visible(blob_env, monkeypatch):
    from azure.core.exceptions import ServiceRequestError

    client, c = blob_env
    unit = members_unit(client, c, 400)
    before = names(client, c)

    def before_call(number):
        if number == 10:
            raise ServiceRequestError("Connection reset by peer")

    calls = wrap_blob_client(monkeypatch, "stage_block", before_call)
    with pytest.raises(UnitError, match=r"x/many/d\d/m\d{4}\.jsonl: staging block 0 failed: .*Connection reset") as exc:
        run_unit(unit)
    # The destination's I/O, not a damaged member: the unit is retried (it was once said as
    # "member '...': TransientError: ..." and classified permanent, failing the run without a retry).
    assert not exc.value.permanent and "member '" not in str(exc.value), str(exc.value)
    assert names(client, c) == before  # no member, no manifest: nothing of the unit is visible
    assert calls[0] < 100, f"{calls[0]} blocks staged after the 10th failed: the unit should stop at once"


def test_a_commit_failing_stops_the_commits_and_publishes_no_manifest(blob_env, monkeypatch):
    from azure.core.exceptions import ServiceRequestError

    from writers.base import COMMIT_THREADS, MANIFEST_PREFIX

    client, c = blob_env
    unit = members_unit(client, c, 400)

    def before_call(number):
        if number == 30:
            raise ServiceRequestError("Connection reset by peer")

    calls = wrap_blob_client(monkeypatch, "commit_block_list", before_call)
    with pytest.raises(UnitError, match="the commit failed: .*Connection reset"):
        run_unit(unit)
    visible = names(client, c)
    assert not any(MANIFEST_PREFIX in b for b in visible)  # the member manifest goes last: never, after a failure
    assert calls[0] <= 30 + 5 * COMMIT_THREADS, f"{calls[0]} commits: the first failure should stop them"
