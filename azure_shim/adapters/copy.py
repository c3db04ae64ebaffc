"""The "copy" activity: one unit of a copy processor (one source file) -> processors.run_unit."""

from azure_shim.adapters.base import unit_adapter

run = unit_adapter("copy")
