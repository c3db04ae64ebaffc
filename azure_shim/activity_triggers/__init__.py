"""Activity functions: each binds one adapter to a Durable activity trigger. Function names are the
activity names the core's orchestration calls (pipeline.orchestration)."""

from __future__ import annotations

import azure.durable_functions as df

from azure_shim.adapters import copy, decompress, transform
from azure_shim.adapters import list as listing

bp = df.Blueprint()


@bp.function_name("list")
@bp.activity_trigger(input_name="payload")
def list_units(payload: dict) -> list:
    return listing.run(payload)


@bp.function_name("copy")
@bp.activity_trigger(input_name="payload")
def copy_unit(payload: dict) -> dict:
    return copy.run(payload)


@bp.function_name("decompress")
@bp.activity_trigger(input_name="payload")
def decompress_unit(payload: dict) -> dict:
    return decompress.run(payload)


@bp.function_name("transform")
@bp.activity_trigger(input_name="payload")
def transform_unit(payload: dict) -> dict:
    return transform.run(payload)
