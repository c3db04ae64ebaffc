"""A transform whose src is an archive: members are read straight into the converter (nothing is
extracted), one CSV per member, named as decompress + transform would name them."""

import gzip
import io
import json
import os
import tarfile
import zipfile

import pytest

from processors import UnitError, run_unit
from processors.transform import kernel as native


@pytest.fixture(params=["python", "native"])
def engine(request):
    if request.param == "native" and not native.available():
        pytest.skip("the native kernel is not built (make test requires it when the build succeeded)")
    return request.param


def body(n, start=0):
    return b"".join(json.dumps({"a": i, "b": {"c": f"x{i}"}}).encode() + b"\n" for i in range(start, start + n))


COLUMNS = [{"name": "a", "path": "a"}, {"name": "c", "path": "b.c"}]


def unit(tmp_path, name, engine, archive, **config):
    cfg = {"dest": {"type": "local", "path": f"{tmp_path}/dest/"}, "columns": COLUMNS, "engine": engine,
           "archive": archive, **config}
    return {"processor": {"processor_name": "transform", "processor_type": "JSONL", "processor_config": cfg},
            "src": {"location": {"type": "local", "path": str(tmp_path / name)}, "name": name, "size": None}}


def expected_csv(n, start=0):
    return "a,c\r\n" + "".join(f"{i},x{i}\r\n" for i in range(start, start + n))


