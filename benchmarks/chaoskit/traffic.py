"""Producing the workload at a steady pace while faults happen, and reading what came out.

The producer sends runs of consecutive same-topic records and waits for each run's acknowledgement
before the next, so a record is on the broker before any later one of another topic: the worker's
ordered merge then sees the same order as the replay. It sends only up to ``limit`` (the fault
schedule raises it) and pauses while the broker is taken away (:meth:`Producer.paused`), so every
record is written exactly once and the expected output stays known.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from itertools import groupby

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord, TopicPartition

from .workload import ChaosRecord


class Producer:
    """Sends ``records`` to ``prefix``-ed topics at ``rate`` records per second, up to ``limit``."""

    def __init__(self, bootstrap: str, prefix: str, records: list[ChaosRecord], rate: float) -> None:
        self.bootstrap, self.prefix, self.records, self.rate = bootstrap, prefix, records, rate
        self.sent, self.limit = 0, 0
        self._lock = asyncio.Lock()
        self._client: AIOKafkaProducer | None = None
        self._task: asyncio.Task[None] | None = None

    async def _connect(self) -> None:
        self._client = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True,
                                        linger_ms=5, request_timeout_ms=60_000)
        await self._client.start()

    async def start(self) -> None:
        """Connect and start sending in the background."""
        await self._connect()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        began = time.monotonic()
        while self.sent < len(self.records):
            if self.sent >= self.limit:
                await asyncio.sleep(0.05)
                began = time.monotonic() - self.sent / self.rate  # no burst to catch up after a hold
                continue
            end = min(self.limit, len(self.records), self.sent + max(1, int(self.rate / 10)))
            async with self._lock:
                assert self._client is not None
                for topic, run in groupby(self.records[self.sent:end], key=lambda r: r.topic):
                    sends = [await self._client.send(self.prefix + topic, r.value, key=r.key) for r in run]
                    await asyncio.gather(*sends)
                self.sent = end
            await asyncio.sleep(max(0.0, began + self.sent / self.rate - time.monotonic()))

    async def reached(self, count: int, timeout: float = 3600) -> None:
        """Wait until ``count`` records are on the broker."""
        deadline = time.monotonic() + timeout
        while self.sent < min(count, len(self.records)):
            if self._task is not None and self._task.done():
                self._task.result()  # raises what stopped the producer
            if time.monotonic() > deadline:
                raise TimeoutError(f"the producer sent {self.sent} of {count} records")
            await asyncio.sleep(0.05)

    @asynccontextmanager
    async def paused(self) -> AsyncIterator[None]:
        """No record is sent in the block (the client is closed and opened again after it)."""
        async with self._lock:
            assert self._client is not None
            await self._client.stop()
            try:
                yield
            finally:
                await self._connect()

    async def close(self) -> None:
        """Stop sending and disconnect."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._client is not None:
            await self._client.stop()


async def read_all(bootstrap: str, topic: str, partitions: int) -> list[ConsumerRecord]:
    """Every record of ``topic`` up to its current end."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        found: list[ConsumerRecord] = []
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for records in (await consumer.getmany(*tps, timeout_ms=500)).values():
                found.extend(records)
        return found
    finally:
        await consumer.stop()


async def lag(bootstrap: str, group: str, topics: list[str], partitions: int) -> int:
    """Records of ``topics`` the consumer group ``group`` has not committed yet."""
    return sum((await lag_by_partition(bootstrap, group, topics, partitions)).values())


async def lag_by_partition(bootstrap: str, group: str, topics: list[str], partitions: int) -> dict[str, int]:
    """Per ``topic/partition`` of ``topics``: the records ``group`` has not committed yet (those behind
    only)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        tps = [TopicPartition(t, p) for t in topics for p in range(partitions)]
        ends = await consumer.end_offsets(tps)
        done = {tp: meta.offset for tp, meta in committed.items()}
        behind = {f"{tp.topic}/{tp.partition}": end - max(0, done.get(tp, 0)) for tp, end in ends.items()}
        return {name: n for name, n in behind.items() if n > 0}
    finally:
        await consumer.stop()
        await admin.close()
