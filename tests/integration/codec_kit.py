"""A third-party client (confluent-kafka, i.e. librdkafka) and a batch-codec probe for the codec tests."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import aiokafka.codec
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from confluent_kafka import Consumer, KafkaException, Producer

from forethought.ops import batch_guard

CODECS = ("gzip", "snappy", "lz4", "zstd")


def _produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]], codec: str) -> None:
    producer = Producer({
        "bootstrap.servers": bootstrap, "compression.type": codec, "acks": "all",
        "partitioner": "murmur2_random",  # Kafka's (and aiokafka's) murmur2: the partition the worker expects
        "linger.ms": 50,  # the records of one call share a batch
    })
    failures: list[str] = []

    def delivered(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    for key, value in records:
        producer.produce(topic, value=value, key=key, on_delivery=delivered)
    assert producer.flush(30) == 0, "confluent-kafka could not deliver everything"
    assert not failures, failures


async def confluent_produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]], codec: str) -> None:
    """Produce ``records`` with librdkafka, compressed with ``codec`` ("none" too), one flush: one batch per partition."""
    await asyncio.to_thread(_produce, bootstrap, topic, records, codec)


def _consume(bootstrap: str, topic: str, until: int, timeout: float) -> list[tuple[bytes | None, bytes]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"confluent-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    found: list[tuple[bytes | None, bytes]] = []
    deadline = time.monotonic() + timeout
    try:
        for message in polled(consumer, lambda: len(found) < until and time.monotonic() < deadline):
            found.append((message.key(), message.value()))
    finally:
        consumer.close()
    return found


def polled(consumer: Consumer, more: Callable[[], bool]) -> Iterator[Any]:
    """confluent-kafka's records from ``consumer`` while ``more()``: empty polls and transient errors
    skipped, a fatal error raised."""
    while more():
        message = consumer.poll(0.5)
        if message is None:
            continue
        if message.error():
            if message.error().fatal():
                raise KafkaException(message.error())
            continue
        yield message


async def confluent_consume(bootstrap: str, topic: str, until: int, timeout: float = 60) -> list[tuple[bytes | None, bytes]]:
    """Read ``topic`` from the start with librdkafka until ``until`` records (or the timeout)."""
    return await asyncio.to_thread(_consume, bootstrap, topic, until, timeout)


@contextlib.contextmanager
def _no_codec_libraries() -> Iterator[None]:
    """aiokafka in this process decodes no compressed batch (every ``has_*`` false) for the block."""
    names = ("has_gzip", "has_snappy", "has_lz4", "has_zstd")
    saved = {name: getattr(aiokafka.codec, name) for name in names}
    try:
        for name in names:
            setattr(aiokafka.codec, name, lambda: False)
        yield
    finally:
        for name, function in saved.items():
            setattr(aiokafka.codec, name, function)


async def batch_codecs(bootstrap: str, topic: str, partitions: int) -> Counter[str]:
    """The codecs of the batches stored in ``topic`` (compressed ones by codec; plain ones as "none").

    A probe: with every codec made unavailable, the batch guard reports each compressed batch with
    the codec written in its header, and plain batches are read as records. Call it while nothing
    else in this process consumes.
    """
    seen: Counter[str] = Counter()
    inbox = batch_guard.watch([topic])
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        with _no_codec_libraries():
            while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
                for records in (await consumer.getmany(*tps, timeout_ms=500)).values():
                    seen["none"] += bool(records)
    finally:
        await consumer.stop()
        batch_guard.unwatch(inbox)
    seen.update(batch.codec for batch in inbox.drain())
    return seen
