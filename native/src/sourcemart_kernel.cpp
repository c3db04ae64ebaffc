// The transform's hot path in C++: a chunk of whole JSON lines in, CSV bytes out, GIL released.
//
// It writes exactly the bytes processors/transform/jsonl.py writes (orjson's value texts, the
// CsvFormat's escaping), and it is a validating parser: a chunk is accepted only when every line
// is one that orjson would accept *and* the kernel is certain of its output. Anything else (not an
// object, invalid UTF-8, a lone surrogate, an integer outside 64 bits, a number that is not finite
// or is subnormal, nesting beyond MAX_DEPTH, duplicate keys inside an object written as JSON)
// makes convert() return None, and the Python path redoes that chunk: it names file:line and
// applies on_error. So the kernel never has to be right about bad input, only about good input.
//
// Own scanner, limited to what the kernel needs (no third-party source): the column paths form a
// trie; each line is parsed once, values on a path are recorded as spans, everything else is only
// validated. Values written as JSON (lists, objects) are re-serialised from their span.

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__GLIBC__)
#include <malloc.h>
#endif


namespace {

constexpr int MAX_DEPTH = 64;

enum Quoting { MINIMAL = 0, ALL = 1, NONNUMERIC = 2, NONE = 3 };
enum Kind : uint8_t { MISSING, JNULL, JTRUE, JFALSE, STR, INT, FLOAT, ARRAY, OBJECT };

struct Slot {
    Kind kind;
    bool escaped;  // STR: the raw text holds a backslash escape
    const char* begin;  // STR: after the opening quote; others: first byte of the value
    const char* end;    // STR: at the closing quote; others: one past the value
};

struct Node {
    std::string key;            // the path segment (UTF-8)
    int64_t index;              // the segment as a list index (it is all digits), else -1
    std::vector<int> columns;   // columns whose path ends here
    std::vector<int> children;  // node ids
    std::vector<int> subtree;   // every column at or below this node (cleared when a key repeats)
    // The children's keys for child_by_key, side by side: length, first 8 bytes (zero-padded), id.
    struct ChildKey {
        size_t size;
        uint64_t head;
        int id;
    };
    std::vector<ChildKey> lookup;
};

struct Config {
    std::vector<Node> nodes;  // nodes[0] is the line's object
    int ncolumns = 0;
    int quoting = MINIMAL;
    std::string delimiter;  // one character, UTF-8
    std::string newline;
    std::string text_true, text_false, text_null, text_missing;  // already escaped by CsvFormat.text
    bool special[256] = {};  // bytes csv_text must look at
};

// ---- output helpers ---------------------------------------------------------------------------

// A growable byte buffer: std::string's append checks and bookkeeping per character cost more
// than the conversion itself. Kept per thread across calls, so it does not fault in new pages.
struct Buf {
    char* b = nullptr;
    size_t n = 0, cap = 0;
    Buf() = default;
    Buf(const Buf&) = delete;
    Buf& operator=(const Buf&) = delete;
    ~Buf() { free(b); }
    void grow(size_t need) {
        size_t c = cap ? cap : 256;
        while (c < n + need) c *= 2;
        char* nb = static_cast<char*>(realloc(b, c));
        if (!nb) throw std::bad_alloc();
        b = nb;
        cap = c;
    }
    inline void reserve_more(size_t k) { if (n + k > cap) grow(k); }
    inline void push_back(char ch) { if (n == cap) grow(1); b[n++] = ch; }
    inline void append(const char* s, size_t k) { reserve_more(k); memcpy(b + n, s, k); n += k; }
    inline void append(const char* s) { append(s, strlen(s)); }
    inline void append(const std::string& s) { append(s.data(), s.size()); }
    inline void append(size_t k, char ch) { reserve_more(k); memset(b + n, ch, k); n += k; }
    inline size_t size() const { return n; }
    inline const char* data() const { return b; }
    inline void clear() { n = 0; }
    inline void resize(size_t k) { n = k; }
    // After a chunk with a huge line: give the memory back rather than keep it per thread.
    void shrink(size_t limit) {
        if (cap > limit) { free(b); b = nullptr; n = cap = 0; }
    }
};

inline void put(Buf& out, const char* s, size_t n) { out.append(s, n); }

// The index of the first byte at or after i that c.special marks (n if none): 16 bytes at a time
// with SSE2 (x86-64's baseline), so long clean text is only compared, then copied in one piece.
inline size_t next_special(const Config& c, const char* s, size_t i, size_t n) {
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"'), cr = _mm_set1_epi8('\r'), lf = _mm_set1_epi8('\n');
    const __m128i delim = _mm_set1_epi8(c.delimiter[0]);
    const __m128i extra = _mm_set1_epi8(c.quoting == NONE ? '\\' : '"');
    for (; i + 16 <= n; i += 16) {
        __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i));
        __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, extra)),
                                   _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, cr), _mm_cmpeq_epi8(v, lf)),
                                                _mm_cmpeq_epi8(v, delim)));
        int mask = _mm_movemask_epi8(hit);
        if (mask) return i + unsigned(__builtin_ctz(unsigned(mask)));
    }
    // The tail (most fields are shorter than 16 bytes): one 16-byte load when it stays within its
    // 4 KiB page (a load that does not cross a page cannot fault; the bytes past n are ignored).
    if (i < n && (reinterpret_cast<uintptr_t>(s + i) & 4095) <= 4096 - 16) {
        __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i));
        __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, extra)),
                                   _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, cr), _mm_cmpeq_epi8(v, lf)),
                                                _mm_cmpeq_epi8(v, delim)));
        unsigned mask = unsigned(_mm_movemask_epi8(hit)) & ((1u << (n - i)) - 1);
        return mask ? i + __builtin_ctz(mask) : n;
    }
#endif
    while (i < n && !c.special[static_cast<unsigned char>(s[i])]) i++;
    return i;
}

