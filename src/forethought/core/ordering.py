"""Event-time order across co-partitioned input topics, as Kafka Streams' ``PartitionGroup`` does.

Kafka orders records within a topic-partition, never across topics. The worker reads
``events.clickstream``, ``events.errors``, ``events.usage``, profiles, outcomes and re-keyed records,
all co-partitioned: partition ``p`` of every input holds the same customers. :class:`PartitionGroups`
buffers records per topic-partition and releases, per partition number, the record with the
earliest event time among the heads of its topic-partitions. When a topic-partition's buffer is empty
while the broker holds records of it that were not received yet (``unfetched``), the group waits for
them, up to ``max_idle`` (seconds of the caller's clock, ``max.task.idle.ms``), before releasing the
other heads; ``max_idle`` 0 never waits. A topic-partition known to be caught up is not waited for.

Guarantees: records of one topic-partition are released in the order they were added; a group never
holds more than ``max_buffered`` records (beyond that it releases without waiting); a record without
an event time (``None``, NaN or infinite: one that does not decode, which the engine dead-letters
anyway) is released as soon as it heads its topic-partition. Pure: the caller passes its clock in.

>>> lagging = set()
>>> groups = PartitionGroups(["clicks", "errors"], max_idle=1.0, unfetched=lambda t, p: (t, p) in lagging)
>>> groups.add("clicks", 0, 30.0, "c@30"); groups.add("clicks", 0, 10.0, "c@10"); groups.add("errors", 0, 20.0, "e@20")
>>> groups.release(now=0.0)  # heads 30 and 20: the earliest first; one topic-partition never reorders
['e@20', 'c@30', 'c@10']

While the errors partition has records on the broker that were not received, clicks wait for them:

>>> groups.add("clicks", 0, 50.0, "c@50"); lagging.add(("errors", 0))
>>> groups.release(now=100.0), groups.wake_at()
([], 101.0)
>>> groups.add("errors", 0, 40.0, "e@40")  # they arrive
>>> groups.release(now=100.5)  # and the wait for the next ones begins once errors is empty again
['e@40']
>>> groups.release(now=101.4), groups.release(now=101.5), groups.enforced
([], ['c@50'], 1)
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import count
from typing import Generic, TypeVar

T = TypeVar("T")
_FIRST = -math.inf  # the release time of a record without an event time: as soon as it is a head


@dataclass(slots=True)
class _Group(Generic[T]):
    """The buffers of one partition number: per topic, (event time, arrival number, record)."""

    queues: dict[str, deque[tuple[float, int, T]]]
    deadlines: dict[str, float] = field(default_factory=dict)  # topic → end of the wait for it
    given_up: set[str] = field(default_factory=set)  # topics whose wait ended with nothing received
    size: int = 0


class PartitionGroups(Generic[T]):
    """Per-partition event-time ordering of records from several co-partitioned topics.

    ``topics``: the inputs (a record of another topic is accepted and joins its group); ``max_idle``:
    the longest wait for a topic-partition with ``unfetched(topic, partition)`` records, in the
    caller's clock; ``max_buffered``: the most records one group holds before it stops waiting.
    """

    def __init__(self, topics: Sequence[str], max_idle: float,
                 unfetched: Callable[[str, int], bool] = lambda _topic, _partition: False,
                 max_buffered: int = 10_000) -> None:
        if not max_idle >= 0 or max_buffered < 1:
            raise ValueError(f"need max_idle >= 0 and max_buffered >= 1, got {max_idle!r}, {max_buffered!r}")
        self.topics, self.max_idle, self.unfetched = list(dict.fromkeys(topics)), max_idle, unfetched
        self.max_buffered = max_buffered
        self.groups: dict[int, _Group[T]] = {}
        self.enforced = 0  # releases made while a topic-partition was still awaited (wait over or buffer full)
        self._arrivals = count()

    def __len__(self) -> int:
        """How many records are buffered."""
        return sum(group.size for group in self.groups.values())

    def add(self, topic: str, partition: int, time: float | None, item: T) -> None:
        """Buffer ``item`` of ``topic``/``partition`` with event time ``time`` (``None``: unknown)."""
        group = self.groups.get(partition)
        if group is None:
            group = self.groups[partition] = _Group({name: deque() for name in self.topics})
        queue = group.queues.get(topic)
        if queue is None:
            queue = group.queues[topic] = deque()
        at = time if time is not None and math.isfinite(time) else _FIRST
        queue.append((at, next(self._arrivals), item))
        group.deadlines.pop(topic, None)  # it has a record: no longer awaited
        group.given_up.discard(topic)
        group.size += 1

    def release(self, now: float) -> list[T]:
        """Every record that may go to the engine at ``now``, in the order to process them."""
        out: list[T] = []
        for partition in sorted(self.groups):
            self._release(partition, self.groups[partition], now, out)
        return out

    def wake_at(self) -> float | None:
        """The earliest end of a wait in progress (a release then may give records), if any."""
        ends = [end for group in self.groups.values() if group.size for end in group.deadlines.values()]
        return min(ends, default=None)

    def forget(self, partitions: Iterable[int]) -> list[T]:
        """Drop the buffers of ``partitions`` (revoked: another consumer reads them again); returns what
        they held."""
        dropped: list[T] = []
        for partition in partitions:
            group = self.groups.pop(partition, None)
            if group is not None:
                dropped += [item for queue in group.queues.values() for _, _, item in queue]
        return dropped

    def _release(self, partition: int, group: _Group[T], now: float, out: list[T]) -> None:
        awaited = {topic for topic, queue in group.queues.items()
                   if not queue and self._awaits(partition, topic, group, now)}
        while group.size:
            if awaited and group.size <= self.max_buffered:
                return
            topic, queue = min(((t, q) for t, q in group.queues.items() if q), key=_head)
            out.append(queue.popleft()[2])
            group.size -= 1
            if awaited or group.given_up:
                self.enforced += 1
            if not queue and self._awaits(partition, topic, group, now):
                awaited.add(topic)

    def _awaits(self, partition: int, topic: str, group: _Group[T], now: float) -> bool:
        """Whether the empty buffer of ``topic``/``partition`` holds the group back at ``now``."""
        if not self.max_idle or not self.unfetched(topic, partition):
            group.deadlines.pop(topic, None)
            group.given_up.discard(topic)
            return False
        if topic in group.given_up:
            return False
        if now < group.deadlines.setdefault(topic, now + self.max_idle):
            return True
        del group.deadlines[topic]
        group.given_up.add(topic)
        return False


def _head(entry: tuple[Hashable, deque[tuple[float, int, T]]]) -> tuple[float, int]:
    at, arrival, _ = entry[1][0]
    return at, arrival
