"""Seeded generator of adversarial JSON Lines for the differential test of the native kernel
(tests/test_native.py): escapes of every kind, surrogate pairs, control characters, deep nesting,
duplicate keys, numbers at and beyond every edge (-0.0, 5e-324, 2^64 +- 1, 20+ digits, 1e999),
whitespace, BOM/CRLF/blank lines, and lines that are not JSON objects at all.

The JSON text is written here token by token (not by json.dumps), so the spellings vary: escaped
or raw characters, '\\/' for '/', '1E+05' for '1e5', whitespace between tokens, keys escaped.
"""

from __future__ import annotations

import random
import struct

# Columns of the differential test: nested paths, list indexes, keys that need escaping or hold a dot.
COLUMN_PATHS = [["a"], ["b", "c"], ["b", "c", "d"], ["l", "0"], ["l", "1", "x"], ["ü"], ['q"t'], ["0"],
                ["x.y"], ["dup"], ["b"], ["n", "0", "0"], ["l"], ["s"]]
TOP_KEYS = ["a", "b", "l", "ü", 'q"t', "0", "x.y", "dup", "n", "s", "z", "other", "ü2", ""]
INNER_KEYS = ["c", "d", "x", "0", "1", "k", "é", "", "dup"]

CHARS = (list("abcXYZ019 ,;|\t\"\\/\n\r") + ["\x00", "\x01", "\x1f", "\x7f", "é", "€", "ß", "\u2028",
         "\ufeff", "\ud7ff", "\ue000", "\uffff", "😀", "𝄞", "中", "\u0301"])

EDGE_INTS = ["0", "-0", "1", "-1", str(2**31), str(2**53 + 1), str(2**63 - 1), str(-(2**63)), str(2**64 - 1),
             "10000000000000000000", "-1000000000000000000"]
LONG_INTS = [str(2**64), str(2**64 + 1), str(-(2**63) - 1), "123456789012345678901234567890",
             "-98765432109876543210"]
EDGE_FLOATS = ["-0.0", "0.0", "0e10", "-0e-5", "0.000", "1e5", "1E+05", "1.0e-7", "1e15", "1e16", "1e17",
               "1e-5", "1e-6", "0.000012345", "100.0", "1.10", "2.5e+16", "123456789012345.0",
               "9007199254740993.0", "0.1000000000000000055511151231257827", "1.7976931348623157e308",
               "2.2250738585072014e-308", "4.9406564584124654e-300", "1e290", "1e-289", "-1.5E-3",
               "3.141592653589793238462643383279", "12345678901234567890.5", "1e21", "1e22", "99999999999999999e-17",
               # at the edges of the kernel's copy-as-is test for plain decimals (canonical_number)
               "0.00001", "-0.00001", "0.000001", "0.0001234", "0.10", "1.50", "-0.5", "100.10", "10.0",
               "12345678901234.5", "123456789012345.5", "999999999999999.0", "9999999999999999.0",
               "0.000123456789012345", "0.0001234567890123456", "0.1234567890123456", "1234567890123456789.0"]
WEIRD_FLOATS = ["5e-324", "2.2250738585072011e-308", "1e-400", "1e-320", "1e1000000", "0e1000000"]
BAD_FLOATS = ["1e999", "-1e999", "1.8e308", "NaN", "Infinity", "-Infinity", "01", "1.", ".5", "-", "1e", "+1",
              "0x10", "1.5e+", "--1"]

BAD_LINES = [b"[1, 2]", b'"just a string"', b"42", b"null", b"not json", b'{"a": 1,, }', b'{"a": 1,}',
             b'{"a" 1}', b'{"a": "x', b'{"a": [1, 2}', b'{"a": 1}}', b'{"a": 1} x', b"{", b"}",
             b'{"a": "\xff"}', b'{"a": "\xc3"}', b'{"a": "\xed\xa0\x80"}', b'{"a": "\xf4\x90\x80\x80"}',
             b'{"a": "\xc0\xaf"}', b'{"a": "\\ud800"}', b'{"a": "\\udc00x"}', b'{"a": "\\ud83dx"}',
             b'{"a": "\\u00"}', b'{"a": "\\x41"}', b'{"a": "tab\there"}', b'{"a": "nl\x01"}',
             b'\xef\xbb\xbf{"a": 1}', b'\x0c{"a": 1}', b'{"a": tru}', b'{"a": nul}', b"{'a': 1}",
             b'{"a": 1}\x00', b'{a: 1}']
BLANK_LINES = [b"", b" ", b"\t", b"\r", b"  \r", b"\x0b", b"\x0c", b" \t \r"]


