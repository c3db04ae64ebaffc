"""Local paths: this machine's folders, and network shares mounted on it (SMB/NFS/Azure Files).

Every path is resolved (symlinks followed) and must lie under the operator's local roots
(pipeline.policy): a listed file that is a symlink out of them is an error, not a silent read."""

from __future__ import annotations

import os
from typing import BinaryIO, Iterator

from mounters.base import select
from pipeline.errors import MissingSource
from pipeline.policy import current

# Large reads: a network share pays per round trip.
READ_BUFFER = 1 << 20


def describe(location: dict) -> str:
    return f"local:{location['path']}"


def iter_files(location: dict) -> Iterator[dict]:
    policy = current()
    sel = select(location["path"])
    policy.local_path(sel.exact if sel.exact is not None else (sel.base or "."))
    if sel.exact is not None:
        if not os.path.isfile(sel.exact):
            raise MissingSource(f"{describe(location)}: no such file")
        candidates = [sel.exact]
    else:
        root = sel.base or "."
        if not os.path.isdir(root):
            raise MissingSource(f"{describe(location)}: folder {root!r} does not exist (is the share mounted?)")
        candidates = []
        def unreadable(exc: OSError) -> None:  # os.walk would skip the folder silently: files would go missing
            raise OSError(f"{describe(location)}: cannot list {exc.filename!r}: {exc.strerror}") from None

        for folder, dirs, files in os.walk(root, onerror=unreadable):
            dirs.sort()
            rel = os.path.relpath(folder, root).replace(os.sep, "/")
            prefix = sel.base + ("" if rel == "." else rel + "/")
            candidates.extend(prefix + f for f in files if sel.matches(prefix + f))
    candidates.sort()
    return _refs(location, sel, candidates, policy)


def _refs(location: dict, sel, names: list[str], policy) -> Iterator[dict]:
    for full in names:
        policy.local_path(full)
        yield {"location": {**location, "path": full}, "name": full[len(sel.base):], "size": os.path.getsize(full)}


def open_source(location: dict, seekable: bool = False) -> BinaryIO:
    try:
        return current().open_local(location["path"], READ_BUFFER)
    except OSError as exc:
        raise FileNotFoundError(f"{describe(location)}: {exc.strerror}") from None
