"""Sources. One module per location type; each provides:

    iter_files(location) -> SourceRef dicts        the files a location selects, sorted by name, one
                                                   at a time (a folder of 100,000 files is not
                                                   100,000 dicts at once)
    open_source(location, seekable) -> binary file  a streaming reader (seekable when asked)
    describe(location) -> str                     a label for people: names settings, never secrets

Modules are imported on first use: azure.storage.blob alone costs ~40 MB of memory, so a run
that touches no blob location never loads it.
"""

from __future__ import annotations

import importlib
from typing import BinaryIO, Iterator

_TYPES = {"local": "mounters.local", "blob": "mounters.blob", "http": "mounters.http"}


def _module(location: dict):
    try:
        return importlib.import_module(_TYPES[location["type"]])
    except KeyError:
        raise ValueError(f"unknown location type {location.get('type')!r}") from None


def iter_files(location: dict) -> Iterator[dict]:
    """{"location": <location of exactly that file>, "name": <relative name>, "size": int|None} of
    each file, sorted by name. The listing itself happens at once (errors are raised here, not at
    the first next()); the dicts are made as they are taken."""
    return _module(location).iter_files(location)


def list_files(location: dict) -> list[dict]:
    return list(iter_files(location))


def open_source(location: dict, seekable: bool = False) -> BinaryIO:
    """Its reads are counted for a progress display (pipeline.counters)."""
    from pipeline.counters import CountedReader

    return CountedReader(_module(location).open_source(location, seekable))


def describe(location: dict) -> str:
    return _module(location).describe(location)
