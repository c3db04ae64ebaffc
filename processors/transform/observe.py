"""What a conversion reports while it runs, per batch: the drift sample (drift.LineSampler) and
the process-wide progress counters (rows, rejects: pipeline.counters). A converter's batches (any
input format's: Lines, Records, Reject; see formats/__init__.py) pass through `Watch.batches`;
`Watch.flush` counts what was converted after the last batch was handed out (the converter
threads' last chunks)."""

from __future__ import annotations

from pipeline import counters
from processors.transform.drift import LineSampler
from processors.transform.formats import Records


class Watch:
    def __init__(self, converter):
        self.converter = converter
        self.lines = LineSampler(converter.drift) if converter.drift is not None else None
        self.rows = self.rejects = 0

    def batches(self, items):
        lines = self.lines
        for item in items:
            if lines is not None:
                if item.__class__ is tuple:  # Lines: (body, line_no)
                    lines.chunk(item[0])
                elif item.__class__ is Records:
                    lines.records(item.records)
            yield item
            self.flush()  # the rows of the chunks converted meanwhile
        if lines is not None:
            lines.finish()

    def flush(self) -> None:
        rows, rejects = self.converter.rows, self.converter.rejects
        if rows != self.rows or rejects != self.rejects:
            counters.add(rows=rows - self.rows, rejects=rejects - self.rejects)
            self.rows, self.rejects = rows, rejects