// CsvFormat.text / the minimal escape: `s` is a field's UTF-8 text. c.special marks the bytes that
// may need escaping (quote, CR, LF, the delimiter's first byte, backslash under quoting 'none').
void csv_text(const Config& c, Buf& out, const char* s, size_t n) {
    const size_t dn = c.delimiter.size();
    auto is_delim = [&](size_t i) {
        return dn == 1 ? s[i] == c.delimiter[0]
                       : (i + dn <= n && memcmp(s + i, c.delimiter.data(), dn) == 0);
    };
    auto needs = [&](size_t i) {
        char ch = s[i];
        return ch == '"' || ch == '\r' || ch == '\n' || (c.quoting == NONE && ch == '\\') || is_delim(i);
    };
    if (c.quoting == MINIMAL) {
        size_t i = 0;
        while ((i = next_special(c, s, i, n)) < n && !needs(i)) i++;
        if (i == n) { put(out, s, n); return; }
    }
    if (c.quoting == NONE) {
        out.reserve_more(n);
        size_t i = 0;
        while (i < n) {
            size_t j = next_special(c, s, i, n);
            put(out, s + i, j - i);
            if (j == n) break;
            i = j;
            if (needs(i)) {
                char ch = s[i];
                out.push_back('\\');
                if (ch == '\r') out.push_back('r');
                else if (ch == '\n') out.push_back('n');
                else if (dn > 1 && is_delim(i)) { put(out, s + i, dn); i += dn - 1; }
                else out.push_back(ch);
            } else {
                out.push_back(s[i]);
            }
            i++;
        }
        return;
    }
    // Quoted, each '"' doubled. Room for the worst case (every byte a quote) and one 16-byte store
    // past the end, so blocks are stored whole and the write position only advances.
    out.reserve_more(2 * n + 2 + 16);
    char* d = out.b + out.n;
    *d++ = '"';
    size_t i = 0;
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"');
    while (i + 16 <= n) {
        __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(d), v);
        unsigned mask = unsigned(_mm_movemask_epi8(_mm_cmpeq_epi8(v, quote)));
        if (!mask) {
            d += 16;
            i += 16;
            continue;
        }
        unsigned k = unsigned(__builtin_ctz(mask)) + 1;  // through the first quote, then its double
        d += k;
        *d++ = '"';
        i += k;
    }
#endif
    for (; i < n; i++) {
        *d++ = s[i];
        if (s[i] == '"') *d++ = '"';
    }
    *d++ = '"';
    out.n = size_t(d - out.b);
}

// ---- numbers ----------------------------------------------------------------------------------

// orjson's float text for a finite double given as its shortest digits (no leading or trailing
// zeros, n >= 1) and kk, the decimal point's position: value = 0.DIGITS x 10^kk.
void float_layout(Buf& out, bool negative, const char* digits, int n, int kk) {
    if (negative) out.push_back('-');
    int k = kk - n;
    if (0 <= k && kk <= 16) {
        put(out, digits, n);
        out.append(k, '0');
        out.append(".0");
    } else if (0 < kk && kk <= 16) {
        put(out, digits, kk);
        out.push_back('.');
        put(out, digits + kk, n - kk);
    } else if (-5 < kk && kk <= 0) {
        out.append("0.");
        out.append(-kk, '0');
        put(out, digits, n);
    } else {
        out.push_back(digits[0]);
        if (n > 1) {
            out.push_back('.');
            put(out, digits + 1, n - 1);
        }
        out.push_back('e');
        int e = kk - 1;
        if (e < 0) { out.push_back('-'); e = -e; } else out.push_back('+');
        char buf[8];
        auto r = std::to_chars(buf, buf + sizeof buf, e);
        put(out, buf, r.ptr - buf);
    }
}

struct Number {
    bool is_int;
    bool negative;
    // integers
    uint64_t magnitude;
    // floats: significant digits (leading/trailing zeros stripped), decimal point position
    char digits[24];
    int ndigits;  // -1: more than 15 significant digits (slow formatting)
    int kk;
};

// Parse and validate a JSON number at p. Returns the end, or nullptr to refuse the chunk.
const char* scan_number(const char* p, const char* end, Number& num, bool analyse) {
    const char* start = p;
    num.negative = false;
    if (p < end && *p == '-') { num.negative = true; p++; }
    if (p >= end) return nullptr;
    const char* int_begin = p;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9') p++;
    } else {
        return nullptr;
    }
    const char* int_end = p;
    const char* frac_begin = p;
    const char* frac_end = p;
    bool is_int = true;
    long exp = 0;
    if (p < end && *p == '.') {
        p++;
        frac_begin = p;
        while (p < end && *p >= '0' && *p <= '9') p++;
        if (p == frac_begin) return nullptr;
        frac_end = p;
        is_int = false;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        bool eneg = false;
        if (p < end && (*p == '+' || *p == '-')) { eneg = *p == '-'; p++; }
        const char* eb = p;
        while (p < end && *p >= '0' && *p <= '9') {
            if (p - eb < 6) exp = exp * 10 + (*p - '0');
            p++;
        }
        if (p == eb) return nullptr;
        if (p - eb >= 6) return nullptr;  // an exponent of a million or more: not certain, refuse
        if (eneg) exp = -exp;
        is_int = false;
    }
    num.is_int = is_int;
    if (is_int) {
        // 64-bit only (orjson's range: -2^63 .. 2^64-1); beyond it the Python path keeps it exact.
        uint64_t v = 0;
        for (const char* q = int_begin; q < int_end; q++) {
            unsigned d = *q - '0';
            if (v > (UINT64_MAX - d) / 10) return nullptr;
            v = v * 10 + d;
        }
        if (num.negative && v > (uint64_t(1) << 63)) return nullptr;
        num.magnitude = v;
        return p;
    }
    // Where the decimal point falls relative to the first significant digit: value = 0.DIGITS x 10^kk.
    long point;
    if (!(int_end - int_begin == 1 && *int_begin == '0')) {
        point = long(int_end - int_begin);
    } else {
        const char* q = frac_begin;
        while (q < frac_end && *q == '0') q++;
        if (q == frac_end) {  // zero: 0.0 or -0.0 whatever the exponent
            num.ndigits = 0;
            num.kk = 0;
            return p;
        }
        point = -long(q - frac_begin);
    }
    long kk = point + exp;
    bool normal = kk > -290 && kk < 290;  // finite and not subnormal, whatever the digits
    if (!analyse && normal) return p;
    // Significant digits (at most 15 kept; more, and the text alone does not give the shortest):
    // from the first non-zero digit (JSON has no leading zeros, so the integer part's first digit
    // unless it is "0") to the last non-zero one, the point skipped.
    const char* first = int_end - int_begin == 1 && *int_begin == '0' ? frac_begin : int_begin;
    while (*first == '0') first++;  // a non-zero digit follows (zero returned above)
    const char* last = frac_end - 1;
    while (last >= frac_begin && *last == '0') last--;
    if (last < frac_begin) {  // no fraction, or only zeros: the integer part's last non-zero digit
        last = int_end - 1;
        while (*last == '0') last--;
    }
    long count = long(last - first) + 1 - (first < frac_begin && last >= frac_begin && frac_begin != frac_end);
    bool many = count > 15;
    int n = 0;
    if (!many) {
        for (const char* q = first; q <= last; q++) {
            if (*q != '.') num.digits[n++] = *q;
        }
    }
    if (many || !normal) {
        // Not certain from the text alone: parse (correctly rounded) and take the shortest digits.
        double v;
        auto r = std::from_chars(start, p, v);
        if (r.ec != std::errc() || r.ptr != p || !std::isfinite(v) || v == 0.0 ||
            std::fabs(v) < 2.2250738585072014e-308) {
            return nullptr;  // out of range, or subnormal: refuse
        }
        if (!analyse) return p;
        char buf[40];
        auto w = std::to_chars(buf, buf + sizeof buf, std::fabs(v), std::chars_format::scientific);
        // d[.ddd]e[+-]xx
        const char* q = buf;
        int m = 0;
        num.digits[m++] = *q++;
        if (*q == '.') {
            q++;
            while (*q != 'e') num.digits[m++] = *q++;
        }
        q++;  // 'e'
        int e = 0;
        std::from_chars(*q == '+' ? q + 1 : q, w.ptr, e);
        while (m > 1 && num.digits[m - 1] == '0') m--;
        num.ndigits = m;
        num.kk = e + 1;
        return p;
    }
    num.ndigits = n;
    num.kk = int(kk);
    return p;
}

