"""Run demo traffic against Kafka in real time, and watch the triggers that come out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from forethought.contracts.records import Trigger
from forethought.ops import batch_guard
from forethought.ops.compression import Compression, producer_options
from forethought.ops.kafka_security import KafkaSecurity, aiokafka_options
from forethought.simulate.traffic import TrafficGenerator


async def produce_traffic(
    bootstrap: str,
    generator: TrafficGenerator,
    duration: float,
    topic: Callable[[str], str] = lambda name: name,
    stop: asyncio.Event | None = None,
    tick: float = 0.1,
    security: KafkaSecurity | None = None,
    compression: Compression = "none",
) -> int:
    """Send what ``generator`` schedules, in real time, for ``duration`` seconds; returns records sent.

    ``security`` (the settings): TLS/SASL of the connection; ``compression``: the producer's codec.
    """
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all",
                                **aiokafka_options(security or KafkaSecurity()), **producer_options(compression))
    await producer.start()
    sent = 0
    try:
        while (elapsed := time.time() - generator.start) < duration and not (stop and stop.is_set()):
            batch = generator.due(elapsed)
            for name, key, value in batch:
                await producer.send(topic(name), value=value, key=key)
            sent += len(batch)
            await asyncio.sleep(tick)
        await producer.flush()
    finally:
        await producer.stop()
    return sent


async def watch_triggers(bootstrap: str, topic: str, group: str | None = None,
                         security: KafkaSecurity | None = None) -> AsyncIterator[Trigger]:
    """Yield every trigger published on ``topic`` from the beginning, as it arrives.

    Every codec is read; a batch that cannot be decoded is skipped and logged, not raised.
    """
    batch_guard.install()
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
        enable_auto_commit=group is not None, **aiokafka_options(security or KafkaSecurity()),
    )
    await consumer.start()
    try:
        async for message in consumer:
            yield Trigger.model_validate_json(message.value)
    finally:
        await consumer.stop()
