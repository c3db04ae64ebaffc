"""Run Python code (`-m module ...` or `-c code ...`) and write this process's own peak RSS in KiB
(VmHWM) to the file named by $PEAK_RSS_FILE at exit.

Why not ru_maxrss from wait4/getrusage: Linux carries the parent's high-water mark into the child
across fork/vfork + exec, so a child of a big test process reports the parent's size.
VmHWM belongs to the address space the child built after exec.
"""

import atexit
import os
import runpy
import sys


def _report() -> None:
    with open("/proc/self/status") as f:
        kib = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    with open(os.environ["PEAK_RSS_FILE"], "w") as out:
        out.write(str(kib))


def main() -> None:
    atexit.register(_report)
    mode, target, *rest = sys.argv[1:]
    if mode == "-m":
        sys.argv = [target, *rest]
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    elif mode == "-c":
        sys.argv = ["-c", *rest]
        exec(compile(target, "<string>", "exec"), {"__name__": "__main__"})
    else:
        raise SystemExit("usage: python -m bench.peak (-m module | -c code) [args...]")


if __name__ == "__main__":
    main()