void write_int(Buf& out, const Number& num) {
    char buf[24];
    if (num.negative && num.magnitude != 0) out.push_back('-');
    auto r = std::to_chars(buf, buf + sizeof buf, num.magnitude);
    put(out, buf, r.ptr - buf);
}

void write_float(Buf& out, const Number& num) {
    if (num.ndigits == 0) {
        out.append(num.negative ? "-0.0" : "0.0");
        return;
    }
    float_layout(out, num.negative, num.digits, num.ndigits, num.kk);
}

// Whether a validated JSON number's text is already exactly what orjson writes for it, so it can be
// copied as it is (most numbers in real data: 42, 86.32, 2908.0, 0.005). Integers: all but -0.
// Floats in plain decimal notation (no exponent) whose shortest digits are the text's own: at most
// 15 significant digits (any such decimal reads back as itself, so no shorter text round-trips),
// no trailing zero in the fraction (but "X.0"), and where orjson writes this layout too: the point
// within the first 16 digits, or "0." followed by at most 4 zeros. Everything else takes Number.
bool canonical_number(const char* b, const char* e) {
    const char* p = b;
    if (p < e && *p == '-') p++;
    const char* ib = p;
    while (p < e && *p >= '0' && *p <= '9') p++;
    size_t ilen = size_t(p - ib);
    if (p == e) return !(ilen == 1 && *ib == '0' && b != ib);  // an integer: all but -0
    if (*p != '.') return false;  // an exponent
    const char* fb = ++p;
    while (p < e && *p >= '0' && *p <= '9') p++;
    if (p != e) return false;
    size_t flen = size_t(e - fb);
    if (flen == 1 && *fb == '0') return ilen <= 15;  // X.0 (0.0 and -0.0 too)
    if (e[-1] == '0') return false;  // 1.10 -> 1.1
    if (!(ilen == 1 && *ib == '0')) return ilen + flen <= 15;
    size_t z = 0;
    while (fb + z < e && fb[z] == '0') z++;
    return z <= 4 && flen - z <= 15;
}

// ---- strings ----------------------------------------------------------------------------------

inline int hexval(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

inline bool hex4(const char* p, const char* end, unsigned& v) {
    if (end - p < 4) return false;
    v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0) return false;
        v = (v << 4) | unsigned(h);
    }
    return true;
}

// Strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF). p points at a byte >= 0x80.
inline const char* utf8_char(const char* p, const char* end) {
    const unsigned char* u = reinterpret_cast<const unsigned char*>(p);
    long left = end - p;
    unsigned c = u[0];
    auto cont = [&](int i) { return (u[i] & 0xC0) == 0x80; };
    if (c >= 0xC2 && c <= 0xDF) {
        if (left < 2 || !cont(1)) return nullptr;
        return p + 2;
    }
    if (c >= 0xE0 && c <= 0xEF) {
        if (left < 3 || !cont(1) || !cont(2)) return nullptr;
        if (c == 0xE0 && u[1] < 0xA0) return nullptr;
        if (c == 0xED && u[1] > 0x9F) return nullptr;
        return p + 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (left < 4 || !cont(1) || !cont(2) || !cont(3)) return nullptr;
        if (c == 0xF0 && u[1] < 0x90) return nullptr;
        if (c == 0xF4 && u[1] > 0x8F) return nullptr;
        return p + 4;
    }
    return nullptr;
}

// Validate a string whose opening quote is at p[-1]. Returns the position of the closing quote.
const char* scan_string(const char* p, const char* end, bool& escaped) {
    escaped = false;
    for (;;) {
#if defined(__SSE2__)
        while (end - p >= 16) {
            __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
            // bytes < 0x20 and >= 0x80 (signed compare), quote, backslash
            __m128i special = _mm_or_si128(
                _mm_cmplt_epi8(v, _mm_set1_epi8(0x20)),
                _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))));
            int mask = _mm_movemask_epi8(special);
            if (mask == 0) { p += 16; continue; }
            p += __builtin_ctz(mask);
            break;
        }
