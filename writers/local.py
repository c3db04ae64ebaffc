"""Local folders and mounted network shares: write a temp file beside the target, fsync, then an
atomic rename on commit. The temp name starts with '.tmp-' so no listing ever picks it up.
The folder must resolve under the operator's local roots (pipeline.policy)."""

from __future__ import annotations

import os
import uuid

from mounters.base import TEMP_PREFIX
from pipeline.policy import current
from writers.base import Sink

WRITE_BUFFER = 256 << 10


class LocalSink(Sink):
    def __init__(self, folder: dict, name: str):
        final = folder["path"] + name
        super().__init__({"type": "local", "path": final}, f"local:{final}")
        self._final = final
        directory, base = os.path.split(final)
        policy = current()
        policy.local_path(directory or ".")  # before creating anything: no folder outside the roots
        os.makedirs(directory or ".", exist_ok=True)
        policy.local_path(directory or ".")  # and no symlinked folder swapped in while creating
        self._tmp = os.path.join(directory, f"{TEMP_PREFIX}{base}-{uuid.uuid4().hex[:12]}")
        self._file = open(self._tmp, "xb", buffering=WRITE_BUFFER)

    def _write(self, b) -> None:
        self._file.write(b)

    def _finish(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None  # its buffer goes now, not when the unit's last output is committed

    def _commit(self) -> None:
        os.replace(self._tmp, self._final)

    def _abort(self) -> None:
        if self._file is not None:
            self._file.close()
        try:
            os.unlink(self._tmp)
        except FileNotFoundError:
            pass


def open_sink(folder: dict, name: str) -> Sink:
    return LocalSink(folder, name)
