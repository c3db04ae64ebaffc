"""Seeded generators of realistic nested JSON Lines, two shapes. Same seed -> same bytes.

- events: small order events (~370 bytes): unicode text, nulls, arrays, sparse keys, big and
  small numbers. Used by bench/, the tests and the bundled sample.
- social: a social-media API dump (~3 KB per post): wide records, deep nesting (author, metrics,
  entities, media, context annotations, 8 levels of metadata), long text with emoji, quotes and
  line breaks, escaped characters, many numbers.

    python -m bench.datagen out.jsonl --mb 100 [--seed 7]
    python -m bench.datagen out.zip --mb 300 --files 3      (a zip of JSONL members in folders)
    python -m bench.datagen out.jsonl.gz --mb 100 --shape social
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


SOCIAL_COLUMNS = [
    {"name": "id", "path": "id"},
    {"name": "created_at", "path": "created_at"},
    {"name": "text", "path": "text"},
    {"name": "lang", "path": "lang"},
    {"name": "author_id", "path": "author.id"},
    {"name": "username", "path": "author.username"},
    {"name": "followers", "path": "author.public_metrics.followers_count"},
    {"name": "likes", "path": "public_metrics.like_count"},
    {"name": "hashtags", "path": "entities.hashtags"},
    {"name": "first_url", "path": "entities.urls.0.expanded_url"},
    {"name": "media_alt", "path": "attachments.media.0.alt_text"},
    {"name": "coordinates", "path": "geo.coordinates.coordinates"},
    {"name": "domain", "path": "context_annotations.0.domain.name"},
    {"name": "sensitive", "path": "possibly_sensitive"},
    {"name": "trace", "path": "meta.ingest.pipeline.stage.node.trace.span.id"},
]
WORDS = ["the", "data", "launch", "today", "Zürich", "naïve", "café", "🚀", "🔥", "👩‍💻", "東京", "Москва", "\"quoted\"",
         "line\nbreak", "tab\tsep", "comma,", "semi;colon", "#hashtag", "@mention", "https://example.com/x?y=1&z=2",
         "back\\slash", "emoji😀", "ünïcödé", "a", "to", "of", "and", "in", "is", "for", "on", "with"]


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def social_record(rng: random.Random, i: int) -> dict:
    def metrics(*names):
        return {n: rng.randint(0, 10 ** rng.randint(1, 7)) for n in names}

    urls = [{"start": rng.randint(0, 200), "end": rng.randint(200, 280), "url": f"https://t.co/{rng.getrandbits(40):x}",
             "expanded_url": f"https://example.org/{_text(rng, 2).replace(' ', '/')}?ref={rng.randint(1, 999)}",
             "display_url": "example.org/…", "status": rng.choice([200, 301, 404]),
             "images": [{"url": f"https://img.example.org/{rng.getrandbits(32):x}.jpg", "width": 1200, "height": 675}]}
            for _ in range(rng.randint(0, 3))]
    return {
        "id": str(1_700_000_000_000_000_000 + i),
        "created_at": f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}.000Z",
        "text": _text(rng, rng.randint(10, 120)),
        "lang": rng.choice(["en", "de", "ja", "ru", "pt", "und"]),
        "source": "Example for Android",
        "conversation_id": str(1_700_000_000_000_000_000 + rng.randint(0, i + 1)),
        "in_reply_to_user_id": str(rng.randint(1, 10**15)) if rng.random() < 0.3 else None,
        "possibly_sensitive": rng.random() < 0.05,
        "reply_settings": "everyone",
        "edit_history_tweet_ids": [str(1_700_000_000_000_000_000 + i)],
        "author": {
            "id": str(rng.randint(1, 10**15)), "username": f"user_{rng.getrandbits(24):x}",
            "name": _text(rng, 2), "description": _text(rng, rng.randint(0, 40)),
            "location": rng.choice(["Berlin", "São Paulo", "東京", None, "", "Earth 🌍"]),
            "verified": rng.random() < 0.1, "created_at": "2015-06-01T12:00:00.000Z",
            "public_metrics": metrics("followers_count", "following_count", "tweet_count", "listed_count"),
            "entities": {"url": {"urls": urls[:1]}, "description": {"hashtags": []}},
            "profile_image_url": f"https://img.example.org/p/{rng.getrandbits(32):x}_normal.jpg",
        },
        "public_metrics": metrics("retweet_count", "reply_count", "like_count", "quote_count", "impression_count"),
        "entities": {
            "hashtags": [{"start": rng.randint(0, 99), "end": rng.randint(100, 200), "tag": rng.choice(WORDS)}
                         for _ in range(rng.randint(0, 4))],
            "mentions": [{"start": 0, "end": 9, "username": f"user_{rng.getrandbits(24):x}", "id": str(rng.randint(1, 10**15))}
                         for _ in range(rng.randint(0, 3))],
            "urls": urls,
            "annotations": [{"start": 3, "end": 9, "probability": rng.random(), "type": "Place",
                             "normalized_text": rng.choice(WORDS)} for _ in range(rng.randint(0, 2))],
        },
        "attachments": {"media_keys": [f"3_{rng.getrandbits(50)}" for _ in range(rng.randint(0, 2))],
                        "media": [{"type": "photo", "url": f"https://img.example.org/m/{rng.getrandbits(32):x}.jpg",
                                   "width": rng.choice([640, 1280, 4096]), "height": rng.choice([480, 720, 2160]),
                                   "alt_text": _text(rng, rng.randint(0, 15)) or None}
                                  for _ in range(rng.randint(0, 2))]},
        "referenced_tweets": [{"type": rng.choice(["quoted", "replied_to", "retweeted"]),
                               "id": str(1_700_000_000_000_000_000 + rng.randint(0, 10**6))} for _ in range(rng.randint(0, 2))],
        "context_annotations": [{"domain": {"id": str(rng.randint(1, 200)), "name": rng.choice(["Brand", "Person", "Sport", "Tech"]),
                                            "description": _text(rng, 6)},
                                 "entity": {"id": str(rng.randint(1, 10**18)), "name": _text(rng, 2)}}
                                for _ in range(rng.randint(0, 6))],
        "geo": ({"place_id": f"{rng.getrandbits(64):x}",
                 "coordinates": {"type": "Point", "coordinates": [round(rng.uniform(-180, 180), 6), round(rng.uniform(-90, 90), 6)]}}
                if rng.random() < 0.2 else None),
        "meta": {"ingest": {"pipeline": {"stage": {"node": {"trace": {"span": {"id": f"{rng.getrandbits(64):016x}",
                                                                                "sampled": rng.random() < 0.5,
                                                                                "score": rng.random() * 100}}}}}},
                 "received_at": rng.randint(1_700_000_000_000, 1_800_000_000_000)},
    }


SHAPES = {"events": (record, "event_id", lambda i: f"evt-{i:09d}"),
          "social": (social_record, "id", lambda i: str(1_700_000_000_000_000_000 + i))}
SHAPE_COLUMNS = {"events": COLUMNS, "social": SOCIAL_COLUMNS}


def lines(seed: int, start: int = 0, shape: str = "events"):
    """Endless JSONL lines. A pool of distinct records keeps generation fast (~200 MB/s)."""
    make, id_key, make_id = SHAPES[shape]
    rng = random.Random(seed)
    pool = [make(rng, i) for i in range(4096 if shape == "events" else 1024)]
    i = start
    while True:
        rec = pool[i % len(pool)]
        rec[id_key] = make_id(i)
        yield orjson.dumps(rec) + b"\n"
        i += 1


def write_jsonl(f, target_bytes: int, seed: int = 7, start: int = 0, shape: str = "events") -> int:
    """Write whole lines until at least target_bytes; return the number of lines."""
    written = n = 0
    batch = []
    for line in lines(seed, start, shape):
        batch.append(line)
        written += len(line)
        n += 1
        if len(batch) >= 1000 or written >= target_bytes:
            f.write(b"".join(batch))
            batch = []
        if written >= target_bytes:
            return n
    return n


def write_json_array(f, target_bytes: int, seed: int = 7, records_path: str | None = None,
                     shape: str = "events") -> int:
    """One JSON document of at least target_bytes: an array of records (one per line, as an API
    dump often is), at the top level or under records_path ('data.items'), streamed; return the
    number of records."""
    keys = records_path.split(".") if records_path else []
    f.write(b"".join(b'{"meta": {"source": "datagen"}, "%s": ' % k.encode() for k in keys) + b"[\n")
    written = n = 0
    batch = []
    for line in lines(seed, 0, shape):
        batch.append(line[:-1])
        written += len(line) + 1
        n += 1
        if len(batch) >= 1000 or written >= target_bytes:
            f.write((b"" if n == len(batch) else b",\n") + b",\n".join(batch))
            batch = []
        if written >= target_bytes:
            break
    f.write(b"\n]" + b"}" * len(keys) + b"\n")
    return n


def write_zip(path: str, total_bytes: int, files: int = 3, seed: int = 7,
              compression: int = zipfile.ZIP_DEFLATED, level: int = 1, shape: str = "events") -> int:
    """A zip of `files` JSONL members in nested folders, streamed (never whole in memory)."""
    lines_total = 0
    with zipfile.ZipFile(path, "w", compression=compression, compresslevel=level, allowZip64=True) as zf:
        for k in range(files):
            name = f"{shape}/part-{k // 2}/{shape}-{k:03d}.jsonl"
            with zf.open(name, "w", force_zip64=True) as member:
                lines_total += write_jsonl(member, total_bytes // files, seed + k, start=lines_total, shape=shape)
    return lines_total


def write_gzip(path: str, total_bytes: int, seed: int = 7, level: int = 1, shape: str = "events") -> int:
    import gzip

    with gzip.open(path, "wb", compresslevel=level) as f:
        return write_jsonl(f, total_bytes, seed, shape=shape)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out")
    parser.add_argument("--mb", type=float, default=10)
    parser.add_argument("--files", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="events")
    args = parser.parse_args()
    size = int(args.mb * 1e6)
    if args.out.endswith(".zip"):
        print(write_zip(args.out, size, args.files, args.seed, shape=args.shape), "lines")
    elif args.out.endswith(".gz"):
        print(write_gzip(args.out, size, args.seed, shape=args.shape), "lines")
    else:
        with open(args.out, "wb") as f:
            print(write_jsonl(f, size, args.seed, shape=args.shape), "lines")


if __name__ == "__main__":
    main()
