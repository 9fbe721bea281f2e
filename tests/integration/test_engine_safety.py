"""No record stops the engine; a failure outside one record stops it without skipping anything.

All against the real broker with a real worker process:
- a record the engine raises on is dead-lettered (processing_error) and its batch goes on;
- the audit's usage quantity (the largest double) loses nothing;
- a ~900 KB record is dead-lettered as a bounded prefix with its size and sha256;
- a trigger the broker rejects, or a state write it rejects, stops the worker with a non-zero exit
  before the batch is acknowledged; after the topic is fixed a restart processes those events.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import time
from pathlib import Path

import jsonschema
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from worker_kit import Deployment, event, metric

from forethought.contracts.records import DeadLetter, Trigger
from forethought.ops.process import running_worker, spawn_worker, stop_process, wait_ready
from forethought.ops.settings import REPO_ROOT

DEADLETTER_SCHEMA = json.loads((REPO_ROOT / "schemas" / "deadletter.schema.json").read_text())
LONG_CONTEXT = Path(__file__).parent / "playbooks" / "long_context.yaml"
MAX_DOUBLE = 1.7976931348623157e308


@pytest.fixture
async def deployment(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Deployment:
    return await Deployment.create(kafka_bootstrap, topic_prefix, tmp_path)


def errors(customer: str, count: int, at: float) -> list[tuple[bytes, bytes]]:
    return [event(customer, i, "error", at + i * 0.01, code="E500", severity="critical") for i in range(count)]


async def set_topic_config(deployment: Deployment, topic: str, **config: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=deployment.bootstrap)
    await admin.start()
    try:
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                                  {k.replace("_", "."): v for k, v in config.items()})])
    finally:
        await admin.close()


async def committed(deployment: Deployment, topic: str) -> int:
    """How many records of ``topic`` the worker's consumer group has committed (summed over partitions)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=deployment.bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(deployment.app_id)
    finally:
        await admin.close()
    return sum(max(0, meta.offset) for tp, meta in offsets.items() if tp.topic == deployment.topic(topic))


def wait_exit(proc: subprocess.Popen[bytes], deployment: Deployment, timeout: float = 90) -> None:
    """Wait for the worker to exit on its own."""
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        stop_process(proc)
        raise AssertionError("the worker kept running after a failure it cannot recover from") from None


async def test_a_record_the_engine_raises_on_is_dead_lettered_and_the_batch_goes_on(deployment: Deployment) -> None:
    now = time.time() - 60
    env = deployment.env(FORETHOUGHT_PLAYBOOKS_FILE=str(LONG_CONTEXT))
    profile = {"type": "profile", "customer_id": "bad", "updated_at": "2026-01-01T00:00:00Z",
               "attributes": {"company": "c" * 1000, "segment": "s" * 1000}}
    good = [f"good-{i:02d}" for i in range(20)]
    batch = [r for i in range(6) for c in good for r in [event(c, i, "error", now + i * 0.01, code="E500")]]
    bad = errors("bad", 5, now)  # the fifth completes a burst whose trigger context is too long to build
    batch[40:40] = bad[:4]
    batch.insert(110, bad[4])
    with running_worker(env, deployment.workdir / "worker.log", deployment.url):
        await deployment.produce("customers.profile", [(b"bad", json.dumps(profile).encode())])
        await deployment.wait_for("/customers/bad", lambda body: True)
        await deployment.produce("events.errors", batch)
        fired = await deployment.consume("engagement.triggers", until=len(good))
        letters = await deployment.consume("events.deadletter", until=1)
        bad_state = await deployment.wait_for("/customers/bad", lambda body: body["errors_by_severity"])
        states = [await deployment.wait_for(f"/customers/{c}", lambda body: True) for c in good]
        health, _ = deployment.get("/health")
        _, metrics = deployment.get("/metrics")
    assert sorted(Trigger.model_validate_json(r.value).customer_id for r in fired) == good
    assert all(s["by_type"] == {"error": 6} for s in states)
    [record] = letters
    jsonschema.validate(json.loads(record.value), DEADLETTER_SCHEMA)
    letter = DeadLetter.model_validate_json(record.value)
    assert letter.reason == "processing_error" and letter.detail.startswith("ValidationError: ")
    assert base64.b64decode(letter.value_b64) == bad[4][1]
    assert bad_state["by_type"] == {"error": 4}, "the customer keeps the state before the failing record"
    assert health == 200
    assert metric(metrics, "forethought_processing_errors_total", stage="record") == 1
    assert metric(metrics, "forethought_invalid_events_total", reason="processing_error") == 1


