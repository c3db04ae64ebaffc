"""What a JSONL conversion reports while it runs, per chunk: the drift sample (drift.LineSampler)
and the process-wide progress counters (rows, rejects: pipeline.counters). A converter's chunk
iterator passes through `Watch.chunks`; `Watch.flush` counts what was converted after the last
chunk was handed out (the converter threads' last chunks)."""

from __future__ import annotations

from pipeline import counters
from processors.transform.drift import LineSampler


class Watch:
    def __init__(self, converter):
        self.converter = converter
        self.lines = LineSampler(converter.drift) if converter.drift is not None else None
        self.rows = self.rejects = 0

    def chunks(self, pieces):
        lines = self.lines
        for body, line_no in pieces:
            if lines is not None:
                lines.chunk(body)
            yield body, line_no
            self.flush()  # the rows of the chunks converted meanwhile
        if lines is not None:
            lines.finish()

    def flush(self) -> None:
        rows, rejects = self.converter.rows, self.converter.rejects
        if rows != self.rows or rejects != self.rejects:
            counters.add(rows=rows - self.rows, rejects=rejects - self.rejects)
            self.rows, self.rejects = rows, rejects
