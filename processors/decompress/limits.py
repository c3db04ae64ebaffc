"""Archive limits: what one archive may unpack to, so a small archive cannot fill the disk (a zip
bomb, a gzip of zeros, a PAX-sparse tar declaring a 10 GiB file of holes).

Checked twice: up front from what the archive declares (a zip's central directory; a tar member's
header as it comes) and on the bytes actually written, while streaming (gzip and tar declare
nothing trustworthy). The operator sets the limits per decompress processor (`limits` in its
config: pipeline.config.ArchiveLimits); the defaults protect a small instance."""

from __future__ import annotations

import io

from pipeline.errors import LimitExceeded

# The ratio applies beyond the first MiB of output: a small file of zeros compresses 1000:1 and is
# no threat; only volume is.
RATIO_SLACK = 1 << 20

_FIX = "nothing was published. If this archive is expected, raise limits.{} in the decompress processor's config"


class ArchiveBudget:
    """One archive's running totals against its limits. `compressed()` tells how many bytes of the
    archive have been read so far (a streamed archive) or its whole size (a zip, read at random)."""

    def __init__(self, limits, compressed):
        self.limits = limits
        self.compressed = compressed
        self.members = 0
        self.total = 0

    def _fail(self, what: str, limit: str, member: str | None = None) -> None:
        where = f"member {member!r}: " if member else ""
        raise LimitExceeded(f"{where}{what}; " + _FIX.format(limit), member=member)

    def _ratio_cap(self) -> float:
        return self.limits.max_ratio * self.compressed() + RATIO_SLACK

    def declared(self, members: int, total: int) -> None:
        """What the whole archive declares, before anything is written (zip)."""
        lim = self.limits
        if members > lim.max_members:
            self._fail(f"the archive has {members} members, more than limits.max_members {lim.max_members}", "max_members")
        if total > lim.max_total_bytes:
            self._fail(f"the archive declares {total} bytes uncompressed, more than limits.max_total_bytes "
                       f"{lim.max_total_bytes}", "max_total_bytes")
        if total > self._ratio_cap():
            self._fail(f"the archive declares {total} bytes uncompressed from {self.compressed()}, more than "
                       f"limits.max_ratio {lim.max_ratio:g} times its size", "max_ratio")

    def member(self, name: str, declared_size: int | None = None) -> None:
        """One more member (a tar header as it comes), with the size it declares if any."""
        lim = self.limits
        self.members += 1
        if self.members > lim.max_members:
            self._fail(f"the archive has more than limits.max_members {lim.max_members} members", "max_members", name)
        if declared_size is not None and self.total + declared_size > lim.max_total_bytes:
            self._fail(f"declares {declared_size} bytes, which takes the archive past limits.max_total_bytes "
                       f"{lim.max_total_bytes}", "max_total_bytes", name)

    def add(self, n: int, name: str | None) -> None:
        """n more bytes actually written."""
        self.total += n
        lim = self.limits
        if self.total > lim.max_total_bytes:
            self._fail(f"the archive unpacks to more than limits.max_total_bytes {lim.max_total_bytes}",
                       "max_total_bytes", name)
        if self.total > self._ratio_cap():
            self._fail(f"the archive unpacks to more than limits.max_ratio {lim.max_ratio:g} times the "
                       f"{self.compressed()} bytes read of it", "max_ratio", name)


class CountingReader(io.RawIOBase):
    """The archive's bytes as read: how much of it the decompressor has consumed so far."""

    def __init__(self, f):
        self._f = f
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = self._f.readinto(b) or 0
        self.count += n
        return n


def counted(f):
    """(a buffered reader over f that counts, the counter)."""
    raw = CountingReader(f)
    return io.BufferedReader(raw, 1 << 16), raw
