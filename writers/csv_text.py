"""The transform's CSV output format (writers.OUTPUT_FORMATS["csv"]), and the CSV text layer over a binary sink: field quoting (RFC 4180 style: fields holding the
delimiter, a quote or a line break are quoted, quotes doubled), the line terminator, the output
encoding (utf-8, utf-8-sig, cp1252, ...) and what to do with characters it lacks.

Fields are escaped here and joined by the caller; this is several times faster than csv.writer
for JSON-heavy rows (csv.writer copies every character one by one) and writes the same bytes.
"""

from __future__ import annotations

import codecs
import io
import re


class CsvFormat:
    """quoting: minimal (only when needed), all (every field), nonnumeric (all but numbers),
    none (never; delimiter, quote, line breaks and backslash are backslash-escaped)."""

    def __init__(self, delimiter: str = ",", quoting: str = "minimal", newline: str = "\r\n"):
        if quoting not in ("minimal", "all", "nonnumeric", "none"):
            raise ValueError(f"unknown quoting {quoting!r}")
        self.delimiter = delimiter
        self.quoting = quoting
        self.newline = newline
        specials = delimiter + '"\r\n' + ("\\" if quoting == "none" else "")
        self.needs_quote = re.compile("[" + re.escape(specials) + "]").search
        self._escape = re.compile("([" + re.escape(specials) + "])")

    @staticmethod
    def quote(s: str) -> str:
        return '"' + s.replace('"', '""') + '"'

    def text(self, s: str) -> str:
        """A string field, escaped for this format."""
        if self.quoting == "minimal":
            return self.quote(s) if self.needs_quote(s) else s
        if self.quoting == "none":
            return self._escape.sub(lambda m: "\\" + {"\r": "r", "\n": "n"}.get(m.group(1), m.group(1)), s)
        return self.quote(s)

    def number(self, s: str) -> str:
        """A number's text: quoted only when every field is."""
        return self.quote(s) if self.quoting == "all" else s

    def line(self, fields: list[str]) -> str:
        if len(fields) == 1 and fields[0] == "":
            fields = ['""']  # a lone empty field would read back as a blank line
        return self.delimiter.join(fields) + self.newline


def open_text(sink, *, encoding: str = "utf-8", errors: str = "strict") -> io.TextIOWrapper:
    """A text layer that encodes into the sink. Flush, then detach() it before finishing the sink."""
    text = io.TextIOWrapper(sink, encoding=encoding, errors=errors, newline="", write_through=False)
    text._CHUNK_SIZE = 64 << 10  # fewer, larger writes into the sink  # type: ignore[attr-defined]
    return text


class EncodedOutput:
    """CSV text into a binary sink in the output encoding: `write(str)` for text, `write_utf8(bytes)`
    for text that is already UTF-8 (the native kernel's), which goes through as it is when the output
    encoding is UTF-8. The same bytes as a TextIOWrapper (BOM first for utf-8-sig, even for '')."""

    def __init__(self, sink, encoding: str = "utf-8", errors: str = "strict"):
        self._sink = sink
        self._encode = codecs.getincrementalencoder(encoding)(errors).encode
        self._utf8 = codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")

    def write(self, text: str) -> None:
        data = self._encode(text)
        if data:
            self._sink.write(data)

    def write_utf8(self, data: bytes) -> None:
        if not self._utf8:
            self.write(data.decode("utf-8"))
            return
        prefix = self._encode("")  # utf-8-sig: the BOM before the first bytes; b"" afterwards
        if prefix:
            self._sink.write(prefix)
        if data:
            self._sink.write(data)


# The output-format interface (writers.output_format): SUFFIX, NATIVE, text_format(cfg) (what the
# transform's generated row function writes), open_output(sink, cfg).
SUFFIX = ".csv"
NATIVE = True  # the native kernel (processors/transform/kernel.py) writes exactly this format's bytes


def text_format(cfg) -> CsvFormat:
    return CsvFormat(cfg.delimiter, cfg.quoting, cfg.newline)


def open_output(sink, cfg) -> EncodedOutput:
    """The output over a sink, its header written (when cfg.header): write(str) takes what the
    rows function returns, write_utf8(bytes) what the native kernel returns."""
    fmt = text_format(cfg)
    out = EncodedOutput(sink, encoding=cfg.encoding, errors=cfg.encoding_errors)
    if cfg.header:
        out.write(fmt.line([fmt.text(c.name) for c in cfg.columns]))
    return out

