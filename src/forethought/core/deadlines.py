"""Which customers are due when: a heap with lazy deletion, shared by the worker and replay.

>>> index = DeadlineIndex()
>>> index.set(b"a", 10.0); index.set(b"b", 5.0); index.set(b"a", 20.0)
>>> index.pop_due(15.0)
[b'b']
>>> index.pop_due(25.0), len(index)
([b'a'], 0)
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from typing import Generic, TypeVar

K = TypeVar("K", str, bytes)


class DeadlineIndex(Generic[K]):
    """Which customers are due when (a heap with lazy deletion)."""

    def __init__(self) -> None:
        self._due: dict[K, float] = {}
        self._heap: list[tuple[float, K]] = []

    def set(self, key: K, due: float | None) -> None:
        if due is None:
            self._due.pop(key, None)
            return
        if self._due.get(key) != due:
            self._due[key] = due
            heapq.heappush(self._heap, (due, key))
            if len(self._heap) > 2 * len(self._due) + 1024:  # mostly superseded entries: bounded memory
                self._heap = [(d, k) for k, d in self._due.items()]
                heapq.heapify(self._heap)

    def update(self, dues: Mapping[K, float]) -> None:
        """Set many deadlines at once (a rebuild): one heapify over every entry instead of a push each.

        >>> index = DeadlineIndex()
        >>> index.set("a", 30.0); index.update({"b": 10.0, "a": 20.0})
        >>> index.pop_due(25.0), len(index)
        (['b', 'a'], 0)
        """
        self._due.update(dues)
        self._heap = [(d, k) for k, d in self._due.items()]
        heapq.heapify(self._heap)

    def due_by(self, now: float) -> bool:
        """Whether some key may be due at ``now`` (cheap: :meth:`pop_due` tells for sure)."""
        return bool(self._heap) and self._heap[0][0] <= now

    def pop_due(self, now: float) -> list[K]:
        """Keys whose deadline is at or before ``now``; they leave the index."""
        keys: list[K] = []
        while self._heap and self._heap[0][0] <= now:
            due, key = heapq.heappop(self._heap)
            if self._due.get(key) == due:
                del self._due[key]
                keys.append(key)
        return keys

    def __len__(self) -> int:
        return len(self._due)
