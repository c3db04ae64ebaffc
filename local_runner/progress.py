"""Progress on stderr while a run is long: a live status line on a terminal, a line every
`interval` seconds otherwise (logs of a scheduler, CI)."""

from __future__ import annotations

import sys
import threading
import time

from writers.base import bytes_written_total


def _mb(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


class Progress:
    def __init__(self, stream=sys.stderr, enabled: bool = True):
        self.stream = stream
        self.enabled = enabled
        self.tty = stream.isatty()
        self.interval = 0.5 if self.tty else 15.0
        self.status: dict = {}
        self.done = 0
        self.failed = 0
        self._start = time.monotonic()
        self._base = bytes_written_total()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="progress")

    def __enter__(self):
        if self.enabled:
            self._thread.start()
        return self

    def __exit__(self, *exc):
        from pipeline.stop import stop_requested

        self._stop.set()
        if self.enabled:
            self._thread.join()
            if not stop_requested():  # interrupted: the run's one line says it all
                self._draw(final=True)

    def on_status(self, status: dict) -> None:
        if status.get("stage") == "listing":
            self.done = self.failed = 0
        self.status = status

    def on_unit_done(self, exc) -> None:
        self.done += 1
        self.failed += exc is not None

    def line(self) -> str:
        s = self.status
        written = bytes_written_total() - self._base
        elapsed = max(time.monotonic() - self._start, 1e-6)
        step = f"processor {s.get('processor', '?')}/{s.get('of', '?')} {s.get('name', '')}"
        units = f"units {self.done}/{s['units']}" if "units" in s else s.get("stage", "")
        failed = f" ({self.failed} failed)" if self.failed else ""
        return f"{step} | {units}{failed} | {_mb(written)} written, {written / elapsed / 1e6:.1f} MB/s, {elapsed:.0f}s"

    def _draw(self, final: bool = False) -> None:
        if self.tty:
            self.stream.write("\r\x1b[2K" + self.line() + ("\n" if final else ""))
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._draw()
