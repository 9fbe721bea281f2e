"""Every Kafka codec, both ways, with a third-party client (confluent-kafka / librdkafka) and the real broker.

In: batches librdkafka compressed with gzip, snappy, lz4 and zstd are read by the worker and the senders.
Out: what the worker, the senders and the client SDK produce with ``kafka_compression`` is stored in that
codec (checked on the stored batches) and read back by librdkafka.
A batch that cannot be decoded is dead-lettered by offset; the worker neither exits nor crash-loops.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest
from codec_kit import CODECS, batch_codecs, confluent_consume, confluent_produce
from rich.console import Console
from test_senders import eventually, make_trigger, metric_is, outcomes_of, running, settings_for
from worker_kit import Deployment, event, metric

from forethought.client import ForethoughtProducer, SyncProducer, events
from forethought.contracts.records import DeadLetter, Trigger
from forethought.ops.process import running_worker, stop_process
from forethought.ops.topics import partition_of
from forethought.senders.records import SenderDeadLetter

PARTITIONS = 4


@pytest.fixture
async def deployment(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Deployment:
    return await Deployment.create(kafka_bootstrap, topic_prefix, tmp_path)


def clicks(customer: str, first: int, count: int, at: float) -> list[tuple[bytes, bytes]]:
    return [event(customer, first + i, "click", at + i * 0.01, target="btn") for i in range(count)]


# -- the worker ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("produced_with", CODECS)
async def test_the_worker_reads_every_codec_from_librdkafka_and_writes_the_codec_it_is_set_to(
    deployment: Deployment, produced_with: str,
) -> None:
    now = time.time()
    env = deployment.env(FORETHOUGHT_KAFKA_COMPRESSION=produced_with)
    with running_worker(env, deployment.workdir / "worker.log", deployment.url):
        for codec in CODECS:
            await confluent_produce(deployment.bootstrap, deployment.topic("events.clickstream"),
                                    clicks(f"in-{codec}", 0, 5, now - 30), codec)
        await confluent_produce(deployment.bootstrap, deployment.topic("events.errors"),
                                [event("in-burst", i, "error", now - 3 + i * 0.1, code="E500", severity="critical")
                                 for i in range(8)], "snappy")
        for codec in CODECS:
            state = await deployment.wait_for(f"/customers/in-{codec}", lambda body: body["events"] == 5)
            assert state["by_type"] == {"click": 5}
        triggers = await confluent_consume(deployment.bootstrap, deployment.topic("engagement.triggers"), until=1)
        _, metrics = deployment.get("/metrics")
    assert metric(metrics, "forethought_rekeyed_events_total") == 0, "librdkafka's murmur2 put each customer home"
    assert "in-burst" in {Trigger.model_validate_json(value).customer_id for _, value in triggers}
    stored = await batch_codecs(deployment.bootstrap, deployment.topic("engagement.triggers"), PARTITIONS)
    assert set(stored) == {produced_with}, f"the worker's batches are {produced_with}: {stored}"
    inputs = await batch_codecs(deployment.bootstrap, deployment.topic("events.clickstream"), PARTITIONS)
    assert set(inputs) == set(CODECS), f"librdkafka really compressed each input batch: {inputs}"


def codec_blocker(directory: Path) -> Path:
    """A PYTHONPATH directory whose ``cramjam`` cannot be imported: aiokafka then has no snappy/lz4/zstd."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "cramjam.py").write_text('raise ImportError("cramjam blocked by the test")\n')
    return directory


