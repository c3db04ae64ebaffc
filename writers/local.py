"""Local folders and mounted network shares: write a temp file beside the target, fsync, then an
atomic rename on commit.

The temp file of output `<folder>/<name>` is `<folder>/.tmp-<name>`: its name says which output it
is for, no listing ever picks it up (mounters.base.TEMP_PREFIX), and a unit removes a stale one
(left by a killed run, kill -9 or a power cut) before it writes that output again. Two writers of
one output at once (which planning refuses within a run) clash on the temp name instead of mixing.
Folders a failed unit created for its outputs are removed again when they are left empty.
The folder must resolve under the operator's local roots (pipeline.policy), before any folder is
created and again after."""

from __future__ import annotations

import fcntl
import os

from mounters.base import TEMP_PREFIX
from pipeline.errors import TransientError
from pipeline.policy import current
from writers.base import Sink

WRITE_BUFFER = 256 << 10


def temp_path(final: str) -> str:
    directory, base = os.path.split(final)
    return os.path.join(directory, f"{TEMP_PREFIX}{base}")


class LocalSink(Sink):
    def __init__(self, folder: dict, name: str):
        final = folder["path"] + name
        super().__init__({"type": "local", "path": final}, f"local:{final}")
        self._final = final
        self._tmp = temp_path(final)
        self._file, self._written, self._created = None, None, []
        directory = os.path.dirname(final) or "."
        policy = current()
        policy.local_path(directory)  # before creating anything: no folder outside the roots
        created: set[str] = set()  # folders this sink made
        for attempt in range(5):
            try:
                created.update(_make_folders(directory))
                policy.local_path(directory)  # and no symlinked folder swapped in while creating
                _remove_stale(self._tmp)
                self._file = open(self._tmp, "xb", buffering=WRITE_BUFFER)
                _lock(self._file.fileno(), self._tmp)
                break
            except FileNotFoundError:  # another unit's failure removed a folder we were about to use: again
                if attempt == 4:
                    raise
        self._created = sorted(created, key=len, reverse=True)  # deepest first

    def _write(self, b) -> None:
        self._file.write(b)

    def _finish(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._written = _identity(os.fstat(self._file.fileno()))
        self._file.close()
        self._file = None  # its buffer goes now, not when the unit's last output is committed

    def _ours(self) -> bool:
        """Whether the temp name still holds our file: another writer may have swept it as stale and
        written its own (possible once ours was closed, while the unit wrote its other outputs)."""
        if self._file is not None:
            return True  # still open, so still locked: no sweep took it
        try:
            return self._written is not None and _identity(os.stat(self._tmp)) == self._written
        except FileNotFoundError:
            return False

    def _commit(self) -> None:
        if not self._ours():
            raise TransientError(f"{self.label}: another writer replaced this output's temp file before the commit; "
                                 "a retry writes it again")
        os.replace(self._tmp, self._final)

    def _suspend(self) -> dict:
        return {"final": self._final, "tmp": self._tmp, "written": list(self._written or ()), "created": self._created}

    def _abort(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._ours():  # never another writer's temp
            os.unlink(self._tmp)
        for folder in self._created:  # a failed unit leaves no new empty folder
            try:
                os.rmdir(folder)
            except FileNotFoundError:
                continue
            except OSError:  # not empty: another output is in it (and so in its parents)
                break


def _make_folders(directory: str) -> list[str]:
    """Create `directory` and its missing parents; return those created, deepest first."""
    missing = []
    d = os.path.abspath(directory)
    while not os.path.isdir(d):
        missing.append(d)
        parent = os.path.dirname(d)
        if parent == d:
            break
        d = parent
    os.makedirs(directory, exist_ok=True)
    return missing


def _identity(st: os.stat_result) -> tuple:
    # Not the inode alone: a file removed and another created can get the same inode number.
    return st.st_ino, st.st_size, st.st_mtime_ns


def _lock(fd: int, tmp: str) -> None:
    """Hold an exclusive lock on a temp file while writing it: a sweep skips a locked one."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise TransientError(f"local:{tmp}: another writer is writing this output now") from None


def _remove_stale(tmp: str) -> None:
    """Remove a temp left by a writer that died (kill -9, power cut): its lock went with it. A temp
    whose writer is alive (another run writing the same output now) is not touched: that is an error."""
    try:
        fd = os.open(tmp, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return
    except OSError:  # a symlink or something else that is not ours: away with the name only
        os.unlink(tmp)
        return
    try:
        _lock(fd, tmp)
        os.unlink(tmp)
    finally:
        os.close(fd)


def open_sink(folder: dict, name: str) -> Sink:
    return LocalSink(folder, name)


def resume_sink(state: dict) -> Sink:
    """A sink suspended by Sink.suspend(), ready to commit or abort (its temp file was finished)."""
    sink = LocalSink.__new__(LocalSink)
    sink._resumed(state)
    sink._final, sink._tmp, sink._file = state["final"], state["tmp"], None
    sink._written, sink._created = tuple(state["written"]) or None, state["created"]
    return sink