def files_under(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def test_zip_members_by_glob_become_one_csv_each(tmp_path, engine):
    with zipfile.ZipFile(tmp_path / "drop.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("data/part-1.jsonl", body(3000))
        zf.writestr("data/deep/part-2.ndjson", body(50, 3000))
        zf.writestr("readme.txt", b"not selected")
    result = run_unit(unit(tmp_path, "drop.zip", engine, "zip", members="data/**"))
    assert files_under(tmp_path / "dest") == ["drop/data/deep/part-2.csv", "drop/data/part-1.csv"]
    assert (tmp_path / "dest/drop/data/part-1.csv").read_text(newline="") == expected_csv(3000)
    assert (tmp_path / "dest/drop/data/deep/part-2.csv").read_text(newline="") == expected_csv(50, 3000)
    assert result["rows"] == 3050 and result["engine"] == engine
    assert files_under(tmp_path) == ["dest/drop/data/deep/part-2.csv", "dest/drop/data/part-1.csv", "drop.zip"]


def test_gzip_and_tar_gz(tmp_path, engine):
    (tmp_path / "events.jsonl.gz").write_bytes(gzip.compress(body(10)))
    result = run_unit(unit(tmp_path, "events.jsonl.gz", engine, "gzip"))
    assert (tmp_path / "dest/events.csv").read_text(newline="") == expected_csv(10) and result["rows"] == 10
    with tarfile.open(tmp_path / "t.tar.gz", "w:gz") as tf:
        for name, data in [("x/a.jsonl", body(5)), ("x/b.jsonl", body(7, 5))]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    result = run_unit(unit(tmp_path, "t.tar.gz", engine, "tar.gz", members="**/b.jsonl"))
    assert (tmp_path / "dest/t/x/b.csv").read_text(newline="") == expected_csv(7, 5) and result["rows"] == 7
    assert not (tmp_path / "dest/t/x/a.csv").exists()


def test_a_bad_line_names_member_and_line_and_nothing_is_published(tmp_path, engine):
    with zipfile.ZipFile(tmp_path / "drop.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.jsonl", body(100))
        zf.writestr("b.jsonl", body(40) + b'{"a": 1,, }\n' + body(5))
    with pytest.raises(UnitError, match=r"drop.zip: member 'b.jsonl' line 41: "):
        run_unit(unit(tmp_path, "drop.zip", engine, "zip"))
    assert not (tmp_path / "dest").exists() or files_under(tmp_path / "dest") == []


def test_quarantine_per_member(tmp_path, engine):
    with zipfile.ZipFile(tmp_path / "drop.zip", "w") as zf:
        zf.writestr("b.jsonl", body(3) + b"not json\n")
    rejects = {"type": "local", "path": f"{tmp_path}/rejects/"}
    # the reject budget holds per member: 1 of 4 lines is over the default 1%, and nothing is published
    with pytest.raises(UnitError, match=r"drop.zip: member 'b.jsonl': 1 of 4 lines were rejected"):
        run_unit(unit(tmp_path, "drop.zip", engine, "zip", on_error="quarantine", rejects=rejects))
    assert not (tmp_path / "rejects").exists()
    result = run_unit(unit(tmp_path, "drop.zip", engine, "zip", on_error="quarantine", rejects=rejects,
                           max_reject_ratio=0.5))
    assert result["rejects"] == 1 and result["first_reject"] == {"member": "b.jsonl", "line": 4,
                                                                 "error": result["first_reject"]["error"]}
    assert (tmp_path / "rejects/drop/b.rejects.jsonl").read_bytes() == b"not json\n"


@pytest.mark.parametrize("method", [zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED, zipfile.ZIP_BZIP2])
def test_a_damaged_member_is_named_and_nothing_is_published(tmp_path, engine, method):
    with zipfile.ZipFile(tmp_path / "drop.zip", "w", method) as zf:
        zf.writestr("a.jsonl", body(2000))
    raw = bytearray((tmp_path / "drop.zip").read_bytes())
    central = raw.rindex(b"PK\x01\x02")
    raw[central + 16] ^= 0xFF  # the CRC-32 the central directory lists
    (tmp_path / "drop.zip").write_bytes(bytes(raw))
    with pytest.raises(UnitError, match=r"drop.zip: member 'a.jsonl': BadZipFile: .*CRC"):
        run_unit(unit(tmp_path, "drop.zip", engine, "zip", on_error="skip"))
    assert not (tmp_path / "dest").exists() or files_under(tmp_path / "dest") == []


@pytest.mark.parametrize("damage", ["truncated", "bad deflate block", "bad CRC"])
def test_a_damaged_gzip_fails_naming_it(tmp_path, engine, damage):
    data = bytearray(gzip.compress(body(5000)))
    if damage == "truncated":
        data = data[: len(data) - 100]
    else:
        data[20 if damage == "bad deflate block" else -8] ^= 0xFF
    (tmp_path / "e.jsonl.gz").write_bytes(bytes(data))
    with pytest.raises(UnitError, match=r"e.jsonl.gz: member 'e.jsonl': (EOFError|IsalError|BadGzipFile)"):
        run_unit(unit(tmp_path, "e.jsonl.gz", engine, "gzip", on_error="skip"))
    assert not (tmp_path / "dest").exists() or files_under(tmp_path / "dest") == []


def test_members_without_archive_is_a_config_error(tmp_path):
    from pipeline.config import ConfigError, validate_config

    with pytest.raises(ConfigError, match=r"processor_config.members: only used with archive"):
        validate_config({"sourcemart": "s", "table": "t", "processors": [
            {"processor_name": "transform", "processor_type": "JSONL", "processor_config": {
                "src": {"type": "local", "path": "x.jsonl"}, "dest": {"type": "local", "path": "o/"},
                "columns": COLUMNS, "members": "*.jsonl"}}]})


@pytest.mark.parametrize("archive", ["zip", "gzip", "tar.gz"])
def test_an_archive_bomb_is_bounded_as_when_extracted(tmp_path, engine, archive):
    """A transform reading an archive directly has the decompress limits: a member inflating far
    beyond its compressed size fails naming the limit, and nothing is published."""
    import gzip
    import io
    import tarfile

    data = b'{"a": 1, "b": {"c": "' + b"x" * 4000 + b'"}}\n'
    data *= 5000  # 20 MB of lines that compress ~400:1
    name = {"zip": "bomb.zip", "gzip": "bomb.jsonl.gz", "tar.gz": "bomb.tar.gz"}[archive]
    if archive == "zip":
        with zipfile.ZipFile(tmp_path / name, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("m.jsonl", data)
    elif archive == "gzip":
        (tmp_path / name).write_bytes(gzip.compress(data))
    else:
        with tarfile.open(tmp_path / name, "w:gz") as tf:
            info = tarfile.TarInfo("m.jsonl")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    with pytest.raises(UnitError, match=r"limits\.max_ratio"):
        run_unit(unit(tmp_path, name, engine, archive))
    assert not (tmp_path / "dest").exists() or files_under(tmp_path / "dest") == []
    result = run_unit(unit(tmp_path, name, engine, archive, limits={"max_ratio": 1000}))
    assert result["rows"] == 5000