class Lines:
    """lines(n) -> n lines (bytes, no newline). weird: share of lines holding values the kernel
    may refuse (long integers, subnormals, deep nesting, duplicate keys in written objects);
    bad: share of lines that are not valid JSON objects; blank: share of blank lines."""

    def __init__(self, seed: int, weird: float = 0.0, bad: float = 0.0, blank: float = 0.0):
        self.rng = random.Random(seed)
        self.weird, self.bad, self.blank = weird, bad, blank
        self._weird_line = False
        # Pools of spelled tokens, drawn from per line: a million lines in seconds, not minutes.
        self.strings = [self.string(self.text()) for _ in range(4000)]
        self.numbers = [self.number() for _ in range(4000)]
        self._weird_line = True
        self.weird_numbers = [self.number() for _ in range(500)]
        self._weird_line = False
        self.keys = {k: [self.string(k) for _ in range(6)] for k in {*TOP_KEYS, *INNER_KEYS, "x", "y", "c"}}

    # --- tokens ---

    def ws(self) -> str:
        r = self.rng.random()
        return "" if r < 0.7 else self.rng.choice([" ", "  ", "\t", " \r ", "\r"])

    def text(self) -> str:
        rng = self.rng
        n = rng.choice([0, 1, 2, 5, 10, 30]) if rng.random() < 0.95 else rng.randint(50, 300)
        if rng.random() < 0.5:
            return "".join(rng.choice("abcdefghij XYZ0123456789-_.:") for _ in range(n))
        return "".join(rng.choice(CHARS) for _ in range(n))

    def string(self, s: str) -> str:
        rng = self.rng
        out = ['"']
        for ch in s:
            o = ord(ch)
            r = rng.random()
            if ch == '"':
                out.append('\\"' if r < 0.8 else "\\u0022")
            elif ch == "\\":
                out.append("\\\\" if r < 0.8 else "\\u005C")
            elif o < 0x20:
                short = {"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch)
                out.append(short if short and r < 0.6 else (f"\\u{o:04x}" if r < 0.8 else f"\\u{o:04X}"))
            elif r < 0.08:
                if o > 0xFFFF:
                    v = o - 0x10000
                    out.append(f"\\u{0xD800 + (v >> 10):04x}\\u{0xDC00 + (v & 0x3FF):04X}")
                else:
                    out.append(f"\\u{o:04x}")
            elif ch == "/" and r < 0.4:
                out.append("\\/")
            else:
                out.append(ch)
        out.append('"')
        return "".join(out)

    def number(self) -> str:
        rng = self.rng
        r = rng.random()
        if self._weird_line and r < 0.15:
            return rng.choice(LONG_INTS + WEIRD_FLOATS)
        if r < 0.25:
            return str(rng.randint(-(10 ** rng.randint(1, 18)), 10 ** rng.randint(1, 18)))
        if r < 0.35:
            return rng.choice(EDGE_INTS)
        if r < 0.45:
            return rng.choice(EDGE_FLOATS)
        if r < 0.65:  # any finite double, subnormals included, written as repr
            while True:
                v = struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0]
                if v == v and abs(v) != float("inf"):
                    break
            if abs(v) < 2.2250738585072014e-308 and v != 0 and not self._weird_line:
                v *= 1e300
            return repr(v)
        if r < 0.85:
            return repr(round(rng.uniform(-1e6, 1e6), rng.randint(0, 6)))
        # a decimal text of random length and exponent spelling
        int_part = str(rng.randint(0, 10 ** rng.randint(0, 20)))
        frac = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 25)))
        text = int_part + "." + frac
        if rng.random() < 0.5:
            text += rng.choice(["e", "E"]) + rng.choice(["", "+", "-"]) + str(rng.randint(0, 250))
        return ("-" if rng.random() < 0.3 else "") + text

    def value(self, depth: int = 0) -> str:
        rng = self.rng
        r = rng.random()
        if depth > 2:
            r = r * 0.6  # scalars
        if r < 0.3:
            return rng.choice(self.strings)
        if r < 0.55:
            return rng.choice(self.weird_numbers if self._weird_line and rng.random() < 0.2 else self.numbers)
        if r < 0.6:
            return rng.choice(["true", "false", "null"])
        if r < 0.8:
            return "[" + ",".join(self.ws() + self.value(depth + 1) + self.ws()
                                  for _ in range(rng.choice([0, 1, 2, 3, 5]))) + "]"
        return self.object(INNER_KEYS, depth + 1, rng.choice([0, 1, 2, 3, 4]))

    def object(self, keys, depth: int, n: int) -> str:
        rng = self.rng
        chosen = [rng.choice(keys) for _ in range(n)]
        if not self._weird_line:  # duplicate keys only at the top level (looked up, never written)
            chosen = list(dict.fromkeys(chosen)) if depth else chosen
        return "{" + ",".join(f"{self.ws()}{rng.choice(self.keys[k])}{self.ws()}:{self.ws()}{self.value(depth)}{self.ws()}"
                              for k in chosen) + "}"

    def deep(self) -> str:
        """60 to 90 levels of lists and objects (the kernel refuses more than 64)."""
        opens, closes = [], []
        for _ in range(self.rng.randint(60, 90)):
            bracket = self.rng.random() < 0.5
            opens.append("[" if bracket else '{"k":')
            closes.append("]" if bracket else "}")
        return "".join(opens) + "1" + "".join(reversed(closes))

    def line(self) -> bytes:
        rng = self.rng
        r = rng.random()
        if r < self.blank:
            return rng.choice(BLANK_LINES)
        if r < self.blank + self.bad:
            if rng.random() < 0.5:
                return rng.choice(BAD_LINES)
            return ('{"a": ' + rng.choice(BAD_FLOATS) + "}").encode()
        self._weird_line = rng.random() < self.weird
        fields = []
        for _ in range(rng.randint(0, 7)):
            key = rng.choice(TOP_KEYS)
            if key == "b":
                v = self.object(["c", "x", "c"], 1, rng.randint(0, 3))
            elif key == "l":
                v = "[" + ",".join(self.value(2) if rng.random() < 0.5 else self.object(["x", "y", "0"], 2, 2)
                                   for _ in range(rng.randint(0, 3))) + "]"
            elif key == "n" and self._weird_line and rng.random() < 0.3:
                v = self.deep()
            else:
                v = self.value(1)
            fields.append(f"{self.ws()}{rng.choice(self.keys[key])}{self.ws()}:{self.ws()}{v}{self.ws()}")
        text = self.ws() + "{" + ",".join(fields) + "}" + self.ws()
        if rng.random() < 0.05:
            text += "\r"
        return text.encode("utf-8", "surrogatepass")

    def lines(self, n: int) -> list[bytes]:
        return [self.line() for _ in range(n)]
