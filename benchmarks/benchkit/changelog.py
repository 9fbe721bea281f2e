"""Part 5b: state bytes per customer as stored in the worker's changelog (what a restore reads back).

After the worker has stopped, its ``customer_state`` table's changelog topic is read from the start
to its end offsets; per key the last value counts (what compaction keeps; a tombstone removes the
key). The figure is the size of the stored value, whatever codec the worker writes.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from .common import percentile
from .kafka import Deployment

STATE_TABLE = "customer_state"


def changelog_topic(app_id: str, table: str = STATE_TABLE) -> str:
    """Faust's name for a table's changelog topic.

    >>> changelog_topic("bench-b1234")
    'bench-b1234-customer_state-changelog'
    """
    return f"{app_id}-{table}-changelog"


async def changelog_state_bytes(dep: Deployment, table: str = STATE_TABLE, timeout: float = 60.0) -> dict[str, Any]:
    """Size of each key's last value on the table's changelog: mean, p50, p99, max, number of keys."""
    topic = changelog_topic(dep.app_id, table)
    consumer = AIOKafkaConsumer(bootstrap_servers=dep.bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", max_partition_fetch_bytes=4 * 1024 * 1024)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or await _partitions(consumer, topic)
        if not partitions:
            return {"topic": topic, "customers": 0, "error": "changelog topic not found"}
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        sizes, records = await _last_sizes(consumer, await consumer.end_offsets(tps), timeout)
    finally:
        await consumer.stop()
    return size_summary(topic, list(sizes.values()), records)


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int] | None:
    await consumer._client.force_metadata_update()  # aiokafka has no public metadata refresh
    return consumer.partitions_for_topic(topic)


async def _last_sizes(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int],
                      timeout: float) -> tuple[dict[bytes, int], int]:
    """Read every partition up to its end offset; the last value's size per key, and records read."""
    sizes: dict[bytes, int] = {}
    records = 0
    remaining = {tp for tp, end in ends.items() if end > 0}
    deadline = time.monotonic() + timeout
    while remaining and time.monotonic() < deadline:
        for batch in (await consumer.getmany(*remaining, timeout_ms=500, max_records=5000)).values():
            for record in batch:
                records += 1
                if record.value is None:
                    sizes.pop(record.key, None)
                else:
                    sizes[record.key] = len(record.value)
        remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp]}
    return sizes, records


def size_summary(topic: str, sizes: list[int], records: int) -> dict[str, Any]:
    """Mean, percentiles and maximum of the stored sizes.

    >>> s = size_summary("t", [300, 100, 200], 5)
    >>> s["mean"], s["p50"], s["max"], s["customers"], s["records"]
    (200.0, 200, 300, 3, 5)
    """
    sizes = sorted(sizes)
    if not sizes:
        return {"topic": topic, "customers": 0, "records": records}
    return {"topic": topic, "customers": len(sizes), "records": records, "mean": statistics.fmean(sizes),
            "p50": percentile(sizes, 50), "p99": percentile(sizes, 99), "max": sizes[-1]}
