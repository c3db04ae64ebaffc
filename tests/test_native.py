"""The native kernel against the pure-Python path: the same bytes, rows and rejects, on more than a
million generated lines per run (tests/jsonl_fuzz.py: adversarial spellings and values, bad lines,
blank lines, CRLF, lines across chunk boundaries), under every transform option.

`make test` sets SOURCEMART_REQUIRE_NATIVE=1 when the kernel built: then a missing kernel fails
this module instead of skipping it."""

from __future__ import annotations

import io
import random

import orjson
import pytest

from bench.datagen import COLUMNS as GEN_COLUMNS, write_jsonl
from pipeline.config import JsonlTransformConfig
from processors.transform import jsonl
from processors.transform import kernel as native
from tests.jsonl_fuzz import COLUMN_PATHS, Lines
from writers.csv_text import CsvFormat, EncodedOutput

pytestmark = pytest.mark.skipif(not native.available(), reason="the native kernel is not built (pure-Python only)")

FUZZ_COLUMNS = [{"name": f"c{i}", "path": p} for i, p in enumerate(COLUMN_PATHS)]

# Every transform option that changes the bytes, alone and combined.
OPTIONS = [
    {},
    {"quoting": "all"},
    {"quoting": "nonnumeric", "null_text": "NULL"},
    {"quoting": "none", "delimiter": ";"},
    {"quoting": "none", "delimiter": "|", "newline": "\n"},
    {"delimiter": "\t", "newline": "\n", "null_text": "\\N"},
    {"delimiter": "é", "quoting": "minimal"},
    {"delimiter": "€", "quoting": "none"},
    {"delimiter": "0"},
    {"delimiter": "'", "quoting": "all"},
    {"encoding": "utf-8-sig", "header": False},
    {"encoding": "cp1252", "encoding_errors": "replace"},
    {"encoding": "utf-16", "null_text": "∅"},
    {"null_text": ",\"", "quoting": "minimal"},
]


class ShortReads(io.BytesIO):
    """Reads of random sizes, so lines straddle chunk boundaries everywhere."""

    def __init__(self, data: bytes, seed: int):
        super().__init__(data)
        self.rng = random.Random(seed)

    def read(self, n=-1):
        return super().read(self.rng.randint(1, n) if n and n > 0 else n)


class Run:
    def __init__(self, raw: bytes, engine: str, threads: int = 1, columns=FUZZ_COLUMNS, short_reads=None,
                 on_error: str = "skip", **options):
        cfg = JsonlTransformConfig(dest={"type": "local", "path": "/unused/"}, columns=columns,
                                   on_error=on_error, **({"rejects": {"type": "local", "path": "/unused/r/"}}
                                                         if on_error == "quarantine" else {}), **options)
        fmt = CsvFormat(cfg.delimiter, cfg.quoting, cfg.newline)
        self.rejected: list[bytes] = []
        kernel = native.kernel_for(engine, cfg.columns, fmt, cfg.null_text)
        assert (kernel is not None) == (engine == "native")
        self.converter = jsonl.Converter(cfg, fmt, self.rejected.append, kernel, threads)
        sink = io.BytesIO()
        out = EncodedOutput(sink, cfg.encoding, cfg.encoding_errors)
        if cfg.header:
            out.write(fmt.line([fmt.text(c.name) for c in cfg.columns]))
        src = ShortReads(raw, short_reads) if short_reads is not None else io.BytesIO(raw)
        self.error = None
        try:
            self.converter.convert(src, out)
        except jsonl.BadLine as exc:
            self.error = (str(exc), exc.line)
        self.data = sink.getvalue()

    def facts(self):
        c = self.converter
        return self.data, c.rows, c.rejects, c.first_reject, self.rejected, self.error


