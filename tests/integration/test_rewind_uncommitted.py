"""Records dropped around a rebalance are read again, also on a partition nobody has committed yet.

Faust drops records it fetched while a rebalance finishes and counts on ``seek_to_committed`` to read
them again; aiokafka's only seeks partitions whose committed offset is above 0 (the ``join-leave``
chaos loss, issue #12). Real broker, real aiokafka group consumer.
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from forethought.stream.rewind import rewind_uncommitted


async def _topics(bootstrap: str, *names: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, num_partitions=1, replication_factor=1) for n in names])
    finally:
        await admin.close()


async def _produce(bootstrap: str, topic: str, count: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(count):
            await producer.send_and_wait(topic, f"r{i}".encode(), key=b"k")
    finally:
        await producer.stop()


async def _read_all(bootstrap: str, prefix: str, *topics: str) -> AIOKafkaConsumer:
    """A group consumer (the worker's settings) that has read every record of ``topics`` without committing."""
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, group_id=f"{prefix}group",
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    expected = {TopicPartition(t, 0): 1 for t in topics}
    expected[TopicPartition(topics[0], 0)] = 3
    seen: dict[TopicPartition, int] = {}
    async with asyncio.timeout(30):
        while any(seen.get(tp, 0) < n for tp, n in expected.items()):
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                seen[tp] = records[-1].offset + 1
    return consumer


async def test_seek_to_committed_reads_again_the_records_of_an_input_partition_never_committed(
    kafka_bootstrap: str, topic_prefix: str,
) -> None:
    committed, fresh, changelog = (f"{topic_prefix}{n}" for n in ("committed", "fresh", "changelog"))
    await _topics(kafka_bootstrap, committed, fresh, changelog)
    await _produce(kafka_bootstrap, committed, 3)
    await _produce(kafka_bootstrap, fresh, 1)  # the partition's only record, at offset 0, never committed
    await _produce(kafka_bootstrap, changelog, 1)
    consumer = await _read_all(kafka_bootstrap, topic_prefix, committed, fresh, changelog)
    try:
        tp_committed, tp_fresh, tp_changelog = (TopicPartition(t, 0) for t in (committed, fresh, changelog))
        await consumer.commit({tp_committed: 1})

        # The premise (aiokafka 0.14): seek_to_committed leaves a partition with no commit past its records.
        assert (await consumer.seek_to_committed())[tp_fresh] is None
        assert await consumer.position(tp_fresh) == 1, "aiokafka now seeks uncommitted partitions: rewind is moot"
        assert await consumer.position(tp_committed) == 1

        # The fix: the input partitions with no commit go back to their beginning; the others as before.
        rewind_uncommitted(consumer, [committed, fresh], consumer.seek_to_beginning)
        offsets = await consumer.seek_to_committed()
        assert offsets == {tp_committed: 1, tp_fresh: None, tp_changelog: None}  # returned unchanged
        assert await consumer.position(tp_fresh) == 0
        assert await consumer.position(tp_committed) == 1
        assert await consumer.position(tp_changelog) == 1, "a changelog partition is left to the table recovery"
        again = await consumer.getmany(tp_fresh, timeout_ms=5000)
        assert [r.offset for r in again[tp_fresh]] == [0]
    finally:
        await consumer.stop()
