"""The reject budget of a transform unit (on_error skip/quarantine): checked from the unit's
counts once its source is read, before its outputs are committed, so a unit over budget fails
and publishes nothing (not its CSV, not its rejects file)."""

from __future__ import annotations

from pipeline.errors import LimitExceeded


def reject_place(first_reject: dict) -> str:
    """Where a reject was: a line, or a JSON document's record (input_format json)."""
    if first_reject.get("line") is not None:
        return f"line {first_reject['line']}"
    return f"record {first_reject.get('record')} (at or before byte {first_reject.get('byte')})"


def check_reject_budget(cfg, rows: int, rejects: int, first_reject: dict | None) -> None:
    if not rejects:
        return
    lines = rows + rejects
    first = f" (first: {reject_place(first_reject)}: {first_reject['error']})" if first_reject else ""
    if rows == 0:
        why = f"all {rejects} lines were rejected{first}; no rows were converted"
    elif cfg.max_rejects is not None and rejects > cfg.max_rejects:
        why = f"{rejects} of {lines} lines were rejected{first}, more than max_rejects {cfg.max_rejects}"
    elif rejects > cfg.max_reject_ratio * lines:
        why = (f"{rejects} of {lines} lines were rejected ({rejects / lines:.2%}){first}, "
               f"more than max_reject_ratio {cfg.max_reject_ratio:g}")
    else:
        return
    raise LimitExceeded(f"{why}; nothing was published. Fix the data, or raise the transform's "
                        "max_rejects / max_reject_ratio if these lines may be dropped")