def assert_same(raw: bytes, **kwargs):
    python = Run(raw, "python", **kwargs)
    for threads in (1, 2):
        native_run = Run(raw, "native", threads, **kwargs)
        if native_run.data != python.data:
            a, b = python.data, native_run.data
            i = next(i for i in range(min(len(a), len(b))) if a[i] != b[i]) if a[:len(b)] != b[:len(a)] else min(len(a), len(b))
            pytest.fail(f"threads={threads}: bytes differ at {i}: python {a[max(0, i - 80):i + 80]!r}\n"
                        f"native {b[max(0, i - 80):i + 80]!r}")
        assert native_run.facts() == python.facts()
    return python, native_run


def segments(seed: int, n_lines: int) -> bytes:
    """Mostly clean stretches (which the kernel converts), every sixth with bad, blank and weird lines
    (which send that chunk to the Python path): both paths get real work."""
    clean, mixed = Lines(seed), Lines(seed + 1, weird=0.05, bad=0.03, blank=0.03)
    out, done, k = [], 0, 0
    while done < n_lines:
        gen = mixed if k % 6 == 5 else clean
        lines = gen.lines(min(1500, n_lines - done))
        out.append(b"\n".join(lines) + (b"\r\n" if k % 3 == 0 else b"\n"))
        done += len(lines)
        k += 1
    return b"".join(out)


def test_a_million_generated_lines_give_the_same_bytes_rows_and_rejects():
    raw = segments(seed=1, n_lines=1_000_000)
    assert raw.count(b"\n") >= 1_000_000
    python, native_run = assert_same(raw)
    c = native_run.converter
    # Not a vacuous comparison: most chunks went through the kernel, some through the fallback.
    assert c.native_chunks > 2 * c.python_chunks > 0, (c.native_chunks, c.python_chunks)
    assert python.converter.rows > 900_000 and python.converter.rejects > 5_000


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v!r}" for k, v in o.items()) or "defaults")
def test_every_option_gives_the_same_bytes(options):
    raw = segments(seed=hash(tuple(sorted(options.items()))) & 0xFFFF, n_lines=30_000)
    _, native_run = assert_same(raw, short_reads=7, **options)
    assert native_run.converter.native_chunks > 0


@pytest.mark.parametrize("options", [{}, {"quoting": "all", "null_text": "null"}, {"quoting": "none"}])
def test_line_by_line_kernel_output_equals_python_or_is_refused(options):
    """Each line alone: where the kernel answers, it answers exactly; it refuses only the lines it
    has to (bad ones, and the few kinds of values it leaves to Python)."""
    cfg = JsonlTransformConfig(dest={"type": "local", "path": "/unused/"}, columns=FUZZ_COLUMNS,
                               on_error="skip", **options)
    fmt = CsvFormat(cfg.delimiter, cfg.quoting, cfg.newline)
    kernel = native.kernel_for("native", cfg.columns, fmt, cfg.null_text)
    checked = refused_plain = plain = 0
    python = jsonl.Converter(cfg, fmt, None)
    for weird in (0.0, 1.0):
        gen = Lines(5, weird=weird, bad=0.1, blank=0.05)
        for line in gen.lines(40_000):
            python.rows = python.rejects = 0
            text = python._chunk([line], 0, jsonl.has_long_number(line)).encode()
            got = kernel.convert(line)
            if got is None:
                refused_plain += weird == 0.0 and python.rejects == 0
            else:
                assert got == (text, python.rows), line
                checked += 1
            plain += weird == 0.0 and python.rejects == 0
    assert checked > 40_000
    assert refused_plain < plain / 200, (refused_plain, plain)  # ordinary valid lines: the kernel's


def test_generated_events_and_single_columns():
    buf = io.BytesIO()
    write_jsonl(buf, 3_000_000, seed=5)
    assert_same(buf.getvalue(), columns=GEN_COLUMNS)
    raw = b'{"a": 0}\n{"a": ""}\n{}\n{"a": null}\n{"a": 0.0}\n{"a": []}\n{"a": false}\n'
    for quoting in ("minimal", "all", "nonnumeric", "none"):
        python, _ = assert_same(raw, columns=[{"name": "a", "path": "a"}], quoting=quoting, header=False)
    assert python.data.split(b"\r\n")[0] == b"0"  # an int 0 alone is 0, not an empty field


