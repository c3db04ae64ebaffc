"""The work each benchmark child does, other than this project's CLI (which bench.child runs as
`python -m local_runner`). The line loop and the DuckDB query are the natural, straightforward
code someone would write without this project: no tricks.

All of them convert one JSONL file to CSV with the columns of the data's shape
(bench.datagen.SHAPE_COLUMNS: events or social).
"""

from __future__ import annotations

import csv
import json
import os

import orjson

from bench.datagen import SHAPE_COLUMNS, write_gzip, write_jsonl, write_zip


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


def line_loop(src: str, out: str, shape: str = "events") -> None:
    columns = SHAPE_COLUMNS[shape]
    paths = [c["path"].split(".") for c in columns]
    with open(src, "rb") as f, open(out, "w", newline="", encoding="utf-8") as o:
        w = csv.writer(o)
        w.writerow([c["name"] for c in columns])
        for line in f:
            obj = orjson.loads(line)
            w.writerow([get(obj, p) for p in paths])


# --- (c) DuckDB ------------------------------------------------------------------------------

# Columns whose values are lists/objects: written as JSON text, as this project writes them.
JSON_VALUED = {"order.items", "tags", "entities.hashtags", "geo.coordinates.coordinates"}


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


def duckdb_sql(src: str, out: str, shape: str = "events") -> str:
    def lit(s: str) -> str:
        return "'" + s.replace("'", "''") + "'"

    select = ", ".join(f'{duckdb_expression(c["path"])} AS "{c["name"]}"' for c in SHAPE_COLUMNS[shape])
    return (f"COPY (SELECT {select} FROM read_json({lit(src)}, format='newline_delimited')) "
            f"TO {lit(out)} (HEADER, DELIMITER ',')")


def duckdb_copy(src: str, out: str, threads: str, shape: str = "events") -> None:
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads TO {int(threads)}")
    con.execute(duckdb_sql(src, out, shape))


# --- (d) polars --------------------------------------------------------------------------------

def polars_expression(path: str):
    """user.address.city -> col("user").struct.field("address").struct.field("city"); digits index
    lists; JSON-valued columns through struct.json_encode (polars has no list -> JSON text)."""
    import polars as pl

    first, *rest = path.split(".")
    expr = pl.col(first)
    for seg in rest:
        expr = expr.list.get(int(seg), null_on_oob=True) if seg.isdigit() else expr.struct.field(seg)
    if path in JSON_VALUED:
        expr = pl.struct(expr.alias("v")).struct.json_encode()
    return expr


def polars_copy(src: str, out: str, shape: str = "events") -> None:
    import polars as pl

    columns = SHAPE_COLUMNS[shape]
    frame = pl.scan_ndjson(src).select([polars_expression(c["path"]).alias(c["name"]) for c in columns])
    frame.sink_csv(out)


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

def generate(kind: str, path: str, mb: str, seed: str, shape: str = "events") -> None:
    """Write a seeded input under a temporary name, then rename (an interrupted run leaves no
    half file in the cache)."""
    size, seed_n, part = int(float(mb) * 1_000_000), int(seed), path + ".part"
    if kind == "jsonl":
        with open(part, "wb") as f:
            write_jsonl(f, size, seed=seed_n, shape=shape)
    elif kind == "jsonl.gz":
        write_gzip(part, size, seed=seed_n, level=1, shape=shape)
    else:
        write_zip(part, size, files=3, seed=seed_n, level=1, shape=shape)
    os.replace(part, path)
