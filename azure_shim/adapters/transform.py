"""The "transform" activity: one unit of a transform processor (one source file) -> processors.run_unit."""

from azure_shim.adapters.base import unit_adapter

run = unit_adapter("transform")
