"""The producer SDK against the real broker: routing, keys, delivery reports, the sync facade, ``send``."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner
from worker_kit import Deployment

from forethought.cli import app
from forethought.client import DeliveryError, ForethoughtProducer, RecordTooLarge, SyncProducer, events
from forethought.client.wire import record_id, to_json
from forethought.contracts.decode import decode_event
from forethought.contracts.partitioning import partition_of
from forethought.contracts.records import CONTROL_ADAPTER
from forethought.ops.topics import create_topics, load_catalogue

FAST_FAIL_MS = 1_500  # how long a record may wait for a topic that does not exist

ONE_OF_EACH: dict[str, Callable[[], list[BaseModel]]] = {
    "events.clickstream": lambda: [
        events.page_view("cust-pv", page="/pricing"), events.click("cust-ck", target="buy"),
        events.session_start("cust-ss"), events.session_end("cust-se"),
        events.feature_used("cust-fu", feature="export"),
    ],
    "events.errors": lambda: [events.error("cust-er", code="E503", severity="critical")],
    "events.usage": lambda: [events.usage("cust-us", metric="api_calls", quantity=3)],
    "customers.profile": lambda: [events.profile("cust-pr", plan="pro", timezone="Europe/Berlin")],
    "engagement.outcomes": lambda: [events.outcome("cust-oc", trigger_id="t-1", channel="email",
                                                   status="clicked")],
}


def deployment_for(bootstrap: str, prefix: str, tmp_path: Path) -> Deployment:
    asyncio.run(create_topics(bootstrap, load_catalogue(), prefix))
    return Deployment(bootstrap, prefix, tmp_path, 0)


@pytest.fixture
async def deployment(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Deployment:
    await create_topics(kafka_bootstrap, load_catalogue(), topic_prefix)
    return Deployment(kafka_bootstrap, topic_prefix, tmp_path, 0)


def decoded(topic: str, value: bytes) -> BaseModel:
    if topic in ("customers.profile", "engagement.outcomes"):
        return CONTROL_ADAPTER.validate_json(value)  # type: ignore[no-any-return]
    event = decode_event(value, frozenset(load_catalogue().by_name[topic].kinds))
    assert isinstance(event, BaseModel), event
    return event


async def test_each_kind_arrives_on_its_catalogue_topic_keyed_by_customer(deployment: Deployment) -> None:
    sent = {topic: build() for topic, build in ONE_OF_EACH.items()}
    async with ForethoughtProducer(deployment.bootstrap, deployment.prefix, linger_ms=20) as producer:
        deliveries = [await producer.send(record) for records in sent.values() for record in records]
    assert {d.topic for d in deliveries} == {deployment.topic(t) for t in ONE_OF_EACH}
    for topic, records in sent.items():
        arrived = await deployment.consume(topic, until=len(records))
        assert sorted(r.key for r in arrived) == sorted(getattr(r, "customer_id").encode() for r in records)
        assert sorted((decoded(topic, r.value) for r in arrived), key=record_id) == sorted(records, key=record_id)


async def test_send_many_reports_per_topic_keeps_a_customer_on_one_partition_and_refuses_oversize(
    deployment: Deployment,
) -> None:
    steady = [events.click("cust-1", target=f"b{i}") for i in range(20)]
    big = events.page_view("cust-1", properties={f"k{i}": "\N{ROCKET}" * 1024 for i in range(32)})
    async with ForethoughtProducer(deployment.bootstrap, deployment.prefix, max_batch_size=4096) as producer:
        with pytest.raises(RecordTooLarge, match="over the worker's limit"):
            await producer.send(big)
        report = await producer.send_many([*steady[:10], big, *steady[10:], events.usage("cust-2", metric="m",
                                                                                          quantity=1)])
    assert (report.sent, report.ok) == (21, False)
    assert report.per_topic == {deployment.topic("events.clickstream"): 20, deployment.topic("events.usage"): 1}
    assert [(rid, "over the worker's limit" in why) for rid, why in report.failures] == [(big.event_id, True)]
    arrived = await deployment.consume("events.clickstream", until=20)
    assert [decoded("events.clickstream", r.value) for r in arrived] == steady  # in order: one partition
    assert {r.partition for r in arrived} == {arrived[0].partition}


async def test_delivery_to_missing_topics_fails_in_the_report_and_the_future(kafka_bootstrap: str) -> None:
    async with ForethoughtProducer(kafka_bootstrap, "missing.", request_timeout_ms=FAST_FAIL_MS) as producer:
        report = await asyncio.wait_for(producer.send_many(
            [events.click("c1"), events.click("c2"), events.error("c1", code="E1")]), timeout=60)
        with pytest.raises(DeliveryError, match="does not exist") as caught:
            await asyncio.wait_for(producer.send(events.usage("c1", metric="m", quantity=1)), timeout=60)
    assert caught.value.topic == "missing.events.usage"
    assert report.sent == 0 and len(report.failures) == 3
    assert all("missing.events." in why and "does not exist" in why for _, why in report.failures)


async def test_one_await_per_send_places_each_customer_by_murmur2_with_its_time_and_headers(
    deployment: Deployment,
) -> None:
    """``await send`` returns where the broker stored the record: the partition Kafka's murmur2 gives
    the customer (what the worker expects, so nothing is re-keyed), the event's own time as the record
    timestamp unless one is given, and the headers as sent."""
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    customers = [f"cust-{n}" for n in range(24)]
    occurred = datetime(2026, 3, 4, 5, 6, 7, 890_000, tzinfo=timezone(timedelta(hours=-5)))
    async with ForethoughtProducer(deployment.bootstrap, deployment.prefix) as producer:
        deliveries = {c: await producer.send(events.click(c, target="x", occurred_at=occurred),
                                             traceparent=trace, headers={"team": "growth"}) for c in customers}
        stamped = await producer.send(events.error("cust-0", code="E1", occurred_at=occurred),
                                      timestamp=datetime(2026, 3, 5, tzinfo=UTC))
        queued = [await producer.enqueue(events.click("cust-0", target=f"q{i}")) for i in range(5)]
        in_order = [await future for future in queued]
    partitions = load_catalogue().by_name["events.clickstream"].partitions
    murmur2 = {c: partition_of(c.encode(), partitions) for c in customers}  # pure Python, Kafka's test vectors
    assert {c: d.partition for c, d in deliveries.items()} == murmur2
    assert len({d.partition for d in deliveries.values()}) > 1  # a real spread, not one partition for all
    assert {d.timestamp_ms for d in deliveries.values()} == {int(occurred.timestamp() * 1000)}
    assert stamped.timestamp_ms == int(datetime(2026, 3, 5, tzinfo=UTC).timestamp() * 1000)
    assert [d.offset for d in in_order] == sorted(d.offset for d in in_order)
    arrived = await deployment.consume("events.clickstream", until=len(customers) + 5)
    for record in arrived:
        assert record.partition == partition_of(record.key, partitions)
        expected = {"content-type": b"application/json"}
        if record.offset not in {d.offset for d in in_order if d.partition == record.partition}:
            expected |= {"traceparent": trace.encode(), "team": b"growth"}
        assert dict(record.headers) == expected
    [error] = await deployment.consume("events.errors", until=1)
    assert error.timestamp == stamped.timestamp_ms and dict(error.headers) == {"content-type": b"application/json"}


def test_sync_producer_from_plain_threads(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> None:
    deployment = deployment_for(kafka_bootstrap, topic_prefix, tmp_path)
    per_thread = {f"cust-{n}": [events.feature_used(f"cust-{n}", feature=f"f{i}") for i in range(10)]
                  for n in range(4)}
    with SyncProducer(kafka_bootstrap, topic_prefix) as producer:
        with ThreadPoolExecutor(4) as pool:
            futures = [f for batch in pool.map(lambda rs: [producer.send(r) for r in rs], per_thread.values())
                       for f in batch]
        assert producer.flush(timeout=60) == 0
        assert all(f.done() for f in futures)
        assert {f.result().topic for f in futures} == {f"{topic_prefix}events.clickstream"}
        report = producer.send_many([events.session_end("cust-0")], timeout=60, headers={"via": "sync"})
        assert report.sent == 1
        when = datetime(2026, 1, 1, tzinfo=UTC)
        stamped = producer.send(events.session_start("cust-9"), timestamp=when, headers={"via": "sync"}).result(60)
        assert stamped.timestamp_ms == int(when.timestamp() * 1000)
    arrived = asyncio.run(deployment.consume("events.clickstream", until=42))
    assert {r.key: dict(r.headers).get("via") for r in arrived if r.key in (b"cust-9",)} == {b"cust-9": b"sync"}
    for customer, records in per_thread.items():  # each thread's records arrive in the order it sent them
        got = [decoded("events.clickstream", r.value) for r in arrived if r.key == customer.encode()]
        assert got[:10] == records


def test_sync_producer_future_reports_a_missing_topic(kafka_bootstrap: str) -> None:
    with SyncProducer(kafka_bootstrap, "missing.", request_timeout_ms=FAST_FAIL_MS) as producer:
        future = producer.send(events.click("c1"))
        with pytest.raises(DeliveryError, match="does not exist"):
            future.result(timeout=60)


def test_send_command_sends_valid_lines_and_names_invalid_ones(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path,
) -> None:
    deployment = deployment_for(kafka_bootstrap, topic_prefix, tmp_path)
    good = [events.page_view("cli-1", page="/a"), events.error("cli-1", code="E1"),
            events.profile("cli-1", plan="pro")]
    lines = [to_json(good[0]), b'{"type": "click", "customer_id": "cli-1"}', to_json(good[1]),
             b"", b"{oops", to_json(good[2])]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    result = CliRunner().invoke(app, ["send", str(path), "--bootstrap", kafka_bootstrap, "--prefix", topic_prefix])
    assert result.exit_code == 1, result.output
    assert "line 2 (schema)" in result.output and "line 5 (not_json)" in result.output
    assert "sent 3 records" in result.output and "invalid lines: 2" in result.output
    assert "delivery failures: 0" in result.output
    for topic, record in zip(("events.clickstream", "events.errors", "customers.profile"), good):
        [arrived] = asyncio.run(deployment.consume(topic, until=1))
        assert arrived.key == b"cli-1" and decoded(topic, arrived.value) == record


def test_send_command_reads_gzip_and_exits_0_when_all_sent(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path,
) -> None:
    deployment = deployment_for(kafka_bootstrap, topic_prefix, tmp_path)
    records = [events.usage(f"gz-{i}", metric="api_calls", quantity=i) for i in range(5)]
    path = tmp_path / "usage.jsonl.gz"
    path.write_bytes(gzip.compress(b"\n".join(map(to_json, records))))
    result = CliRunner().invoke(app, ["send", str(path), "--bootstrap", kafka_bootstrap, "--prefix", topic_prefix])
    assert result.exit_code == 0, result.output
    arrived = asyncio.run(deployment.consume("events.usage", until=5))
    assert sorted(r.key for r in arrived) == [f"gz-{i}".encode() for i in range(5)]


def test_send_command_exits_1_when_delivery_fails(kafka_bootstrap: str, tmp_path: Path) -> None:
    path = tmp_path / "one.jsonl"
    path.write_bytes(to_json(events.click("c1")) + b"\n")
    result = CliRunner().invoke(app, ["send", str(path), "--bootstrap", kafka_bootstrap,
                                      "--prefix", "missing.", "--timeout", "1.5"])
    assert result.exit_code == 1, result.output
    assert "delivery failures: 1" in result.output and "does not exist" in result.output