async def test_the_largest_double_as_a_usage_quantity_loses_nothing(deployment: Deployment) -> None:
    """The audit's case: it used to fail the customer's next report and silently skip a batch."""
    now = time.time() - 120
    reports = [event("u-max", 0, "usage", now, metric="api_calls", quantity=MAX_DOUBLE)]
    reports += [event("u-max", i, "usage", now + i, metric="api_calls", quantity=100 + i) for i in range(1, 11)]
    reports.insert(3, event("u-max", 50, "usage", now + 2.5, metric="api_calls", quantity=MAX_DOUBLE))
    others = [event(f"other-{c}", i, "usage", now + i, metric="api_calls", quantity=10.0 * i)
              for i in range(10) for c in range(12)]
    with running_worker(deployment.env(), deployment.workdir / "worker.log", deployment.url):
        await deployment.produce("events.usage", reports + others)
        letters = await deployment.consume("events.deadletter", until=2)
        state = await deployment.wait_for("/customers/u-max", lambda body: body["events"] == 10)
        rest = [await deployment.wait_for(f"/customers/other-{c}", lambda body: body["events"] == 10) for c in range(12)]
        health, _ = deployment.get("/health")
        _, metrics = deployment.get("/metrics")
    assert [DeadLetter.model_validate_json(r.value).reason for r in letters] == ["schema", "schema"]
    assert "quantity" in DeadLetter.model_validate_json(letters[0].value).detail
    assert state["by_type"] == {"usage": 10} and len(rest) == 12 and health == 200
    assert metric(metrics, "forethought_processing_errors_total", stage="record") == 0


async def test_a_900_kb_record_is_dead_lettered_as_a_bounded_prefix(deployment: Deployment) -> None:
    now = time.time() - 30
    huge = json.dumps({"event_id": "big", "customer_id": "big-1", "type": "click", "occurred_at": "2026-01-01T00:00:00Z",
                       "properties": {"blob": "x" * 900_000}}).encode()
    valid = [event(f"ok-{c}", i, "click", now + i) for i in range(5) for c in range(4)]
    limit = 200_000
    env = deployment.env(FORETHOUGHT_DEADLETTER_MAX_BYTES=str(limit))
    with running_worker(env, deployment.workdir / "worker.log", deployment.url):
        await deployment.produce("events.clickstream", valid[:10] + [(b"big-1", huge)] + valid[10:])
        letters = await deployment.consume("events.deadletter", until=1)
        states = [await deployment.wait_for(f"/customers/ok-{c}", lambda body: body["events"] == 5) for c in range(4)]
        health, _ = deployment.get("/health")
        source = await deployment.read_all("events.clickstream")
    [record] = letters
    assert len(record.value) <= limit
    jsonschema.validate(json.loads(record.value), DEADLETTER_SCHEMA)
    letter = DeadLetter.model_validate_json(record.value)
    assert (letter.reason, letter.truncated) == ("oversized", True)
    [original] = [r for r in source if (r.partition, r.offset) == (letter.source_partition, letter.source_offset)]
    assert original.value == huge, "source topic, partition and offset locate the whole original"
    assert letter.original_value_bytes == len(huge)
    assert letter.original_value_sha256 == hashlib.sha256(huge).hexdigest()
    assert huge.startswith(base64.b64decode(letter.value_b64)) and base64.b64decode(letter.key_b64 or "") == b"big-1"
    assert len(states) == 4 and health == 200


async def test_a_trigger_the_broker_rejects_stops_the_worker_and_nothing_is_skipped(deployment: Deployment) -> None:
    now = time.time() - 60
    customers = [f"send-{i}" for i in range(10)]
    bursts = [r for c in customers for r in errors(c, 6, now)]
    triggers = deployment.topic("engagement.triggers")
    await set_topic_config(deployment, triggers, max_message_bytes="200")  # smaller than any trigger
    log = deployment.workdir / "worker.log"
    proc = spawn_worker(deployment.env(), log)
    try:
        wait_ready(deployment.url, proc)
        await deployment.produce("events.errors", bursts)
        wait_exit(proc, deployment)
    finally:
        stop_process(proc)
    text = log.read_text(errors="replace")
    assert proc.returncode != 0 and "worker_stopping" in text
    assert await committed(deployment, "events.errors") < len(bursts), "the failed batch was not committed"

    await set_topic_config(deployment, triggers, max_message_bytes="1048588")
    with running_worker(deployment.env(), log, deployment.url):
        fired = await deployment.consume("engagement.triggers", until=len(customers))
    assert sorted(Trigger.model_validate_json(r.value).customer_id for r in fired) == customers


async def test_a_state_write_the_broker_rejects_stops_the_worker_and_nothing_is_skipped(deployment: Deployment) -> None:
    now = time.time() - 60
    customers = [f"state-{i}" for i in range(8)]
    clicks = [event(c, i, "click", now + i) for i in range(5) for c in customers]
    changelog = f"{deployment.app_id}-customer_state-changelog"
    log = deployment.workdir / "worker.log"
    proc = spawn_worker(deployment.env(), log)
    try:
        wait_ready(deployment.url, proc)
        await set_topic_config(deployment, changelog, max_message_bytes="100")  # smaller than any state
        await deployment.produce("events.clickstream", clicks)
        wait_exit(proc, deployment)
    finally:
        stop_process(proc)
    assert proc.returncode != 0 and "worker_stopping" in log.read_text(errors="replace")
    assert await committed(deployment, "events.clickstream") < len(clicks), "the failed batch was not committed"

    await set_topic_config(deployment, changelog, max_message_bytes="1048588")
    with running_worker(deployment.env(), log, deployment.url):
        states = [await deployment.wait_for(f"/customers/{c}", lambda body: body["events"] == 5) for c in customers]
    assert [s["by_type"] for s in states] == [{"click": 5}] * len(customers)
