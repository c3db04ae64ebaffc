"""decompress: archives and compressed files -> their contents, one output file per member.

Outputs are named ``<archive name without suffix>/<member path>`` under the destination folder
(gzip: the file name without ``.gz``), so several archives never collide and a re-run
overwrites the same names. All members of one archive are committed together."""

from __future__ import annotations

import io

from mounters import open_source
from mounters.base import member_matcher, safe_relative
from processors.stream import copy_stream, source_stats
from writers import OutputSet


def extract(processor, src: dict, seekable: bool, members_of, suffixes: tuple[str, ...]) -> dict:
    """Shared driver: `members_of(f, wanted)` yields (member name, readable stream) pairs in archive order;
    `wanted(name)` tells whether the members filter selects a member (zip checks those up front)."""
    from processors.stream import replace_suffix

    cfg = processor.processor_config
    dest = cfg.dest.model_dump()
    stem = replace_suffix(src["name"], suffixes)
    wanted = member_matcher(cfg.members)
    skipped = 0
    files, folders = {}, {}  # output path -> member name, folder path -> member that needs it
    with open_source(src["location"], seekable=seekable) as f, OutputSet() as outs:
        for name, stream in members_of(f, wanted):
            if not wanted(name):
                skipped += 1
                continue
            rel = safe_relative(name, "member")
            # A file and a folder of one name ('a' and 'a/b') cannot both be committed; find it now,
            # not when committing (which would leave the outputs committed before it visible).
            parents = ["/".join(rel.split("/")[:i]) for i in range(1, rel.count("/") + 1)]
            path = rel if rel in folders else next((p for p in parents if p in files), None)
            if path is not None:
                other = folders[path] if path == rel else files[path]
                raise MemberError(f"members {other!r} and {name!r} would make {stem}/{path} both a file and a folder")
            files[rel] = name
            for p in parents:
                folders.setdefault(p, name)
            try:
                with outs.create(dest, f"{stem}/{rel}") as sink:
                    copy_stream(stream, sink)
            except MemberError:
                raise
            except Exception as exc:  # zlib.error, lzma.LZMAError, BadZipFile (CRC), EOFError, ...
                raise MemberError(f"member {name!r}: {type(exc).__name__}: {exc}") from exc
        stats = source_stats(f, src)
    return {**stats, "outputs": outs.outputs, "members_skipped": skipped}


class MemberError(ValueError):
    """An archive member could not be read; the message names the member."""


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
