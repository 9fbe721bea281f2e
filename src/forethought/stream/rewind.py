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
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

PARK_TIMEOUT = 10.0  # seconds to wait for Faust's delivery loop to park before seeking anyway

log = logging.getLogger(__name__)


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


def seek_quietly(consumer: Any, park_timeout: float = PARK_TIMEOUT) -> None:
    """Wrap ``consumer.perform_seek`` (Faust's "seek every partition to its committed offset") so
    that no fetched record is handed out while it runs, and none is marked read after it.

    Faust's delivery loop (``Consumer._drain_messages``) hands out a fetch record by record and, after
    each, sets the partition's read offset; a record of a later fetch below that offset is dropped as
    already read. If a seek lands while the loop awaits something before a record's hand-out (a commit
    to the broker: any number of event-loop turns, more under load), the loop then skips the hand-out
    (the flow is stopped) but still sets the read offset, above the sought position, and the records
    between are lost (the ``join-leave`` chaos loss, docs/chaos.md). So the flow is stopped first, and
    the seek waits until the delivery loop is *parked* (:func:`watch_parking`: between two fetches, or
    not running), at most ``park_timeout`` seconds, then seeks anyway and says so. The flow is turned
    on again afterwards only if it was on.
    """
    perform_seek = consumer.perform_seek
    parked = watch_parking(consumer)

    async def perform_seek_with_flow_stopped() -> None:
        flowing = bool(consumer.flow_active)
        if flowing:  # (Faust also seeks from inside the delivery loop, with the flow already stopped)
            consumer.stop_flow()
            try:
                await asyncio.wait_for(parked.wait(), park_timeout)
            except TimeoutError:
                log.warning("Faust's delivery loop did not park within %g s; seeking anyway", park_timeout)
        try:
            await perform_seek()
        finally:
            if flowing and not consumer.flow_active:
                consumer.resume_flow()

    consumer.perform_seek = perform_seek_with_flow_stopped


def watch_parking(consumer: Any) -> asyncio.Event:
    """An event set while Faust's delivery loop hands out no record: it is not running (Faust stops its
    fetcher for a rebalance and starts it again after the seek), or it waits in ``_wait_next_records``
    for its next fetch (every record of the last one handed out and marked read). Clear while it hands
    records out."""
    parked = asyncio.Event()
    parked.set()  # not running yet
    drain_messages, wait_next_records = consumer._drain_messages, consumer._wait_next_records

    async def drain_messages_watched(fetcher: Any) -> None:
        parked.clear()
        try:
            await drain_messages(fetcher)
        finally:
            parked.set()

    async def wait_next_records_watched(timeout: float) -> Any:  # called only by the loop, within it
        parked.set()
        try:
            return await wait_next_records(timeout)
        finally:
            parked.clear()  # records to hand out (the loop's own end sets it again)

    consumer._drain_messages = drain_messages_watched
    consumer._wait_next_records = wait_next_records_watched
    return parked