#endif
        if (p >= end) return nullptr;
        unsigned char ch = static_cast<unsigned char>(*p);
        if (ch == '"') return p;
        if (ch == '\\') {
            escaped = true;
            if (end - p < 2) return nullptr;
            char e = p[1];
            if (e == 'u') {
                unsigned v = 0;
                if (!hex4(p + 2, end, v)) return nullptr;
                p += 6;
                if (v >= 0xD800 && v <= 0xDBFF) {
                    unsigned lo = 0;
                    if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || !hex4(p + 2, end, lo) || lo < 0xDC00 ||
                        lo > 0xDFFF)
                        return nullptr;  // a lone surrogate: orjson refuses it
                    p += 6;
                } else if (v >= 0xDC00 && v <= 0xDFFF) {
                    return nullptr;
                }
            } else if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' || e == 'r' ||
                       e == 't') {
                p += 2;
            } else {
                return nullptr;
            }
        } else if (ch < 0x20) {
            return nullptr;  // a raw control character inside a string
        } else if (ch >= 0x80) {
            p = utf8_char(p, end);
            if (!p) return nullptr;
        } else {
            p++;
        }
    }
}

inline void put_utf8(Buf& out, unsigned cp) {
    if (cp < 0x80) {
        out.push_back(char(cp));
    } else if (cp < 0x800) {
        out.push_back(char(0xC0 | (cp >> 6)));
        out.push_back(char(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(char(0xE0 | (cp >> 12)));
        out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(char(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(char(0xF0 | (cp >> 18)));
        out.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(char(0x80 | (cp & 0x3F)));
    }
}

// Decode an already validated string body [p, end) into UTF-8 text.
void unescape(Buf& out, const char* p, const char* end) {
    while (p < end) {
        const char* bs = static_cast<const char*>(memchr(p, '\\', end - p));
        if (!bs) { put(out, p, end - p); return; }
        put(out, p, bs - p);
        char e = bs[1];
        p = bs + 2;
        switch (e) {
            case 'b': out.push_back('\b'); break;
            case 'f': out.push_back('\f'); break;
            case 'n': out.push_back('\n'); break;
            case 'r': out.push_back('\r'); break;
            case 't': out.push_back('\t'); break;
            case 'u': {
                unsigned v = 0;
                hex4(p, end, v);
                p += 4;
                if (v >= 0xD800 && v <= 0xDBFF) {
                    unsigned lo = 0;
                    hex4(p + 2, end, lo);
                    p += 6;
                    v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
                }
                put_utf8(out, v);
                break;
            }
            default: out.push_back(e);  // " \ /
        }
    }
}

// orjson's string text: quotes, \" \\ \b \t \n \f \r, other controls as \u00xx; the rest as is.
void json_string(Buf& out, const char* s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    out.reserve_more(n + 2);
    out.push_back('"');
    const char* e = s + n;
    while (s < e) {
        const char* run = s;
        while (s < e && static_cast<unsigned char>(*s) >= 0x20 && *s != '"' && *s != '\\') s++;
        out.append(run, s - run);
        if (s == e) break;
        unsigned char ch = static_cast<unsigned char>(*s++);
        switch (ch) {
            case '"': out.append("\\\"", 2); break;
            case '\\': out.append("\\\\", 2); break;
            case '\b': out.append("\\b", 2); break;
            case '\t': out.append("\\t", 2); break;
            case '\n': out.append("\\n", 2); break;
            case '\f': out.append("\\f", 2); break;
            case '\r': out.append("\\r", 2); break;
            default:
                out.append("\\u00", 4);
                out.push_back(hex[ch >> 4]);
                out.push_back(hex[ch & 15]);
        }
    }
    out.push_back('"');
}

// ---- the line parser --------------------------------------------------------------------------

inline const char* skip_ws(const char* p, const char* end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) p++;
    return p;
}

struct Line {
    const Config& c;
    Slot* slots;
    const char* end;
    Buf& key;  // scratch for escaped keys

    // Parse one value at p (validating all of it). node >= 0: a trie node to record/descend.
    const char* value(const char* p, int node, int depth) {
        if (p >= end) return nullptr;
        const Node* nd = node >= 0 ? &c.nodes[node] : nullptr;
        // The slot's fields as locals, stored one by one below: a Slot built on the stack field by
        // field and then copied whole is read back before its byte stores have landed (a store
        // forwarding stall on every value, ~6% of the kernel's time).
        Kind kind;
        bool escaped = false;
        const char* begin = p;
        const char* q;
        switch (*p) {
            case '{':
                if (depth >= MAX_DEPTH) return nullptr;
                q = object(p + 1, nd && !nd->children.empty() ? node : -1, depth + 1);
                kind = OBJECT;
                break;
            case '[':
                if (depth >= MAX_DEPTH) return nullptr;
                q = array(p + 1, nd && !nd->children.empty() ? node : -1, depth + 1);
                kind = ARRAY;
                break;
            case '"':
                q = scan_string(p + 1, end, escaped);
                begin = p + 1;
                kind = STR;
                break;
            case 't':
                q = (end - p >= 4 && memcmp(p, "true", 4) == 0) ? p + 4 : nullptr;
                kind = JTRUE;
                break;
            case 'f':
                q = (end - p >= 5 && memcmp(p, "false", 5) == 0) ? p + 5 : nullptr;
                kind = JFALSE;
                break;
            case 'n':
                q = (end - p >= 4 && memcmp(p, "null", 4) == 0) ? p + 4 : nullptr;
                kind = JNULL;
                break;
            default: {
                Number num;
                q = scan_number(p, end, num, false);  // validates range: every number, used or not
                kind = q && num.is_int ? INT : FLOAT;
            }
        }
        if (!q) return nullptr;
        const char* vend = q;  // STR: at the closing quote; others: one past the value
        if (kind == STR) q++;
        if (nd) {
            for (int col : nd->columns) {
                Slot& s = slots[col];
                s.kind = kind;
                s.escaped = escaped;
                s.begin = begin;
                s.end = vend;
            }
        }
        return q;
    }

    // The child of `node` whose key is k[0, n), or -1. Most keys of a line are on no path: each
    // child is ruled out by its length and first 8 bytes, compared as one integer.
    int child_by_key(int node, const char* k, size_t n) const {
        uint64_t head = 0;
        size_t h = n < 8 ? n : 8;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        if (h == 8 || (reinterpret_cast<uintptr_t>(k) & 4095) <= 4096 - 8) {
            memcpy(&head, k, 8);  // within the key, or within k's page (cannot fault)
            if (h < 8) head &= (uint64_t(1) << (8 * h)) - 1;  // the first h bytes
        } else {
            memcpy(&head, k, h);
        }
#else
        memcpy(&head, k, h);
#endif
        for (const Node::ChildKey& ck : c.nodes[node].lookup) {
            if (ck.size == n && ck.head == head && (n <= 8 || memcmp(c.nodes[ck.id].key.data() + 8, k + 8, n - 8) == 0))
                return ck.id;
        }
        return -1;
    }

    const char* object(const char* p, int node, int depth) {
        p = skip_ws(p, end);
        if (p < end && *p == '}') return p + 1;
        for (;;) {
            if (p >= end || *p != '"') return nullptr;
            bool escaped;
            const char* kend = scan_string(p + 1, end, escaped);
            if (!kend) return nullptr;
            int child = -1;
            if (node >= 0) {
                if (escaped) {
                    key.clear();
                    unescape(key, p + 1, kend);
                    child = child_by_key(node, key.data(), key.size());
                } else {
                    child = child_by_key(node, p + 1, kend - (p + 1));
                }
            }
            p = skip_ws(kend + 1, end);
            if (p >= end || *p != ':') return nullptr;
            p = skip_ws(p + 1, end);
            if (child >= 0) {
                // A repeated key replaces the earlier value, and everything found below it.
                for (int col : c.nodes[child].subtree) slots[col] = Slot{MISSING, false, nullptr, nullptr};
            }
            p = value(p, child, depth);
            if (!p) return nullptr;
            p = skip_ws(p, end);
            if (p >= end) return nullptr;
            if (*p == '}') return p + 1;
            if (*p != ',') return nullptr;
            p = skip_ws(p + 1, end);
        }
    }

    const char* array(const char* p, int node, int depth) {
        p = skip_ws(p, end);
        if (p < end && *p == ']') return p + 1;
        for (int64_t i = 0;; i++) {
            int child = -1;
            if (node >= 0) {
                for (int ch : c.nodes[node].children) {
                    if (c.nodes[ch].index == i) { child = ch; break; }
                }
            }
            p = value(p, child, depth);
            if (!p) return nullptr;
            p = skip_ws(p, end);
            if (p >= end) return nullptr;
            if (*p == ']') return p + 1;
            if (*p != ',') return nullptr;
            p = skip_ws(p + 1, end);
        }
    }
};

// Re-serialise a validated value as orjson's compact JSON. Returns false on what the kernel does
// not write itself (duplicate keys in an object: orjson keeps the first position, the last value).
struct Dumper {
    Buf text;   // scratch
    Buf arena;  // the keys of the objects being written, unescaped, one after another
    std::vector<std::pair<size_t, size_t>> keys;  // (offset in arena, length)

    // A string's JSON text: without escapes, the raw text is already what orjson writes (it holds
    // no quote, backslash or control character); otherwise decode and re-encode.
    void string(Buf& out, const char* b, const char* e, bool escaped) {
        if (!escaped) {
            out.reserve_more(e - b + 2);
            out.push_back('"');
            out.append(b, e - b);
            out.push_back('"');
        } else {
            text.clear();
            unescape(text, b, e);
            json_string(out, text.data(), text.size());
        }
    }

    const char* value(Buf& out, const char* p, const char* end) {
        switch (*p) {
            case '{': {
                out.push_back('{');
                size_t first_key = keys.size();
                size_t arena_mark = arena.size();
                p = skip_ws(p + 1, end);
                if (*p == '}') {
                    out.push_back('}');
                    return p + 1;
                }
                for (bool first = true;; first = false) {
                    if (!first) out.push_back(',');
                    bool escaped;
                    const char* kend = scan_string(p + 1, end, escaped);
                    size_t at = arena.size();
                    if (escaped) unescape(arena, p + 1, kend);
                    else arena.append(p + 1, kend - (p + 1));
                    size_t klen = arena.size() - at;
                    for (size_t i = first_key; i < keys.size(); i++) {
                        if (keys[i].second == klen && memcmp(arena.data() + keys[i].first, arena.data() + at, klen) == 0) {
                            keys.resize(first_key);
                            arena.resize(arena_mark);
                            return nullptr;
                        }
                    }
                    keys.emplace_back(at, klen);
                    string(out, p + 1, kend, escaped);
                    out.push_back(':');
                    p = skip_ws(kend + 1, end);
                    p = skip_ws(p + 1, end);  // ':'
                    p = value(out, p, end);
                    if (!p) {
                        keys.resize(first_key);
                        arena.resize(arena_mark);
                        return nullptr;
                    }
                    p = skip_ws(p, end);
                    if (*p == '}') {
                        keys.resize(first_key);
                        arena.resize(arena_mark);
                        out.push_back('}');
                        return p + 1;
                    }
                    p = skip_ws(p + 1, end);  // ','
                }
            }
            case '[': {
                out.push_back('[');
                p = skip_ws(p + 1, end);
                if (*p == ']') {
                    out.push_back(']');
                    return p + 1;
                }
                for (bool first = true;; first = false) {
                    if (!first) out.push_back(',');
                    p = value(out, p, end);
                    if (!p) return nullptr;
                    p = skip_ws(p, end);
                    if (*p == ']') {
                        out.push_back(']');
                        return p + 1;
                    }
                    p = skip_ws(p + 1, end);
                }
            }
            case '"': {
                bool escaped;
                const char* q = scan_string(p + 1, end, escaped);
                string(out, p + 1, q, escaped);
                return q + 1;
            }
            case 't': out.append("true", 4); return p + 4;
            case 'f': out.append("false", 5); return p + 5;
            case 'n': out.append("null", 4); return p + 4;
            default: {
                const char* q = p;  // validated: the number ends at the first byte that cannot be in one
                while (q < end && ((*q >= '0' && *q <= '9') || *q == '-' || *q == '.' || *q == 'e' || *q == 'E' || *q == '+')) q++;
                if (canonical_number(p, q)) {
                    out.append(p, q - p);
                    return q;
                }
                Number num;
                q = scan_number(p, end, num, true);
                if (num.is_int) write_int(out, num);
                else write_float(out, num);
                return q;
            }
        }
    }
};

// Copy n bytes to d, 16 at a time (d has room for a 16-byte store past d + n; a source load past
// s + n is made only when it stays within s's 4 KiB page, so it cannot fault).
inline void copy_short(char* d, const char* s, size_t n) {
#if defined(__SSE2__)
    size_t k = 0;
    for (; k + 16 <= n; k += 16) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(d + k), _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + k)));
    }
    if (k < n) {
        if ((reinterpret_cast<uintptr_t>(s + k) & 4095) <= 4096 - 16) {
            _mm_storeu_si128(reinterpret_cast<__m128i*>(d + k), _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + k)));
        } else {
            memcpy(d + k, s + k, n - k);
        }
    }
