"""The activity bodies, cloud-agnostic: each takes and returns JSON-able dicts. The local runner
calls them in its worker pool; the Azure shim registers them as activity functions."""

from __future__ import annotations

from pipeline.orchestration import LIST_ACTIVITY, UNIT_ACTIVITIES


def list_units(payload: dict) -> list[dict]:
    from pipeline.units import plan_units

    return plan_units(payload["processor"], payload.get("previous_outputs"), payload.get("run"))


def run_unit(payload: dict) -> dict:
    from processors import UnitError
    from processors import run_unit as run

    try:
        return run(payload)
    except UnitError as exc:
        if not exc.permanent:
            raise  # the executor may retry it (Durable does)
        # Retrying cannot fix the data or the config: the unit reports the failure as its result, so
        # no executor retries it, and the orchestration fails the run with this message.
        return {"failed": str(exc), "outputs": []}


ACTIVITIES = {LIST_ACTIVITY: list_units, **{name: run_unit for name in UNIT_ACTIVITIES}}
