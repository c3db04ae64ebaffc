"""The work each benchmark child does, other than this project's CLI (which bench.child runs as
`python -m local_runner`). The line loop and the DuckDB query are the natural, straightforward
code someone would write without this project: no tricks.

All of them convert one JSONL file to CSV with the columns of bench.datagen.COLUMNS.
"""

from __future__ import annotations

import csv
import json
import os

import orjson

from bench.datagen import COLUMNS, write_jsonl, write_zip


# --- (b) the plain line loop -------------------------------------------------------------------

def get(obj, path):
    """Walk a dotted path: keys into objects, digit segments index lists; anything else -> None."""
    for key in path:
        if isinstance(obj, dict):
            obj = obj.get(key)
        elif isinstance(obj, list) and key.isdigit():
            i = int(key)
            obj = obj[i] if i < len(obj) else None
        else:
            return None
    return obj


def line_loop(src: str, out: str) -> None:
    paths = [c["path"].split(".") for c in COLUMNS]
    with open(src, "rb") as f, open(out, "w", newline="", encoding="utf-8") as o:
        w = csv.writer(o)
        w.writerow([c["name"] for c in COLUMNS])
        for line in f:
            obj = orjson.loads(line)
            w.writerow([get(obj, p) for p in paths])


# --- (c) DuckDB ------------------------------------------------------------------------------

# Columns whose values are lists/objects: written as JSON text, as this project writes them.
JSON_VALUED = {"order.items", "tags"}


def duckdb_expression(path: str) -> str:
    """user.address.city -> "user"."address"."city"; order.items.0.sku -> "order"."items"[1]."sku"
    (DuckDB lists are 1-based)."""
    expr = ""
    for seg in path.split("."):
        if seg.isdigit():
            expr += f"[{int(seg) + 1}]"
        else:
            expr += ("." if expr else "") + '"' + seg.replace('"', '""') + '"'
    return f"to_json({expr})" if path in JSON_VALUED else expr


def duckdb_sql(src: str, out: str) -> str:
    def lit(s: str) -> str:
        return "'" + s.replace("'", "''") + "'"

    select = ", ".join(f'{duckdb_expression(c["path"])} AS "{c["name"]}"' for c in COLUMNS)
    return (f"COPY (SELECT {select} FROM read_json({lit(src)}, format='newline_delimited')) "
            f"TO {lit(out)} (HEADER, DELIMITER ',')")


def duckdb_copy(src: str, out: str, threads: str) -> None:
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads TO {int(threads)}")
    con.execute(duckdb_sql(src, out))


# --- (a') this project without the CLI: processors.run_unit in this process ----------------------

def run_units(config_path: str) -> None:
    """The first processor's units of a config, run one after another; prints their results."""
    from pipeline.config import load_config
    from pipeline.units import plan_units
    from processors import run_unit

    config = load_config(config_path).model_dump(exclude_none=True)
    results = [run_unit(u) for u in plan_units(config["processors"][0], None)]
    print(json.dumps({"totals": {"rows": sum(r.get("rows", 0) for r in results)},
                      "unit_seconds": sum(r["seconds"] for r in results)}))


# --- inputs ----------------------------------------------------------------------------------

def generate(kind: str, path: str, mb: str, seed: str) -> None:
    """Write a seeded input under a temporary name, then rename (an interrupted run leaves no
    half file in the cache)."""
    size, seed_n, part = int(float(mb) * 1_000_000), int(seed), path + ".part"
    if kind == "jsonl":
        with open(part, "wb") as f:
            write_jsonl(f, size, seed=seed_n)
    else:
        write_zip(part, size, files=3, seed=seed_n, level=1)
    os.replace(part, path)
