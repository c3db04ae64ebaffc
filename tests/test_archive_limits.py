"""Archive limits (issue 9, item 3): total uncompressed bytes, compression ratio and member count
per archive, with safe defaults, checked up front from what the archive declares and on the bytes
actually written while streaming (gzip and tar declare nothing; a PAX-sparse tar declares a size
its data does not carry). Over a limit the archive fails naming the limit, and nothing is published."""

import gzip
import io
import json
import os
import tarfile
import zipfile

import pytest

from mounters.base import TEMP_PREFIX
from processors import UnitError, run_unit
from tests.conftest import run_cli

MiB = 1 << 20


def unit(tmp_path, kind, name, **cfg):
    src = {"type": "local", "path": str(tmp_path / name)}
    return {"processor": {"processor_name": "decompress", "processor_type": kind, "processor_config": {
        "src": src, "dest": {"type": "local", "path": f"{tmp_path}/out/"}, **cfg}},
        "src": {"location": src, "name": name, "size": None}}


def nothing_published(tmp_path):
    out = tmp_path / "out"
    return not out.exists() or not [f for _, _, fs in os.walk(out) for f in fs]


def zeros_zip(path, mib: int):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        with zf.open("zeros.bin", "w") as m:
            block = bytes(MiB)
            for _ in range(mib):
                m.write(block)
        zf.writestr("small.jsonl", b'{"a": 1}\n')


def zeros_gzip(path, mib: int):
    with gzip.open(path, "wb", compresslevel=9) as g:
        block = bytes(MiB)
        for _ in range(mib):
            g.write(block)


def sparse_tar(path, realsize: int, mode="w"):
    """A PAX (GNU sparse 1.0) member declaring `realsize` bytes of which 512 are data: ~10 KB on disk."""
    data = b"1\n0\n512\n".ljust(512, b"\0") + b"x" * 512
    info = tarfile.TarInfo("GNUSparseFile.0/big.bin")
    info.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "big.bin",
                        "GNU.sparse.realsize": str(realsize)}
    info.size = len(data)
    with tarfile.open(path, mode, format=tarfile.PAX_FORMAT) as tf:
        small = tarfile.TarInfo("small.jsonl")
        small.size = 9
        tf.addfile(small, io.BytesIO(b'{"a": 1}\n'))
        tf.addfile(info, io.BytesIO(data))


def test_zip_bomb_fails_up_front_from_its_central_directory(tmp_path):
    zeros_zip(tmp_path / "bomb.zip", 300)  # ~300 KB declaring 300 MiB: ratio ~1000
    assert (tmp_path / "bomb.zip").stat().st_size < MiB
    with pytest.raises(UnitError) as info:
        run_unit(unit(tmp_path, "zip", "bomb.zip"))
    assert "declares 314572809 bytes uncompressed" in str(info.value) and "limits.max_ratio 100" in str(info.value)
    assert "raise limits.max_ratio in the decompress processor's config" in str(info.value)
    assert info.value.permanent and nothing_published(tmp_path)
    # The operator can allow it; then the total is the limit that applies.
    with pytest.raises(UnitError, match=r"declares 314572809 bytes uncompressed, more than limits.max_total_bytes 104857600"):
        run_unit(unit(tmp_path, "zip", "bomb.zip", limits={"max_ratio": 10000, "max_total_bytes": 100 * MiB}))
    result = run_unit(unit(tmp_path, "zip", "bomb.zip", limits={"max_ratio": 10000}))
    assert sorted(o["bytes"] for o in result["outputs"]) == [9, 300 * MiB]


def test_zip_member_count(tmp_path):
    with zipfile.ZipFile(tmp_path / "many.zip", "w") as zf:
        for i in range(20):
            zf.writestr(f"m{i}.txt", b"x")
    with pytest.raises(UnitError, match="the archive has 20 members, more than limits.max_members 10"):
        run_unit(unit(tmp_path, "zip", "many.zip", limits={"max_members": 10}))
    assert nothing_published(tmp_path)


def test_gzip_bomb_is_stopped_while_streaming(tmp_path):
    zeros_gzip(tmp_path / "bomb.bin.gz", 400)  # ~400 KB declaring nothing, unpacking to 400 MiB
    with pytest.raises(UnitError) as info:
        run_unit(unit(tmp_path, "gzip", "bomb.bin.gz"))
    assert "the archive unpacks to more than limits.max_ratio 100 times the" in str(info.value)
    assert info.value.permanent and nothing_published(tmp_path)
    assert not [f for f in os.listdir(tmp_path) if f.startswith(TEMP_PREFIX)]


