"""Planning: which units of work a processor has. This is the "list" activity (it does I/O:
listing a folder, a container or a glob), so an orchestrator never touches storage itself.

A processor with a `src` fans out to one unit per file it selects; a processor without one
reads what the previous processor wrote: one unit per output file.

Planning also refuses collisions, before any data moves: two sources whose outputs would have
the same name (`a.jsonl` and `a.ndjson` both becoming `a.csv`; `a.zip` and `a.tar` both
extracting into `a/`) would overwrite each other in an order that changes from run to run. Within
a processor that is checked whenever it is listed; across the run, the first listing checks every
processor whose outputs can be known before running (all with a `src`, and those reading a
processor whose output names are known: copy, gzip, transform; not an archive's members)."""

from __future__ import annotations

import os

from mounters import describe, list_files
from pipeline.errors import CollisionError


def plan_units(processor: dict, previous_outputs: list[dict] | None, run: list[dict] | None = None) -> list[dict]:
    """`run`: all the run's processors, given with the first processor's listing, for the check across the run."""
    if run is not None:
        return plan_run(run)[0]
    units = _units(processor, previous_outputs)
    Claims().add_processor(0, processor, [u["src"] for u in units], within_only=True)
    return units


def plan_run(processors: list[dict]) -> list[list[dict] | None]:
    """Each processor's units where they can be known before running (None where not), after
    checking the whole run's planned outputs for collisions."""
    claims = Claims()
    plans: list[list[dict] | None] = []
    known: list[dict] | None = None  # the previous processor's outputs, when known before running
    dests: list[dict] = []
    for index, processor in enumerate(processors):
        src = processor["processor_config"].get("src")
        if src is not None and any(_overlap(src, d) for d in dests):
            units = None  # it reads what an earlier processor writes: known only once that one ran
        elif src is not None:
            units = _units(processor, None)
        elif known is not None and index > 0:
            units = _units(processor, known)
        else:
            units = None
        plans.append(units)
        known = claims.add_processor(index, processor, [u["src"] for u in units]) if units is not None else None
        cfg = processor["processor_config"]
        dests += [cfg["dest"]] + ([cfg["rejects"]] if cfg.get("rejects") else [])
    return plans


def _overlap(src: dict, dest: dict) -> bool:
    """Whether a source location may select files written under a destination folder."""
    from mounters.base import select

    if src["type"] != dest["type"] or (src["type"] == "blob" and (
            (src["connection"], src["container"]) != (dest["connection"], dest["container"]))):
        return False
    sel = select(src.get("path", ""))
    norm = (lambda p: os.path.normpath(os.path.abspath(p or ".")) + "/") if src["type"] == "local" else (lambda p: p)
    folder = norm(dest.get("path", ""))
    if sel.exact is not None:
        return norm(sel.exact).startswith(folder)
    base = norm(sel.base)
    if base.startswith(folder):
        return True
    # The destination is below the source's folder: reached by a folder selection, or a glob that
    # crosses folders.
    deep = sel.regex is None or "**" in src["path"] or "/" in src["path"][len(sel.base):]
    return folder.startswith(base) and deep


def _units(processor: dict, previous_outputs: list[dict] | None) -> list[dict]:
    src = processor["processor_config"].get("src")
    if src is not None:
        files = list_files(src)
        if not files:
            raise FileNotFoundError(f"{describe(src)}: matches no files")
    else:
        # Names stay relative to the previous destination folder, so structure carries through.
        files = [{"location": o["location"], "name": o["name"], "size": o.get("bytes")}
                 for o in (previous_outputs or [])]
    return [{"processor": processor, "src": f} for f in files]


def output_key(folder: dict, name: str) -> str:
    """Where an output lands, as one comparable string ('/' at the end: a folder of outputs)."""
    if folder["type"] == "local":
        full = os.path.normpath(os.path.abspath(folder["path"] + name)) + ("/" if name.endswith("/") else "")
        return f"local:{full}"
    return f"{folder['type']}:{folder.get('connection')}/{folder.get('container')}/{folder.get('path', '')}{name}"


class Claims:
    """Planned outputs -> the source that would write each; a second claim on one is a collision."""

    def __init__(self):
        self._by_key: dict[str, tuple[int, str]] = {}

    def add_processor(self, index: int, processor: dict, sources: list[dict], within_only: bool = False):
        """Claim the outputs of a processor's sources; returns them as outputs (for the next
        processor's planning) when their names are all known, else None."""
        from processors import module_for

        module = module_for(processor)
        label = processor_label(processor)
        outputs = []
        for src in sources:
            who = f"{describe(src['location'])} (processor {index + 1}, {label})" if not within_only \
                else describe(src["location"])
            for folder, name in module.planned_outputs(processor["processor_config"], src["name"]):
                self._claim(output_key(folder, name), who)
                outputs.append(None if name.endswith("/") else {
                    "location": {**folder, "path": folder.get("path", "") + name}, "name": name, "bytes": None})
        return None if any(o is None for o in outputs) else outputs

    def _claim(self, key: str, who: str) -> None:
        # The same key, or a file where another source writes a folder of that name (or the reverse).
        other_key = next((k for k in (key, key[:-1] if key.endswith("/") else key + "/") if k in self._by_key), None)
        if other_key is not None:
            other = self._by_key[other_key]
            what = "both write" if other_key == key else "write a file and a folder at"
            raise CollisionError(f"{other} and {who} would {what} {key.rstrip('/')}: outputs would overwrite "
                                 "each other. Give them different destination folders, or narrow the src")
        self._by_key[key] = who


def processor_label(processor: dict) -> str:
    return f"{processor['processor_name']}:{processor['processor_type']}"