async def test_an_undecodable_batch_is_dead_lettered_by_offset_and_never_stops_the_worker(
    deployment: Deployment,
) -> None:
    now = time.time()
    topic = deployment.topic("events.clickstream")
    partition = partition_of(b"ud-1", PARTITIONS)
    env = deployment.env(PYTHONPATH=str(codec_blocker(deployment.workdir / "blocked")))
    log = deployment.workdir / "worker.log"
    # offsets 0-2 plain, 3-6 lz4 (which this worker cannot decode), 7-8 plain, all in ud-1's partition
    await confluent_produce(deployment.bootstrap, topic, clicks("ud-1", 0, 3, now - 60), "none")
    await confluent_produce(deployment.bootstrap, topic, clicks("ud-1", 3, 4, now - 50), "lz4")
    await confluent_produce(deployment.bootstrap, topic, clicks("ud-1", 7, 2, now - 40), "none")
    with running_worker(env, log, deployment.url) as worker:
        state = await deployment.wait_for("/customers/ud-1", lambda body: body["events"] == 5)
        (record,) = await deployment.consume("events.deadletter", until=1)
        _, metrics = deployment.get("/metrics")
        assert worker.poll() is None, "the worker is still running"
    letter = DeadLetter.model_validate_json(record.value)
    assert (letter.reason, letter.source_topic, letter.source_partition, letter.source_offset) == (
        "undecodable_batch", topic, partition, 3)
    assert f"{topic}[{partition}] offsets 3-6" in letter.detail and "lz4" in letter.detail
    assert "UnsupportedCodecError" in letter.detail
    assert state["by_type"] == {"click": 5}, "the plain records on both sides of the batch were processed"
    assert metric(metrics, "forethought_invalid_events_total", reason="undecodable_batch") == 1
    assert "undecodable_batch_skipped" in log.read_text()

    # A restart is no crash loop: it becomes ready, and later undecodable batches are skipped the same way.
    with running_worker(env, log, deployment.url) as worker:
        await confluent_produce(deployment.bootstrap, topic, clicks("ud-1", 20, 1, now - 20), "gzip")  # offset 9
        for n, codec in enumerate(("zstd", "snappy")):  # the partition now ends in two undecodable batches
            await confluent_produce(deployment.bootstrap, topic, clicks("ud-1", 10 + 3 * n, 3, now - 30 + n), codec)
        await deployment.wait_for("/customers/ud-1", lambda body: body["events"] == 6)
        later = await deployment.consume("events.deadletter", until=2, match=lambda r: DeadLetter.model_validate_json(
            r.value).source_offset >= 10)  # (at-least-once: a restart may re-report 3-6 if it had not committed past it)
        # skipped offsets count as consumed: the partition is not seen as lagging (which would hold its clock)
        await deployment.wait_for("/metrics", lambda text: metric(
            text, "forethought_consumer_lag", topic=topic, partition=str(partition)) == 0 and metric(
            text, "forethought_invalid_events_total", reason="undecodable_batch") >= 2)
        assert worker.poll() is None
        assert stop_process(worker) == 0, "a clean shutdown, not a crash"
    letters = [DeadLetter.model_validate_json(r.value) for r in later]
    assert [d.source_offset for d in letters] == [10, 13]
    for letter, offsets, codec in zip(letters, ("10-12", "13-15"), ("zstd", "snappy"), strict=True):
        assert f"offsets {offsets} " in letter.detail and f"{codec} batch" in letter.detail

    # The crash-loop case: nothing decodable came after those two batches, so the committed offset is still
    # before them; this start fetches them again first, skips them again, and goes on.
    with running_worker(env, log, deployment.url) as worker:
        await confluent_produce(deployment.bootstrap, topic, clicks("ud-1", 30, 1, now - 10), "none")  # offset 16
        await deployment.wait_for("/customers/ud-1", lambda body: body["events"] == 7)
        assert worker.poll() is None
        assert stop_process(worker) == 0


