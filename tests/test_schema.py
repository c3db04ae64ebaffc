"""The published JSON Schema (schema/processors.schema.json) as a consumer uses it: a JSON Schema
validator (jsonschema, Draft 2020-12) accepts the bundled sample and every processors block of the
sourcemarts, and refuses what the config models refuse."""

from __future__ import annotations

import copy
import json

import pytest
from jsonschema import Draft202012Validator

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def validator():
    schema = json.loads((ROOT / "schema" / "processors.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def processors_blocks():
    """(where, processors list) for every processors block in sourcemarts/."""
    for path in sorted((ROOT / "sourcemarts").glob("*.json")):
        doc = json.loads(path.read_text())
        for i, table in enumerate(doc.get("tables", [])):
            for part in ("collector", "refiner"):
                if (table.get(part) or {}).get("processors"):  # a Refiner may have stages only
                    yield f"{path.name}: tables[{i}].{part}", table[part]["processors"]
        for i, pipeline in enumerate(doc.get("pipelines", [])):
            yield f"{path.name}: pipelines[{i}]", pipeline["processors"]


def test_the_samples_validate(validator):
    samples = sorted((ROOT / "samples").glob("*/*.json"))
    assert samples
    for path in samples:
        errors = [e.message for e in validator.iter_errors(json.loads(path.read_text()))]
        assert not errors, (path, errors)


def test_every_processors_block_in_sourcemarts_validates(validator):
    blocks = list(processors_blocks())
    assert len(blocks) >= 8
    for where, processors in blocks:
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors({"processors": processors})]
        assert not errors, (where, errors)


@pytest.mark.parametrize("edit", [
    lambda c: c["processors"][1]["processor_config"].update(quoting="sometimes"),
    lambda c: c["processors"][0].update(processor_type="rar"),
    lambda c: c["processors"][0]["processor_config"].update(unknown_option=1),
    lambda c: c.update(processors=[]),
])
def test_what_the_models_refuse_the_schema_refuses(validator, edit):
    from pipeline.config import ConfigError, validate_config

    config = copy.deepcopy(json.loads((ROOT / "samples" / "acme" / "events.json").read_text()))
    edit(config)
    assert list(validator.iter_errors(config))
    with pytest.raises(ConfigError):
        validate_config(config)
