"""Planning: which units of work a processor has. This is the "list" activity (it does I/O:
listing a folder, a container or a glob), so an orchestrator never touches storage itself.

A processor with a `src` fans out to one unit per file it selects; a processor without one
reads what the previous processor wrote: one unit per output file.

Planning also refuses collisions, before any data moves: two sources whose outputs would have
the same name (`a.jsonl` and `a.ndjson` both becoming `a.csv`; `a.zip` and `a.tar` both
extracting into `a/`) would overwrite each other in an order that changes from run to run. Within
a processor that is checked whenever it is listed; across the run, the first listing checks every
processor whose outputs can be known before running (all with a `src`, and those reading a
processor whose output names are known: copy, gzip, transform; not an archive's members).

Units are bounded in number: up to MAX_UNITS files, one unit per file; beyond, batch units of
consecutive files, so a processor runs at most MAX_UNITS activities whatever the file count (a
100,000-member archive's transform: 1,000 units of 100 files). The previous processor's outputs
come inline (a unit with few outputs) or as references to its units' output manifests
(pipeline.manifests), which planning reads as a stream; a batch unit carries its files inline or
as a byte range of a manifest (offset and count), never the whole list."""

from __future__ import annotations

import hashlib
import os

from mounters import describe, list_files
from pipeline.errors import CollisionError

MAX_UNITS = 1000


def plan_units(processor: dict, previous_outputs: list[dict] | None, run: list[dict] | None = None) -> list[dict]:
    """`run`: all the run's processors, given with the first processor's listing, for the check across the run."""
    if run is not None:
        return plan_run(run)[0]
    if previous_outputs is None or processor["processor_config"].get("src") is not None:
        units = _units(processor, None)
        Claims().add_processor(0, processor, unit_sources(units), within_only=True)
        return units
    total = sum(o["manifest"]["outputs"] if "manifest" in o else 1 for o in previous_outputs)
    def resolve(number: int) -> str:  # a collision names both sources: find the earlier one again
        ref = next(r for i, (r, _) in enumerate(_previous(previous_outputs)) if i == number)
        return describe(ref["location"])

    claims = Claims(resolve)
    for _ in claims.claimed(0, processor, (ref for ref, _ in _previous(previous_outputs)), within_only=True):
        pass  # the collision check first, before any unit exists
    return batched(processor, total, _previous(previous_outputs))


def _previous(previous_outputs: list[dict]):
    """(source reference, where) of each output of the previous processor: where is None for one
    given inline, (manifest location, start, end) for one listed in a unit's output manifest."""
    from pipeline.manifests import scan

    for o in previous_outputs:
        if "manifest" in o:
            for ref, start, end in scan(o["manifest"]):
                yield ref, (o["manifest"]["location"], start, end)
        else:  # names stay relative to the previous destination folder, so structure carries through
            yield {"location": o["location"], "name": o["name"], "size": o.get("bytes")}, None


