"""Local writer: nothing is visible until commit; failures leave no partial output and no temp files,
and a pre-existing file keeps its content."""

import gc
import io
import os

import pytest

import mounters.local
from processors import UnitError, run_unit
from tests.conftest import FailingReader
from writers import OutputSet, open_sink


def listing(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs)


def test_visible_only_after_commit(tmp_path):
    folder = {"type": "local", "path": f"{tmp_path}/out/"}
    sink = open_sink(folder, "a/b.csv")
    sink.write(b"hello ")
    sink.write(memoryview(b"world"))
    assert not (tmp_path / "out/a/b.csv").exists()
    sink.commit()
    assert (tmp_path / "out/a/b.csv").read_bytes() == b"hello world"
    assert sink.result("a/b.csv")["bytes"] == 11
    assert listing(tmp_path / "out") == ["a/b.csv"]


def test_forgotten_sink_is_discarded_not_published(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out/x.csv").write_bytes(b"old")
    sink = open_sink({"type": "local", "path": f"{tmp_path}/out/"}, "x.csv")
    sink.write(b"partial")
    del sink
    gc.collect()
    assert listing(tmp_path / "out") == ["x.csv"] and (tmp_path / "out/x.csv").read_bytes() == b"old"


def test_output_set_commits_all_or_nothing(tmp_path):
    folder = {"type": "local", "path": f"{tmp_path}/out/"}
    (tmp_path / "out").mkdir()
    (tmp_path / "out/one.csv").write_bytes(b"previous")
    with pytest.raises(RuntimeError):
        with OutputSet() as outs:
            with outs.create(folder, "one.csv") as s:
                s.write(b"new one")
            with outs.create(folder, "two.csv") as s:
                s.write(b"half of two")
                raise RuntimeError("disk on fire")
    assert listing(tmp_path / "out") == ["one.csv"] and (tmp_path / "out/one.csv").read_bytes() == b"previous"
    with OutputSet() as outs:
        for name in ("one.csv", "two.csv"):
            with outs.create(folder, name) as s:
                s.write(name.encode())
    assert [o["name"] for o in outs.outputs] == ["one.csv", "two.csv"]
    assert (tmp_path / "out/one.csv").read_bytes() == b"one.csv"


def test_duplicate_output_name_in_one_unit_is_an_error(tmp_path):
    folder = {"type": "local", "path": f"{tmp_path}/out/"}
    with pytest.raises(ValueError, match="both be named 'a.csv'"):
        with OutputSet() as outs:
            for _ in range(2):
                with outs.create(folder, "a.csv") as s:
                    s.write(b"x")
    assert not (tmp_path / "out/a.csv").exists()


@pytest.mark.parametrize("processor", ["copy", "transform"])
def test_source_failing_mid_stream_leaves_old_output(tmp_path, monkeypatch, processor):
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"".join(b'{"a": %d}\n' % i for i in range(300_000)))  # ~3 MB: several chunks
    out = tmp_path / "out"
    out.mkdir()
    name = "in.jsonl" if processor == "copy" else "in.csv"
    (out / name).write_bytes(b"previous run")
    real_open = mounters.local.open_source
    monkeypatch.setattr(mounters.local, "open_source",
                        lambda loc, seekable=False: io.BufferedReader(FailingReader(real_open(loc), 2_500_000)))
    cfg = {"dest": {"type": "local", "path": f"{out}/"}}
    if processor == "transform":
        cfg["columns"] = [{"name": "a", "path": "a"}]
    unit = {"processor": {"processor_name": processor, "processor_type": "copy" if processor == "copy" else "JSONL",
                          "processor_config": cfg},
            "src": {"location": {"type": "local", "path": str(src)}, "name": "in.jsonl", "size": None}}
    with pytest.raises(UnitError, match="connection reset by peer"):
        run_unit(unit)
    assert listing(out) == [name] and (out / name).read_bytes() == b"previous run"


def test_two_writers_of_one_output_never_publish_each_others_bytes(tmp_path):
    """Another run writing the same output at the same time: while one writes, the other is refused;
    if the second sweeps the first's closed temp and writes its own, the first's commit fails
    instead of publishing the second's unfinished file."""
    folder = {"type": "local", "path": f"{tmp_path}/out/"}
    first = open_sink(folder, "a.csv")
    first.write(b"first")
    with pytest.raises(OSError, match="another writer is writing this output now"):
        open_sink(folder, "a.csv")
    first.finish()  # closed, waiting for the unit's other outputs before its commit
    second = open_sink(folder, "a.csv")  # takes the unlocked temp for stale
    second.write(b"second, unfinished")
    with pytest.raises(OSError, match="another writer replaced this output's temp file"):
        first.commit()
    first.close()
    assert not (tmp_path / "out/a.csv").exists()
    second.commit()
    assert (tmp_path / "out/a.csv").read_bytes() == b"second, unfinished"
