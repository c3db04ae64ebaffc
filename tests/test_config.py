"""Config validation: a bad config fails before any data moves, naming each bad field's JSON path."""

import json

import pytest

from pipeline.config import ConfigError, json_schema, load_config, validate_config
from tests.conftest import ROOT


def transform(**config):
    base = {"dest": {"type": "local", "path": "out/"}, "columns": [{"name": "a", "path": "a"}]}
    return {"processor_name": "transform", "processor_type": "JSONL", "processor_config": {**base, **config}}


def unzip(**config):
    base = {"src": {"type": "local", "path": "in/*.zip"}, "dest": {"type": "local", "path": "x/"}}
    return {"processor_name": "decompress", "processor_type": "zip", "processor_config": {**base, **config}}


def errors(doc) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate_config(doc)
    return info.value.errors


def test_sample_config_is_valid():
    cfg = load_config(str(ROOT / "samples/acme/events.json"))
    assert [p.processor_name for p in cfg.processors] == ["decompress", "transform"]


def test_bad_column_path_names_json_path():
    cols = [{"name": f"c{i}", "path": "a.b"} for i in range(3)] + [{"name": "c3", "path": "user..id"}]
    errs = errors({"processors": [unzip(), transform(columns=cols)]})
    assert len(errs) == 1
    assert errs[0].startswith("processors[1].processor_config.columns[3].path: ")


@pytest.mark.parametrize("doc, expected", [
    ({"processors": []}, "processors: List should have at least 1 item"),
    ({"processors": [{"processor_name": "explode"}]}, "processors[0]: processor_name must be one of"),
    ({"processors": [unzip(), {**unzip(), "processor_type": "rar"}]}, "processors[1].processor_type: "),
    ({"processors": [transform()]}, "processors[0].processor_config.src: required for the first processor"),
    ({"processors": [unzip(dest={"type": "local", "path": "file.csv"})]}, "processors[0].processor_config.dest.path: must be a folder"),
    ({"processors": [unzip(), transform(columns=[{"name": "a", "path": "a"}, {"name": "a", "path": "b"}])]},
     "processors[1].processor_config.columns[1].name: duplicate column name 'a'"),
    ({"processors": [unzip(), transform(on_error="quarantine")]}, "processors[1].processor_config.rejects: required"),
    ({"processors": [unzip(), transform(delimiter=";;")]}, "processors[1].processor_config.delimiter: "),
    ({"processors": [unzip(), transform(encoding="klingon")]}, "processors[1].processor_config.encoding: unknown encoding"),
    ({"processors": [unzip(src={"type": "blob", "connection": "DefaultEndpointsProtocol=https;AccountKey=abc",
                                "container": "landing"})]}, "processors[0].processor_config.src.connection: "),
    ({"processors": [unzip(src={"type": "http", "url": "https://api.example.com/x?sig=abc"})]},
     "processors[0].processor_config.src.url: query parameter 'sig' looks like a credential"),
    ({"processors": [unzip(src={"type": "http", "url": "https://user:pw@api.example.com/x"})]},
     "processors[0].processor_config.src.url: must not embed credentials"),
    ({"processors": [unzip(dest={"type": "http", "url": "https://x.example.com/"})]}, "processors[0].processor_config.dest"),
    ({"processors": [unzip(surprise=1)]}, "processors[0].processor_config.surprise: Extra inputs are not permitted"),
])
def test_errors_name_the_field(doc, expected):
    errs = errors(doc)
    assert any(e.startswith(expected) for e in errs), errs


def test_errors_never_echo_a_secret_value():
    secret = "DefaultEndpointsProtocol=https;AccountName=x;AccountKey=c2VjcmV0c2VjcmV0"
    doc = {"processors": [unzip(src={"type": "blob", "connection": secret, "container": "landing"})]}
    with pytest.raises(ConfigError) as info:
        validate_config(doc)
    assert "c2VjcmV0c2VjcmV0" not in str(info.value)


def test_json_syntax_error_names_file_and_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{\n  "processors": [\n    {"processor_name": "copy",,}\n  ]\n}\n')
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert f"{path}:3:" in str(info.value)


def test_published_schema_is_current():
    published = json.loads((ROOT / "schema" / "processors.schema.json").read_text())
    assert published == json_schema(), "run `make schema` to regenerate schema/processors.schema.json"


def test_schema_describes_every_processor():
    schema = json_schema()
    assert schema["properties"]["processors"]["minItems"] == 1
    assert set(schema["$defs"]) >= {"CopyProcessor", "DecompressProcessor", "TransformProcessor", "Column"}


def test_presigned_cloud_urls_are_rejected():
    for key in ("X-Amz-Signature", "X-Goog-Signature"):
        doc = {"processors": [unzip(src={"type": "http", "url": f"https://b.example.com/o?{key}=abc123"})]}
        assert errors(doc)[0].startswith("processors[0].processor_config.src.url: query parameter")


def test_redact_scrubs_known_credential_shapes():
    from pipeline.settings import redact

    text = redact("AccountKey=abc123==; https://x/y?sv=2024&sig=S1G&X-Amz-Signature=A5 Bearer tok.en")
    for secret in ("abc123", "S1G", "A5", "tok.en"):
        assert secret not in text
