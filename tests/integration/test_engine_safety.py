"""No record stops the engine; a failure outside one record stops it without skipping anything.

All against the real broker with a real worker process:
- the records of a customer whose stored state was forged in the changelog are dead-lettered
  (processing_error), the batch goes on, and restarts skip that state instead of crash-looping;
- the audit's usage quantity (the largest double) loses nothing;
- a ~900 KB record is dead-lettered as a bounded prefix with its size and sha256;
- a trigger the broker rejects, or a state write it rejects, stops the worker with a non-zero exit
  before the batch is acknowledged; after the topic is fixed a restart processes those events.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import subprocess
import time
from pathlib import Path

import jsonschema
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from worker_kit import Deployment, event, metric

from forethought.contracts.records import DeadLetter, Trigger
from forethought.ops.process import running_worker, spawn_worker, stop_process, wait_ready
from forethought.ops.settings import REPO_ROOT
from forethought.ops.topics import load_catalogue, partition_of

DEADLETTER_SCHEMA = json.loads((REPO_ROOT / "schemas" / "deadletter.schema.json").read_text())
FORGED_STATE = b'{"v":999,"id":"bad","n":1000000}'  # valid JSON, a version no release can read
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


async def forge_state(deployment: Deployment, customer: str, value: bytes) -> None:
    """Write ``value`` as ``customer``'s state straight into the customer_state changelog, at the
    partition the worker's table keeps that key in (what anyone with write access can do)."""
    producer = AIOKafkaProducer(bootstrap_servers=deployment.bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(f"{deployment.app_id}-customer_state-changelog", value, key=customer.encode(),
                                     partition=partition_of(customer.encode(), load_catalogue().partitions))
    finally:
        await producer.stop()


async def wait_metric(deployment: Deployment, name: str, value: float, timeout: float = 60, **labels: str) -> str:
    """Poll /metrics until the sample ``name{labels}`` reaches ``value``; returns the exposition."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        _, text = deployment.get("/metrics")
        if metric(text, name, **labels) >= value:
            return text
        await asyncio.sleep(0.3)
    raise AssertionError(f"{name}{labels} never reached {value}")


def log_events(log: Path, name: str) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in log.read_text(errors="replace").splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == name]


async def test_a_customer_whose_stored_state_was_forged_is_dead_lettered_and_the_worker_goes_on(
        deployment: Deployment) -> None:
    """A forged customer_state changelog record (valid JSON, a version no release reads) for "bad":
    after a restart the worker skips it when it rebuilds its deadlines (no crash loop), dead-letters
    each record of "bad" as processing_error and processes the 120 good records around them."""
    now = time.time() - 60
    log = deployment.workdir / "worker.log"
    with running_worker(deployment.env(), log, deployment.url):  # creates the changelog topics
        await deployment.produce("events.clickstream", [event("first", 0, "click", now)])
        await deployment.wait_for("/customers/first", lambda body: body["events"] == 1)
    await forge_state(deployment, "bad", FORGED_STATE)

    good = [f"good-{i:02d}" for i in range(20)]
    batch = [r for i in range(6) for c in good for r in [event(c, i, "error", now + i * 0.01, code="E500",
                                                             severity="critical")]]
    bad = errors("bad", 3, now)
    for at, record in zip((40, 81, 122), bad):
        batch.insert(at, record)
    with running_worker(deployment.env(), log, deployment.url) as proc:
        await wait_metric(deployment, "forethought_processing_errors_total", 1, stage="restore")  # index rebuilt
        view_status, view = deployment.get("/customers/bad")
        await deployment.produce("events.errors", batch)
        fired = await deployment.consume("engagement.triggers", until=len(good))
        letters = await deployment.consume("events.deadletter", until=len(bad))
        states = [await deployment.wait_for(f"/customers/{c}", lambda body: body["by_type"] == {"error": 6}) for c in good]
        await asyncio.sleep(2)  # several sweeps (every 0.5 s) after the batch
        health, _ = deployment.get("/health")
        ready, _ = deployment.get("/ready")
        metrics = await wait_metric(deployment, "forethought_processing_errors_total", len(bad), stage="record")
        metrics = await wait_metric(deployment, "forethought_customers", 2 + len(good))  # gauges set after a sweep
        running = proc.poll() is None
    assert running and health == 200 and ready == 200
    assert sorted(Trigger.model_validate_json(r.value).customer_id for r in fired) == good
    assert len(states) == len(good)
    assert len(letters) == len(bad)
    for record, (_, value) in zip(sorted(letters, key=lambda r: r.offset), bad):
        jsonschema.validate(json.loads(record.value), DEADLETTER_SCHEMA)
        letter = DeadLetter.model_validate_json(record.value)
        assert letter.reason == "processing_error"
        assert letter.detail == "ValueError: unsupported customer state version 999"
        assert base64.b64decode(letter.value_b64) == value and base64.b64decode(letter.key_b64 or "") == b"bad"
    assert (view_status, view) == (500, {"error": "the stored state of this customer cannot be read",
                                         "error_type": "ValueError"})
    assert metric(metrics, "forethought_processing_errors_total", stage="record") == len(bad)
    assert metric(metrics, "forethought_processing_errors_total", stage="restore") == 1
    assert metric(metrics, "forethought_invalid_events_total", reason="processing_error") == len(bad)
    [unreadable] = log_events(log, "state_unreadable")
    assert unreadable["customer_id"] == "bad" and unreadable["error_type"] == "ValueError"

    with running_worker(deployment.env(), log, deployment.url) as proc:  # a SIGTERM-restart: no crash loop
        await wait_metric(deployment, "forethought_processing_errors_total", 1, stage="restore")
        await asyncio.sleep(2)
        health, _ = deployment.get("/health")
        running = proc.poll() is None
        first = await deployment.wait_for("/customers/good-00", lambda body: body["by_type"] == {"error": 6})
    assert running and health == 200 and first["events"] == 6
    assert len(log_events(log, "state_unreadable")) == 2 and not log_events(log, "worker_stopping")


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
        # read after the failing batch: records the stream drains on with once the agent has stopped
        # (Faust commits the first unbroken run of acknowledged offsets, even one past the failed batch)
        await deployment.produce("events.errors", [r for c in customers for r in errors(c, 6, now + 1)])
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
