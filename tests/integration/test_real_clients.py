"""Real clients: an integrator's librdkafka producers (confluent-kafka, kcat) and consumer against the worker.

librdkafka's default partitioner (``consistent_random``: CRC32) is not Kafka's murmur2, so a record keyed
by ``customer_id`` can land off its customer's partition. The worker sends such a record round once
through ``forethought.rekeyed``, with its headers and original timestamp, processes it there once, and
measures its trigger's latency from the original record. With the documented setting
(``partitioner=murmur2_random``, docs/producing-from-other-clients.md) no record takes the hop.
The triggers are read with librdkafka's consumer and each is validated against the published JSON Schema.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import zlib
from collections import Counter
from pathlib import Path

import pytest
from clients_kit import Headers, Stored, confluent_produce, confluent_read_all, kcat_produce, schema_validator
from conftest import missing
from worker_kit import Deployment, event, metric

from forethought.contracts.records import Trigger
from forethought.core.policy.timing import in_holdout
from forethought.ops.playbooks import load_rules
from forethought.ops.process import running_worker
from forethought.ops.settings import DEFAULT_PLAYBOOKS_FILE
from forethought.ops.topics import partition_of
from forethought.stream.rekey import FROM_HEADER

PARTITIONS = 4
RECOMMENDED = {"partitioner": "murmur2_random"}  # what docs/producing-from-other-clients.md tells producers to set
TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-{:016x}-01"
AGO_MS = 120_000  # the burst's records are stamped 2 minutes back: beyond the latency histogram's top bucket (60 s)
TRIGGER = schema_validator("trigger")


@pytest.fixture
async def deployment(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Deployment:
    return await Deployment.create(kafka_bootstrap, topic_prefix, tmp_path)


def home(key: bytes | None) -> int:
    """The customer's partition: Kafka's murmur2, as the Java client and the worker place a key."""
    assert key is not None
    return partition_of(key, PARTITIONS)


def off_home(customer: str) -> bool:
    """Whether librdkafka's default partitioner (CRC32 of the key) puts ``customer`` off its partition."""
    return zlib.crc32(customer.encode()) % PARTITIONS != home(customer.encode())


CANDIDATES = [f"rc-{n}" for n in range(100)]
# five customers librdkafka's default puts on their murmur2 partition by chance, five it puts elsewhere
CLICKERS = [c for c in CANDIDATES if not off_home(c)][:5] + [c for c in CANDIDATES if off_home(c)][:5]
SHIPPED = load_rules(DEFAULT_PLAYBOOKS_FILE)  # the worker's playbooks: error_burst holds a share of customers out


def treated(customer: str) -> bool:
    """Whether the shipped error_burst playbook sends to ``customer`` (not in its holdout or the global one)."""
    book = SHIPPED.by_name["error_burst"]
    return not (in_holdout(customer, "global-control", SHIPPED.global_holdout)
                or in_holdout(customer, "holdout:error_burst", book.holdout))


BURST = next(c for c in (f"rc-burst-{n}" for n in range(100)) if off_home(c) and treated(c))  # hops by default


def headers(n: int) -> Headers:
    return [("traceparent", TRACE.format(n + 1).encode()), ("content-type", b"application/json")]


def workload(burst_customer: str, now: float) -> dict[str, list[tuple[bytes, bytes, Headers, int | None]]]:
    """Page views of ten customers (timestamped by the producer), and an error burst stamped 2 minutes back."""
    views = [(*event(c, i, "page_view", now - 20 + i, page="/pricing"), headers(3 * k + i), None)
             for k, c in enumerate(CLICKERS) for i in range(3)]
    burst = [(*event(burst_customer, i, "error", now - 3 + i * 0.1, code="E500", severity="critical"),
              headers(100 + i), round(now * 1000) - AGO_MS) for i in range(8)]
    return {"events.clickstream": views, "events.errors": burst}


async def produce_and_wait(deployment: Deployment, burst_customer: str, settings: dict[str, str] | None,
                           ) -> tuple[list[Stored], dict[bytes, Headers]]:
    """Produce the workload with confluent-kafka; wait until the worker has every event, each once."""
    records = workload(burst_customer, time.time())
    sent: list[Stored] = []
    for topic, batch in records.items():
        sent += await confluent_produce(deployment.bootstrap, deployment.topic(topic), batch, settings)
    for customer, count in Counter(s.key for s in sent).items():
        await deployment.wait_for(f"/customers/{customer.decode()}", lambda body, n=count: body["events"] == n)
    return sent, {value: given for batch in records.values() for _, value, given, _ in batch}


