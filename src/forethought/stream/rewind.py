"""Make Faust's "seek back to the committed offsets" true for input partitions with no commit yet.

Around a rebalance Faust drops records it fetched (while its flow is stopped, ``Consumer.getmany``
discards a whole fetch; the ordering buffer drops records of an older consumer generation, and the
agent records that reach it while a rebalance holds the flow) and counts on
``Consumer.perform_seek`` to read them again: it calls ``seek_to_committed`` after every rebalance
(``tables/recovery.py`` ``_resume_streams``) and whenever a fetch answers while the flow is stopped.
But aiokafka's ``AIOKafkaConsumer.seek_to_committed`` only seeks a partition whose committed offset
is above 0 (``if offset and offset > 0``): a partition nobody has committed yet keeps the fetcher's
position, past the dropped records, and they are not fetched again in this assignment (the
``join-leave`` chaos loss: a partition's only record, offset 0, fetched under the new assignment
while the rebalance was finishing). See docs/runtime/ordered-inputs.md, "Acknowledgement".
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

SETTLE_STEPS = 3  # event-loop turns for Faust's delivery loop to notice a stopped flow and park


def rewind_uncommitted(consumer: Any, topics: Iterable[str],
                       seek_to_beginning: Callable[..., Awaitable[object]]) -> None:
    """Wrap ``consumer.seek_to_committed`` so that every assigned partition of ``topics`` with no
    committed offset (or 0) is also sought to its beginning, where the group's
    ``auto_offset_reset="earliest"`` starts it (the committed offsets are returned unchanged).

    ``seek_to_beginning(*partitions)`` is awaited with those partitions (Faust: the consumer
    thread's, so the seek runs in aiokafka's loop). Changelog partitions are left alone: the table
    recovery positions them itself.
    """
    inputs = frozenset(topics)
    seek_to_committed = consumer.seek_to_committed

    async def seek_to_committed_or_beginning(*args: Any) -> Mapping[Any, int | None]:
        committed: Mapping[Any, int | None] = await seek_to_committed(*args)
        uncommitted = [tp for tp, offset in committed.items() if tp.topic in inputs and not offset]
        if uncommitted:
            await seek_to_beginning(*uncommitted)
        return committed

    consumer.seek_to_committed = seek_to_committed_or_beginning


def rewind_faust(app: Any, topics: Iterable[str]) -> None:
    """:func:`rewind_uncommitted` for a Faust app's consumer (aiokafka driver: its consumer thread)."""
    consumer = app.consumer
    if not hasattr(getattr(consumer, "_thread", None), "seek_to_beginning"):  # another driver: nothing to fix
        return

    async def seek_to_beginning(*partitions: Any) -> None:  # in the consumer thread, as seek_to_committed
        await consumer._thread.seek_to_beginning(*partitions)

    rewind_uncommitted(consumer, topics, seek_to_beginning)


def seek_quietly(consumer: Any, settle_steps: int = SETTLE_STEPS) -> None:
    """Wrap ``consumer.perform_seek`` (Faust's "seek every partition to its committed offset") so
    that no fetched record is handed out while it runs: the flow is stopped first (Faust's delivery
    loop stops at the next record and waits for the flow), and turned on again afterwards only if it
    was on. Records handed out before the seek are older than the committed offset or equal to what
    is read again after it, so the records of each topic-partition arrive without a hole.
    """
    perform_seek = consumer.perform_seek

    async def perform_seek_with_flow_stopped() -> None:
        flowing = bool(consumer.flow_active)
        if flowing:
            consumer.stop_flow()
            for _ in range(settle_steps):  # the delivery loop runs, sees the stop and parks
                await asyncio.sleep(0)
        try:
            await perform_seek()
        finally:
            if flowing and not consumer.flow_active:
                consumer.resume_flow()

    consumer.perform_seek = perform_seek_with_flow_stopped
