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
as a byte range of a manifest (offset and count), never the whole list. A `src` that selects more
than MAX_UNITS files is written, as it is listed, to a listing manifest in the processor's `dest`
(MANIFEST_PREFIX + "list-<processor>.jsonl", committed like any output), and its batch units are
byte ranges of it: the plan stays ~MAX_UNITS small references, and planning holds a few
thousand file names at a time, not 100,000 dicts."""

from __future__ import annotations

import hashlib
import os
from array import array
from itertools import chain, islice

import orjson

from mounters import describe, iter_files
from mounters.base import MANIFEST_PREFIX
from pipeline.errors import CollisionError

MAX_UNITS = 1000


def plan_units(processor: dict, previous_outputs: list[dict] | None, run: list[dict] | None = None) -> list[dict]:
    """`run`: all the run's processors, given with the first processor's listing, for the check across the run."""
    if run is not None:
        return plan_run(run)[0]
    if previous_outputs is None or processor["processor_config"].get("src") is not None:
        return _listed(processor, Claims(), 0, within_only=True)[0]
    total = sum(o["manifest"]["outputs"] if "manifest" in o else 1 for o in previous_outputs)

    def label_of(number: int) -> str:  # a collision names both sources: find the earlier one again
        return describe(next(islice(_previous(previous_outputs), number, number + 1))[0]["location"])

    # One pass over the manifests: each output claimed as it is batched (a collision raises while
    # planning, so no unit exists yet when it does).
    return batched(processor, total, Claims().claim_each(0, processor, _previous(previous_outputs), True, label_of,
                                                         source=lambda entry: entry[0]))


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


def plan_run(processors: list[dict], write_listings: bool = True) -> list[list[dict] | None]:
    """Each processor's units where they can be known before running (None where not), after
    checking the whole run's planned outputs for collisions. `write_listings` False (a dry run):
    a src of more than MAX_UNITS files is planned inline, and nothing is written."""
    claims = Claims()
    plans: list[list[dict] | None] = []
    known: list[dict] | None = None  # the previous processor's outputs, when known before running
    dests: list[dict] = []
    for index, processor in enumerate(processors):
        src = processor["processor_config"].get("src")
        if src is not None and any(_overlap(src, d) for d in dests):
            units = None  # it reads what an earlier processor writes: known only once that one ran
        elif src is not None:
            units, known = _listed(processor, claims, index, write_listing=write_listings)
        elif known is not None and index > 0:
            units = batched(processor, len(known), ((f, None) for f in _refs(known)))
            known = claims.add_processor(index, processor, unit_sources(units))
        else:
            units = known = None
        plans.append(units)
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


def _refs(outputs: list[dict]):
    # Names stay relative to the previous destination folder, so structure carries through.
    return ({"location": o["location"], "name": o["name"], "size": o.get("bytes")} for o in outputs)


def _listed(processor: dict, claims: "Claims", index: int, within_only: bool = False,
            write_listing: bool = True) -> tuple[list[dict], list[dict] | None]:
    """The units of a processor with a `src`, its files' outputs claimed as they are listed; and
    those outputs when their names are all known and there are at most MAX_UNITS (what the next
    processor plans from before running), else None. Beyond MAX_UNITS files the listing goes to a
    listing manifest (see the module's docstring) as it is read; a collision aborts it unseen."""
    src = processor["processor_config"]["src"]
    files = iter_files(src)
    first = list(islice(files, MAX_UNITS + 1))
    if not first:
        raise FileNotFoundError(f"{describe(src)}: matches no files")
    if len(first) <= MAX_UNITS or not write_listing:
        first += files
        return batched(processor, len(first), ((f, None) for f in first)), \
            claims.add_processor(index, processor, first, within_only)
    label = processor_label(processor)
    claimed = claims.claim_each(index, processor, chain(first, files), within_only,
                                lambda n: _label(_nth(src, n), index, label, within_only))
    location, ends = _write_listing(processor, claimed)
    # Batched from the line offsets noted while writing, not by reading the listing back.
    return batched(processor, len(ends), ((None, (location, a, b)) for a, b in zip(chain((0,), ends), ends))), None


def _nth(src: dict, n: int) -> dict:
    """A src's n-th file, listed again (a collision names it: it was not kept)."""
    return next(islice(iter_files(src), n, n + 1))


def _write_listing(processor: dict, files) -> tuple[dict, array]:
    """Write `files` (source references) to the processor's listing manifest, in the output
    manifest's line format (pipeline.manifests); its location and the end offset of each line (8
    bytes a file). Committed only once every file was listed and claimed."""
    from writers import OutputSet

    name = f"{MANIFEST_PREFIX}list-{processor['processor_name']}.jsonl"
    ends = array("q")
    with OutputSet() as outs:
        with outs.create(processor["processor_config"]["dest"], name) as sink:
            for f in files:
                sink.write(orjson.dumps({"name": f["name"], "location": f["location"], "bytes": f["size"]}) + b"\n")
                ends.append(sink.bytes)
    (out,) = outs.outputs
    return out["location"], ends


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

    def __init__(self) -> None:
        self._by_key: dict[bytes, int] = {}
        self._who: list[str] = []  # a label per claiming source, when kept
        self._lazy: list[tuple[int, object]] = []  # (first number, n -> label) of sources claimed by claim_each

    def add_processor(self, index: int, processor: dict, sources, within_only: bool = False):
        """Claim the outputs of a processor's sources; returns them as outputs (for the next
        processor's planning) when their names are all known, else None."""
        outputs = list(self.claimed(index, processor, sources, within_only, keep=True))
        return None if any(o is None for o in outputs) else outputs

    def claim_each(self, index: int, processor: dict, items, within_only: bool, label_of, source=lambda item: item):
        """Claim each item's source's outputs as it comes, keeping no label (`label_of(n)` makes the
        n-th source's again for a collision); yields the items (streamed sources: a src's listing,
        a previous processor's manifests)."""
        first = len(self._who)
        self._lazy.append((first, label_of))
        for item in items:
            for _ in self.claimed(index, processor, (source(item),), within_only):
                pass
            yield item

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
            other = self._who[number] or self._label_of(number)
            what = "both write" if other_key == key else "write a file and a folder at"
            raise CollisionError(f"{other} and {who()} would {what} {key.rstrip('/')}: outputs would overwrite "
                                 "each other. Give them different destination folders, or narrow the src")
        self._by_key[_digest(key)] = number


    def _label_of(self, number: int) -> str:
        for first, label_of in reversed(self._lazy):
            if number >= first:
                return label_of(number - first)  # type: ignore[operator]
        return f"source {number + 1}"


def _digest(key: str) -> bytes:
    return hashlib.blake2b(key.encode(), digest_size=16).digest()


def _label(src: dict, index: int, label: str, within_only: bool) -> str:
    return describe(src["location"]) if within_only else f"{describe(src['location'])} (processor {index + 1}, {label})"


def processor_label(processor: dict) -> str:
    return f"{processor['processor_name']}:{processor['processor_type']}"