def is_burst_of(customer: str, record: Stored) -> bool:
    return record.key == customer.encode() and json.loads(record.value)["playbook"] == "error_burst"


async def third_party_triggers(deployment: Deployment, customer: str, timeout: float = 60) -> list[Stored]:
    """Every trigger so far, read with librdkafka's consumer, once ``customer``'s burst is among them."""
    deadline = time.monotonic() + timeout
    while True:
        triggers = await confluent_read_all(deployment.bootstrap, deployment.topic("engagement.triggers"))
        if any(is_burst_of(customer, t) for t in triggers) or time.monotonic() > deadline:
            return triggers
        await asyncio.sleep(0.5)


def check_triggers(triggers: list[Stored], burst_customer: str) -> Trigger:
    """Each trigger valid against the published schema (formats checked) and keyed by its customer;
    the burst customer's trigger."""
    assert triggers, "no trigger reached the third-party consumer"
    for record in triggers:
        TRIGGER.validate(json.loads(record.value))
        assert record.key == Trigger.model_validate_json(record.value).customer_id.encode()
    bursts = [Trigger.model_validate_json(t.value) for t in triggers if is_burst_of(burst_customer, t)]
    assert len(bursts) == 1, f"one error_burst trigger for {burst_customer}, got {len(bursts)}"
    return bursts[0]


def latency_counted_from_the_original(metrics: str, detector: str) -> None:
    """The burst's trigger is observed at >= 2 minutes: from the original record's timestamp, not a re-send's."""
    assert metric(metrics, "forethought_event_to_trigger_seconds_count", detector=detector) >= 1
    assert metric(metrics, "forethought_event_to_trigger_seconds_bucket", detector=detector, le="60.0") == 0


async def test_librdkafka_defaults_take_the_hop_once_with_headers_and_timestamp_kept(deployment: Deployment) -> None:
    burst_customer = BURST
    with running_worker(deployment.env(), deployment.workdir / "worker.log", deployment.url):
        sent, given = await produce_and_wait(deployment, burst_customer, settings=None)  # librdkafka's defaults
        triggers = await third_party_triggers(deployment, burst_customer)
        hops = await confluent_read_all(deployment.bootstrap, deployment.topic("forethought.rekeyed"))
        _, metrics = deployment.get("/metrics")
    away = {s.where: s for s in sent if s.partition != home(s.key)}
    assert {s.key.decode() for s in away.values() if s.key} == {*CLICKERS[5:], BURST}, "librdkafka's CRC32 placed them"
    origins = [dict(hop.headers)[FROM_HEADER].decode() for hop in hops]
    assert sorted(origins) == sorted(away), "every record off its partition took the hop, once; no other did"
    for hop, origin in zip(hops, origins, strict=True):
        original = away[origin]
        assert (hop.key, hop.value, hop.partition) == (original.key, original.value, home(original.key))
        assert hop.timestamp_ms == original.timestamp_ms, "the original record's timestamp"
        assert [h for h in hop.headers if h[0] != FROM_HEADER] == given[original.value], "traceparent, content-type"
    assert metric(metrics, "forethought_rekeyed_events_total") == len(away)
    rekeyed_in = sum(metric(metrics, "forethought_events_in_total", topic=deployment.topic("forethought.rekeyed"),
                            type=kind) for kind in ("page_view", "error"))
    assert rekeyed_in == len(away), "each hop processed once, from the re-key topic"
    burst = check_triggers(triggers, burst_customer)
    latency_counted_from_the_original(metrics, burst.detector)


async def test_the_recommended_partitioner_puts_every_record_home_and_nothing_takes_the_hop(
    deployment: Deployment,
) -> None:
    burst_customer = BURST  # would take the hop with librdkafka's default
    with running_worker(deployment.env(), deployment.workdir / "worker.log", deployment.url):
        sent, _ = await produce_and_wait(deployment, burst_customer, settings=RECOMMENDED)
        triggers = await third_party_triggers(deployment, burst_customer)
        hops = await confluent_read_all(deployment.bootstrap, deployment.topic("forethought.rekeyed"))
        _, metrics = deployment.get("/metrics")
    assert [s.partition for s in sent] == [home(s.key) for s in sent], "murmur2_random is Kafka's murmur2"
    assert any(off_home(s.key.decode()) for s in sent if s.key)
    assert hops == [] and metric(metrics, "forethought_rekeyed_events_total") == 0
    assert metric(metrics, "forethought_events_in_total", topic=deployment.topic("events.clickstream"),
                  type="page_view") == 3 * len(CLICKERS)
    burst = check_triggers(triggers, burst_customer)
    latency_counted_from_the_original(metrics, burst.detector)


