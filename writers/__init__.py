"""Destinations. One module per location type; each provides

    open_sink(folder_location, name) -> Sink   (see writers.base for the commit/abort contract)

Output formats: one module per format, registered in OUTPUT_FORMATS (writers/csv_text.py is CSV,
the transform's output); each provides SUFFIX, open_output(sink, cfg), text_format(cfg) and NATIVE
(whether the native kernel writes it).

Modules are imported on first use (azure.storage.blob is heavy; local runs never load it)."""

from __future__ import annotations

import importlib

from pipeline.errors import PermanentError
from writers.base import OutputSet, Sink

_TYPES = {"local": "writers.local", "blob": "writers.blob"}

OUTPUT_FORMATS = {"csv": "writers.csv_text"}

__all__ = ["OUTPUT_FORMATS", "OutputSet", "Sink", "open_sink", "output_format", "resume_sink"]


def output_format(name: str = "csv"):
    try:
        return importlib.import_module(OUTPUT_FORMATS[name])
    except KeyError:
        raise ValueError(f"unknown output format {name!r}") from None


def open_sink(folder: dict, name: str) -> Sink:
    from mounters.base import safe_relative

    safe_relative(name, "output name")  # derived from source and member names: never '..' or absolute
    try:
        module = importlib.import_module(_TYPES[folder["type"]])
    except KeyError:
        raise PermanentError(f"location type {folder.get('type')!r} cannot be written to") from None
    return module.open_sink(folder, name)


def resume_sink(state: dict) -> Sink:
    """A sink from its Sink.suspend() state (an OutputSet's spill), to commit or abort it."""
    return importlib.import_module(_TYPES[state["writer"]]).resume_sink(state)
