"""The behaviour agent's ordering buffer: Faust events in, events in event-time order out.

Faust hands the agent records in arrival order; with a backlog spread over the input topics, the
small topics drain first. :class:`OrderedBatches` keeps what ``take_events`` yields in a
:class:`~forethought.core.ordering.PartitionGroups` and gives back, per partition, the earliest
record among the heads of its topic-partitions, waiting up to ``max_idle`` seconds for a
topic-partition whose records are on the broker but not received yet, or whose lag is unknown (Kafka
Streams' ``max.task.idle.ms``, KIP-695). See docs/runtime/ordered-inputs.md.

Acknowledgement: every event is held (:func:`~forethought.stream.acks.hold`) as it enters the buffer,
so ``take_events`` acknowledging its batch makes nothing committable; the caller acknowledges the
events :meth:`OrderedBatches.release` gave it once they are processed and their effects are on the
broker (:func:`~forethought.stream.acks.acknowledge`). Release keeps each topic-partition in offset
order, so acknowledging released events in release order is offset order per topic-partition.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping

import faust
from faust.types import TP

from forethought.contracts.decode import event_time
from forethought.core.ordering import PartitionGroups
from forethought.stream.acks import hold


class OrderedBatches:
    """Buffer events of ``topics`` and release them in event-time order per partition number.

    ``consumer`` answers ``highwater(tp)`` (and keeps Faust's committed offsets);
    ``processed`` gives, per (topic, partition), the next offset the engine has not processed.
    """

    def __init__(self, consumer: Callable[[], object], topics: Iterable[str], max_idle: float,
                 max_buffered: int, max_event_bytes: int, processed: Mapping[tuple[str, int], int],
                 generation: Callable[[], int] = lambda: 0, clock: Callable[[], float] = time.monotonic) -> None:
        self.consumer, self.max_event_bytes, self.processed, self.clock = consumer, max_event_bytes, processed, clock
        self.generation = generation
        self.received: dict[tuple[str, int], int] = {}  # next offset after the last one this buffer received
        self.polled: dict[int, int] = {}  # partition → latest fetch (wall ms) whose records this buffer holds
        self.stale_processed: dict[tuple[str, int], int] = {}  # processed offsets as they were at the last rebalance
        self.active = ActiveClock(clock, step=max(max_idle / 2, 0.05))
        self.groups: PartitionGroups[faust.EventT] = PartitionGroups(
            list(topics), max_idle, self.unfetched, max_buffered)

    def __len__(self) -> int:
        return len(self.groups)

    def add(self, events: Iterable[faust.EventT]) -> None:
        """Hold ``events`` (they are acknowledged only after processing) and buffer them.

        An event read before the last rebalance is held but dropped: after a rebalance Faust seeks
        every partition back to its committed offset (or its beginning when none:
        :mod:`forethought.stream.rewind`) and reads it again (in a new generation), so
        processing the old copy would put records of one topic-partition out of offset order.
        """
        events = list(events)
        hold(events)
        generation = self.generation()
        consumer = self.consumer()
        polls: dict[tuple[str, int], int | None] = {}  # last fetch answer per topic-partition of the batch
        for event in events:
            message = event.message
            if getattr(message, "generation_id", None) not in (None, generation):
                continue  # never acknowledged; read again from the committed offset
            where = (message.topic, message.partition)
            self.received[where] = max(self.received.get(where, 0), message.offset + 1)
            if where not in polls:  # once per topic-partition and batch
                polls[where] = polled = last_poll(consumer, TP(*where))
                if polled is not None:
                    self.polled[message.partition] = max(self.polled.get(message.partition, 0), polled)
            self.groups.add(message.topic, message.partition, self.event_time(message.value), event)

    def release(self) -> list[faust.EventT]:
        """The events that may be processed now, in processing order."""
        return self.groups.release(self.active())

    def forget(self) -> int:
        """At a rebalance: drop every buffered event (unacknowledged: Faust seeks each partition it keeps
        back to its committed offset, and the next owner of the others starts there); returns how many."""
        self.received.clear()
        self.polled.clear()
        self.stale_processed = dict(self.processed)  # records processed but not committed are read again
        return len(self.groups.forget(list(self.groups.groups)))

    def event_time(self, value: bytes | None) -> float | None:
        """The record's ``occurred_at``/``updated_at`` in POSIX seconds; ``None`` when it has none
        (it is released at once and the engine dead-letters it)."""
        if not value or len(value) > self.max_event_bytes:
            return None
        try:
            return event_time(value)
        except Exception:  # noqa: BLE001 - hostile bytes: no event time, the engine rejects the record
            return None

    def unfetched(self, topic: str, partition: int) -> bool:
        """Whether the broker may hold records of ``topic``/``partition`` this buffer has not received.

        Yes when its lag is unknown: no fetch has answered for it since the assignment (no high
        watermark), or its last answer is older than the fetch that brought records of the same
        partition number now in the buffer (after a stall, e.g. SIGSTOP, its high watermark predates
        what the other topics delivered since). Otherwise when its high watermark is past the next
        offset expected (received, committed, or processed since the last rebalance: the offsets
        processed before it are read again). A partition not assigned here is never awaited.
        """
        consumer = self.consumer()
        tp = TP(topic, partition)
        try:
            highwater = consumer.highwater(tp)  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - no consumer yet, or the partition is not assigned
            return False
        if highwater is None:
            return True
        polled = last_poll(consumer, tp)
        if polled is not None and polled < self.polled.get(partition, 0):
            return True
        committed = getattr(consumer, "_committed_offset", {}).get(tp)  # Faust's (set from the broker on assignment)
        where = (topic, partition)
        processed = self.processed.get(where, 0)
        if processed == self.stale_processed.get(where):
            processed = 0
        expected = max(self.received.get(where, 0), processed, committed or 0)
        return bool(highwater > expected)


def last_poll(consumer: object, tp: TP) -> int | None:
    """When (wall ms) aiokafka last had a fetch answer for ``tp`` (its high watermark's age), or
    ``None``: not known (no answer yet, not assigned, or a consumer that is not Faust's aiokafka one).
    """
    try:
        return consumer._thread._ensure_consumer().last_poll_timestamp(tp)  # type: ignore[attr-defined, no-any-return]
    except Exception:  # noqa: BLE001 - no consumer thread yet, not assigned, or another driver
        return None


class ActiveClock:
    """A monotonic clock that skips the time the process did not run (SIGSTOP, a long stall): each
    reading advances at most ``step`` past the previous one, so a wait under way when the process
    stopped does not end at once when it resumes, before the fetches answer again.

    >>> now = [0.0]; clock = ActiveClock(lambda: now[0], step=0.5)
    >>> now[0] = 0.25; clock()
    0.25
    >>> now[0] = 30.25; clock(), clock()  # 30 s stopped: counted as one step
    (0.75, 0.75)
    >>> now[0] = 30.5; clock()
    1.0
    """

    def __init__(self, clock: Callable[[], float], step: float) -> None:
        self.clock, self.step = clock, step
        self.last: float | None = None
        self.skipped = 0.0

    def __call__(self) -> float:
        now = self.clock()
        if self.last is not None and now - self.skipped - self.last > self.step:
            self.skipped = now - self.last - self.step
        self.last = now - self.skipped
        return self.last