async def test_kcat_with_the_documented_setting_puts_every_record_home(deployment: Deployment) -> None:
    if shutil.which("kcat") is None:
        missing("kcat not found (Debian package 'kcat'; `make tools` installs it)")
    customers = [c for c in (f"kc-{n}" for n in range(40)) if off_home(c)][:4]
    topic = deployment.topic("events.clickstream")
    now = time.time()
    lines = [f"{c}:{event(c, i, 'click', now - 10 + i, target='buy')[1].decode()}" for c in customers for i in range(3)]
    log = deployment.workdir / "kcat.log"
    with_headers = ("-H", f"traceparent={TRACE.format(7)}", "-H", "content-type=application/json")
    with running_worker(deployment.env(), deployment.workdir / "worker.log", deployment.url):
        # the command docs/producing-from-other-clients.md gives, headers added
        kcat_produce(deployment.bootstrap, topic, lines, "-X", "partitioner=murmur2_random", *with_headers, log=log)
        for customer in customers:
            await deployment.wait_for(f"/customers/{customer}", lambda body: body["events"] == 3)
        hops = await confluent_read_all(deployment.bootstrap, deployment.topic("forethought.rekeyed"))
        _, metrics = deployment.get("/metrics")

        kcat_produce(deployment.bootstrap, topic, [line.replace("-click-", "-again-") for line in lines], *with_headers,
                     log=log)
        for customer in customers:  # kcat's default partitioner: every one of these customers takes the hop
            await deployment.wait_for(f"/customers/{customer}", lambda body: body["events"] == 6)
        again = await confluent_read_all(deployment.bootstrap, deployment.topic("forethought.rekeyed"))
    stored = await confluent_read_all(deployment.bootstrap, topic)
    assert hops == [] and metric(metrics, "forethought_rekeyed_events_total") == 0
    first = [s for s in stored if b"-click-" in s.value]
    assert len(first) == len(lines) and all(s.partition == home(s.key) for s in first)
    assert all(s.headers == [("traceparent", TRACE.format(7).encode()), ("content-type", b"application/json")]
               for s in stored)
    assert len(again) == len(lines) and {h.key for h in again} == {c.encode() for c in customers}
    for hop in again:
        assert [h for h in hop.headers if h[0] != FROM_HEADER] == stored[0].headers


async def test_a_record_with_a_megabyte_of_headers_takes_the_hop_bounded_and_never_stops_the_worker(
    deployment: Deployment,
) -> None:
    # ~1 MB of headers: the broker stores it (max.message.bytes 1048588), but a copy with all of them
    # would be over the worker's producer limit (1,000,000 bytes) and the failed send would stop the worker
    flood = [(f"x-{n}", b"h" * 1000) for n in range(1005)]
    now = time.time()
    (_, heavy), (_, after) = event("rc-heavy", 0, "click", now - 2), event("rc-heavy", 1, "click", now - 1)
    log = deployment.workdir / "worker.log"
    with running_worker(deployment.env(), log, deployment.url) as worker:
        await confluent_produce(deployment.bootstrap, deployment.topic("events.clickstream"),
                                [(b"a-session-id", heavy, flood, None)], {"message.max.bytes": 1048576})
        await confluent_produce(deployment.bootstrap, deployment.topic("events.clickstream"),
                                [(b"rc-heavy", after, headers(0), None)], RECOMMENDED)
        state = await deployment.wait_for("/customers/rc-heavy", lambda body: body["events"] == 2)
        (hop,) = await confluent_read_all(deployment.bootstrap, deployment.topic("forethought.rekeyed"))
        assert worker.poll() is None, "the worker is still running"
    assert state["by_type"] == {"click": 2}
    carried = hop.headers[:-1]
    assert carried == flood[: len(carried)] and 0 < sum(len(n) + len(v) for n, v in carried) <= 16 * 1024
    assert hop.headers[-1][0] == FROM_HEADER
    assert "rekey_headers_dropped" in log.read_text()
