"""Errors are classified by their type (pipeline/errors.py), not guessed from builtin exception
types: a unit failing with a permanent error reports it as its result (not retried), anything else
is raised to the executor (retried)."""

import pytest

from pipeline import errors
from pipeline.activities import run_unit as activity
from processors import UnitError, run_unit


def unit(tmp_path):
    (tmp_path / "in.jsonl").write_text('{"a": 1}\n')
    src = {"type": "local", "path": str(tmp_path / "in.jsonl")}
    return {"processor": {"processor_name": "copy", "processor_type": "copy", "processor_config": {
        "src": src, "dest": {"type": "local", "path": f"{tmp_path}/out/"}}},
        "src": {"location": src, "name": "in.jsonl", "size": None}}


def failing(monkeypatch, exc):
    import processors.copy

    def run(processor, src, outs):
        raise exc

    monkeypatch.setattr(processors.copy, "run", run)


@pytest.mark.parametrize("exc", [errors.DataError("bad line", line=3), errors.LimitExceeded("too big"),
                                 errors.CollisionError("both"), errors.SettingError("unset"),
                                 errors.MemberError("member 'x': bad", member="x")])
def test_permanent_errors_are_reported_not_retried(tmp_path, monkeypatch, exc):
    failing(monkeypatch, exc)
    result = activity(unit(tmp_path))
    assert result["outputs"] == [] and result["failed"].startswith(f"local:{tmp_path}/in.jsonl")
    with pytest.raises(UnitError) as info:
        run_unit(unit(tmp_path))
    assert info.value.permanent and info.value.source == f"local:{tmp_path}/in.jsonl"
    assert info.value.line == getattr(exc, "line", None) and info.value.member == exc.member


@pytest.mark.parametrize("exc", [KeyError("x"), ValueError("from somewhere else"), LookupError("?"),
                                 ConnectionResetError("reset"), errors.TransientError("503")])
def test_unmarked_and_transient_errors_are_retried(tmp_path, monkeypatch, exc):
    # Old code guessed ValueError/LookupError meant bad data and gave up on them; a builtin error
    # carries no such meaning, so it is retried like I/O.
    failing(monkeypatch, exc)
    with pytest.raises(UnitError) as info:
        activity(unit(tmp_path))
    assert not info.value.permanent


def test_classification_follows_the_cause():
    try:
        try:
            raise errors.DataError("bad")
        except errors.DataError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as outer:
        assert errors.is_permanent(outer)
    assert not errors.is_permanent(errors.Interrupted("SIGTERM"))
    assert isinstance(errors.DataError("x"), ValueError) and isinstance(errors.TransientError("x"), OSError)
