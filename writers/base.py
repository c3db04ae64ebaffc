"""The writer contract: nothing becomes visible until the whole unit of work succeeded.

A Sink is a writable binary file that also counts and hashes what passes through it:
    write(b)   -> stream bytes (local: a temp file in the destination folder; blob: staged blocks)
    finish()   -> everything written is handed over (local: durable), still invisible
    settle()   -> everything handed over is durable (blob: its blocks staged in the background are
                  done), or the failure is raised; commit() settles first
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
import tempfile
import threading
from contextlib import contextmanager
from itertools import chain
from typing import Iterator

import orjson

from mounters.base import MANIFEST_PREFIX  # noqa: F401  (one definition: listings skip these names)
from pipeline import stop
from pipeline.errors import CollisionError

# Bytes written by all sinks of this process: a progress display reads it (approximate under threads).
_written = [0]


def bytes_written_total() -> int:
    return _written[0]


class Pending:
    """Work sinks handed over to the background (a blob sink's blocks being staged): how much is
    in flight, and the first failure. A sink has its own; an OutputSet gives all of its sinks one
    and settles it before committing any of them, so a failed block fails the unit before anything
    is visible."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._count = 0
        self._error: BaseException | None = None

    def start(self) -> None:
        with self._cond:
            if self._error is not None:
                raise self._error
            self._count += 1

    def done(self, error: BaseException | None = None) -> None:
        with self._cond:
            self._count -= 1
            if error is not None and self._error is None:
                self._error = error
            self._cond.notify_all()

    def wait(self, raise_error: bool = True) -> None:
        with self._cond:
            while self._count:
                self._cond.wait()
            if raise_error and self._error is not None:
                raise self._error


class Sink(io.RawIOBase):
    def __init__(self, location: dict, label: str):
        self.location = location  # where it will be visible: a location dict naming exactly this file
        self.label = label
        self.bytes = 0
        self._sha = hashlib.sha256()
        self._state = "open"  # open -> finished -> committed | aborted | suspended
        self.pending = Pending()  # an OutputSet replaces it with its own, shared by its sinks

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

    def settle(self) -> None:
        """Wait until what this sink handed to the background is done; raise its failure."""
        self.pending.wait()

    def commit(self) -> None:
        self.finish()
        if self._state == "finished":
            stop.check()  # nothing is published after a stop was requested
            self._commit()
            self._state = "committed"

    def suspend(self) -> dict:
        """A finished sink's state as a small JSON-able dict, from which the writer's
        resume_sink(state) makes a sink that commits or aborts it; this object lets go of it (its
        close() no longer aborts). An OutputSet suspends most of a large unit's sinks to disk."""
        if self._state != "finished":
            raise ValueError(f"{self.label}: suspend when {self._state}")
        state = {"writer": self.location["type"], "location": self.location, "label": self.label,
                 "bytes": self.bytes, "sha256": self.sha256, **self._suspend()}
        self._state = "suspended"
        return state

    def _resumed(self, state: dict) -> None:
        """Set up a sink resumed from suspend()'s state (the writer's resume_sink calls it first)."""
        io.RawIOBase.__init__(self)
        self.pending = Pending()  # its unit settled before committing: nothing of it is in flight
        self.location, self.label, self.bytes = state["location"], state["label"], state["bytes"]
        self._sha = state["sha256"]
        self._state = "finished"

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

    def _suspend(self) -> dict:
        raise NotImplementedError


# A unit's outputs travel inline in its result up to this many; beyond it, its result carries the
# counts and a reference to the unit's output manifest (OutputSet below), so a unit's result, the
# Durable history and the run manifest stay small whatever the member or file count.
OUTPUTS_INLINE = 20
# Output manifests are named MANIFEST_PREFIX + ... + `.jsonl`; listings never select them as
# sources (mounters.base.Selection), so a processor reading that folder does not take one for data.


class OutputSet:
    """The outputs of one unit of work, committed together on success, all aborted on failure.

    Memory is bounded whatever the output count: the first OUTPUTS_INLINE finished sinks are kept;
    each one after is suspended (its writer's small state, enough to commit or abort it later) into
    a spill file on local disk. A unit with more than `inline` outputs also writes its output
    manifest at `manifest` = (folder, name): JSON Lines, one output per line ({"name", "location",
    "bytes", "sha256"}), written as outputs finish and committed *after* all of them, in this same
    commit: a manifest that is visible lists only outputs that are visible."""

    def __init__(self, manifest: tuple[dict, str] | None = None, inline: int = OUTPUTS_INLINE):
        self._manifest_at = manifest
        self._inline = inline  # outputs beyond this many go to the manifest (a batch unit: 0, always)
        self._pending: list[tuple[str, Sink]] = []  # kept in memory: the first OUTPUTS_INLINE
        self._spill = None  # suspended sinks beyond those, one JSON line each
        self._names: set[bytes] = set()  # digests of (folder, name): one per output, small
        self._manifest_sink: Sink | None = None
        self._background = Pending()  # every sink's: settled before anything is committed
        self._created_folders: list[str] = []  # folders suspended sinks made (removed if a failure leaves them empty)
        self.count = 0
        self.bytes = 0
        self.outputs: list[dict] = []  # after a successful commit: the outputs, when not more than OUTPUTS_INLINE
        self.manifest: dict | None = None  # after a successful commit of more: the manifest's reference

    @contextmanager
    def create(self, folder: dict, name: str) -> Iterator[Sink]:
        from writers import open_sink

        key = _key(folder, name)
        if key in self._names:
            raise CollisionError(f"two outputs of this unit would both be named {name!r}")
        self._names.add(key)
        sink = open_sink(folder, name)
        sink.pending = self._background
        try:
            yield sink
            sink.finish()
        except BaseException:
            sink.close()
            raise
        self._add(name, sink)

    def holds(self, folder: dict, name: str) -> bool:
        """Whether this unit already wrote an output of that name (an archive's file/folder check)."""
        return _key(folder, name) in self._names

    def _add(self, name: str, sink: Sink) -> None:
        # Held first (so a failure below still aborts it): in memory, the first OUTPUTS_INLINE
        # finished sinks; the rest suspended to the spill file.
        self.count += 1
        self.bytes += sink.bytes
        if len(self._pending) < OUTPUTS_INLINE:
            self._pending.append((name, sink))
        else:
            if self._spill is None:
                self._spill = tempfile.TemporaryFile(prefix="outputset-")
            try:
                state = sink.suspend()
            except BaseException:
                sink.close()
                raise
            self._created_folders += state.get("created") or []
            self._spill.write(orjson.dumps({"name": name, "state": state}) + b"\n")
        if self.count > self._inline and self._manifest_at is not None:
            if self._manifest_sink is None:  # the first output beyond the threshold: start the manifest
                from writers import open_sink

                self._manifest_sink = open_sink(*self._manifest_at)
                self._manifest_sink.pending = self._background
                for n, s in self._pending[:self.count - 1]:
                    self._manifest_sink.write(orjson.dumps(s.result(n)) + b"\n")
            self._manifest_sink.write(orjson.dumps(sink.result(name)) + b"\n")

    def _suspended(self) -> Iterator[tuple[str, Sink]]:
        """The suspended sinks, resumed one at a time, in the order they were created."""
        from writers import resume_sink

        if self._spill is None:
            return
        self._spill.flush()
        self._spill.seek(0)
        for line in self._spill:
            record = orjson.loads(line)
            yield record["name"], resume_sink(record["state"])

    def __enter__(self) -> "OutputSet":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        manifest = self._manifest_sink
        committed = False
        try:
            if exc_type is None:
                if manifest is not None:
                    manifest.finish()
                self._background.wait()  # every output and the manifest durable before any is published
                done = _commit_all(chain(self._pending, self._suspended()), keep=manifest is None)
                if manifest is not None:
                    manifest.commit()  # last: once visible, everything it lists is
                    self.manifest = {**manifest.result(self._manifest_at[1]), "outputs": self.count,
                                     "outputs_bytes": self.bytes}
                else:  # no manifest asked for (a writer's own tests): all of them, inline
                    self.outputs = done
                committed = True
        finally:
            if not committed:
                for _, sink in self._suspended():  # each aborts (a committed one: nothing to do)
                    sink.close()
            if manifest is not None:
                manifest.close()
            for _, sink in reversed(self._pending):  # the last created first: it may sit in a folder an earlier one made
                sink.close()  # aborts whatever was not committed
            if not committed:
                self._background.wait(raise_error=False)  # no block of a failed unit is still being staged
                _remove_empty(self._created_folders)
            if self._spill is not None:
                self._spill.close()


COMMIT_THREADS = 8  # commits in flight at once: a blob commit or a rename on a share is a round trip


def _commit_all(sinks: Iterator[tuple[str, Sink]], keep: bool) -> list[dict]:
    """Commit every sink, up to COMMIT_THREADS at once, each closed once committed. The first
    failure stops further commits (those not started are cancelled) and is raised. With `keep`,
    the results of all of them, in order (a unit without a manifest has at most a few)."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    def commit(name: str, sink: Sink) -> dict | None:
        try:
            sink.commit()
        finally:
            sink.close()
        return sink.result(name) if keep else None

    pool = ThreadPoolExecutor(COMMIT_THREADS, thread_name_prefix="commit")
    in_flight: set = set()
    kept = []
    try:
        for name, sink in sinks:
            future = pool.submit(commit, name, sink)
            in_flight.add(future)
            if keep:
                kept.append(future)
            if len(in_flight) >= 4 * COMMIT_THREADS:  # bounded: never 100,000 resumed sinks at once
                done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    future.result()  # the first failure stops the loop
        for future in wait(in_flight)[0]:
            future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return [r for r in (future.result() for future in kept) if r is not None]


def _key(folder: dict, name: str) -> bytes:
    return hashlib.blake2b(repr((sorted(folder.items()), name)).encode(), digest_size=16).digest()


def _remove_empty(folders: list[str]) -> None:
    """Folders suspended sinks made, once a failure left them empty (deepest first)."""
    import os

    for folder in sorted(set(folders), key=len, reverse=True):
        try:
            os.rmdir(folder)
        except OSError:
            continue
