"""Event-time bucket rings: fixed-size counts per bucket that evict themselves.

A ring covers the ``size`` most recent buckets up to ``head`` (the newest bucket index).
Advancing the head returns the buckets that closed, so baselines can learn from them.

>>> ring = BucketRing.empty(size=3)
>>> ring.add(10, 1.0)
'ok'
>>> ring.add(11, 2.0)  # moves the head: bucket 10 closes
'ok'
>>> ring.add(10, 1.0)  # late, but still inside the ring
'ok'
>>> ring.add(7, 1.0)   # older than the ring
'late'
>>> ring.count(10), ring.count(11), ring.total()
(2.0, 2.0, 4.0)
>>> ring.advance(14)   # closes 11, 12 and 13; the ring forgets 10 and 11
[(11, 2.0), (12, 0.0), (13, 0.0)]
>>> ring.total()
0.0
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

AddResult = Literal["ok", "late"]


@dataclass(slots=True)
class BucketRing:
    """Counts for the ``size`` buckets ending at ``head``; ``head == -1`` means empty."""

    size: int
    head: int = -1
    counts: list[float] = field(default_factory=list)

    @classmethod
    def empty(cls, size: int) -> BucketRing:
        """A ring with no bucket seen yet."""
        return cls(size=size, head=-1, counts=[0.0] * size)

    def copy(self) -> BucketRing:
        """An independent copy (the counts are not shared)."""
        return BucketRing(self.size, self.head, list(self.counts))

    def add(self, bucket: int, amount: float = 1.0) -> AddResult:
        """Count ``amount`` in ``bucket``; returns ``'late'`` when it fell off the ring."""
        if self.head < 0:
            self.head = bucket
        elif bucket > self.head:
            self.advance(bucket)
        elif bucket <= self.head - self.size:
            return "late"
        self.counts[bucket % self.size] += amount
        return "ok"

    def advance(self, bucket: int, max_closed: int | None = None) -> list[tuple[int, float]]:
        """Move the head to ``bucket``; return the closed ``(index, count)`` pairs, oldest first.

        At most ``max_closed`` (default ``size``) pairs are returned: a long gap closes
        many empty buckets, and the caller folds those in one step.
        """
        if self.head < 0:
            self.head = bucket
            return []
        if bucket <= self.head:
            return []
        limit = self.size if max_closed is None else max_closed
        first = max(self.head, bucket - limit)
        closed = [(b, self.count(b)) for b in range(first, bucket)]
        for b in range(max(self.head + 1, bucket - self.size + 1), bucket + 1):
            self.counts[b % self.size] = 0.0
        if bucket - self.head >= self.size:
            self.counts = [0.0] * self.size
        self.head = bucket
        return closed

    def count(self, bucket: int) -> float:
        """The count in ``bucket``, or 0 when it is outside the ring."""
        if self.head < 0 or bucket > self.head or bucket <= self.head - self.size:
            return 0.0
        return self.counts[bucket % self.size]

    def span_total(self, first: int, last: int) -> float:
        """Sum of buckets ``first`` … ``last`` (inclusive) that the ring still holds.

        >>> ring = BucketRing.empty(size=4)
        >>> for bucket in (5, 6, 6, 8):
        ...     _ = ring.add(bucket)
        >>> ring.span_total(6, 100), ring.span_total(0, 5), ring.span_total(9, 20)
        (3.0, 1.0, 0.0)
        """
        low, high = max(first, self.head - self.size + 1), min(last, self.head)
        if self.head < 0 or low > high:
            return 0.0
        return sum(self.counts[b % self.size] for b in range(low, high + 1))

    def total(self, last: int | None = None) -> float:
        """Sum of the ``last`` newest buckets (default: the whole ring)."""
        if self.head < 0:
            return 0.0
        if last is None or last >= self.size:
            return sum(self.counts)  # every slot belongs to the ring's window
        return self.span_total(self.head - last + 1, self.head)

    def to_list(self) -> list[Any]:
        """Compact form, whichever is shorter: dense ``[head, newest, ..., oldest non-zero]`` or
        sparse ``[head, [age, count, age, count, ...]]`` (mostly empty rings); counts as int when whole.

        >>> ring = BucketRing.empty(size=60)
        >>> for bucket in (100, 101, 101, 130):
        ...     _ = ring.add(bucket)
        >>> ring.to_list()
        [130, [0, 1, 29, 2, 30, 1]]
        >>> BucketRing.from_list(60, ring.to_list()) == ring
        True
        """
        if self.head < 0:
            return [self.head]
        h = self.head % self.size
        newest_first = self.counts[h::-1] + self.counts[:h:-1]
        while newest_first and newest_first[-1] == 0:
            newest_first.pop()
        filled = [(age, c) for age, c in enumerate(newest_first) if c]
        if 2 * len(filled) + 1 < len(newest_first):
            return [self.head, [x for age, c in filled for x in (age, _compact(c))]]
        return [self.head, *(_compact(c) for c in newest_first)]

    @classmethod
    def from_list(cls, size: int, data: list[Any]) -> BucketRing:
        """Inverse of :meth:`to_list`."""
        ring = cls.empty(size)
        if not data or data[0] < 0:
            return ring
        ring.head = int(data[0])
        if len(data) == 2 and isinstance(data[1], list):
            pairs = data[1]
            for age, value in zip(pairs[::2], pairs[1::2]):
                if age < size:
                    ring.counts[(ring.head - age) % size] = float(value)
            return ring
        for offset, value in enumerate(data[1 : size + 1]):
            ring.counts[(ring.head - offset) % size] = float(value)
        return ring


def _compact(value: float) -> float | int:
    return int(value) if value == int(value) else value
