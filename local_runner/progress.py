"""Progress on stderr while a run is long: a live status line on a terminal, a line every
`interval` seconds otherwise (logs of a scheduler, CI; default 5 s, `run --progress-interval`).

A line: the processor, its units done, the bytes read of its sources (and the percent of their
total size when the listing knows every size), rows and rejected lines, the read rate, the ETA
(when the total is known), bytes written and the time since the start. Counters are the process's
(pipeline.counters, writers.base), updated per chunk by the units' threads; per processor, the
display takes differences from when its listing started."""

from __future__ import annotations

import sys
import threading
import time

from pipeline import counters
from writers.base import bytes_written_total

TERMINAL_INTERVAL = 0.5
LOG_INTERVAL = 5.0


def _mb(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


def _duration(s: float) -> str:
    s = int(s + 0.5)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class Progress:
    def __init__(self, stream=sys.stderr, enabled: bool = True, interval: float | None = None):
        self.stream = stream
        self.enabled = enabled
        self.tty = stream.isatty()
        self.interval = interval if interval is not None and not self.tty else \
            TERMINAL_INTERVAL if self.tty else LOG_INTERVAL
        self.status: dict = {}
        self.done = 0
        self.failed = 0
        self._start = time.monotonic()
        self._base = bytes_written_total()
        self._step_start = self._start
        self._step_base = counters.snapshot()  # the counters when the current processor's listing began
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
            self._step_start, self._step_base = time.monotonic(), counters.snapshot()
        self.status = status

    def on_unit_done(self, exc) -> None:
        self.done += 1
        self.failed += exc is not None

    def line(self) -> str:
        s = self.status
        now = time.monotonic()
        written = bytes_written_total() - self._base
        elapsed = max(now - self._start, 1e-6)
        step_elapsed = max(now - self._step_start, 1e-6)
        c, base = counters.snapshot(), self._step_base
        read, rows, rejects = (c[k] - base[k] for k in ("read", "rows", "rejects"))
        step = f"processor {s.get('processor', '?')}/{s.get('of', '?')} {s.get('name', '')}"
        units = f"units {self.done}/{s['units']}" if "units" in s else s.get("stage", "")
        failed = f" ({self.failed} failed)" if self.failed else ""
        total = s.get("src_bytes")
        rate = read / step_elapsed
        if total:
            left = max(total - read, 0)
            eta = f", ETA {_duration(left / rate)}" if rate > 0 and left else ""
            reading = f"read {_mb(read)} of {_mb(total)} ({min(read / total, 1):.0%}), {rate / 1e6:.1f} MB/s{eta}"
        else:
            reading = f"read {_mb(read)}, {rate / 1e6:.1f} MB/s"
        return (f"{step} | {units}{failed} | {reading} | {rows:,} rows, {rejects:,} rejects | "
                f"{_mb(written)} written | {_duration(elapsed)}")

    def _draw(self, final: bool = False) -> None:
        if self.tty:
            self.stream.write("\r\x1b[2K" + self.line() + ("\n" if final else ""))
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._draw()
