"""Config fuzzing (issue 9, item 7): a few hundred mutated configs through `validate` in a real
child process. None may raise a traceback; each is either accepted, or refused with exit 2 and
an error naming a JSON path. An accepted one must also build everything a run builds from its
config (CSV format, line function, output encoding, member filter, paths), so nothing that
validation accepts fails at run time for config reasons."""

import copy
import io
import json
import os
import random
import re

from tests.conftest import ROOT, run_cli

SEEDS = [
    json.loads((ROOT / "samples" / "acme" / "events.json").read_text()),
    {"sourcemart": "s", "table": "t", "processors": [
        {"processor_name": "copy", "processor_type": "copy", "processor_config": {
            "src": {"type": "http", "url": "https://api.example.com/v1/feed.jsonl", "timeout_s": 30,
                    "headers_from_env": {"Authorization": "ACME_TOKEN"}, "name": "feed.jsonl"},
            "dest": {"type": "blob", "connection": "RAW", "container": "raw", "path": "x/", "block_size": 4194304}}},
        {"processor_name": "decompress", "processor_type": "gzip", "processor_config": {
            "dest": {"type": "local", "path": "out/"}, "limits": {"max_ratio": 50, "max_total_bytes": 1000000}}},
        {"processor_name": "transform", "processor_type": "JSONL", "processor_config": {
            "dest": {"type": "local", "path": "csv/"}, "columns": [{"name": "id", "path": ["a.b", "c"]}],
            "header": False, "delimiter": ";", "quoting": "none", "null_text": "NULL", "encoding": "cp1252",
            "encoding_errors": "replace", "newline": "\n", "on_error": "quarantine", "max_reject_ratio": 0.1,
            "max_rejects": 5, "rejects": {"type": "local", "path": "rejects/"}}}]},
]

NASTY = [
    "yes", "no", 1, 0, -1, 1.5, 1e308, -1e308, "1e308", None, True, False, [], {}, "", " ", "\x00", "a\x00b",
    "in/\x01x", "\u0085", "\ud800", '"', "\r", "\n", "\\", "hex", "rot13", "base64", "undefined", "idna",
    "utf-8", "ascii", "*", "**/", "../x", "/", "x" * 5000, [[[[[]]]]], {"a": {"b": {"c": {}}}}, 2 ** 64,
    "ab", ",", "minimal", "quarantine", "skip", "local", "blob", "http", {"type": "local", "path": "p/"},
]


def paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from paths(v, prefix + (i,))


def set_at(doc, path, value):
    if not path:
        return value
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return doc


def mutate(rng: random.Random) -> str:
    """A JSON text: a seed with 1-3 mutations (replace a value, delete a key, add a key), sometimes
    rendered with what json.dumps cannot make (a 5,000-digit integer, NaN, deep nesting)."""
    doc = copy.deepcopy(rng.choice(SEEDS))
    specials = {}
    for _ in range(rng.randint(1, 3)):
        path = rng.choice(list(paths(doc)))
        action = rng.random()
        if action < 0.15 and path and isinstance(path[-1], str):
            parent = doc
            for key in path[:-1]:
                parent = parent[key]
            del parent[path[-1]]
        elif action < 0.25 and isinstance(rng.choice([doc]), dict):
            target = doc
            for key in path:
                target = target[key]
            if isinstance(target, dict):
                target[rng.choice(["extra", "src", "limits", "header", "path", "type"])] = rng.choice(NASTY)
        elif action < 0.45:
            marker = f"@@special{len(specials)}@@"
            specials[marker] = rng.choice(["9" * 5000, "-" + "9" * 5000, "NaN", "Infinity", "-Infinity", "1e999",
                                           "[" * 5000 + "]" * 5000, "{\"a\":" * 3000 + "1" + "}" * 3000,
                                           "[" * 200 + "]" * 200])
            doc = set_at(doc, path, marker)
        else:
            doc = set_at(doc, path, copy.deepcopy(rng.choice(NASTY)))
    text = json.dumps(doc)
    for marker, raw in specials.items():
        text = text.replace(json.dumps(marker), raw)
    return text


