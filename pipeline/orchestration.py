"""The pipeline's one orchestration, written once and run by every executor.

`orchestrate(ctx, request)` is a generator over an activity-calling context with the Durable
Functions shape:

    ctx.call_activity(name, payload) -> task      yield it to get the activity's result
    ctx.task_all([tasks])            -> task      yield it to get all results, in order
    ctx.set_custom_status(obj)                    progress for whoever polls

The local runner drives it with a thread pool; the Azure shim hands it a DurableOrchestrationContext
(`return (yield from orchestrate(context, request))`). It does no I/O, reads no clock and draws
no random numbers, so Durable replay is deterministic. Units pass references, never data.

Results stay small whatever the file count: a unit's result carries counts, and its outputs
inline only up to writers.base.OUTPUTS_INLINE, else a reference to its output manifest; the next
processor is planned from those (pipeline.units: at most MAX_UNITS units, batches beyond).

Activities: "list" -> pipeline.units.plan_units; "copy" / "decompress" / "transform" (one per
processor kind) -> processors.run_unit.
"""

from __future__ import annotations

from pipeline.units import processor_label

LIST_ACTIVITY = "list"
# Each processor's units run as the activity named after it ("copy", "decompress", "transform"),
# so a run's activities read as its processors in Durable monitoring and logs.
UNIT_ACTIVITIES = ("copy", "decompress", "transform")
DEFAULT_PARALLEL_UNITS = 32


class PipelineFailed(RuntimeError):
    """A processor's listing or one of its units failed (after the executor's retries)."""


def orchestrate(ctx, request: dict):
    """request: {"config": <validated config as a dict>, "max_parallel_units": n}, as made by
    pipeline.request.orchestration_input. Returns the run's manifest."""
    config = request["config"]
    wave = request.get("max_parallel_units") or DEFAULT_PARALLEL_UNITS
    processors = config["processors"]
    telemetry = request.get("telemetry")
    steps = []
    previous = None
    for index, processor in enumerate(processors):
        label = processor_label(processor)
        where = {"processor": index + 1, "of": len(processors), "name": label}
        ctx.set_custom_status({**where, "stage": "listing"})
        try:
            listing = {"processor": processor, "previous_outputs": previous}
            if index == 0:  # the first listing checks the whole run's outputs for collisions
                listing["run"] = processors
            units = yield ctx.call_activity(LIST_ACTIVITY, listing)
            if isinstance(units, dict):  # listing failed for good (policy, missing container, collision, ...)
                raise PipelineFailed(f"{units['failed']} (not retried: the data or the config is wrong)")
            results = []
            sizes = [u.get("src", {}).get("size") for u in units]
            if all(isinstance(n, int) for n in sizes):  # what a progress display counts the bytes read against
                where["src_bytes"] = sum(sizes)
            for start in range(0, len(units), wave):
                ctx.set_custom_status({**where, "stage": "running", "units_done": len(results), "units": len(units)})
                batch = units[start:start + wave]
                if telemetry:  # labels and the run's trace for each unit's record and span (pipeline.telemetry)
                    batch = [{**u, "telemetry": telemetry} for u in batch]
                done = yield ctx.task_all([ctx.call_activity(processor["processor_name"], u) for u in batch])
                results += done
                failed = next((r["failed"] for r in done if "failed" in r), None)
                if failed:
                    raise PipelineFailed(f"{failed} (not retried: the data or the config is wrong)")
        except Exception as exc:  # the executor's failure: an activity's message, after retries
            raise PipelineFailed(f"processor {index + 1} of {len(processors)} ({label}) failed: {_one_line(exc)}") from None
        ctx.set_custom_status({**where, "stage": "finished", "units_done": len(results), "units": len(units)})
        steps.append(step_summary(index, label, results))
        previous = next_inputs(results)
    return manifest(config, steps)


def _one_line(exc: Exception) -> str:
    # Durable renders an activity failure as "<reason> \n <details>"; keep it readable in one line.
    return " ".join(str(exc).split())


def next_inputs(results: list[dict]) -> list[dict]:
    """What the next processor plans from: each unit's outputs inline (a few), or a reference to
    its output manifest ({"manifest": {"location", "outputs", ...}}), so this stays small."""
    out: list[dict] = []
    for r in results:
        if "outputs_manifest" in r:
            out.append({"manifest": r["outputs_manifest"]})
        else:
            out += r["outputs"]
    return out


# A result from before counts were carried (a Durable history replayed after an upgrade) has them inline.
def _count(result: dict) -> int:
    return result["output_count"] if "output_count" in result else len(result.get("outputs") or [])


