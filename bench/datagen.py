"""Seeded generator of realistic nested JSON Lines: unicode text, nulls, arrays, sparse keys,
big and small numbers. Same seed -> same bytes. Used by bench/, the tests and the bundled sample.

    python -m bench.datagen out.jsonl --mb 100 [--seed 7]
    python -m bench.datagen out.zip --mb 300 --files 3      (a zip of JSONL members in folders)
"""

from __future__ import annotations

import argparse
import random
import zipfile

import orjson

FIRST = ["Zoë", "José", "Łukasz", "Ana", "Søren", "Mëlanie", "李", "Ольга", "Amélie", "O'Brien", "Chloé", "Nguyễn"]
LAST = ["Müller", "García", "Kowalski", "Smith", "Østergaard", "Dubois", "王", "Иванова", "Núñez", "Ó Súilleabháin"]
CITIES = ["München", "São Paulo", "Kraków", "Zürich", "Reykjavík", "東京", "Москва", "Düsseldorf", "Montréal"]
NOTES = ['fragile, "handle with care"', "line1\nline2", "emoji 📦🚚", "comma, separated", "", "tab\there", "ok"]
COLUMNS = [
    {"name": "event_id", "path": "event_id"},
    {"name": "ts", "path": "ts"},
    {"name": "user_id", "path": "user.id"},
    {"name": "user_name", "path": "user.name"},
    {"name": "city", "path": "user.address.city"},
    {"name": "country", "path": "user.address.country"},
    {"name": "total", "path": "order.total"},
    {"name": "currency", "path": "order.currency"},
    {"name": "first_sku", "path": "order.items.0.sku"},
    {"name": "items", "path": "order.items"},
    {"name": "tags", "path": "tags"},
    {"name": "active", "path": "active"},
    {"name": "note", "path": "note"},
    {"name": "score", "path": "score"},
]


def record(rng: random.Random, i: int) -> dict:
    rec = {
        "event_id": f"evt-{i:09d}",
        "ts": f"2024-01-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}Z",
        "user": {
            "id": rng.randint(1, 10**9),
            "name": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
            "address": {"city": rng.choice(CITIES), "country": rng.choice(["DE", "BR", "PL", "CH", "IS", "JP"]),
                        "zip": None if rng.random() < 0.2 else f"{rng.randint(10000, 99999)}"},
        },
        "order": {
            "total": round(rng.uniform(0, 5000), 2),
            "currency": rng.choice(["EUR", "USD", "BRL", "JPY"]),
            "items": [{"sku": f"SKU-{rng.randint(1, 99999):05d}", "qty": rng.randint(1, 9),
                       "price": round(rng.uniform(0.5, 999), 2)} for _ in range(rng.randint(0, 4))],
        },
        "tags": rng.sample(["new", "vip", "promo", "b2b", "retour", "express"], rng.randint(0, 3)),
        "active": rng.random() < 0.7,
        "note": rng.choice(NOTES) if rng.random() < 0.5 else None,
        "score": rng.random() * 10 ** rng.randint(-3, 6),
    }
    # Sparse keys: a fifth of the records lack some fields altogether.
    if rng.random() < 0.2:
        rec.pop(rng.choice(["note", "tags", "score", "active"]), None)
    if rng.random() < 0.05:
        del rec["user"]["address"]
    return rec


def lines(seed: int, start: int = 0):
    """Endless JSONL lines. A pool of distinct records keeps generation fast (~200 MB/s)."""
    rng = random.Random(seed)
    pool = [record(rng, i) for i in range(4096)]
    i = start
    while True:
        rec = pool[i % len(pool)]
        rec["event_id"] = f"evt-{i:09d}"
        yield orjson.dumps(rec) + b"\n"
        i += 1


def write_jsonl(f, target_bytes: int, seed: int = 7, start: int = 0) -> int:
    """Write whole lines until at least target_bytes; return the number of lines."""
    written = n = 0
    batch = []
    for line in lines(seed, start):
        batch.append(line)
        written += len(line)
        n += 1
        if len(batch) >= 1000 or written >= target_bytes:
            f.write(b"".join(batch))
            batch = []
        if written >= target_bytes:
            return n
    return n


def write_zip(path: str, total_bytes: int, files: int = 3, seed: int = 7,
              compression: int = zipfile.ZIP_DEFLATED, level: int = 1) -> int:
    """A zip of `files` JSONL members in nested folders, streamed (never whole in memory)."""
    lines_total = 0
    with zipfile.ZipFile(path, "w", compression=compression, compresslevel=level, allowZip64=True) as zf:
        for k in range(files):
            name = f"events/part-{k // 2}/events-{k:03d}.jsonl"
            with zf.open(name, "w", force_zip64=True) as member:
                lines_total += write_jsonl(member, total_bytes // files, seed + k, start=lines_total)
    return lines_total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out")
    parser.add_argument("--mb", type=float, default=10)
    parser.add_argument("--files", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    size = int(args.mb * 1e6)
    if args.out.endswith(".zip"):
        print(write_zip(args.out, size, args.files, args.seed), "lines")
    else:
        with open(args.out, "wb") as f:
            print(write_jsonl(f, size, args.seed), "lines")


if __name__ == "__main__":
    main()
