"""The AsyncAPI document (schemas/asyncapi.yaml): generated from the catalogue and the contracts,
valid against the official AsyncAPI 3.0.0 JSON Schema (vendored from @asyncapi/specs), every
reference resolves, and every example validates against its message's payload schema."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from forethought.contracts.asyncapi import document
from forethought.contracts.catalogue import Catalogue, load_catalogue

SPEC = json.loads((Path(__file__).parent / "asyncapi" / "3.0.0.json").read_text())
OFFICIAL = jsonschema.Draft7Validator(SPEC)
PUBLISHED = Path(__file__).parents[2] / "schemas" / "asyncapi.yaml"


def published() -> dict[str, Any]:
    return yaml.safe_load(PUBLISHED.read_text())  # type: ignore[no-any-return]


def errors(doc: dict[str, Any]) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message[:200]}" for e in OFFICIAL.iter_errors(doc)]


def test_the_vendored_schema_is_the_official_3_0_0_one() -> None:
    jsonschema.Draft7Validator.check_schema(SPEC)
    assert SPEC["$id"] == "http://asyncapi.com/definitions/3.0.0/asyncapi.json"
    assert SPEC["properties"]["asyncapi"]["const"] == "3.0.0"


def test_the_published_document_is_valid_asyncapi_3() -> None:
    assert errors(published()) == []


def test_the_published_document_is_what_the_catalogue_and_contracts_generate() -> None:
    assert published() == json.loads(json.dumps(document()))


def test_every_topic_is_a_channel_with_its_partitions_key_and_messages() -> None:
    doc = published()
    for topic in load_catalogue().topics:
        channel = doc["channels"][topic.name]
        assert channel["address"] == topic.name
        assert channel["bindings"]["kafka"]["partitions"] == topic.partitions
        assert len(channel["messages"]) == len(topic.kinds)
        for ref in channel["messages"].values():
            message = resolve(doc, ref["$ref"])
            assert message["bindings"]["kafka"]["key"]["type"] == "string"
            assert message["contentType"] == "application/json"


def resolve(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for item in node for r in refs(item)]
    return []


def test_every_reference_resolves_inside_the_document() -> None:
    doc = published()
    found = refs(doc)
    assert len(found) > 30
    for ref in found:
        assert ref.startswith("#/"), ref
        resolve(doc, ref)


def test_every_example_validates_against_its_payload_and_a_broken_one_does_not() -> None:
    doc = published()
    checked = 0
    for message in doc["components"]["messages"].values():
        for example in message.get("examples", []):
            schema = {**resolve(doc, message["payload"]["$ref"]), "components": doc["components"]}
            checker = jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
            assert checker.is_valid(example["payload"]), message["name"]
            if message["name"] not in ("trigger", "shadow_trigger", "deadletter"):  # inputs: ids never trimmed
                assert not checker.is_valid({**example["payload"], "customer_id": " padded"})
            assert not checker.is_valid({**example["payload"], "type": "no_such_kind"})
            checked += 1
    assert checked >= 10


@pytest.mark.parametrize("breakage", ["asyncapi-2-publish", "payload-type-typo", "no-info", "partitions-zero"])
def test_the_official_schema_catches_a_broken_document(breakage: str) -> None:
    doc = copy.deepcopy(published())
    if breakage == "asyncapi-2-publish":
        next(iter(doc["operations"].values()))["action"] = "publish"
    elif breakage == "payload-type-typo":
        doc["components"]["schemas"]["Usage"]["properties"]["quantity"]["type"] = "numbr"
    elif breakage == "no-info":
        del doc["info"]
    else:
        doc["channels"]["events.usage"]["bindings"]["kafka"]["partitions"] = 0
    assert errors(doc) != []


def test_a_strict_topic_gets_the_strict_payloads(tmp_path: Path) -> None:
    raw = yaml.safe_load(Path(load_catalogue.__defaults__[0]).read_text())  # type: ignore[index]
    for topic in raw["topics"]:
        if topic["name"] == "events.usage":
            topic["strict"] = True
    doc = json.loads(json.dumps(document(Catalogue.model_validate(raw))))
    assert errors(doc) == []
    assert list(doc["channels"]["events.usage"]["messages"]) == ["usage_strict"]
    assert doc["components"]["schemas"]["UsageStrict"]["additionalProperties"] is False
    assert doc["components"]["schemas"]["Usage"]["additionalProperties"] is True  # the rekeyed topic's
    assert "strict" in doc["channels"]["events.usage"]["description"]


def test_strict_is_refused_on_a_topic_the_worker_does_not_read_from_producers() -> None:
    raw = yaml.safe_load(Path(load_catalogue.__defaults__[0]).read_text())  # type: ignore[index]
    for topic in raw["topics"]:
        topic["strict"] = topic["name"] == "engagement.triggers"
    with pytest.raises(ValueError, match="strict applies to the topics"):
        Catalogue.model_validate(raw)
