"""decompress: archives and compressed files -> their contents, one output file per member.

Outputs are named ``<archive name without suffix>/<member path>`` under the destination folder
(gzip: the file name without ``.gz``), so several archives never collide and a re-run
overwrites the same names. All members of one archive are committed together."""

from __future__ import annotations

import gzip
import io
import lzma
import tarfile
import zipfile
import zlib
from contextlib import contextmanager

from mounters import open_source
from mounters.base import member_matcher, safe_relative
from pipeline.errors import LimitExceeded, MemberError  # MemberError: re-exported
from processors.decompress.limits import ArchiveBudget, counted
from processors.stream import copy_stream, source_stats


def archive_folder(src_name: str, suffixes: tuple[str, ...]) -> str:
    """The folder an archive's members are written under (ends with '/'): the planned output a
    collision check compares."""
    from processors.stream import replace_suffix

    return replace_suffix(src_name, suffixes) + "/"


# What reading a member raises when its bytes are damaged (zip.py says its decompressors' errors as
# BadZipFile): a MemberError naming the member. Anything else keeps its own class: a destination
# or source that fails mid-member is I/O, retried (a 5xx staging a block is not bad data).
DAMAGED = (zipfile.BadZipFile, tarfile.TarError, gzip.BadGzipFile, zlib.error, lzma.LZMAError, EOFError)

DRY_RUN_LISTED = 1000  # members listed per archive by --dry-run (the counts cover them all)


def declared_report(cfg, entries, size: int | None) -> dict:
    """What an archive declares, for --dry-run: `entries` is [(name, declared bytes, compressed
    bytes or None)] of every member but folders; only the members the filter selects count."""
    wanted = member_matcher(cfg.members)
    selected = [e for e in entries if wanted(e[0])]
    total = sum(e[1] for e in selected)
    budget = ArchiveBudget(cfg.limits, lambda: size or 0)
    try:
        budget.declared(len(entries), total)
        over = None
    except LimitExceeded as exc:
        over = str(exc)
    return {"members": len(entries), "selected": len(selected), "declared_bytes": total, "over_limits": over,
            "listed": [{"name": n, "bytes": b, **({"compressed_bytes": c} if c is not None else {})}
                       for n, b, c in selected[:DRY_RUN_LISTED]]}


class NotExtracted:
    """Yielded instead of a stream for a member not extracted by design (a symlink, a device, a
    fifo): the unit's result lists it by name, so every member is accounted for."""

    def __init__(self, kind: str):
        self.kind = kind


NOT_EXTRACTED_LISTED = 1000  # names listed in a unit's result (the count covers them all)


def extract(processor, src: dict, outs, seekable: bool, members_of, suffixes: tuple[str, ...]) -> dict:
    """Shared driver: `members_of(f, wanted, budget, reopen)` yields (member name, readable stream or
    NotExtracted or None when not wanted) pairs; `wanted(name)` tells whether the members filter
    selects a member (zip checks those up front); `budget` (limits.ArchiveBudget) is told what the
    archive declares, as it declares it; `reopen()` reads the archive again from its start (a
    context manager; a tar's hardlinks are copied from their targets in a second pass)."""
    from processors.stream import replace_suffix

    cfg = processor.processor_config
    dest = cfg.dest.model_dump()
    stem = replace_suffix(src["name"], suffixes)
    wanted = member_matcher(cfg.members)
    skipped = 0
    not_extracted, not_extracted_count = [], 0
    folders: dict[str, str] = {}  # folder path -> the member that needs it (the files: outs.holds)
    counters = []  # a streamed archive's bytes read, every pass

    @contextmanager
    def reopen():
        with open_source(src["location"], seekable=seekable) as again:
            reader, counter = counted(again)
            counters.append(counter)
            yield reader

    with open_source(src["location"], seekable=seekable) as f:
        if seekable:  # read at random (zip): ratios are against the whole archive
            size = f.seek(0, io.SEEK_END)
            f.seek(0)
            reader, budget = f, ArchiveBudget(cfg.limits, lambda: size)
        else:  # streamed (tar): against the bytes of it read so far
            reader, counter = counted(f)
            counters.append(counter)
            budget = ArchiveBudget(cfg.limits, lambda: sum(c.count for c in counters))
        for name, stream in members_of(reader, wanted, budget, reopen):
            if not wanted(name):
                skipped += 1
                continue
            if isinstance(stream, NotExtracted):
                not_extracted_count += 1
                if len(not_extracted) < NOT_EXTRACTED_LISTED:
                    not_extracted.append({"name": name, "kind": stream.kind})
                continue
            rel = safe_relative(name, "member")
            # A file and a folder of one name ('a' and 'a/b') cannot both be committed; find it now,
            # not when committing (which would leave the outputs committed before it visible).
            parents = ["/".join(rel.split("/")[:i]) for i in range(1, rel.count("/") + 1)]
            path = rel if rel in folders else next((p for p in parents if outs.holds(dest, f"{stem}/{p}")), None)
            if path is not None:
                other = folders[path] if path == rel else path
                raise MemberError(f"members {other!r} and {name!r} would make {stem}/{path} both a file and a folder")
            for p in parents:
                folders.setdefault(p, name)
            try:
                with outs.create(dest, f"{stem}/{rel}") as sink:
                    copy_stream(stream, sink, charge=lambda n: budget.add(n, name))
            except DAMAGED as exc:
                raise MemberError(f"member {name!r}: {type(exc).__name__}: {exc}") from exc
        stats = source_stats(f, src)
    result = {**stats, "members_skipped": skipped}
    if not_extracted_count:
        result["members_not_extracted"] = not_extracted_count
        result["not_extracted"] = not_extracted
    return result



GZIP_MAGIC = b"\x1f\x8b"


class _Prefixed(io.RawIOBase):
    """`head` (bytes already read to sniff the format) followed by the rest of `f`."""

    def __init__(self, head: bytes, f):
        self._head = head
        self._f = f

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        view = memoryview(b).cast("B")
        n = min(len(view), len(self._head))
        if n:
            view[:n] = self._head[:n]
            self._head = self._head[n:]
        if n == len(view):
            return n
        return n + (self._f.readinto(view[n:]) or 0)


def prefixed(head: bytes, f) -> io.BufferedReader:
    """A reader of `head` then the rest of `f`, whose read(n) returns n bytes unless at the end
    (tarfile sniffs compression from one read)."""
    return io.BufferedReader(_Prefixed(head, f))


def read_head(f, n: int) -> bytes:
    head = b""
    while len(head) < n:
        more = f.read(n - len(head))
        if not more:
            break
        head += more
    return head


def sniff(f, n: int):
    """(the first n bytes, a reader that still starts at byte 0): peeks when the source can."""
    peek = getattr(f, "peek", None)
    if peek is not None:
        head = peek(n)[:n]
        if len(head) == n:
            return head, f
    head = read_head(f, n)
    return head, prefixed(head, f)
