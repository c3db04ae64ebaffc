"""Generated path walks, shared by the functions generated for the transform's columns
(jsonl.build_line_function) and for the drift sample's mapped paths (drift._column_function)."""

from __future__ import annotations


def parent_holder(segments: tuple, nodes: dict[tuple, str], lookup) -> str:
    """The generated variable holding the parent of the value at `segments`. Each prefix of a path
    is looked up once, whichever paths pass through it (`nodes`: prefix -> its variable), by
    `lookup(variable, holder, key)`, which emits the code that reads `key` from `holder`."""
    holder = "o"
    for depth in range(len(segments) - 1):
        prefix = segments[: depth + 1]
        if prefix not in nodes:
            nodes[prefix] = f"n{len(nodes)}"
            lookup(nodes[prefix], holder, segments[depth])
        holder = nodes[prefix]
    return holder
