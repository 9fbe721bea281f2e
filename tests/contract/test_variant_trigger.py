"""The trigger contract with playbook variants (#16 point 2): the new optional fields are in the
published schema, a trigger without a variant is written exactly as before, and the policy's
order (holdout before any variant) holds for every playbook shipped with variants."""

from __future__ import annotations

import json

import jsonschema
import pytest

from forethought.contracts.records import Trigger
from forethought.ops.playbooks import parse_rules
from forethought.ops.settings import REPO_ROOT

SCHEMA = json.loads((REPO_ROOT / "schemas" / "trigger.schema.json").read_text())
EXAMPLE = json.loads((REPO_ROOT / "schemas" / "examples" / "trigger.json").read_text())
WHY = {"rule": "scores.dropoff >= 0.8", "signal": "silence", "checks": ["consent: email"]}
CHOICE = {"policy": "thompson", "variant": "short", "probabilities": {"short": 0.7, "long": 0.3}}


def test_a_trigger_with_a_variant_matches_the_published_schema() -> None:
    trigger = Trigger.model_validate({**EXAMPLE, "variant": "short", "template": "nudge_short",
                                      "why": {**WHY, "choice": CHOICE}})
    written = json.loads(trigger.model_dump_json())
    jsonschema.validate(written, SCHEMA)
    assert (written["variant"], written["template"], written["why"]["choice"]) == ("short", "nudge_short", CHOICE)


def test_a_trigger_without_a_variant_is_written_without_the_new_fields() -> None:
    written = json.loads(Trigger.model_validate({**EXAMPLE, "why": WHY}).model_dump_json())
    assert "variant" not in written and "template" not in written and written["why"] == WHY
    jsonschema.validate(written, SCHEMA)


@pytest.mark.parametrize("bad", [{"variant": ""}, {"template": "x" * 129}, {"variant": 3}])
def test_the_schema_and_the_model_refuse_the_same_bad_variant_fields(bad: dict[str, object]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**EXAMPLE, **bad}, SCHEMA)
    with pytest.raises(ValueError):
        Trigger.model_validate({**EXAMPLE, **bad})


def test_a_reader_of_the_old_contract_ignores_the_new_fields() -> None:
    """A sender built before variants reads a trigger with them (readers ignore unknown fields)."""
    old = {k: v for k, v in SCHEMA.items()}
    old["properties"] = {k: v for k, v in SCHEMA["properties"].items() if k not in ("variant", "template")}
    jsonschema.validate({**EXAMPLE, "variant": "short", "template": "nudge_short"}, old)


def test_the_shipped_playbooks_compile() -> None:
    rules = parse_rules((REPO_ROOT / "streams" / "playbooks.yaml").read_text())
    for book in rules.playbooks:
        assert (book.bandit is None) == (not book.variants)