def runtime_objects(cfg: dict) -> None:
    """What a run builds from an accepted config, before it reads data."""
    from mounters.base import member_matcher, select
    from pipeline.config import validate_config
    from processors.transform.jsonl import build_line_function
    from writers.csv_text import CsvFormat, open_text

    model = validate_config(cfg)
    for p in model.processors:
        c = p.processor_config
        for loc in (c.src, c.dest, getattr(c, "rejects", None)):
            if loc is not None and loc.type == "local":
                os.fsencode(loc.path)
                select(loc.path)
        if p.processor_name == "decompress":
            member_matcher(c.members)("a/b.jsonl")
        if p.processor_name == "transform":
            fmt = CsvFormat(c.delimiter, c.quoting, c.newline)
            lines = build_line_function(c.columns, fmt, c.null_text)
            text = open_text(io.BytesIO(), encoding=c.encoding, errors=c.encoding_errors)
            if c.header:
                text.write(fmt.line([fmt.text(col.name) for col in c.columns]))
            text.write(lines([{"a": 1, "id": None}, {"id": "x"}]))
            text.flush()


def test_mutated_configs_never_traceback_and_errors_name_a_json_path(tmp_path):
    rng = random.Random(9)
    files = []
    for i in range(300):
        path = tmp_path / f"c{i:03}.json"
        path.write_text(mutate(rng))
        files.append(str(path))
    proc = run_cli("validate", *files, timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    accepted = {line[: -len(": ok")] for line in proc.stdout.splitlines() if line.endswith(": ok")}
    blocks = re.split(r"^(?=\S.* is invalid:$)", proc.stderr, flags=re.M)
    refused = {}
    for block in filter(None, blocks):
        head, *errors = block.rstrip("\n").split("\n")
        refused[head[: -len(" is invalid:")]] = errors
    assert accepted.isdisjoint(refused) and accepted | set(refused) == set(files)
    assert proc.returncode == (2 if refused else 0)
    assert len(refused) > 200 and len(accepted) > 10  # the mutations reach both sides
    json_path = re.compile(r"^  (\(root\)|[A-Za-z_]\w*(\[\d+\]|\.[^:\s]+|\.\[key\])*|\S+\.json:(\d+:\d+)?): \S")
    for name, errors in refused.items():
        assert errors and all(json_path.match(e) for e in errors), (name, errors)
    for name in accepted:
        runtime_objects(json.loads(open(name).read()))


def test_the_cases_of_the_issue_are_refused(tmp_path):
    def transform(**cfg):
        return {"processors": [{"processor_name": "transform", "processor_type": "JSONL", "processor_config": {
            "src": {"type": "local", "path": "in/"}, "dest": {"type": "local", "path": "out/"},
            "columns": [{"name": "a", "path": "a"}], **cfg}}]}

    def http(**src):
        return {"processors": [{"processor_name": "copy", "processor_type": "copy", "processor_config": {
            "src": {"type": "http", "url": "http://h/x", **src}, "dest": {"type": "local", "path": "out/"}}}]}

    cases = {
        "header": (transform(header="yes"), "processors[0].processor_config.header: Input should be a valid boolean"),
        "delimiter": (transform(delimiter='"'), "processors[0].processor_config.delimiter: '\"' cannot separate fields"),
        "newline_delimiter": (transform(delimiter="\n"), "processors[0].processor_config.delimiter: '\\n' cannot separate"),
        "hex": (transform(encoding="hex"), "processors[0].processor_config.encoding: 'hex' is not a text encoding"),
        "ascii_header": (transform(encoding="ascii", columns=[{"name": "né", "path": "a"}]),
                         "processors[0].processor_config.columns[0].name: 'né' cannot be written in encoding 'ascii'"),
        "inf": (None, "processors[0].processor_config.src.timeout_s: Input should be a finite number"),
        "big": (http(timeout_s=1e308), "processors[0].processor_config.src.timeout_s: Input should be less than or equal to 3600"),
        "nul": (transform(dest={"type": "local", "path": "out/\u0000/"}),
                "processors[0].processor_config.dest.path: must not contain control characters (found '\\x00' at position 4)"),
    }
    for name, (cfg, expected) in cases.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(cfg) if cfg else json.dumps(http(timeout_s=1.0)).replace("1.0", "1e999"))
        proc = run_cli("validate", str(path))
        assert proc.returncode == 2 and expected in proc.stderr, (name, proc.stderr)
        assert "Traceback" not in proc.stderr

    deep = tmp_path / "deep.json"
    deep.write_text('{"processors": ' + "[" * 100_000 + "]" * 100_000 + "}")
    digits = tmp_path / "digits.json"
    digits.write_text(json.dumps(transform()).replace('"in/"', "9" * 5000))
    proc = run_cli("validate", str(deep), str(digits))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{deep}: not valid JSON: nested too deeply" in proc.stderr
    assert "processors[0].processor_config.src.path: Input should be a valid string" in proc.stderr
