"""Reading a whole topic into memory and keeping up with it: what the senders' ledger and the
e-mail sender's address book both do with their compacted topics.

A :class:`TopicMirror` assigns itself every partition of one topic (no consumer group: each process
reads everything), starts from the beginning and hands each record to ``apply(key, value)``;
:meth:`TopicMirror.catch_up` reads to the end offsets as they are when it is called.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

METADATA_TRIES = 20


class TopicMirror:
    """Every record of ``topic``, from the beginning, to ``apply``; ``client`` holds TLS/SASL options."""

    def __init__(self, bootstrap: str, topic: str, apply: Callable[[bytes | None, bytes | None], None],
                 **client: Any) -> None:
        self.bootstrap, self.topic, self.apply, self.client = bootstrap, topic, apply, client
        self.consumer: AIOKafkaConsumer | None = None

    async def open(self, what: str) -> int:
        """Assign all partitions, seek to the beginning and read to the end; returns the records read.
        ``what`` names the topic's role in the error raised when it does not exist."""
        self.consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                         auto_offset_reset="earliest", group_id=None, **self.client)
        await self.consumer.start()
        partitions = await self._partitions(what)
        self.consumer.assign([TopicPartition(self.topic, p) for p in sorted(partitions)])
        await self.consumer.seek_to_beginning()
        return await self.catch_up()

    async def catch_up(self) -> int:
        """Read from where we are to the topic's current end; returns the records read."""
        assert self.consumer is not None, "open() first"
        assignment = list(self.consumer.assignment())
        ends = await self.consumer.end_offsets(assignment)
        read = 0
        while await _behind(self.consumer, ends):
            for records in (await self.consumer.getmany(*assignment, timeout_ms=500)).values():
                for record in records:
                    self.apply(record.key, record.value)
                    read += 1
        return read

    async def close(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()
            self.consumer = None

    async def _partitions(self, what: str) -> set[int]:
        """The topic's partitions, asked of the broker (a consumer's metadata may not know a new topic yet)."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, **self.client)
        await admin.start()
        described: dict[str, Any] = {}
        try:
            for _ in range(METADATA_TRIES):  # a topic created a moment ago may have no leader yet
                (described,) = await admin.describe_topics([self.topic])
                if not described.get("error_code") and described.get("partitions"):
                    return {p["partition"] for p in described["partitions"]}
                await asyncio.sleep(0.5)
        finally:
            await admin.close()
        raise RuntimeError(f"{what} topic {self.topic!r} is not available (error code"
                           f" {described.get('error_code')}; run: forethought topics create)")


async def _behind(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    """Whether any partition's position is short of its end offset."""
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return True
    return False
