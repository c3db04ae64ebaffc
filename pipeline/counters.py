"""Process-wide progress counters: bytes read from sources, rows converted, lines rejected.

Updated per chunk or per read (never per row) by whatever thread does the work, under one lock;
read by a progress display (local_runner.progress). Monotonic over the process's life: a display
takes differences. Bytes written are counted by writers.base (bytes_written_total)."""

from __future__ import annotations

import threading

_lock = threading.Lock()
_totals = {"read": 0, "rows": 0, "rejects": 0}


def add(read: int = 0, rows: int = 0, rejects: int = 0) -> None:
    with _lock:
        _totals["read"] += read
        _totals["rows"] += rows
        _totals["rejects"] += rejects


def snapshot() -> dict[str, int]:
    with _lock:
        return dict(_totals)


class CountedReader:
    """A source's binary file whose reads are added to the `read` counter; everything else (seek,
    tell, raw, headers, fileno, ...) is the file's own."""

    def __init__(self, f):
        self._f = f

    @property
    def wrapped(self):
        """The file whose reads are counted (processors.stream.unbuffered looks below it)."""
        return self._f

    def read(self, n: int | None = -1) -> bytes:
        data = self._f.read(n)
        add(read=len(data))
        return data

    def read1(self, n: int = -1) -> bytes:
        data = self._f.read1(n)
        add(read=len(data))
        return data

    def readinto(self, b) -> int:
        n = self._f.readinto(b) or 0
        add(read=n)
        return n

    def readline(self, limit: int = -1) -> bytes:
        data = self._f.readline(limit)
        add(read=len(data))
        return data

    def __iter__(self):
        return iter(self.readline, b"")

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._f.close()
