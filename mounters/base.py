"""What every mounter shares: how a location's path selects files, and source references.

A location path is one of:
  * a file            ``acme/2024-01-01.zip``            -> that file, named ``2024-01-01.zip``
  * a folder          ``acme/`` (or ``''``)              -> every file below it, named relative to it
  * a glob            ``acme/2024-01-*.zip``, ``acme/**/*.jsonl`` ('*' stays within a folder, '**' crosses)
                                                       -> matches, named relative to the folder before the first wildcard
The relative *name* is what destination names are derived from, so outputs are deterministic.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass


from pipeline.errors import DataError

_WILDCARDS = re.compile(r"[*?\[]")
# Temp files of the local writer in a destination folder, and units' output manifests
# (writers.base.OutputSet); never listed as sources.
TEMP_PREFIX = ".tmp-"
MANIFEST_PREFIX = ".manifest-"


@dataclass(frozen=True)
class Selection:
    base: str  # folder prefix that names are relative to ('' or ends with '/')
    exact: str | None  # a single file, or None
    regex: re.Pattern | None  # a glob, or None for "everything below base"
    prefix: str = ""  # every selected name starts with it: what a listing by prefix asks for

    def matches(self, full: str) -> bool:
        if not full.startswith(self.base) or full.rsplit("/", 1)[-1].startswith((TEMP_PREFIX, MANIFEST_PREFIX)):
            return False
        if self.exact is not None:
            return full == self.exact
        return self.regex is None or self.regex.match(full) is not None


def select(path: str) -> Selection:
    m = _WILDCARDS.search(path)
    if m:
        base = path[: path.rfind("/", 0, m.start()) + 1]
        return Selection(base, None, re.compile(glob.translate(path, recursive=True, include_hidden=True, seps="/")),
                         path[: m.start()])  # the literal text before the first wildcard
    if path == "" or path.endswith("/"):
        return Selection(path, None, None, path)
    return Selection(path[: path.rfind("/") + 1], path, None, path)


def member_matcher(pattern: str):
    """A predicate for archive member names (same glob rules as locations)."""
    if pattern in ("*", "**", "**/*"):
        return lambda name: True
    rx = re.compile(glob.translate(pattern, recursive=True, include_hidden=True, seps="/"))
    return lambda name: rx.match(name) is not None


def safe_relative(name: str, what: str) -> str:
    """Reject names that would escape the destination folder (zip-slip) or are not files."""
    norm = name.replace("\\", "/")
    parts = norm.split("/")
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm) or ".." in parts or not parts[-1]:
        raise DataError(f"{what} {name!r} is not a safe relative file name")
    return "/".join(p for p in parts if p not in ("", "."))