#else
    memcpy(d, s, n);
#endif
}

// Whether a validated list or object [p, e) is already exactly the text Dumper writes for it (so
// it can be used as it is): no whitespace between tokens, no backslash in any string (a string
// without escapes is written as it is), every number's text already orjson's (canonical_number),
// and no key repeated within an object (Dumper refuses those: the slow path must see them).
// EMIT: in the same pass, write the text's quoted CSV field at d ('"', the text with every '"'
// doubled, '"'; d has room for 2 * (e - p) + 2 + 16 bytes), advancing d; *has_string tells
// whether the text holds a string (a '"'), without which a field may not need quotes.
template <bool EMIT>
bool compact_scan(const char* p, const char* e, std::vector<std::pair<const char*, size_t>>& keys,
                  char** dp = nullptr, bool* has_string = nullptr) {
    size_t first_key[MAX_DEPTH + 2];  // per open bracket: its object's first entry in keys, or SIZE_MAX
    int depth = 0;
    bool expect_key = false;
    char* d = EMIT ? *dp : nullptr;
    if (EMIT) {
        *d++ = '"';
        *has_string = false;
    }
    keys.clear();
    while (p < e) {
        switch (*p) {
            case '{':
            case '[':
                if (depth > MAX_DEPTH) return false;
                first_key[depth++] = *p == '{' ? keys.size() : SIZE_MAX;
                expect_key = *p == '{';
                if (EMIT) *d++ = *p;
                p++;
                break;
            case '}':
            case ']':
                if (depth == 0) return false;
                if (first_key[--depth] != SIZE_MAX) keys.resize(first_key[depth]);
                if (EMIT) *d++ = *p;
                p++;
                break;
            case ',':
                expect_key = depth > 0 && first_key[depth - 1] != SIZE_MAX;
                if (EMIT) *d++ = ',';
                p++;
                break;
            case ':':
                if (EMIT) *d++ = ':';
                p++;
                break;
            case '"': {
                const char* q = ++p;
#if defined(__SSE2__)
                const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\');
                for (; e - q >= 16; q += 16) {
                    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
                    int mask = _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)));
                    if (mask) {
                        q += __builtin_ctz(unsigned(mask));
                        break;
                    }
                }
#endif
                while (q < e && *q != '"' && *q != '\\') q++;
                if (q >= e || *q != '"') return false;  // an escape: Dumper decides
                size_t n = size_t(q - p);
                if (expect_key) {
                    for (size_t i = first_key[depth - 1]; i < keys.size(); i++) {
                        if (keys[i].second == n && memcmp(keys[i].first, p, n) == 0) return false;
                    }
                    keys.emplace_back(p, n);
                    expect_key = false;
                }
                if (EMIT) {  // the string's quotes doubled; its text holds none
                    *has_string = true;
                    d[0] = d[1] = '"';
                    copy_short(d + 2, p, n);
                    d += n + 2;
                    d[0] = d[1] = '"';
                    d += 2;
                }
                p = q + 1;
                break;
            }
            case 't':
            case 'n':
                if (EMIT) { memcpy(d, p, 4); d += 4; }
                p += 4;
                break;
            case 'f':
                if (EMIT) { memcpy(d, p, 5); d += 5; }
                p += 5;
                break;
            default: {
                if (!(*p == '-' || (*p >= '0' && *p <= '9'))) return false;  // whitespace
                const char* q = p;
                while (q < e && ((*q >= '0' && *q <= '9') || *q == '-' || *q == '.' || *q == 'e' || *q == 'E' || *q == '+')) {
                    if (EMIT) *d++ = *q;
                    q++;
                }
                if (!canonical_number(p, q)) return false;
                p = q;
            }
        }
    }
    if (depth != 0) return false;
    if (EMIT) {
        *d++ = '"';
        *dp = d;
    }
    return true;
}

