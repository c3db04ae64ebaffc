"""The activity bodies, cloud-agnostic: each takes and returns JSON-able dicts. The local runner
calls them in its worker pool; the Azure shim registers them as activity functions.

An activity trusts nothing in its payload: the processor is validated again, every location it
carries (a unit's source, the previous processor's outputs) is checked against the operator's
policy, and a source's name must be a safe relative name, all before any I/O. A payload edited in
the Durable history or the task queue gets no further than the request that started the run."""

from __future__ import annotations

from pydantic import TypeAdapter, ValidationError

from pipeline.config import Processor, SourceLocation
from pipeline.errors import is_permanent
from pipeline.orchestration import LIST_ACTIVITY, UNIT_ACTIVITIES
from pipeline.policy import PolicyError, check_processor, current
from pipeline.telemetry import observed_unit

_source_location = TypeAdapter(SourceLocation)
_processor = TypeAdapter(Processor)


def checked_processor(processor: dict) -> dict:
    """The processor, validated again and within the policy, or PolicyError."""
    try:
        model = _processor.validate_python(processor)
    except ValidationError as exc:
        raise PolicyError(f"the processor is invalid: {exc}") from None
    processor = model.model_dump(mode="json", exclude_none=True)
    check_processor(processor)
    return processor


def checked_source(src: dict) -> dict:
    """A unit's source reference ({"location", "name", "size"}) as the policy allows it, or PolicyError."""
    from mounters.base import safe_relative

    try:
        location = _source_location.validate_python(src["location"]).model_dump(mode="json", exclude_none=True)
    except (ValidationError, KeyError, TypeError) as exc:
        raise PolicyError(f"a unit's source location is invalid: {exc}") from None
    current().check_location(location)
    try:
        safe_relative(str(src.get("name") or ""), "source name")
    except ValueError as exc:
        raise PolicyError(str(exc)) from None
    return {**src, "location": location}


def checked_manifest(ref: dict) -> dict:
    """A unit's output manifest reference, its location as the policy allows it (the outputs it
    lists are checked one by one by the units that read them)."""
    try:
        location = _source_location.validate_python(ref["location"]).model_dump(mode="json", exclude_none=True)
        count = ref["outputs"]
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise ValueError(f"outputs {count!r} is not a count")
    except (ValidationError, KeyError, TypeError, ValueError) as exc:
        raise PolicyError(f"an output manifest reference is invalid: {exc}") from None
    current().check_location(location)
    return {**ref, "location": location}


def batch_sources(batch: dict):
    """A batch unit's source references, each checked as a unit's source is, read as they are needed
    (a manifest segment: its byte range only)."""
    from pipeline.manifests import read_range

    for segment in batch["segments"]:
        if "files" in segment:
            yield from (checked_source(f) for f in segment["files"])
        else:
            location = checked_manifest({"location": segment["manifest"], "outputs": segment["count"]})["location"]
            yield from (checked_source(f) for f in read_range(location, int(segment["start"]), int(segment["end"]),
                                                               int(segment["count"])))


def list_units(payload: dict) -> list[dict] | dict:
    """The processor's units; or {"failed": message} when listing can never succeed (the policy
    refuses, a container or folder does not exist, a setting is unset), so no executor retries it."""
    from pipeline.settings import redact
    from pipeline.units import plan_units

    try:
        processor = checked_processor(payload["processor"])
        previous = payload.get("previous_outputs")
        if previous is not None:
            previous = [{"manifest": checked_manifest(o["manifest"])} if "manifest" in o else
                        {**o, **checked_source({"location": o["location"], "name": o["name"]})} for o in previous]
        run = payload.get("run")  # the whole run, with the first listing: the check across the run lists them all
        if run is not None:
            run = [checked_processor(p) for p in run]
        return plan_units(processor, previous, run)
    except PolicyError as exc:
        return {"failed": redact(f"refused by the operator's policy: {exc}")}
    except Exception as exc:
        if not is_permanent(exc):
            raise  # I/O: the executor may retry the listing
        return {"failed": redact(str(exc))}


def run_unit(payload: dict) -> dict:
    from processors import UnitError
    from processors import run_unit as run

    try:
        processor = checked_processor(payload["processor"])
        if "batch" in payload:
            return run({**payload, "processor": processor}, batch_sources(payload["batch"]))
        return run({**payload, "processor": processor, "src": checked_source(payload["src"])})
    except PolicyError as exc:
        return {"failed": f"refused by the operator's policy: {exc}", "outputs": [], "output_count": 0, "bytes_written": 0}
    except UnitError as exc:
        if not exc.permanent:
            raise  # the executor may retry it (Durable does)
        # Retrying cannot fix the data or the config: the unit reports the failure as its result, so
        # no executor retries it, and the orchestration fails the run with this message.
        return {"failed": str(exc), "outputs": [], "output_count": 0, "bytes_written": 0}


# Each unit call logs its telemetry record and span (pipeline.telemetry), under every executor.
ACTIVITIES = {LIST_ACTIVITY: list_units, **{name: observed_unit(run_unit) for name in UNIT_ACTIVITIES}}
