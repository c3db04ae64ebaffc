"""The writer contract: nothing becomes visible until the whole unit of work succeeded.

A Sink is a writable binary file that also counts and hashes what passes through it:
    write(b)   -> stream bytes (local: a temp file in the destination folder; blob: staged blocks)
    finish()   -> everything written is durable, still invisible
    commit()   -> make it visible under its final name (atomic rename / commit block list)
    abort()    -> discard; a pre-existing file of the same name is untouched
close() without commit() aborts, so an exception, or garbage collection of a forgotten sink,
can never publish a partial file.

An OutputSet groups the sinks of one unit of work (an archive's members, a CSV and its rejects)
and commits them together only when the unit succeeds.
"""

from __future__ import annotations

import hashlib
import io
from contextlib import contextmanager
from typing import Iterator

from pipeline import stop
from pipeline.errors import CollisionError

# Bytes written by all sinks of this process: a progress display reads it (approximate under threads).
_written = [0]


def bytes_written_total() -> int:
    return _written[0]


class Sink(io.RawIOBase):
    def __init__(self, location: dict, label: str):
        self.location = location  # where it will be visible: a location dict naming exactly this file
        self.label = label
        self.bytes = 0
        self._sha = hashlib.sha256()
        self._state = "open"  # open -> finished -> committed | aborted

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        if self._state != "open":
            raise ValueError(f"{self.label}: write after {self._state}")
        stop.check()  # interrupted: the unit aborts at its next write
        n = len(b) if not isinstance(b, memoryview) else b.nbytes
        self._sha.update(b)
        self._write(b)
        self.bytes += n
        _written[0] += n
        return n

    @property
    def sha256(self) -> str:
        return self._sha if isinstance(self._sha, str) else self._sha.hexdigest()

    def finish(self) -> None:
        if self._state == "open":
            self._finish()
            self._state = "finished"
            # A finished sink waits for its unit's commit, maybe beside 100,000 others: keep the
            # digest, not the hash state (OpenSSL memory that Python's allocator does not see).
            self._sha = self._sha.hexdigest()

    def commit(self) -> None:
        self.finish()
        if self._state == "finished":
            stop.check()  # nothing is published after a stop was requested
            self._commit()
            self._state = "committed"

    def abort(self) -> None:
        if self._state in ("open", "finished"):
            self._state = "aborted"
            self._abort()

    def close(self) -> None:
        if not self.closed:
            try:
                if self._state != "committed":
                    self.abort()
            finally:
                super().close()

    def result(self, name: str) -> dict:
        return {"location": self.location, "name": name, "bytes": self.bytes, "sha256": self.sha256}

    # Implemented by each writer.
    def _write(self, b) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        raise NotImplementedError

    def _commit(self) -> None:
        raise NotImplementedError

    def _abort(self) -> None:
        raise NotImplementedError


class OutputSet:
    """The outputs of one unit of work, committed together on success, all aborted on failure."""

    def __init__(self):
        self._pending: list[tuple[str, Sink]] = []
        self._names: set[tuple[str, str]] = set()
        self.outputs: list[dict] = []

    @contextmanager
    def create(self, folder: dict, name: str) -> Iterator[Sink]:
        from writers import open_sink

        key = (repr(sorted(folder.items())), name)
        if key in self._names:
            raise CollisionError(f"two outputs of this unit would both be named {name!r}")
        self._names.add(key)
        sink = open_sink(folder, name)
        try:
            yield sink
            sink.finish()
        except BaseException:
            sink.close()
            raise
        self._pending.append((name, sink))

    def __enter__(self) -> "OutputSet":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                for name, sink in self._pending:
                    sink.commit()
                    self.outputs.append(sink.result(name))
        finally:
            for _, sink in reversed(self._pending):  # the last created first: it may sit in a folder an earlier one made
                sink.close()  # aborts whatever was not committed
