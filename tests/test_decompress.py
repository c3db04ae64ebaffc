"""decompress: zip (methods, zip64, unsupported and bad members, zip-slip), gzip, tar/tar.gz/tgz.
Archives are built here with zipfile/tarfile/gzip; outputs are real files. Whatever fails, nothing
partial becomes visible: no output, no '.tmp-' file, a pre-existing output keeps its content."""

import gzip
import hashlib
import io
import os
import re
import struct
import tarfile
import zipfile

import pytest

from mounters.base import TEMP_PREFIX
from processors import UnitError, run_unit


def unit(tmp_path, kind, name, **cfg):
    src = {"type": "local", "path": str(tmp_path / name)}
    return {"processor": {"processor_name": "decompress", "processor_type": kind, "processor_config": {
        "src": src, "dest": {"type": "local", "path": f"{tmp_path}/out/"}, **cfg}},
        "src": {"location": src, "name": name, "size": None}}


def files(folder):
    """Every file below folder (temp files included), relative, sorted; [] if it does not exist."""
    return sorted(os.path.relpath(os.path.join(d, f), folder).replace(os.sep, "/")
                  for d, _, fs in os.walk(folder) for f in fs)


def assert_nothing_written(tmp_path, *keep):
    """Nothing in out/ (not even a temp file) and nothing beside the source archive(s)."""
    assert files(tmp_path / "out") == list(keep)
    assert not [f for f in files(tmp_path) if TEMP_PREFIX in f]


def check_outputs(result, expected: dict):
    """result outputs == expected {output name: bytes}; bytes, sha256 and file content all match."""
    assert sorted(o["name"] for o in result["outputs"]) == sorted(expected)
    for o in result["outputs"]:
        data = open(o["location"]["path"], "rb").read()
        assert data == expected[o["name"]], o["name"]
        assert o["bytes"] == len(data) and o["sha256"] == hashlib.sha256(data).hexdigest()


def jsonl(i, n=2000):
    return b"".join(b'{"i": %d, "n": %d}\n' % (i, k) for k in range(n))


# --- zip -----------------------------------------------------------------------------------------

METHODS = {"stored": zipfile.ZIP_STORED, "deflate": zipfile.ZIP_DEFLATED,
           "bzip2": zipfile.ZIP_BZIP2, "lzma": zipfile.ZIP_LZMA}


def test_zip_methods_nested_folders_filter_and_idempotent_rerun(tmp_path):
    body = {f"{m}/deep/er/{m}.jsonl": jsonl(i) for i, m in enumerate(METHODS)}
    with zipfile.ZipFile(tmp_path / "drop-1.zip", "w") as zf:
        zf.mkdir("empty")
        zf.mkdir("stored/deep")
        for (name, data), method in zip(body.items(), METHODS.values()):
            zf.writestr(name, data, compress_type=method)
        zf.writestr("top.jsonl", b'{"top": 1}\n')  # '**/' matches zero folders too
        zf.writestr("docs/readme.txt", b"not selected")
    assert {i.compress_type for i in zipfile.ZipFile(tmp_path / "drop-1.zip").infolist()} >= set(METHODS.values())
    expected = {f"drop-1/{n}": d for n, d in body.items()} | {"drop-1/top.jsonl": b'{"top": 1}\n'}

    first = run_unit(unit(tmp_path, "zip", "drop-1.zip", members="**/*.jsonl"))
    check_outputs(first, expected)
    assert first["members_skipped"] == 1  # readme.txt; folders are not members to extract
    assert first["src_bytes"] == (tmp_path / "drop-1.zip").stat().st_size
    assert files(tmp_path / "out") == sorted(expected)
    for o in first["outputs"]:
        assert o["location"] == {"type": "local", "path": f"{tmp_path}/out/{o['name']}"}

    # A re-run overwrites the same names: same files, no duplicates, no temp files, same result.
    (tmp_path / "out/drop-1/top.jsonl").write_bytes(b"stale")
    second = run_unit(unit(tmp_path, "zip", "drop-1.zip", members="**/*.jsonl"))
    check_outputs(second, expected)
    assert files(tmp_path / "out") == sorted(expected)
    assert [(o["name"], o["sha256"]) for o in second["outputs"]] == [(o["name"], o["sha256"]) for o in first["outputs"]]


