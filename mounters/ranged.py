"""A seekable, buffered reader over ranged reads (blob ranged GETs, HTTP Range requests).

The zip reader (processors/decompress/zip.py) seeks to the central directory at the end, then streams each member. A raw reader
that fetches exactly what is asked, under an io.BufferedReader whose seeks inside the buffer
keep it, downloads each byte about once (bench/ and tests measure bytes_fetched / size).
"""

from __future__ import annotations

import io
from typing import Callable

# fetch(offset, view) fills view (len(view) bytes, never past the end) and returns the count.
Fetch = Callable[[int, memoryview], int]


class RangedRaw(io.RawIOBase):
    def __init__(self, fetch: Fetch, size: int, label: str):
        self._fetch = fetch
        self._size = size
        self._pos = 0
        self.label = label
        self.name = label  # BufferedReader.name: messages show it
        self.bytes_fetched = 0
        self.requests = 0
        self.on_close: Callable[[], None] | None = None  # e.g. cancel a source's deadline watchdog

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self._size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise OSError(22, f"negative seek position in {self.label}")
        self._pos = pos
        return pos

    def readinto(self, b) -> int:
        view = memoryview(b).cast("B")
        n = min(len(view), self._size - self._pos)
        if n <= 0:
            return 0
        got = self._fetch(self._pos, view[:n])
        if got != n:
            raise OSError(f"{self.label}: short read at offset {self._pos} ({got} of {n} bytes); did it change?")
        self._pos += n
        self.bytes_fetched += n
        self.requests += 1
        return n

    @property
    def size(self) -> int:
        return self._size

    def close(self) -> None:
        if not self.closed and self.on_close is not None:
            self.on_close()
        super().close()


def open_ranged(fetch: Fetch, size: int, label: str, buffer_size: int) -> io.BufferedReader:
    return io.BufferedReader(RangedRaw(fetch, size, label), buffer_size=buffer_size)
