"""Local folders and mounted network shares: write a temp file beside the target, fsync, then an
atomic rename on commit.

The temp file of output `<folder>/<name>` is `<folder>/.tmp-<name>`: its name says which output it
is for, no listing ever picks it up (mounters.base.TEMP_PREFIX), and a unit removes a stale one
(left by a killed run, kill -9 or a power cut) before it writes that output again. Two writers of
one output at once (which planning refuses within a run) clash on the temp name instead of mixing.
Folders a failed unit created for its outputs are removed again when they are left empty."""

from __future__ import annotations

import os

from mounters.base import TEMP_PREFIX
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
        directory = os.path.dirname(final) or "."
        created: set[str] = set()  # folders this sink made
        for attempt in range(5):
            try:
                created.update(_make_folders(directory))
                _remove_stale(self._tmp)
                self._file = open(self._tmp, "xb", buffering=WRITE_BUFFER)
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
        self._file.close()

    def _commit(self) -> None:
        os.replace(self._tmp, self._final)

    def _abort(self) -> None:
        self._file.close()
        try:
            os.unlink(self._tmp)
        except FileNotFoundError:
            pass
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


def _remove_stale(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass


def open_sink(folder: dict, name: str) -> Sink:
    return LocalSink(folder, name)