def test_zip_default_members_extracts_everything_but_folders(tmp_path):
    with zipfile.ZipFile(tmp_path / "a.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.mkdir("d")
        zf.writestr("d/x.csv", b"x")
        zf.writestr("./y.txt", b"y")  # './' is dropped from the output name
        zf.writestr("z", b"")  # an empty member is an empty file
    result = run_unit(unit(tmp_path, "zip", "a.zip"))
    check_outputs(result, {"a/d/x.csv": b"x", "a/y.txt": b"y", "a/z": b""})
    assert result["members_skipped"] == 0


def test_zip64_forced_members(tmp_path):
    body = {f"p{i}/part.jsonl": jsonl(i, 500) for i in range(3)}
    with zipfile.ZipFile(tmp_path / "z.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in body.items():
            with zf.open(name, "w", force_zip64=True) as m:
                m.write(data)
    raw = (tmp_path / "z.zip").read_bytes()
    assert raw.count(struct.pack("<HH", 1, 16)) >= 3  # zip64 extra fields (id 1, 16 bytes) in the headers
    check_outputs(run_unit(unit(tmp_path, "zip", "z.zip")), {f"z/{n}": d for n, d in body.items()})


def test_zip64_more_than_65535_members(tmp_path):
    count = 65_540
    with zipfile.ZipFile(tmp_path / "many.zip", "w", zipfile.ZIP_STORED) as zf:
        for i in range(count):
            zf.writestr(zipfile.ZipInfo(f"f/{i:05}.txt"), b"%d" % i)
        zf.writestr("keep/last.jsonl", b'{"last": true}\n')
    assert b"PK\x06\x06" in (tmp_path / "many.zip").read_bytes()[-200:]  # zip64 end of central directory
    result = run_unit(unit(tmp_path, "zip", "many.zip", members="keep/*"))
    check_outputs(result, {"many/keep/last.jsonl": b'{"last": true}\n'})
    assert result["members_skipped"] == count


def cd_entries(data: bytes):
    """Offsets of the central directory entries, in order."""
    out, pos = [], data.find(b"PK\x01\x02")
    while data[pos:pos + 4] == b"PK\x01\x02":
        out.append(pos)
        n, m, k = struct.unpack("<HHH", data[pos + 28:pos + 34])
        pos += 46 + n + m + k
    return out


def patch_member(path, index, method=None, flags=None, crc=None, local=True):
    """Rewrite member `index`'s method / flags / CRC in its central directory entry and (unless
    local=False) its local header, the way another tool would have written them."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        header = zf.infolist()[index].header_offset
    spots = [(cd_entries(bytes(data))[index], 8, 10, 16)] + ([(header, 6, 8, 14)] if local else [])
    for off, flags_at, method_at, crc_at in spots:
        if method is not None:
            data[off + method_at:off + method_at + 2] = struct.pack("<H", method)
        if flags is not None:
            data[off + flags_at:off + flags_at + 2] = struct.pack("<H", flags)
        if crc is not None:
            data[off + crc_at:off + crc_at + 4] = struct.pack("<I", crc)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("patch, message", [
    ({"method": 9}, "member 'b/bad.jsonl' uses compression method 9 (Deflate64), which is not supported"),
    ({"flags": 0x1}, "member 'b/bad.jsonl' is encrypted"),
    ({"flags": 0x41}, "member 'b/bad.jsonl' is encrypted"),
])
def test_unsupported_member_fails_up_front_and_writes_nothing(tmp_path, patch, message):
    with zipfile.ZipFile(tmp_path / "a.zip", "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("a/good.jsonl", jsonl(1))  # before the bad one: must not be written either
        zf.writestr("b/bad.jsonl", jsonl(2))
        zf.writestr("c/good.jsonl", jsonl(3))
    patch_member(tmp_path / "a.zip", 1, **patch)
    with pytest.raises(UnitError) as info:
        run_unit(unit(tmp_path, "zip", "a.zip"))
    assert str(info.value).startswith(f"local:{tmp_path}/a.zip: ")
    assert message in str(info.value)
    assert not (tmp_path / "out").exists()  # checked before anything was created
    assert_nothing_written(tmp_path)


def test_unsupported_member_left_out_by_the_filter_does_not_fail_the_archive(tmp_path):
    with zipfile.ZipFile(tmp_path / "a.zip", "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("data/x.jsonl", jsonl(1))
        zf.writestr("docs/manual.pdf", b"%PDF-1.7 big")
    patch_member(tmp_path / "a.zip", 1, method=9)  # Windows writes Deflate64 for large files
    result = run_unit(unit(tmp_path, "zip", "a.zip", members="**/*.jsonl"))
    check_outputs(result, {"a/data/x.jsonl": jsonl(1)})
    assert result["members_skipped"] == 1
    with pytest.raises(UnitError, match=r"member 'docs/manual\.pdf' uses compression method 9 \(Deflate64\)"):
        run_unit(unit(tmp_path, "zip", "a.zip"))


def make_two_member_zip(path):
    """a.jsonl (small) then b.jsonl (deflate, incompressible enough to corrupt its middle)."""
    b = os.urandom(60_000).hex().encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.jsonl", jsonl(1, 100))
        zf.writestr("sub/b.jsonl", b)
    return b


@pytest.mark.parametrize("damage", ["flipped bytes", "zeroed block", "crc in both headers", "crc in central directory"])
def test_corrupt_member_names_it_and_publishes_nothing(tmp_path, damage):
    make_two_member_zip(tmp_path / "a.zip")
    (tmp_path / "out/a").mkdir(parents=True)
    (tmp_path / "out/a/a.jsonl").write_bytes(b"previous run")
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        info = zf.getinfo("sub/b.jsonl")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + info.compress_size // 2
    data = bytearray((tmp_path / "a.zip").read_bytes())
    if damage == "flipped bytes":
        for k in range(0, 64, 8):
            data[start + k] ^= 0xFF
        (tmp_path / "a.zip").write_bytes(bytes(data))
    elif damage == "zeroed block":
        data[start:start + 64] = bytes(64)
        (tmp_path / "a.zip").write_bytes(bytes(data))
    else:
        patch_member(tmp_path / "a.zip", 1, crc=info.CRC ^ 0x5A5A5A5A, local=damage == "crc in both headers")
    with pytest.raises(UnitError) as exc:
        run_unit(unit(tmp_path, "zip", "a.zip"))
    assert str(exc.value).startswith(f"local:{tmp_path}/a.zip: member 'sub/b.jsonl': "), str(exc.value)
    if damage.startswith("crc"):
        assert "Bad CRC-32" in str(exc.value)
    # a.jsonl was extracted before b.jsonl failed, but never became visible; the old one is intact
    assert_nothing_written(tmp_path, "a/a.jsonl")
    assert (tmp_path / "out/a/a.jsonl").read_bytes() == b"previous run"


@pytest.mark.parametrize("method", ["deflate", "bzip2", "lzma"])
def test_damaged_compressed_data_is_the_members_permanent_error(tmp_path, method):
    # Each decompressor raises its own type on damaged bytes (bz2 a plain OSError, which alone would
    # read as I/O and be retried): all are said as the member's data error, and not retried.
    body = os.urandom(40_000).hex().encode()
    with zipfile.ZipFile(tmp_path / "a.zip", "w", METHODS[method]) as zf:
        zf.writestr("sub/b.jsonl", body)
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        info = zf.getinfo("sub/b.jsonl")
    data = bytearray((tmp_path / "a.zip").read_bytes())
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 8
    data[start:start + 256] = bytes(256)
    (tmp_path / "a.zip").write_bytes(bytes(data))
    with pytest.raises(UnitError) as exc:
        run_unit(unit(tmp_path, "zip", "a.zip"))
    assert str(exc.value).startswith(f"local:{tmp_path}/a.zip: member 'sub/b.jsonl': "), str(exc.value)
    assert exc.value.permanent, str(exc.value)
    assert_nothing_written(tmp_path)


@pytest.mark.parametrize("evil", ["../evil.jsonl", "/abs.jsonl", "a/../../evil.jsonl", "C:\\evil.jsonl",
                                  "..\\evil.jsonl"])
def test_zip_slip_is_refused_and_nothing_is_written(tmp_path, evil):
    (tmp_path / "in").mkdir()
    with zipfile.ZipFile(tmp_path / "in/a.zip", "w") as zf:
        zf.writestr("ok.jsonl", b"{}\n")
        zf.writestr(zipfile.ZipInfo(evil), b'{"evil": 1}\n')
    before = files(tmp_path)
    with pytest.raises(UnitError) as info:
        run_unit(unit(tmp_path, "zip", "in/a.zip", members="**"))
    assert f"member {evil!r} is not a safe relative file name" in str(info.value)
    assert files(tmp_path) == before  # nothing written anywhere: not outside, not in out/
    assert not os.path.exists("/abs.jsonl")


@pytest.mark.parametrize("order", [["a/b.txt", "a"], ["a", "a/b.txt"], ["x/a/b.txt", "./x/a"]])
def test_file_and_folder_of_one_name_fail_before_anything_is_committed(tmp_path, order):
    with zipfile.ZipFile(tmp_path / "c.zip", "w") as zf:
        zf.writestr("first.txt", b"1")
        for name in order:
            zf.writestr(name, name.encode())
    with pytest.raises(UnitError) as info:
        run_unit(unit(tmp_path, "zip", "c.zip"))
    assert f"members {order[0]!r} and {order[1]!r} would make c/" in str(info.value)
    assert "both a file and a folder" in str(info.value)
    assert_nothing_written(tmp_path)


@pytest.mark.parametrize("content", [b"just text, not a zip", b"", b"PK\x03\x04" + bytes(40)])
def test_not_a_zip_is_a_clear_error(tmp_path, content):
    (tmp_path / "a.zip").write_bytes(content)
    with pytest.raises(UnitError) as info:
        run_unit(unit(tmp_path, "zip", "a.zip"))
    assert str(info.value).startswith(f"local:{tmp_path}/a.zip: not a readable zip archive: ")
    assert_nothing_written(tmp_path)


def test_truncated_zip_is_a_clear_error(tmp_path):
    make_two_member_zip(tmp_path / "a.zip")
    data = (tmp_path / "a.zip").read_bytes()
    (tmp_path / "a.zip").write_bytes(data[: len(data) // 2])
    with pytest.raises(UnitError, match=re.escape(f"local:{tmp_path}/a.zip: not a readable zip archive")):
        run_unit(unit(tmp_path, "zip", "a.zip"))
    assert_nothing_written(tmp_path)


# --- gzip ----------------------------------------------------------------------------------------

def test_gzip_single_member(tmp_path):
    body = jsonl(7)
    (tmp_path / "events.jsonl.gz").write_bytes(gzip.compress(body))
    result = run_unit(unit(tmp_path, "gzip", "events.jsonl.gz"))
    check_outputs(result, {"events.jsonl": body})
    assert files(tmp_path / "out") == ["events.jsonl"]
    assert result["src_bytes"] == (tmp_path / "events.jsonl.gz").stat().st_size


def test_gzip_multi_member_concatenated_and_rerun(tmp_path):
    parts = [jsonl(1, 300), b"", jsonl(2, 500)]
    (tmp_path / "a.jsonl.gz").write_bytes(b"".join(gzip.compress(p) for p in parts))
    for _ in range(2):
        result = run_unit(unit(tmp_path, "gzip", "a.jsonl.gz"))
    check_outputs(result, {"a.jsonl": b"".join(parts)})
    assert files(tmp_path / "out") == ["a.jsonl"]


@pytest.mark.parametrize("cut", ["half", "trailer", "last byte"])
def test_truncated_gzip_fails_and_keeps_previous_output(tmp_path, cut):
    full = gzip.compress(os.urandom(100_000))
    keep = {"half": len(full) // 2, "trailer": len(full) - 8, "last byte": len(full) - 1}[cut]
    (tmp_path / "out").mkdir()
    (tmp_path / "out/a.jsonl").write_bytes(b"previous")
    (tmp_path / "a.jsonl.gz").write_bytes(full[:keep])
    with pytest.raises(UnitError) as info:
        run_unit(unit(tmp_path, "gzip", "a.jsonl.gz"))
    assert str(info.value).startswith(f"local:{tmp_path}/a.jsonl.gz: not a readable gzip stream: ")
    assert_nothing_written(tmp_path, "a.jsonl")
    assert (tmp_path / "out/a.jsonl").read_bytes() == b"previous"


@pytest.mark.parametrize("content, message", [
    (b"", "not a gzip file"),
    (b"plain text\n", "not a gzip file"),
    (b"\x1f\x8b\x08\x00" + bytes(6) + b"\xff" * 40, "not a readable gzip stream"),  # bad deflate data
])
def test_not_a_gzip_is_a_clear_error(tmp_path, content, message):
    (tmp_path / "a.gz").write_bytes(content)
    with pytest.raises(UnitError) as info:
        run_unit(unit(tmp_path, "gzip", "a.gz"))
    assert str(info.value).startswith(f"local:{tmp_path}/a.gz: {message}")
    assert_nothing_written(tmp_path)


def test_gzip_with_a_bad_crc_fails(tmp_path):
    data = bytearray(gzip.compress(jsonl(1)))
    data[-8] ^= 0xFF  # CRC32 in the trailer
    (tmp_path / "a.jsonl.gz").write_bytes(bytes(data))
    with pytest.raises(UnitError, match="not a readable gzip stream: CRC check failed"):
        run_unit(unit(tmp_path, "gzip", "a.jsonl.gz"))
    assert_nothing_written(tmp_path)


# --- tar -----------------------------------------------------------------------------------------

TAR_BODY = {"d/x.jsonl": jsonl(1, 300), "y.jsonl": b'{"y": 1}\n', "d/e/z.csv": b"z\n"}


def write_tar(path_or_buf, mode):
    target = {"name": path_or_buf} if isinstance(path_or_buf, os.PathLike) else {"fileobj": path_or_buf}
    with tarfile.open(**target, mode=mode) as tf:
        folder = tarfile.TarInfo("d")
        folder.type = tarfile.DIRTYPE
        tf.addfile(folder)
        for path, data in TAR_BODY.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("d/link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)
        hard = tarfile.TarInfo("d/hard")
        hard.type, hard.linkname = tarfile.LNKTYPE, "y.jsonl"
        tf.addfile(hard)
        fifo = tarfile.TarInfo("d/fifo")
        fifo.type = tarfile.FIFOTYPE
        tf.addfile(fifo)


@pytest.mark.parametrize("name, kind, mode", [
    ("a.tar", "tar", "w"), ("a.tar.gz", "tar.gz", "w:gz"), ("a.tgz", "tar.gz", "w:gz"),
    ("a.tar.gz", "tar", "w:gz"),  # the contents decide, not the processor type
    ("a.tar", "tar", "w:bz2"),
])
def test_tar_variants_extract_every_member_or_list_it(tmp_path, name, kind, mode):
    write_tar(tmp_path / name, mode)
    for _ in range(2):  # re-run overwrites
        result = run_unit(unit(tmp_path, kind, name))
    # The hardlink is a copy of its target's content; the symlink and the fifo are listed by name.
    expected = {f"a/{n}": d for n, d in TAR_BODY.items()} | {"a/d/hard": TAR_BODY["y.jsonl"]}
    check_outputs(result, expected)
    assert files(tmp_path / "out") == sorted(expected)
    assert result["members_skipped"] == 0 and result["members_not_extracted"] == 2
    assert result["not_extracted"] == [{"name": "d/link", "kind": "symlink"}, {"name": "d/fifo", "kind": "fifo"}]


def test_tar_hardlinks_several_to_one_target_filtered_target_and_missing_target(tmp_path):
    body = b'{"t": 1}\n' * 1000
    with tarfile.open(tmp_path / "h.tgz", "w:gz") as tf:
        info = tarfile.TarInfo("data/target.bin")
        info.size = len(body)
        tf.addfile(info, io.BytesIO(body))
        for link, target in [("keep/l1.jsonl", "data/target.bin"), ("keep/l2.jsonl", "data/target.bin"),
                             ("keep/nowhere.jsonl", "data/absent.bin")]:
            hard = tarfile.TarInfo(link)
            hard.type, hard.linkname = tarfile.LNKTYPE, target
            tf.addfile(hard)
    result = run_unit(unit(tmp_path, "tar.gz", "h.tgz", members="keep/*"))  # the target itself is not selected
    check_outputs(result, {"h/keep/l1.jsonl": body, "h/keep/l2.jsonl": body})
    assert result["members_skipped"] == 1
    assert result["not_extracted"] == [{"name": "keep/nowhere.jsonl",
                                        "kind": "hardlink to 'data/absent.bin', which is not a regular file before it"}]


def test_tar_members_filter(tmp_path):
    write_tar(tmp_path / "a.tgz", "w:gz")
    result = run_unit(unit(tmp_path, "tar.gz", "a.tgz", members="**/*.jsonl"))
    check_outputs(result, {"a/d/x.jsonl": TAR_BODY["d/x.jsonl"], "a/y.jsonl": TAR_BODY["y.jsonl"]})
    assert result["members_skipped"] == 4  # d/e/z.csv, and the links and the fifo: every member is counted


def test_tar_slip_is_refused(tmp_path):
    with tarfile.open(tmp_path / "a.tar", "w") as tf:
        info = tarfile.TarInfo("../evil.jsonl")
        info.size = 2
        tf.addfile(info, io.BytesIO(b"{}"))
    before = files(tmp_path)
    with pytest.raises(UnitError, match=re.escape("member '../evil.jsonl' is not a safe relative file name")):
        run_unit(unit(tmp_path, "tar", "a.tar"))
    assert files(tmp_path) == before


def big_tar_gz():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for i in range(3):
            data = jsonl(i, 3000)  # compresses well: a cut near the end falls after the tar's last header
            info = tarfile.TarInfo(f"m{i}.jsonl")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9, -20, -8, -1])
def test_truncated_tar_gz_fails_and_keeps_previous_output(tmp_path, keep):
    full = big_tar_gz()
    cut = int(len(full) * keep) if keep > 0 else len(full) + keep
    (tmp_path / "a.tar.gz").write_bytes(full[:cut])
    (tmp_path / "out/a").mkdir(parents=True)
    (tmp_path / "out/a/m0.jsonl").write_bytes(b"previous")
    with pytest.raises(UnitError) as info:
        run_unit(unit(tmp_path, "tar.gz", "a.tar.gz"))
    assert str(info.value).startswith(f"local:{tmp_path}/a.tar.gz: ")
    assert_nothing_written(tmp_path, "a/m0.jsonl")
    assert (tmp_path / "out/a/m0.jsonl").read_bytes() == b"previous"


def test_tar_cut_between_members_fails(tmp_path):
    """Without its end-of-archive marker a tar cut at a member boundary would look complete."""
    buf = io.BytesIO()
    write_tar(buf, "w")
    full = buf.getvalue()
    with tarfile.open(fileobj=io.BytesIO(full)) as tf:
        boundary = tf.getmember("y.jsonl").offset  # the header of the second file
    (tmp_path / "a.tar").write_bytes(full[:boundary])
    with pytest.raises(UnitError, match="end-of-archive marker"):
        run_unit(unit(tmp_path, "tar", "a.tar"))
    (tmp_path / "a.tar").write_bytes(full[:boundary + 100])  # inside that header
    with pytest.raises(UnitError, match="end-of-archive marker"):
        run_unit(unit(tmp_path, "tar", "a.tar"))
    assert_nothing_written(tmp_path)


@pytest.mark.parametrize("content", [b"", b"not a tar at all" * 100])
def test_not_a_tar_is_a_clear_error(tmp_path, content):
    (tmp_path / "a.tar").write_bytes(content)
    with pytest.raises(UnitError, match=re.escape(f"local:{tmp_path}/a.tar: not a readable tar archive")):
        run_unit(unit(tmp_path, "tar", "a.tar"))
    assert_nothing_written(tmp_path)