def _bytes(result: dict) -> int:
    return result["bytes_written"] if "bytes_written" in result else sum(o["bytes"] for o in result.get("outputs") or [])


# A step of the run manifest lists its units' results up to this many (the counts cover them all;
# a unit with many outputs lists them in its output manifest, which its result references).
RESULTS_LISTED = 20
# Files with rejected lines listed by name in the manifest (the count covers them all).
REJECTS_LISTED = 100


def step_summary(index: int, label: str, results: list[dict]) -> dict:
    rejected = [f for r in results for f in _rejected(r)]
    return {
        "index": index,
        "processor": label,
        "units": len(results),
        "outputs": sum(_count(r) for r in results),
        "bytes_written": sum(_bytes(r) for r in results),
        "bytes_read": sum(int(r.get("bytes_fetched", r.get("src_bytes")) or 0) for r in results),
        "rows": sum(r.get("rows", 0) for r in results),
        "rejects": sum(r.get("rejects", 0) for r in results),
        "rejected_files": sum(r.get("rejected_files", 1 if r.get("rejects") else 0) for r in results),
        "rejected": [{"processor": label, **f} for f in rejected[:REJECTS_LISTED]],
        "results_listed": min(len(results), RESULTS_LISTED),
        "results": results[:RESULTS_LISTED],
        # every unit's drift, not only the listed results' (manifest() moves it to the run's report)
        "drift": step_drift(index, label, results),
    }


def _rejected(result: dict) -> list[dict]:
    """A unit's files with rejected lines: {"src", "rejects", "first_reject"} each."""
    if "rejected" in result:  # a batch unit's
        return result["rejected"]
    if result.get("rejects"):
        return [{"src": result.get("src"), "rejects": result["rejects"], "first_reject": result.get("first_reject")}]
    return []


def rejects_report(steps: list[dict]) -> dict:
    """The run's rejected lines: how many, and per file (the first REJECTS_LISTED files) the count
    and the first one, so a partial loss is visible at run level, not only inside a unit's result."""
    listed = [f for s in steps for f in s["rejected"]]
    return {"lines": sum(s["rejects"] for s in steps), "files": sum(s["rejected_files"] for s in steps),
            "listed": listed[:REJECTS_LISTED]}


# Paths listed per processor in the run's drift report (each unit's result lists its own top 20).
DRIFT_LISTED = 20


def step_drift(index: int, label: str, results: list[dict]) -> dict | None:
    """Schema drift of one transform processor whose units sampled any lines (None otherwise): the lines
    sampled, the unmapped paths (top DRIFT_LISTED by sampled lines, with how many units hold each),
    and the mapped paths missing, vanished or changing type, with how many units saw that. Units
    with drift are counted; each unit's own report stays in its result."""
    units = [r["drift"] for r in results if r.get("drift")]
    if not units:
        return None
    unmapped: dict[str, list[int]] = {}
    for d in units:
        for u in d["unmapped"]:
            tally = unmapped.setdefault(u["path"], [0, 0])
            tally[0] += u["lines"]
            tally[1] += 1
    entry = {"index": index, "processor": label, "units": len(units),
             "units_with_drift": sum(1 for d in units if d["unmapped"] or d["missing"] or d.get("vanished")
                                     or d["type_changes"]),
             "lines_sampled": sum(d["lines_sampled"] for d in units),
             "unmapped": [{"path": p, "lines": n, "units": k} for p, (n, k) in
                          sorted(unmapped.items(), key=lambda i: (-i[1][0], i[0]))[:DRIFT_LISTED]],
             "unmapped_paths": len(unmapped)}
    for key in ("missing", "vanished", "type_changes"):
        by_column: dict[tuple, dict] = {}
        for d in units:
            for m in d.get(key, []):
                item = by_column.setdefault((m["column"], m["path"]), {"column": m["column"], "path": m["path"],
                                                                       "units": 0})
                item["units"] += 1
                if key == "type_changes":
                    types = item.setdefault("types", {})
                    for t, n in m["types"].items():
                        types[t] = types.get(t, 0) + n
        entry[key] = list(by_column.values())
    return entry


def manifest(config: dict, steps: list[dict]) -> dict:
    return {
        "sourcemart": config.get("sourcemart"),
        "table": config.get("table"),
        "status": "succeeded",
        "rejects": rejects_report(steps),
        "drift": [d for d in (s.pop("drift") for s in steps) if d],
        "steps": steps,
        "totals": {
            "units": sum(s["units"] for s in steps),
            "outputs": sum(s["outputs"] for s in steps),
            "bytes_written": sum(s["bytes_written"] for s in steps),
            "rows": sum(s["rows"] for s in steps),
            "rejects": sum(s["rejects"] for s in steps),
        },
    }