def batched(processor: dict, total: int, entries) -> list[dict]:
    """One unit per file up to MAX_UNITS files; beyond, batch units of consecutive files
    ({"batch": {"index", "count", "segments"}}: a segment is {"files": [refs]} or a manifest's
    byte range {"manifest": location, "start", "end", "count"})."""
    size = max(1, -(-total // MAX_UNITS))
    if size == 1:
        return [{"processor": processor, "src": ref} for ref, _ in entries]
    units: list[dict] = []
    segments: list[dict] = []
    n = 0
    for ref, where in entries:
        last = segments[-1] if segments else None
        if where is None:
            if last is not None and "files" in last:
                last["files"].append(ref)
            else:
                segments.append({"files": [ref]})
        else:
            location, start, end = where
            if last is not None and last.get("manifest") == location and last["end"] == start:
                last["end"], last["count"] = end, last["count"] + 1
            else:
                segments.append({"manifest": location, "start": start, "end": end, "count": 1})
        n += 1
        if n == size:
            units.append({"processor": processor, "batch": {"index": len(units), "count": n, "segments": segments}})
            segments, n = [], 0
    if segments:
        units.append({"processor": processor, "batch": {"index": len(units), "count": n, "segments": segments}})
    return units


def unit_sources(units: list[dict]):
    """Each unit's source references (a batch unit's inline files)."""
    for u in units:
        if "src" in u:
            yield u["src"]
        else:
            for seg in u["batch"]["segments"]:
                yield from seg.get("files", ())


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
        known = claims.add_processor(index, processor, unit_sources(units)) if units is not None else None
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
    """The units of a processor with a `src` (previous_outputs None), or of one reading outputs
    known before running (given inline)."""
    src = processor["processor_config"].get("src")
    if src is not None:
        files = list_files(src)
        if not files:
            raise FileNotFoundError(f"{describe(src)}: matches no files")
    else:
        # Names stay relative to the previous destination folder, so structure carries through.
        files = [{"location": o["location"], "name": o["name"], "size": o.get("bytes")}
                 for o in (previous_outputs or [])]
    return batched(processor, len(files), ((f, None) for f in files))


def output_key(folder: dict, name: str) -> str:
    """Where an output lands, as one comparable string ('/' at the end: a folder of outputs)."""
    if folder["type"] == "local":
        full = os.path.normpath(os.path.abspath(folder["path"] + name)) + ("/" if name.endswith("/") else "")
        return f"local:{full}"
    return f"{folder['type']}:{folder.get('connection')}/{folder.get('container')}/{folder.get('path', '')}{name}"


class Claims:
    """Planned outputs -> the source that would write each; a second claim on one is a collision.
    Keys are kept as 16-byte digests and sources as numbers (memory stays small for 100,000
    outputs); a collision names both sources (the earlier one found again by its number)."""

    def __init__(self, resolve=None):
        self._by_key: dict[bytes, int] = {}
        self._who: list[str] = []  # a label per claiming source, when kept
        self._resolve = resolve  # number -> label of a source not kept (sources streamed from manifests)

    def add_processor(self, index: int, processor: dict, sources, within_only: bool = False):
        """Claim the outputs of a processor's sources; returns them as outputs (for the next
        processor's planning) when their names are all known, else None."""
        outputs = list(self.claimed(index, processor, sources, within_only, keep=True))
        return None if any(o is None for o in outputs) else outputs

    def claimed(self, index: int, processor: dict, sources, within_only: bool = False, keep: bool = False):
        """Claim each source's outputs as it comes; yields the planned outputs (None: a folder)."""
        from processors import module_for

        module = module_for(processor)
        label = processor_label(processor)
        for src in sources:
            number = len(self._who)
            self._who.append(_label(src, index, label, within_only) if keep else "")
            for folder, name in module.planned_outputs(processor["processor_config"], src["name"]):
                self._claim(output_key(folder, name), number, lambda: _label(src, index, label, within_only))
                yield None if name.endswith("/") else {
                    "location": {**folder, "path": folder.get("path", "") + name}, "name": name, "bytes": None}

    def _claim(self, key: str, number: int, who) -> None:
        # The same key, or a file where another source writes a folder of that name (or the reverse).
        other_key = next((k for k in (key, key[:-1] if key.endswith("/") else key + "/") if _digest(k) in self._by_key),
                         None)
        if other_key is not None:
            number = self._by_key[_digest(other_key)]
            other = self._who[number] or (self._resolve(number) if self._resolve else f"source {number + 1}")
            what = "both write" if other_key == key else "write a file and a folder at"
            raise CollisionError(f"{other} and {who()} would {what} {key.rstrip('/')}: outputs would overwrite "
                                 "each other. Give them different destination folders, or narrow the src")
        self._by_key[_digest(key)] = number


def _digest(key: str) -> bytes:
    return hashlib.blake2b(key.encode(), digest_size=16).digest()


def _label(src: dict, index: int, label: str, within_only: bool) -> str:
    return describe(src["location"]) if within_only else f"{describe(src['location'])} (processor {index + 1}, {label})"


def processor_label(processor: dict) -> str:
    return f"{processor['processor_name']}:{processor['processor_type']}"
