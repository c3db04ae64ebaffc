"""The transform's input encoding: any Python text codec, transcoded to UTF-8 while streaming.

Every input format reads UTF-8 bytes. A UTF-8 source (`utf-8`, `utf-8-sig`) is read as it is (the
native kernel's fast path; a leading BOM is dropped by the format's reader); any other encoding is
decoded by an incremental decoder, a chunk at a time, and re-encoded as UTF-8, so memory stays
flat and line breaks (hence line numbers) are the source's own.
"""

from __future__ import annotations

import codecs

from .formats import InputError


_READ = 256 << 10


def is_utf8(encoding: str) -> bool:
    return codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")


_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def encoding_hint(data: bytes, encoding: str, place: str = "column", base: int = 1) -> str | None:
    """What bytes read as UTF-8 that failed to parse suggest about their real encoding, and the
    option that fixes it (None: nothing; or the input is not read as UTF-8). A bad byte is named
    as `place` (a line's column from 1, or a document's byte from 0)."""
    if not is_utf8(encoding):
        return None
    if data.startswith(_UTF16_BOMS) or b"\x00" in data:
        return ('the input looks UTF-16 (it has a UTF-16 byte-order mark or NUL bytes): set "input_encoding": '
                '"utf-16" (or "utf-16-le" / "utf-16-be" without a byte-order mark)')
    try:
        codecs.getincrementaldecoder("utf-8")().decode(data, final=False)  # a character cut at the end is fine
    except UnicodeDecodeError as exc:
        return (f"the input is not UTF-8 (byte {data[exc.start:exc.start + 1]!r} at {place} {exc.start + base}): "
                'set "input_encoding" to its encoding (e.g. "latin-1" or "cp1252")')
    return None


def utf8_stream(src, encoding: str):
    """A readable of UTF-8 bytes: `src` itself when it is UTF-8, else a transcoding reader."""
    return src if is_utf8(encoding) else Transcoded(src, encoding)


class InputEncodingError(InputError):
    """The input is not valid in its declared input_encoding."""


class Transcoded:
    """read(n) -> UTF-8 bytes decoded from `src` in `encoding` (n is a hint: a chunk may differ)."""

    def __init__(self, src, encoding: str):
        self._src = src
        self._encoding = encoding
        self._decoder = codecs.getincrementaldecoder(encoding)("strict")
        self._offset = 0  # source bytes read before the current chunk
        self._done = False

    def read(self, n: int = -1) -> bytes:
        if n == 0:  # a reader asking which type read() returns (ijson does)
            return b""
        while not self._done:
            raw = self._src.read(_READ if n is None or n < 0 else max(n, 4096))
            held = len(self._decoder.getstate()[0])  # bytes of a character begun in the previous chunk
            try:
                text = self._decoder.decode(raw, final=not raw)
            except UnicodeDecodeError as exc:
                raise InputEncodingError(
                    f"input is not valid {self._encoding} near byte {self._offset - held + exc.start}: {exc.reason} "
                    '(set "input_encoding" to the encoding the file is written in)') from None
            self._offset += len(raw)
            if not raw:
                self._done = True
            if text:
                try:
                    return text.encode("utf-8")
                except UnicodeEncodeError:  # a lone surrogate (utf-16 with a cut pair): not text
                    raise InputEncodingError(f"input holds an unpaired UTF-16 surrogate near byte {self._offset}"
                                             ) from None
        return b""

    def readable(self) -> bool:
        return True