@pytest.mark.parametrize("on_error", ["fail", "skip", "quarantine"])
def test_bad_lines_name_the_same_line_and_are_rejected_alike(on_error):
    lines = Lines(9).lines(20_000)
    lines[12_345] = b'{"a": "\\ud800"}'
    lines[17_000] = b"[1, 2]"
    run, _ = assert_same(b"\n".join(lines) + b"\n", on_error=on_error)
    if on_error == "fail":
        assert run.error and run.error[1] == 12_346
    else:
        assert run.converter.rejects == 2 and run.converter.first_reject["line"] == 12_346


def test_edges_the_kernel_must_get_exactly_right():
    edges = [b'{"a": -0.0, "s": -0, "l": [0.0, -0.0, 1e16, 1e15, 1e-5, 1e-6]}',
             b'{"a": 18446744073709551615, "s": -9223372036854775808, "l": [9223372036854775807]}',
             b'{"a": 1.7976931348623157e308, "s": 2.2250738585072014e-308, "l": [1E+2, 1.10, 0.1]}',
             b'{"a": 123456789012345678, "s": 0.30000000000000004, "l": [100.0, 5e-5, 12345678901234567.0]}',
             b'{"a": "\\ud83d\\ude00 \\u00e9 \\/ \\"", "s": "tab\\tnl\\ncr\\r", "l": ["\\u0000\\u001f\\u007f"]}',
             b'{"\\u0061": 1, "a": 2, "b": {"c": 1, "c": {"d": 3}}, "b": {"c": {"d": 4}}}',
             b'{"l": [{"x": 1}, {"x": [1, {"y": "z"}]}], "0": {"0": 0}, "x.y": "dotted"}',
             b'\t { "a" : [ 1 , { "k" : [ ] , "j" : { } } ] , "s" : "x" } \r',
             b'{"a": 5e-324, "s": 2.2250738585072011e-308, "l": [18446744073709551616]}',  # refused: Python decides
             b'{"l": [{"x": 1, "x": 2}]}', b'{"a": 1e999}', b'{"a": NaN}']
    raw = b"\n".join(edges) + b"\n"
    for options in ({}, {"quoting": "all"}, {"quoting": "none", "delimiter": "|"}):
        assert_same(raw, **options)
        assert_same(raw, **options, columns=[{"name": "a", "path": "a"}, {"name": "s", "path": "s"},
                                              {"name": "l", "path": "l"}, {"name": "b", "path": "b.c.d"},
                                              {"name": "l1", "path": "l.1.x"}])


