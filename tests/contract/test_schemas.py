"""The published JSON Schemas match the pydantic models, and every example validates against both."""

from __future__ import annotations

import json

import jsonschema
import pytest

from forethought.contracts.decode import Rejection, decode_event
from forethought.contracts.events import EVENT_KINDS
from forethought.contracts.records import CONTROL_ADAPTER, DeadLetter, Trigger
from forethought.contracts.schemas import EXAMPLES, drift, render, schema_name_for_kind
from forethought.ops.settings import REPO_ROOT

SCHEMAS = REPO_ROOT / "schemas"


def test_committed_schemas_match_the_models() -> None:
    assert drift(SCHEMAS) == [], "schemas/ drifted from the models: run `forethought schemas export`"


def test_no_stale_files_linger_in_schemas() -> None:
    on_disk = {str(p.relative_to(SCHEMAS)) for p in SCHEMAS.rglob("*") if p.is_file()}
    assert on_disk == set(render())


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_each_example_validates_against_its_published_schema_and_model(kind: str) -> None:
    example = json.loads((SCHEMAS / "examples" / f"{kind}.json").read_text())
    schema = json.loads((SCHEMAS / f"{schema_name_for_kind(kind)}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(example, schema)
    if kind in EVENT_KINDS:
        assert not isinstance(decode_event(json.dumps(example).encode()), Rejection)
    elif kind in ("profile", "outcome"):
        CONTROL_ADAPTER.validate_python(example)
    else:
        {"trigger": Trigger, "deadletter": DeadLetter}[kind].model_validate(example)


def test_every_record_kind_has_an_example() -> None:
    assert set(EXAMPLES) == EVENT_KINDS | {"profile", "outcome", "trigger", "deadletter"}


def test_schema_rejects_what_the_model_rejects() -> None:
    schema = json.loads((SCHEMAS / "inbound-event.schema.json").read_text())
    bad = {**EXAMPLES["usage"], "quantity": -1}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    assert isinstance(decode_event(json.dumps(bad).encode()), Rejection)
