"""The native JSONL -> CSV kernel (native/src/sourcemart_kernel.cpp, the `sourcemart-kernel` package
that `make` builds into the venv), and which path a transform takes.

The kernel converts a chunk of whole lines with the GIL released and writes the bytes the Python
path writes; a chunk it is not certain of comes back as None and the Python path does it (naming
file:line, applying on_error). Without the extension, engine `auto` runs the Python path.
"""

from __future__ import annotations

import os

try:
    import sourcemart_kernel as _ext
except ImportError:  # not built (e.g. no compiler): the pure-Python path does everything
    _ext = None

# Set by `make test` when the build is expected to have succeeded: then a missing extension is an
# error, not a silent fall-back to the slower path.
REQUIRE_ENV = "SOURCEMART_REQUIRE_NATIVE"


def available() -> bool:
    if _ext is None and os.environ.get(REQUIRE_ENV) == "1":
        raise RuntimeError(f"{REQUIRE_ENV}=1 but the native kernel (sourcemart_kernel) is not installed: "
                           "run `make` again and read the build's output")
    return _ext is not None


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def kernel_for(engine: str, columns, fmt, null_text: str):
    """The kernel for these columns and format, or None for the pure-Python path."""
    if engine == "python" or (engine == "auto" and not available()):
        return None
    if _ext is None:
        raise ValueError("engine 'native' needs the native kernel (the sourcemart-kernel package), "
                         "which is not installed: use engine 'auto' or install it (make; make package)")
    try:
        paths = [[(key.encode(), _index(key)) for key in c.segments] for c in columns]
        texts = [t.encode() for t in (fmt.delimiter, fmt.newline, fmt.text("true"), fmt.text("false"),
                                      fmt.text(null_text), fmt.text(""))]
    except UnicodeEncodeError:  # a lone surrogate in the config: only the Python path can say what it means
        return None
    return _ext.Kernel(paths, fmt.quoting, *texts)


def _index(key: str) -> int:
    """A segment of digits also indexes a list (as in jsonl.build_line_function); -1 otherwise."""
    return min(int(key), 1 << 62) if key.isdigit() else -1


def release_free_memory() -> None:
    """Give the allocator's free memory back to the OS before a conversion (glibc malloc_trim, in
    the kernel): what start-up freed would otherwise sit under the conversion in the peak RSS."""
    if _ext is not None and hasattr(_ext, "trim"):
        _ext.trim()


def _count_newlines(data, end: int) -> int:
    return data.count(b"\n", 0, end)


# count_newlines(data, end) -> the number of b"\n" in data[:end]: the kernel's (16 bytes at a time)
# when it is built, for the line numbers of either path; bytes.count looks at a byte at a time.
count_newlines = getattr(_ext, "count_newlines", _count_newlines)
