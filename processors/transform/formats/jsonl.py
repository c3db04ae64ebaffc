"""jsonl: one JSON object per line (the default input format).

Its batches are whole lines (processors.transform.jsonl.chunks), which the native kernel converts
as they are, or the Python path parses with orjson. `diagnose` adds to the first bad line's error
what the line suggests when the file is not JSON Lines of objects at all (a multi-line document,
array rows, another encoding) and which option fixes it.
"""

from __future__ import annotations

import orjson

def batches(src, cfg):
    from processors.transform.jsonl import chunks

    return chunks(src)


def diagnose(line_no: int, line: bytes, reason: str, cfg) -> str:
    hint = _hint(line_no, line, reason, cfg)
    return f"{reason}; {hint}" if hint else reason


def _hint(line_no: int, line: bytes, reason: str, cfg) -> str | None:
    from processors.transform.encoding import encoding_hint

    hint = encoding_hint(line, cfg.input_encoding)
    if hint:
        return hint
    stripped = line.strip()
    if stripped.startswith(b"\xef\xbb\xbf"):
        stripped = stripped[3:]
    # Line 1 alone is '{' or '[' (pretty-printed), or it opens something that ends on a later line.
    if line_no == 1 and (stripped in (b"{", b"[") or "unexpected end of data" in reason.lower()):
        where = ('; its records under a key: add "records_path" (e.g. "data.items")'
                 if stripped[:1] == b"{" else "")
        return ('the file looks like one multi-line JSON document, not JSON Lines: set "input_format": "json"'
                + where)
    if line_no == 1 and stripped[:1] == b"[" and isinstance(loads_or_none(stripped), list):  # one odd row later is just bad
        return ('its rows are JSON arrays, not objects: set "input_format": "jsonl_arrays" (and "header_row": '
                'true when the first line names the columns)')
    return None


def loads_or_none(text: bytes):
    """The JSON value of `text`, or None when it is not JSON (format sniffing: a guess, not an error)."""
    try:
        return orjson.loads(text)
    except ValueError:
        return None
