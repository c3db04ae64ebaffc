"""Sources. One module per location type; each provides:

    list_files(location) -> [SourceRef dict]     the files a location selects, sorted by name
    open_source(location, seekable) -> binary file  a streaming reader (seekable when asked)
    describe(location) -> str                     a label for people: names settings, never secrets

Modules are imported on first use: azure.storage.blob alone costs ~40 MB of memory, so a run
that touches no blob location never loads it.
"""

from __future__ import annotations

import importlib
from typing import BinaryIO

_TYPES = {"local": "mounters.local", "blob": "mounters.blob", "http": "mounters.http"}


def _module(location: dict):
    try:
        return importlib.import_module(_TYPES[location["type"]])
    except KeyError:
        raise ValueError(f"unknown location type {location.get('type')!r}") from None


def list_files(location: dict) -> list[dict]:
    """[{"location": <location of exactly that file>, "name": <relative name>, "size": int|None}]"""
    return _module(location).list_files(location)


def open_source(location: dict, seekable: bool = False) -> BinaryIO:
    """Its reads are counted for a progress display (pipeline.counters)."""
    from pipeline.counters import CountedReader

    return CountedReader(_module(location).open_source(location, seekable))


def describe(location: dict) -> str:
    return _module(location).describe(location)