bool compact_canonical(const char* p, const char* e, std::vector<std::pair<const char*, size_t>>& keys) {
    return compact_scan<false>(p, e, keys);
}

struct Work {
    std::vector<std::pair<const char*, size_t>> keys;  // scratch: compact_canonical's keys
    Buf field;  // scratch: a field's text before CSV escaping
    Buf key;    // scratch: an escaped key
    Buf out;
    Dumper dumper;
    std::vector<Slot> slots;
};

// One line's CSV row. Returns false to refuse the chunk.
bool write_row(const Config& c, Work& w) {
    Buf& out = w.out;
    for (int i = 0; i < c.ncolumns; i++) {
        if (i) put(out, c.delimiter.data(), c.delimiter.size());
        const Slot& s = w.slots[i];
        size_t before = out.size();
        switch (s.kind) {
            case MISSING: out.append(c.text_missing); break;
            case JNULL: out.append(c.text_null); break;
            case JTRUE: out.append(c.text_true); break;
            case JFALSE: out.append(c.text_false); break;
            case STR:
                if (s.escaped) {
                    w.field.clear();
                    unescape(w.field, s.begin, s.end);
                    csv_text(c, out, w.field.data(), w.field.size());
                } else {
                    csv_text(c, out, s.begin, s.end - s.begin);
                }
                break;
            case INT:
            case FLOAT: {
                if (c.quoting == ALL) out.push_back('"');
                if (canonical_number(s.begin, s.end)) {
                    out.append(s.begin, s.end - s.begin);
                } else {
                    Number num;
                    scan_number(s.begin, s.end, num, true);
                    if (num.is_int) write_int(out, num);
                    else write_float(out, num);
                }
                if (c.quoting == ALL) out.push_back('"');
                break;
            }
            case ARRAY:
            case OBJECT:
                if (c.quoting != NONE) {
                    // Most lists/objects are their own text, and hold a string, so a quoted field
                    // (the text holds a '"'): checked and written in one pass.
                    size_t n = size_t(s.end - s.begin);
                    out.reserve_more(2 * n + 2 + 16);
                    char* d = out.b + out.n;
                    bool has_string;
                    if (compact_scan<true>(s.begin, s.end, w.keys, &d, &has_string)) {
                        if (has_string) out.n = size_t(d - out.b);
                        else csv_text(c, out, s.begin, n);  // e.g. [] or [1,2]: quoted only if needed
                        break;
                    }
                } else if (compact_canonical(s.begin, s.end, w.keys)) {  // most lists/objects: their own text
                    csv_text(c, out, s.begin, size_t(s.end - s.begin));
                    break;
                }
                w.field.clear();
                if (!w.dumper.value(w.field, s.begin, s.end)) return false;
                csv_text(c, out, w.field.data(), w.field.size());
                break;
        }
        if (c.ncolumns == 1 && out.size() == before) out.append("\"\"");  // not a blank line
    }
    out.append(c.newline);
    return true;
}

