"""decompress: archives and compressed files -> their contents, one output file per member.

Outputs are named ``<archive name without suffix>/<member path>`` under the destination folder
(gzip: the file name without ``.gz``), so several archives never collide and a re-run
overwrites the same names. All members of one archive are committed together."""

from __future__ import annotations

from mounters import open_source
from mounters.base import member_matcher, safe_relative
from processors.stream import copy_stream, source_stats
from writers import OutputSet


def extract(processor, src: dict, seekable: bool, members_of, suffixes: tuple[str, ...]) -> dict:
    """Shared driver: `members_of(f)` yields (member name, readable stream) pairs in archive order."""
    from processors.stream import replace_suffix

    cfg = processor.processor_config
    dest = cfg.dest.model_dump()
    stem = replace_suffix(src["name"], suffixes)
    wanted = member_matcher(cfg.members)
    skipped = 0
    with open_source(src["location"], seekable=seekable) as f, OutputSet() as outs:
        for name, stream in members_of(f):
            if not wanted(name):
                skipped += 1
                continue
            rel = safe_relative(name, "member")
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
