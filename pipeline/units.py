"""Planning: which units of work a processor has. This is the "list" activity (it does I/O:
listing a folder, a container or a glob), so an orchestrator never touches storage itself.

A processor with a `src` fans out to one unit per file it selects; a processor without one
reads what the previous processor wrote: one unit per output file."""

from __future__ import annotations

from mounters import describe, list_files


def plan_units(processor: dict, previous_outputs: list[dict] | None) -> list[dict]:
    src = processor["processor_config"].get("src")
    if src is not None:
        files = list_files(src)
        if not files:
            raise FileNotFoundError(f"{describe(src)}: matches no files")
    else:
        # Names stay relative to the previous destination folder, so structure carries through.
        files = [{"location": o["location"], "name": o["name"], "size": o.get("bytes")}
                 for o in (previous_outputs or [])]
    return [{"processor": processor, "src": f} for f in files]


def processor_label(processor: dict) -> str:
    return f"{processor['processor_name']}:{processor['processor_type']}"
