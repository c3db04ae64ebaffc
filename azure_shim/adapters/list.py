"""The "list" activity: a processor's units (listing a folder, a container, a glob, or the previous
processor's outputs) -> pipeline.units.plan_units. Listing is I/O, so it is an activity: the
orchestrator never touches storage."""

from azure_shim.adapters.base import run_activity


def run(payload: dict) -> list[dict]:
    return run_activity("list", payload)
