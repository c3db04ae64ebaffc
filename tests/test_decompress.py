"""decompress: zip (methods, zip64, bad members), gzip, tar/tar.gz; nothing partial becomes visible."""

import gzip
import hashlib
import io
import os
import re
import struct
import tarfile
import zipfile

import pytest

from processors import UnitError, run_unit


def unit(tmp_path, kind, name, **cfg):
    return {"processor": {"processor_name": "decompress", "processor_type": kind, "processor_config": {
        "src": {"type": "local", "path": str(tmp_path / name)}, "dest": {"type": "local", "path": f"{tmp_path}/out/"}, **cfg}},
        "src": {"location": {"type": "local", "path": str(tmp_path / name)}, "name": name, "size": None}}


def files(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs)


def test_zip_methods_folders_filter_and_rerun(tmp_path):
    body = {f"d{i}/m{i}.jsonl": (f'{{"i": {i}}}\n' * 5000).encode() for i in range(4)}
    methods = [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as zf:
        zf.mkdir("empty")
        for (name, data), method in zip(body.items(), methods):
            zf.writestr(name, data, compress_type=method)
        zf.writestr("readme.txt", b"skip me")
    for _ in range(2):  # a re-run overwrites the same names
        result = run_unit(unit(tmp_path, "zip", "a.zip", members="**/*.jsonl"))
    assert files(tmp_path / "out") == [f"a/d{i}/m{i}.jsonl" for i in range(4)]
    assert result["members_skipped"] == 1
    for o in result["outputs"]:
        data = open(o["location"]["path"], "rb").read()
        assert data == body[o["name"][2:]] and o["sha256"] == hashlib.sha256(data).hexdigest()


def test_zip64_members(tmp_path):
    with zipfile.ZipFile(tmp_path / "z.zip", "w", zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        for i in range(3):
            with zf.open(f"p{i}.jsonl", "w", force_zip64=True) as m:
                m.write(b'{"a": 1}\n' * 1000)
    result = run_unit(unit(tmp_path, "zip", "z.zip"))
    assert [o["bytes"] for o in result["outputs"]] == [9000] * 3


def patch_member(path, index, method=None, flags=None):
    """Rewrite a member's method/flags in both its local header and central directory entry."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.infolist()[index]
    cd = data.find(b"PK\x01\x02")
    for _ in range(index):
        n, m, k = struct.unpack("<HHH", data[cd + 28:cd + 34])
        cd += 46 + n + m + k
    for off, flag_at, method_at in [(info.header_offset, 6, 8), (cd, 8, 10)]:
        if method is not None:
            data[off + method_at:off + method_at + 2] = struct.pack("<H", method)
        if flags is not None:
            data[off + flag_at:off + flag_at + 2] = struct.pack("<H", flags)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("patch, message", [
    ({"method": 9}, "member 'b.jsonl' uses compression method 9 (Deflate64), which is not supported"),
    ({"flags": 1}, "member 'b.jsonl' is encrypted"),
])
def test_unsupported_member_fails_before_writing_anything(tmp_path, patch, message):
    with zipfile.ZipFile(tmp_path / "a.zip", "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("a.jsonl", b"good\n")
        zf.writestr("b.jsonl", b"bad\n")
    patch_member(tmp_path / "a.zip", 1, **patch)
    with pytest.raises(UnitError, match=re.escape(message)) as info:
        run_unit(unit(tmp_path, "zip", "a.zip"))
    assert str(info.value).startswith(f"local:{tmp_path}/a.zip: ")
    assert not (tmp_path / "out").exists() or files(tmp_path / "out") == []


def test_corrupt_member_names_it_and_publishes_nothing(tmp_path):
    with zipfile.ZipFile(tmp_path / "a.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.jsonl", os.urandom(1000).hex().encode())
        zf.writestr("b.jsonl", os.urandom(50_000).hex().encode())
    data = bytearray((tmp_path / "a.zip").read_bytes())
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        b = zf.getinfo("b.jsonl")
    start = b.header_offset + 30 + len("b.jsonl") + 1000
    data[start:start + 64] = bytes(64)
    (tmp_path / "a.zip").write_bytes(bytes(data))
    with pytest.raises(UnitError, match="member 'b.jsonl'"):
        run_unit(unit(tmp_path, "zip", "a.zip"))
    assert files(tmp_path / "out") == []  # a.jsonl was extracted, but never became visible


@pytest.mark.parametrize("evil", ["../evil.jsonl", "/abs.jsonl"])
def test_zip_slip_is_refused(tmp_path, evil):
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as zf:
        zf.writestr(zipfile.ZipInfo(evil), b"x")
    with pytest.raises(UnitError, match="is not a safe relative file name"):
        run_unit(unit(tmp_path, "zip", "a.zip"))
    assert not (tmp_path / "evil.jsonl").exists()


def test_not_a_zip(tmp_path):
    (tmp_path / "a.zip").write_bytes(b"just text")
    with pytest.raises(UnitError, match="a.zip: not a readable zip archive"):
        run_unit(unit(tmp_path, "zip", "a.zip"))


def test_gzip_single_and_multi_member(tmp_path):
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(b"one\n") + gzip.compress(b"two\n"))
    result = run_unit(unit(tmp_path, "gzip", "a.jsonl.gz"))
    assert files(tmp_path / "out") == ["a.jsonl"] and (tmp_path / "out/a.jsonl").read_bytes() == b"one\ntwo\n"
    assert result["outputs"][0]["bytes"] == 8


def test_truncated_gzip_keeps_previous_output(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out/a.jsonl").write_bytes(b"previous")
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(os.urandom(100_000))[:50_000])
    with pytest.raises(UnitError, match="a.jsonl.gz: "):
        run_unit(unit(tmp_path, "gzip", "a.jsonl.gz"))
    assert files(tmp_path / "out") == ["a.jsonl"] and (tmp_path / "out/a.jsonl").read_bytes() == b"previous"


@pytest.mark.parametrize("name, mode", [("a.tar", "w"), ("a.tar.gz", "w:gz"), ("a.tgz", "w:gz")])
def test_tar_variants_extract_regular_files(tmp_path, name, mode):
    with tarfile.open(tmp_path / name, mode) as tf:
        for path, data in [("d/x.jsonl", b"x\n"), ("y.jsonl", b"yy\n")]:
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("d/link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)
    run_unit(unit(tmp_path, "tar.gz" if "gz" in name else "tar", name))
    assert files(tmp_path / "out") == ["a/d/x.jsonl", "a/y.jsonl"]


def test_truncated_tar_gz_publishes_nothing(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for i in range(3):
            data = os.urandom(200_000)
            info = tarfile.TarInfo(f"m{i}.bin")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    (tmp_path / "a.tar.gz").write_bytes(buf.getvalue()[:450_000])
    with pytest.raises(UnitError, match="a.tar.gz: "):
        run_unit(unit(tmp_path, "tar.gz", "a.tar.gz"))
    assert not (tmp_path / "out").exists() or files(tmp_path / "out") == []