def test_gzip_total_bytes(tmp_path):
    (tmp_path / "r.bin.gz").write_bytes(gzip.compress(os.urandom(3 * MiB)))  # incompressible: ratio ~1
    with pytest.raises(UnitError, match="the archive unpacks to more than limits.max_total_bytes 2097152"):
        run_unit(unit(tmp_path, "gzip", "r.bin.gz", limits={"max_total_bytes": 2 * MiB}))
    assert nothing_published(tmp_path)
    assert run_unit(unit(tmp_path, "gzip", "r.bin.gz"))["outputs"][0]["bytes"] == 3 * MiB


@pytest.mark.parametrize("name, kind, mode", [("s.tar", "tar", "w"), ("s.tar.gz", "tar.gz", "w:gz")])
def test_pax_sparse_tar_declaring_10_gib(tmp_path, name, kind, mode):
    sparse_tar(tmp_path / name, 10 << 30)
    assert (tmp_path / name).stat().st_size < 20_000
    # Default limits: its header declares more than max_total_bytes: refused before a byte of it is written.
    with pytest.raises(UnitError, match=r"member 'big.bin': declares 10737418240 bytes, which takes the archive "
                                        r"past limits.max_total_bytes 4294967296"):
        run_unit(unit(tmp_path, kind, name))
    assert nothing_published(tmp_path)
    # With the total raised, the ratio stops it on the bytes written (the holes are zeros it writes).
    with pytest.raises(UnitError, match=r"member 'big.bin': the archive unpacks to more than limits.max_ratio 100"):
        run_unit(unit(tmp_path, kind, name, limits={"max_total_bytes": 64 << 30}))
    assert nothing_published(tmp_path)


def test_tar_member_count_counts_every_entry(tmp_path):
    with tarfile.open(tmp_path / "t.tar", "w") as tf:
        for i in range(12):
            info = tarfile.TarInfo(f"d{i}" if i % 2 else f"f{i}.txt")
            info.type = tarfile.DIRTYPE if i % 2 else tarfile.REGTYPE
            tf.addfile(info, io.BytesIO(b""))
    with pytest.raises(UnitError, match="member 'd11': the archive has more than limits.max_members 11 members"):
        run_unit(unit(tmp_path, "tar", "t.tar", limits={"max_members": 11}))
    assert nothing_published(tmp_path)
    assert len(run_unit(unit(tmp_path, "tar", "t.tar", limits={"max_members": 12}))["outputs"]) == 6


def test_dry_run_lists_members_with_declared_sizes(tmp_path):
    zeros_zip(tmp_path / "bomb.zip", 300)
    sparse_tar(tmp_path / "s.tar", 10 << 30)
    config = {"processors": [
        {"processor_name": "decompress", "processor_type": "zip", "processor_config": {
            "src": {"type": "local", "path": f"{tmp_path}/bomb.zip"}, "dest": {"type": "local", "path": f"{tmp_path}/out/"}}},
        {"processor_name": "decompress", "processor_type": "tar", "processor_config": {
            "src": {"type": "local", "path": f"{tmp_path}/s.tar"}, "dest": {"type": "local", "path": f"{tmp_path}/out2/"}}}]}
    (tmp_path / "c.json").write_text(json.dumps(config))
    proc = run_cli("run", str(tmp_path / "c.json"), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    zip_plan, tar_plan = json.loads(proc.stdout)["plan"]
    archive = zip_plan["sources"][0]["archive"]
    assert archive["members"] == 2 and archive["declared_bytes"] == 300 * MiB + 9
    assert [(m["name"], m["bytes"]) for m in archive["listed"]] == [("zeros.bin", 300 * MiB), ("small.jsonl", 9)]
    assert archive["listed"][0]["compressed_bytes"] < MiB
    assert "more than limits.max_ratio 100" in archive["over_limits"]
    archive = tar_plan["sources"][0]["archive"]
    assert [(m["name"], m["bytes"]) for m in archive["listed"]] == [("small.jsonl", 9), ("big.bin", 10 << 30)]
    assert "limits.max_total_bytes" in archive["over_limits"]
    assert not (tmp_path / "out").exists() and not (tmp_path / "out2").exists()


def test_limits_are_validated(tmp_path):
    config = {"processors": [{"processor_name": "decompress", "processor_type": "gzip", "processor_config": {
        "src": {"type": "local", "path": "in/"}, "dest": {"type": "local", "path": "out/"},
        "limits": {"max_ratio": 0.5, "max_members": -1, "max_total_bytes": 1.5}}}]}
    (tmp_path / "c.json").write_text(json.dumps(config))
    proc = run_cli("validate", str(tmp_path / "c.json"))
    assert proc.returncode == 2
    for field in ("max_ratio", "max_members", "max_total_bytes"):
        assert f"processors[0].processor_config.limits.{field}: " in proc.stderr