inline bool is_blank(const char* p, const char* e) {
    // bytes.isspace(): space, \t, \n, \r, \x0b, \x0c (the Python path skips such lines)
    for (; p < e; p++) {
        char ch = *p;
        if (!(ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == '\x0b' || ch == '\x0c')) return false;
    }
    return true;
}

// The chunk's CSV into w.out, or false (refused). rows: lines written.
bool convert_chunk(const Config& c, Work& w, const char* data, size_t size, Py_ssize_t& rows) {
    const char* p = data;
    const char* end = data + size;
    w.out.clear();
    w.out.reserve_more(size + size / 4);
    w.slots.assign(c.ncolumns, Slot{MISSING, false, nullptr, nullptr});
    rows = 0;
    while (p <= end) {
        const char* nl = static_cast<const char*>(memchr(p, '\n', end - p));
        const char* le = nl ? nl : end;
        if (!is_blank(p, le)) {
            for (auto& s : w.slots) s.kind = MISSING;
            Line line{c, w.slots.data(), le, w.key};
            const char* q = skip_ws(p, le);
            if (q >= le || *q != '{') return false;
            q = line.object(q + 1, 0, 1);
            if (!q) return false;
            if (skip_ws(q, le) != le) return false;
            if (!write_row(c, w)) return false;
            rows++;
        }
        if (!nl) break;
        p = nl + 1;
    }
    return true;
}

// ---- the Python type --------------------------------------------------------------------------

struct KernelObject {
    PyObject_HEAD
    Config* config;
};

int kernel_init(KernelObject* self, PyObject* args, PyObject* kwds) {
    static const char* kwlist[] = {"paths", "quoting", "delimiter", "newline", "text_true", "text_false",
                                   "text_null", "text_missing", nullptr};
    PyObject* paths;
    const char *quoting, *delimiter, *newline, *t_true, *t_false, *t_null, *t_missing;
    Py_ssize_t l_delim, l_nl, l_true, l_false, l_null, l_missing;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Osy#y#y#y#y#y#", const_cast<char**>(kwlist), &paths,
                                     &quoting, &delimiter, &l_delim, &newline, &l_nl, &t_true, &l_true,
                                     &t_false, &l_false, &t_null, &l_null, &t_missing, &l_missing))
        return -1;
    auto c = new Config();
    std::string q = quoting;
    c->quoting = q == "minimal" ? MINIMAL : q == "all" ? ALL : q == "nonnumeric" ? NONNUMERIC : q == "none" ? NONE : -1;
    if (c->quoting < 0 || l_delim < 1) {
        delete c;
        PyErr_SetString(PyExc_ValueError, "bad quoting or delimiter");
        return -1;
    }
    c->delimiter.assign(delimiter, l_delim);
    for (unsigned char ch : {'"', '\r', '\n'}) c->special[ch] = true;
    c->special[static_cast<unsigned char>(delimiter[0])] = true;
    if (c->quoting == NONE) c->special[static_cast<unsigned char>('\\')] = true;
    c->newline.assign(newline, l_nl);
    c->text_true.assign(t_true, l_true);
    c->text_false.assign(t_false, l_false);
    c->text_null.assign(t_null, l_null);
    c->text_missing.assign(t_missing, l_missing);
    c->nodes.push_back(Node{"", -1, {}, {}, {}});
    // paths: a list (one per column) of lists of (key: str, index: int or -1)
    PyObject* seq = PySequence_Fast(paths, "paths must be a sequence");
    if (!seq) {
        delete c;
        return -1;
    }
    Py_ssize_t ncol = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < ncol; i++) {
        PyObject* path = PySequence_Fast(PySequence_Fast_GET_ITEM(seq, i), "a path must be a sequence");
        if (!path) {
            Py_DECREF(seq);
            delete c;
            return -1;
        }
        int node = 0;
        std::vector<int> visited{0};
        for (Py_ssize_t j = 0; j < PySequence_Fast_GET_SIZE(path); j++) {
            const char* key;
            Py_ssize_t klen;
            long long index;
            if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(path, j), "y#L", &key, &klen, &index)) {
                Py_DECREF(path);
                Py_DECREF(seq);
                delete c;
                return -1;
            }
            int found = -1;
            for (int ch : c->nodes[node].children) {
                if (c->nodes[ch].key == std::string(key, klen)) found = ch;
            }
            if (found < 0) {
                found = int(c->nodes.size());
                c->nodes.push_back(Node{std::string(key, klen), index, {}, {}, {}});
                c->nodes[node].children.push_back(found);
            }
            node = found;
            visited.push_back(node);
        }
        Py_DECREF(path);
        c->nodes[node].columns.push_back(int(i));
        for (int v : visited) c->nodes[v].subtree.push_back(int(i));
    }
    Py_DECREF(seq);
    c->ncolumns = int(ncol);
    for (Node& nd : c->nodes) {
        for (int ch : nd.children) {
            const std::string& key = c->nodes[ch].key;
            uint64_t head = 0;
            memcpy(&head, key.data(), key.size() < 8 ? key.size() : 8);
            nd.lookup.push_back(Node::ChildKey{key.size(), head, ch});
        }
    }
    delete self->config;
    self->config = c;
    return 0;
}