def block_edge_lines() -> tuple[bytes, bytes]:
    """(valid, invalid) lines. Valid: values that put each byte the kernel's 16-byte scans look for
    (in JSON strings: quote, backslash, escapes, bytes >= 0x80; in CSV fields: quote, CR, LF, tab,
    the delimiter, backslash) at every offset around one, two and three 16-byte blocks, with clean
    runs around them, in fields written as text and inside values written as JSON; numbers next to
    them. Invalid: UTF-8 sequences that are cut, overlong, surrogates or beyond U+10FFFF, and raw
    control characters, at offsets around the block edges (the kernel must refuse each)."""
    specials = ['\\"', "\\\\", "\\n", "\\r", "\\t", "\\u0001", "\\u001f", ",", ";", "|", "é", "€", "😀",
                "'", "/", "\\/", "\\u00e9", "\\ud83d\\ude00", "\x7f", '\\"\\"', "\\r\\n"]
    valid = []
    for special in specials:
        for length in (15, 16, 17, 31, 32, 33, 47):
            for at in range(length + 1):
                text = "a" * at + special + "b" * (length - at)
                valid.append(('{"a": "%s", "s": ["%s", %d.5], "l": {"k": "c%s"}}' % (text, text, at, text)).encode())
    invalid = []
    for bad in (b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xc0\xaf", b"\x01", b"\t", b"\xf4\x90\x80\x80"):
        for at in (0, 1, 14, 15, 16, 17, 30, 31, 32):
            invalid.append(b'{"a": "' + b"x" * at + bad + b'y"}')
            invalid.append(b'{"a": 1}')
    return b"\n".join(valid) + b"\n", b"\n".join(invalid) + b"\n"


@pytest.mark.parametrize("options", [{}, {"quoting": "none", "delimiter": ";"}, {"delimiter": "é"},
                                     {"quoting": "none", "delimiter": "€"}, {"delimiter": "\t"},
                                     {"quoting": "all"}, {"quoting": "none", "delimiter": "|"}])
def test_specials_at_every_offset_of_the_16_byte_scans(options):
    valid, invalid = block_edge_lines()
    columns = [{"name": "a", "path": "a"}, {"name": "s", "path": "s"}, {"name": "l", "path": "l"},
               {"name": "k", "path": "l.k"}, {"name": "s1", "path": "s.1"}]
    python, native_run = assert_same(valid, columns=columns, **options)
    assert native_run.converter.python_chunks == 0 and python.converter.rows == valid.count(b"\n")
    python, _ = assert_same(invalid, columns=columns, **options)
    assert python.converter.rejects == 72 and python.converter.rows == 72
    cfg = JsonlTransformConfig(dest={"type": "local", "path": "/u/"}, columns=columns)
    kernel = native.kernel_for("native", cfg.columns, CsvFormat(), "")
    bad_lines = invalid.split(b"\n")[0:-1:2]
    assert len(bad_lines) == 72 and all(kernel.convert(line) is None for line in bad_lines)  # each refused alone


def test_newline_count_is_bytes_count():
    """The kernel's 16-byte newline count (chunks' line numbers): newlines at every offset around
    16-byte blocks, runs longer than the 255 blocks its byte counters hold, any end."""
    rng = random.Random(3)
    count = native._ext.count_newlines
    for size in [*range(0, 70), 255 * 16 - 1, 255 * 16, 255 * 16 + 17, 10_000, 70_001]:
        for density in (0.0, 0.05, 0.5, 1.0):
            data = bytes(10 if rng.random() < density else rng.choice(b"ab\r\x0b\xff") for _ in range(size))
            for end in {0, size, size // 2, max(0, size - 1), size + 5, -1}:
                assert count(data, end) == data.count(b"\n", 0, max(0, min(end, size))), (size, density, end)
    assert count(memoryview(b"a\nb\n\n")[1:], 4) == 3


def test_engine_native_without_the_kernel_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(native, "_ext", None)
    monkeypatch.delenv(native.REQUIRE_ENV, raising=False)
    fmt = CsvFormat()
    cols = JsonlTransformConfig(dest={"type": "local", "path": "/u/"}, columns=[{"name": "a", "path": "a"}]).columns
    assert native.kernel_for("auto", cols, fmt, "") is None
    with pytest.raises(ValueError, match="engine 'native' needs the native kernel"):
        native.kernel_for("native", cols, fmt, "")
    monkeypatch.setenv(native.REQUIRE_ENV, "1")
    with pytest.raises(RuntimeError, match="SOURCEMART_REQUIRE_NATIVE=1"):
        native.kernel_for("auto", cols, fmt, "")


def float_edge_texts() -> list[str]:
    """Number texts around the kernel's digit-count rules: 14 to 18 significant digits, leading and
    trailing zeros (in the integer part, the fraction, both), exponents that move the point across
    orjson's layouts, the normal/subnormal boundary, values whose shortest form is shorter than the
    text (17 digits that round-trip in 16 or 15), and a repr of random doubles of every magnitude."""
    rng = random.Random(11)
    texts = ["0.30000000000000004", "0.1000000000000000055511151231257827", "123456789012345.6",
             "1234567890123456.7", "12345678901234567.8", "9007199254740993", "9007199254740993.0",
             "100000000000000000000.0", "1000000000000000.0", "10000000000000000.0", "0.000012345678901234567",
             "0.00001", "0.0001", "1.0000000000000002", "0.9999999999999999", "0.99999999999999999",
             "2.2250738585072014e-308", "2.225073858507202e-308", "1.7976931348623157e308", "4.9e-324",
             "123.4560000000000000", "000.5e1", "1.5e-5", "1.5e-4", "9.999999999999999e15", "9.999999999999999e16",
             "1e16", "1e15", "12e14", "120000000000000000e-2", "0.000000000000000000000012345", "5.0e-324"]
    for digits in range(14, 19):
        for _ in range(12):
            mant = str(rng.randint(10 ** (digits - 1), 10 ** digits - 1))
            point = rng.randint(0, digits)
            text = (mant[:point] or "0") + "." + (mant[point:] or "0")
            texts.append(text)
            texts.append(text + rng.choice(["e", "E"]) + rng.choice(["", "+", "-"]) + str(rng.randint(0, 30)))
            texts.append("0.000" + mant)
            texts.append(mant + "000.000")
    for _ in range(300):
        texts.append(repr(rng.random() * 10 ** rng.randint(-8, 22)))
    return texts


def test_floats_around_the_digit_count_rules_give_the_same_bytes():
    """Line by line: the kernel writes what the Python path writes, or refuses (only the subnormals
    and the text that is not JSON); then all of them as one input (refused chunks go to Python)."""
    texts = float_edge_texts()
    lines = [f'{{"a": {t}, "s": -{t}, "l": [{t}, "x"]}}'.encode() for t in texts]
    columns = [{"name": "a", "path": "a"}, {"name": "s", "path": "s"}, {"name": "l", "path": "l"}]
    for options in ({}, {"quoting": "all"}, {"quoting": "none", "delimiter": "|"}):
        cfg = JsonlTransformConfig(dest={"type": "local", "path": "/u/"}, columns=columns, **options)
        fmt = CsvFormat(cfg.delimiter, cfg.quoting, cfg.newline)
        kernel = native.kernel_for("native", cfg.columns, fmt, cfg.null_text)
        python = jsonl.Converter(cfg, fmt, None)
        refused = []
        for text, line in zip(texts, lines):
            got = kernel.convert(line)
            if got is None:
                refused.append(text)
                continue
            python.rows = 0
            assert got == (python._chunk([line], 0, jsonl.has_long_number(line)).encode(), 1), line
        assert sorted(refused) == sorted(["4.9e-324", "5.0e-324", "000.5e1"]), refused
        assert_same(b"\n".join(lines) + b"\n", columns=columns, **options)


def test_lists_and_objects_with_and_without_strings_give_the_same_bytes():
    """Lists/objects copied as their own text: with a string (always a quoted field) and without one
    (quoted only when the delimiter is in it), and ones that are not in compact form."""
    values = ['[]', '{}', '[1,2]', '[1]', '[true,null,false]', '[[],{}]', '{"a":1}', '["x"]', '[1,"a,b"]',
              '{"a":{"b":[1,2.5,-0.0]}}', '[1.10]', '[ 1]', '{"a":1,"a":2}', '["\\u0041"]', '[1e5]', '[-0]',
              '[' + ','.join(['"q"'] * 40) + ']', '{"k":"' + 'v' * 40 + '"}']
    raw = "".join(f'{{"l": {v}, "a": {v}}}\n' for v in values).encode()
    columns = [{"name": "l", "path": "l"}, {"name": "a", "path": "a"}]
    for options in ({}, {"quoting": "all"}, {"quoting": "nonnumeric"}, {"quoting": "none"},
                    {"delimiter": "|"}, {"delimiter": "0"}, {"delimiter": "é"}):
        assert_same(raw, columns=columns, **options)
        assert_same(raw, columns=columns[:1], **options)


def test_short_fields_at_the_end_of_a_page_are_read_within_it():
    """The 16-byte loads of short tails must not read past the page a field ends in: lines placed
    at the very end of a page whose next page is not readable (a load across would crash the test),
    every field and list short, at every offset."""
    columns = [{"name": "a", "path": "a"}, {"name": "l", "path": "l"}, {"name": "b", "path": "b"}]
    cfg = JsonlTransformConfig(dest={"type": "local", "path": "/u/"}, columns=columns)
    fmt = CsvFormat(cfg.delimiter, cfg.quoting, cfg.newline)
    kernel = native.kernel_for("native", cfg.columns, fmt, cfg.null_text)
    python = jsonl.Converter(cfg, fmt, None)
    checked = 0
    for n in range(0, 20):
        for line in (f'{{"a":"{"x" * n}","l":["{"y" * n}"],"b":"z"}}'.encode(),
                     f'{{"b":"{"é" * n}","l":[{"1" * (n + 1)}],"a":"q,"}}'.encode()):
            got = convert_at_page_end(kernel, line)
            python.rows = 0
            assert got == (python._chunk([line], 0, False).encode(), 1), line
            checked += 1
    assert checked == 40


def test_keys_that_differ_only_past_their_first_8_bytes_or_in_length():
    """The kernel finds a column's key by its length and first 8 bytes, then the rest: keys that
    share 8 or more bytes, prefixes of each other, empty, multi-byte, escaped, each at the end of a
    page whose next page is unreadable (the 8-byte key load stays within its page)."""
    keys = ["a", "abcdefg", "abcdefgh", "abcdefghi", "abcdefghj", "abcdefghij", "abcdefghijklmnopq",
            "abcdefghijklmnopr", "é", "éé", "ab", "abcdefgh\u00e9"]
    columns = [{"name": f"c{i}", "path": [k]} for i, k in enumerate(keys)]
    cfg = JsonlTransformConfig(dest={"type": "local", "path": "/u/"}, columns=columns)
    fmt = CsvFormat(cfg.delimiter, cfg.quoting, cfg.newline)
    kernel = native.kernel_for("native", cfg.columns, fmt, cfg.null_text)
    python = jsonl.Converter(cfg, fmt, None)
    rng = random.Random(3)
    others = ["", "abcdefgi", "abcdefghk", "abcdefghijklmnopqr", "abcdefghijklmnop", "b", "éa", "ab\x00", "abcdefgh\u00ea"]
    lines = []
    for _ in range(300):
        chosen = rng.sample(keys + others, rng.randint(1, 6))
        lines.append(orjson.dumps({k: rng.randint(0, 9) for k in chosen}))
    lines += [b'{"abcdefg\\u0068": 1, "\\u00e9": 2}', b'{"ab\\u0000": 3}']
    for line in lines + [b'{"a":1}', b'{"":1}', b'{"ab":1}', b'{"\xc3\xa9":1}']:
        got = convert_at_page_end(kernel, line)
        python.rows = 0
        assert got == (python._chunk([line], 0, False).encode(), 1), line


def convert_at_page_end(kernel, line: bytes):
    """kernel.convert(line) with the line at the very end of a page whose next page is unreadable
    (PROT_NONE): a load past the line's end faults instead of reading whatever follows."""
    import ctypes
    import mmap

    size = mmap.PAGESIZE
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    with mmap.mmap(-1, 2 * size) as pages:
        pages[size - len(line):size] = line
        guard = ctypes.c_char.from_buffer(pages, size)
        assert libc.mprotect(ctypes.addressof(guard), size, 0) == 0, ctypes.get_errno()  # PROT_NONE
        view = memoryview(pages)[size - len(line):size]
        got = kernel.convert(view)
        view.release()
        assert libc.mprotect(ctypes.addressof(guard), size, mmap.PROT_READ | mmap.PROT_WRITE) == 0
        del guard
    return got
