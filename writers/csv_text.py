"""The CSV text layer over a binary sink: encoding (utf-8, utf-8-sig, cp1252, ...), what to do with
characters the encoding lacks, and the line terminator."""

from __future__ import annotations

import csv
import io

QUOTING = {"minimal": csv.QUOTE_MINIMAL, "all": csv.QUOTE_ALL,
           "nonnumeric": csv.QUOTE_NONNUMERIC, "none": csv.QUOTE_NONE}


def open_csv(sink, *, encoding: str = "utf-8", errors: str = "strict", newline: str = "\r\n",
             delimiter: str = ",", quoting: str = "minimal"):
    """Return (text_file, csv_writer). Flush text_file before finishing the sink."""
    text = io.TextIOWrapper(sink, encoding=encoding, errors=errors, newline="", write_through=False)
    text._CHUNK_SIZE = 64 << 10  # fewer, larger writes into the sink  # type: ignore[attr-defined]
    writer = csv.writer(text, delimiter=delimiter, lineterminator=newline, quoting=QUOTING[quoting],
                        escapechar="\\" if quoting == "none" else None)
    return text, writer