void kernel_dealloc(KernelObject* self) {
    delete self->config;
    Py_TYPE(self)->tp_free(reinterpret_cast<PyObject*>(self));
}

// Per thread, reused: its buffers keep their pages from chunk to chunk (freed when the thread
// ends). Looked up once per call: every access to a thread_local in a shared object is a call.
__attribute__((noinline)) Work& thread_work() {
    static thread_local Work w;
    return w;
}

// convert(chunk) -> (csv bytes, rows) or None when the Python path must do this chunk.
PyObject* kernel_convert(KernelObject* self, PyObject* arg) {
    if (!self->config) {
        PyErr_SetString(PyExc_RuntimeError, "Kernel not initialised");
        return nullptr;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return nullptr;
    Work& w = thread_work();
    Py_ssize_t rows = 0;
    bool ok;
    Py_BEGIN_ALLOW_THREADS
    try {
        ok = convert_chunk(*self->config, w, static_cast<const char*>(view.buf), size_t(view.len), rows);
    } catch (...) {  // std::bad_alloc
        ok = false;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    PyObject* data = ok ? PyBytes_FromStringAndSize(w.out.data(), Py_ssize_t(w.out.size())) : nullptr;
    for (Buf* b : {&w.out, &w.field, &w.key, &w.dumper.text, &w.dumper.arena}) b->shrink(8 << 20);
    if (!ok) Py_RETURN_NONE;
    if (!data) return nullptr;
    return Py_BuildValue("(Nn)", data, rows);
}

PyMethodDef kernel_methods[] = {
    {"convert", reinterpret_cast<PyCFunction>(kernel_convert), METH_O,
     "convert(chunk) -> (csv: bytes, rows: int) | None (refused: the Python path does this chunk)"},
    {nullptr, nullptr, 0, nullptr},
};

PyTypeObject KernelType = {PyVarObject_HEAD_INIT(nullptr, 0)};

// trim(): hand the allocator's free memory back to the OS (glibc's malloc_trim; elsewhere nothing).
// Called as a conversion starts: what imports and config validation freed stays resident otherwise,
// under the conversion's own working set, in the process's peak.
PyObject* module_trim(PyObject*, PyObject*) {
#if defined(__GLIBC__)
    int released;
    Py_BEGIN_ALLOW_THREADS
    released = malloc_trim(0);
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(released);
#else
    Py_RETURN_FALSE;
#endif
}

// The number of '\n' bytes in p[0, n): 16 bytes at a time (SSE2; bytes.count looks at one byte at a
// time, which cost as much as a fifth of the kernel's own time per chunk on short lines).
size_t count_newlines(const char* p, size_t n) {
    size_t total = 0, i = 0;
#if defined(__SSE2__)
    const __m128i nl = _mm_set1_epi8('\n');
    while (i + 16 <= n) {
        // each match adds 1 to its byte lane (cmpeq gives -1); at most 255 blocks before the lanes
        // are summed (psadbw), so none overflows
        __m128i acc = _mm_setzero_si128();
        size_t stop = n - i > 255 * 16 ? i + 255 * 16 : n;
        for (; i + 16 <= stop; i += 16) {
            __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
            acc = _mm_sub_epi8(acc, _mm_cmpeq_epi8(v, nl));
        }
        __m128i sums = _mm_sad_epu8(acc, _mm_setzero_si128());
        total += size_t(_mm_extract_epi16(sums, 0)) + size_t(_mm_extract_epi16(sums, 4));
    }
#endif
    for (; i < n; i++) total += p[i] == '\n';
    return total;
}

// count_newlines(buffer, end) -> the number of b"\n" in buffer[:end]
PyObject* module_count_newlines(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "count_newlines(buffer, end)");
        return nullptr;
    }
    Py_ssize_t end = PyLong_AsSsize_t(args[1]);
    if (end == -1 && PyErr_Occurred()) return nullptr;
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) return nullptr;
    if (end < 0 || end > view.len) end = end < 0 ? 0 : view.len;
    size_t count = count_newlines(static_cast<const char*>(view.buf), size_t(end));
    PyBuffer_Release(&view);
    return PyLong_FromSize_t(count);
}

PyMethodDef module_methods[] = {
    {"trim", module_trim, METH_NOARGS, "trim() -> bool: return free heap memory to the OS (glibc malloc_trim)"},
    {"count_newlines", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(module_count_newlines)),
     METH_FASTCALL, "count_newlines(buffer, end) -> the number of b'\\n' in buffer[:end]"},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "sourcemart_kernel",
                          "JSONL -> CSV kernel for processors/transform/jsonl.py", -1, module_methods};

}  // namespace

PyMODINIT_FUNC PyInit_sourcemart_kernel(void) {
    KernelType.tp_name = "sourcemart_kernel.Kernel";
    KernelType.tp_basicsize = sizeof(KernelObject);
    KernelType.tp_flags = Py_TPFLAGS_DEFAULT;
    KernelType.tp_doc = "Kernel(paths, quoting, delimiter, newline, text_true, text_false, text_null, text_missing)";
    KernelType.tp_new = PyType_GenericNew;
    KernelType.tp_init = reinterpret_cast<initproc>(kernel_init);
    KernelType.tp_dealloc = reinterpret_cast<destructor>(kernel_dealloc);
    KernelType.tp_methods = kernel_methods;
    if (PyType_Ready(&KernelType) < 0) return nullptr;
    PyObject* m = PyModule_Create(&module_def);
    if (!m) return nullptr;
    Py_INCREF(&KernelType);
    if (PyModule_AddObject(m, "Kernel", reinterpret_cast<PyObject*>(&KernelType)) < 0) {
        Py_DECREF(&KernelType);
        Py_DECREF(m);
        return nullptr;
    }
    if (PyModule_AddIntConstant(m, "MAX_DEPTH", MAX_DEPTH) < 0) {
        Py_DECREF(m);
        return nullptr;
    }
    return m;
}
