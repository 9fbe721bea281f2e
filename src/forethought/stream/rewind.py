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

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any


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