# -- the senders ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("produced_with", CODECS)
async def test_a_sender_reads_librdkafka_lz4_and_zstd_triggers_and_writes_its_codec(
    deployment: Deployment, produced_with: str,
) -> None:
    triggers = {codec: make_trigger(f"snd-{codec}", channel="in_app", playbook="error_burst") for codec in ("lz4", "zstd")}
    settings = settings_for(deployment).model_copy(update={"kafka_compression": produced_with})
    async with running(settings, "console", console=Console(file=io.StringIO(), width=300)):
        for codec, trigger in triggers.items():
            await confluent_produce(deployment.bootstrap, deployment.topic("engagement.triggers"),
                                    [(trigger.customer_id.encode(), trigger.model_dump_json().encode())], codec)
        await eventually(lambda: metric_is(settings.sender.web_port, "forethought_sender_sends_total", 2,
                                           channel="console", status="delivered"), what="both delivered")
    for trigger in triggers.values():
        (outcome,) = await outcomes_of(deployment, trigger)
        assert outcome.status == "delivered"
    read = await confluent_consume(deployment.bootstrap, deployment.topic("engagement.outcomes"), until=2)
    assert sorted(json.loads(value)["trigger_id"] for _, value in read) == sorted(t.trigger_id for t in triggers.values())
    for name in ("engagement.outcomes", "senders.ledger"):
        stored = await batch_codecs(deployment.bootstrap, deployment.topic(name), PARTITIONS)
        assert set(stored) == {produced_with}, f"{name}: {stored}"


async def test_a_sender_dead_letters_a_trigger_batch_it_cannot_decode_and_goes_on(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import aiokafka.codec

    first, lost, last = (make_trigger("snd-ud", channel="in_app", playbook="error_burst") for _ in range(3))
    topic = deployment.topic("engagement.triggers")
    partition = partition_of(b"snd-ud", PARTITIONS)
    settings = settings_for(deployment)
    monkeypatch.setattr(aiokafka.codec, "cramjam", None)  # this process's aiokafka: no snappy/lz4/zstd
    async with running(settings, "console", console=Console(file=io.StringIO(), width=300)):
        for trigger, codec in ((first, "none"), (lost, "lz4"), (last, "gzip")):
            await confluent_produce(deployment.bootstrap, topic, [(b"snd-ud", trigger.model_dump_json().encode())], codec)
        await eventually(lambda: metric_is(settings.sender.web_port, "forethought_sender_sends_total", 2,
                                           channel="console", status="delivered"), what="the two decodable delivered")
        await eventually(lambda: metric_is(settings.sender.web_port, "forethought_sender_invalid_triggers_total", 1),
                         what="the undecodable batch counted")
    (record,) = await deployment.consume("senders.deadletter", until=1)
    letter = SenderDeadLetter.model_validate_json(record.value)
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (topic, partition, 1)
    assert "undecodable_batch" in letter.error and "offsets 1-1" in letter.error and "lz4" in letter.error
    assert await outcomes_of(deployment, lost) == []
    assert [o.status for t in (first, last) for o in await outcomes_of(deployment, t)] == ["delivered", "delivered"]


# -- the client SDK ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("codec", CODECS)
async def test_the_sdk_compresses_with_the_codec_it_is_given_and_librdkafka_reads_it(
    deployment: Deployment, codec: str,
) -> None:
    async with ForethoughtProducer(deployment.bootstrap, deployment.prefix, compression=codec) as producer:
        report = await producer.send_many([events.page_view(f"sdk-{codec}", page=f"/p{i}") for i in range(5)])
    assert report.ok and report.sent == 5
    topic = deployment.topic("events.clickstream")
    read = await confluent_consume(deployment.bootstrap, topic, until=5)
    assert sorted(json.loads(value)["page"] for _, value in read) == [f"/p{i}" for i in range(5)]
    assert set(await batch_codecs(deployment.bootstrap, topic, PARTITIONS)) == {codec}


async def test_the_sync_sdk_takes_the_codec_too(deployment: Deployment) -> None:
    with SyncProducer(deployment.bootstrap, deployment.prefix, compression="zstd") as producer:
        assert producer.send_many([events.error("sync-1", code="E1")]).ok
    topic = deployment.topic("events.errors")
    assert len(await confluent_consume(deployment.bootstrap, topic, until=1)) == 1
    assert set(await batch_codecs(deployment.bootstrap, topic, PARTITIONS)) == {"zstd"}
