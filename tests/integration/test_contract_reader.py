"""The worker as a reader of the contract, against the real broker: an unknown field on a tolerant topic
is ignored and counted, the same field on a strict topic (streams/topics.yaml ``strict: true``) is
dead-lettered as ``unknown_field``, and records the published schema rejects are dead-lettered."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jsonschema
import pytest
import yaml
from worker_kit import Deployment, event, metric

from forethought.contracts.catalogue import DEFAULT_TOPICS_FILE
from forethought.contracts.records import DeadLetter
from forethought.ops.process import running_worker
from forethought.ops.settings import REPO_ROOT

DEADLETTER_SCHEMA = json.loads((REPO_ROOT / "schemas" / "deadletter.schema.json").read_text())


@pytest.fixture
async def deployment(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Deployment:
    return await Deployment.create(kafka_bootstrap, topic_prefix, tmp_path)


def strict_usage_catalogue(folder: Path) -> Path:
    raw = yaml.safe_load(DEFAULT_TOPICS_FILE.read_text())
    for topic in raw["topics"]:
        topic["strict"] = topic["name"] == "events.usage"
    path = folder / "topics.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


async def test_unknown_fields_are_counted_on_tolerant_topics_and_dead_lettered_on_strict_ones(
    deployment: Deployment,
) -> None:
    now = time.time()
    clicks = [event("tr-1", i, "click", now - 20 + i, target="btn", ab_variant="B") for i in range(3)]
    usage = [event("tr-1", 10, "usage", now - 5, metric="api_calls", quantity=3, region="eu"),
             event("tr-1", 11, "usage", now - 4, metric="api_calls", quantity=4)]
    not_contract = [event("tr-1", 20, "click", now - 3, occurred_at=int(now - 3)),  # an epoch number
                    event("tr-1", 21, "usage", now - 2, metric="api_calls", quantity="5")]  # a string
    env = deployment.env(FORETHOUGHT_TOPICS_FILE=str(strict_usage_catalogue(deployment.workdir)))
    with running_worker(env, deployment.workdir / "worker.log", deployment.url):
        await deployment.produce("events.clickstream", [*clicks, not_contract[0]])
        await deployment.produce("events.usage", [*usage, not_contract[1]])
        letters = await deployment.consume("events.deadletter", until=3)
        state = await deployment.wait_for("/customers/tr-1", lambda body: body["events"] == 4)
        _, metrics = deployment.get("/metrics")
    parsed = [DeadLetter.model_validate_json(r.value) for r in letters]
    found = sorted((letter.reason, letter.source_topic) for letter in parsed)
    assert found == sorted([("schema", deployment.topic("events.clickstream")),
                            ("schema", deployment.topic("events.usage")),
                            ("unknown_field", deployment.topic("events.usage"))])
    for record in letters:
        jsonschema.validate(json.loads(record.value), DEADLETTER_SCHEMA)
    assert state["by_type"] == {"click": 3, "usage": 1}
    assert metric(metrics, "forethought_unknown_fields_total", type="click", field="ab_variant") == 3
    assert metric(metrics, "forethought_unknown_fields_total", type="usage", field="region") == 0
    assert metric(metrics, "forethought_invalid_events_total", reason="unknown_field") == 1
