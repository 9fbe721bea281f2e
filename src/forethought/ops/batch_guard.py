"""Skip, and report, a fetched record batch that cannot be decoded, instead of crashing the consumer.

Why a private seam (aiokafka 0.14, pinned ``<0.15``): a batch is decompressed lazily while
``aiokafka.consumer.fetcher.PartitionRecords._unpack_records`` iterates it, inside
``Fetcher.fetched_records``. A decode error (``UnsupportedCodecError``, ``CorruptRecordException``, a
codec library's own error) escapes from there through ``getmany`` -- and, in the worker, through
Faust's consumer thread into ``Consumer._drain_messages``, which re-raises and stops the app. No
public hook sees it first, and catching it *after* ``getmany`` is neither safe nor enough:

* the records of the same fetch that preceded the bad batch were already taken off the iterator,
  so they are lost with the exception, and records of other partitions drained in the same call too;
* the consumer's position is left at the start of that fetch, so the next fetch returns the same
  bad batch: the exception repeats forever (and at every restart, from the committed offset);
* the exception names neither the partition nor the batch's offsets, so there is nothing to seek past.

The narrowest place that knows the partition *and* the batch is the ``PartitionRecords`` that the
fetcher builds for every fetched partition (a module attribute it looks up by name). :func:`install`
replaces it with a subclass that hands ``_unpack_records`` guarded batches: a batch that fails to
decode (or whose CRC is wrong) yields no records, so aiokafka's own loop moves
``next_fetch_offset`` to the batch's ``next_offset``, exactly as for an empty compacted batch; the
records before and after it are delivered in order. The skip is recorded as a :class:`SkippedBatch`
for the consumer that watches the topic (the worker and the senders dead-letter it by offset) and
logged at once. :func:`seam_available` lets a test fail loudly when an aiokafka upgrade moves the seam.

Faust runs its consumer in a thread of its own: skips are queued in ``collections.deque`` (whose
``append``/``popleft`` are thread-safe) and drained by the consumer's owner on its own loop.
"""

from __future__ import annotations

import importlib
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from forethought.ops.logs import get_logger

log = get_logger("batch_guard")
CODEC_NAMES = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}
FETCHER_MODULE = "aiokafka.consumer.fetcher"


@dataclass(frozen=True, slots=True)
class SkippedBatch:
    """One record batch a consumer could not decode and skipped.

    >>> b = SkippedBatch("events.errors", 2, 40, 44, "lz4", "UnsupportedCodecError: no lz4")
    >>> b.offsets, b.describe()
    (5, 'events.errors[2] offsets 40-44 (5 offsets, lz4 batch) skipped: UnsupportedCodecError: no lz4')
    """

    topic: str
    partition: int
    first_offset: int
    last_offset: int
    codec: str
    error: str

    @property
    def offsets(self) -> int:
        """How many offsets the batch spans (records removed by compaction included)."""
        return self.last_offset - self.first_offset + 1

    def describe(self) -> str:
        """One line naming the partition, the offset range, the codec and the error."""
        return (f"{self.topic}[{self.partition}] offsets {self.first_offset}-{self.last_offset} "
                f"({self.offsets} offsets, {self.codec} batch) skipped: {self.error}")


class Inbox:
    """Skipped batches of the topics one consumer watches; ``drain`` on the consumer's own loop.

    A batch fetched again in the same process (Faust seeks back to the committed offsets after a
    rebalance) is queued once: one dead letter per batch per process.

    >>> inbox = Inbox(["t"])
    >>> for _ in range(2):
    ...     inbox.put(SkippedBatch("t", 0, 5, 9, "lz4", "x"))
    >>> [b.first_offset for b in inbox.drain()], inbox.drain(), inbox.ends
    ([5], [], {('t', 0): 10})
    """

    def __init__(self, topics: Iterable[str], remember: int = 4096) -> None:
        self.topics = frozenset(topics)
        self._queue: deque[SkippedBatch] = deque()
        self._seen: deque[tuple[str, int, int]] = deque(maxlen=remember)
        #: (topic, partition) -> the offset after the last skipped batch: those offsets are consumed too
        self.ends: dict[tuple[str, int], int] = {}

    def put(self, batch: SkippedBatch) -> None:
        where = (batch.topic, batch.partition, batch.first_offset)
        partition = (batch.topic, batch.partition)
        self.ends[partition] = max(self.ends.get(partition, 0), batch.last_offset + 1)
        if where not in self._seen:
            self._seen.append(where)
            self._queue.append(batch)

    def drain(self) -> list[SkippedBatch]:
        """Every skip reported since the last drain, oldest first."""
        out = []
        while self._queue:
            out.append(self._queue.popleft())
        return out


_inboxes: list[Inbox] = []


def watch(topics: Iterable[str]) -> Inbox:
    """Install the guard (once per process) and collect the skips of ``topics`` in a new inbox."""
    install()
    inbox = Inbox(topics)
    _inboxes.append(inbox)
    return inbox


def unwatch(inbox: Inbox) -> None:
    """Stop collecting for ``inbox`` (its consumer stopped); skips are still logged."""
    if inbox in _inboxes:
        _inboxes.remove(inbox)


def report(batch: SkippedBatch) -> None:
    """Log the skip (always) and queue it for every consumer that watches its topic."""
    watchers = [inbox for inbox in list(_inboxes) if batch.topic in inbox.topics]
    log.error("undecodable_batch_skipped", topic=batch.topic, partition=batch.partition,
              first_offset=batch.first_offset, last_offset=batch.last_offset, codec=batch.codec,
              error=batch.error, reported_to=len(watchers))
    for inbox in watchers:
        inbox.put(batch)


class _GuardedBatch:
    """A fetched batch that yields nothing, and reports itself, when it cannot be decoded."""

    def __init__(self, tp: Any, batch: Any) -> None:
        self._tp, self._batch, self._bad = tp, batch, False

    def __getattr__(self, name: str) -> Any:  # base_offset, next_offset, is_control_batch, ...
        return getattr(self._batch, name)

    def validate_crc(self) -> bool:
        if not self._batch.validate_crc():
            self._reject("CorruptRecordException: invalid CRC")
        return True  # a bad batch is skipped by __iter__, not raised by the fetcher

    def __iter__(self) -> Iterator[Any]:
        if self._bad:
            return iter(())
        try:
            records = list(self._batch)  # decompresses and parses every record now
        except Exception as exc:  # noqa: BLE001 - any decode failure: codec missing, corrupt data, bad varint
            text = str(exc)  # aiokafka's errors already start with their class name
            self._reject((text if text.startswith(type(exc).__name__) else f"{type(exc).__name__}: {text}")[:500])
            return iter(())
        return iter(records)

    def __next__(self) -> Any:  # aiokafka reads control records with next(batch)
        return next(self._batch)

    def _reject(self, error: str) -> None:
        self._bad = True
        batch = self._batch
        first = int(getattr(batch, "base_offset", getattr(batch, "offset", -1)))
        last = int(getattr(batch, "next_offset", first + 1)) - 1
        codec = CODEC_NAMES.get(getattr(batch, "compression_type", -1), "unknown")
        report(SkippedBatch(self._tp.topic, self._tp.partition, first, last, codec, error))


class _GuardedRecords:
    """The fetched ``MemoryRecords`` of one partition, handing out guarded batches."""

    def __init__(self, tp: Any, records: Any) -> None:
        self._tp, self._records = tp, records

    def __getattr__(self, name: str) -> Any:
        return getattr(self._records, name)

    def has_next(self) -> bool:
        return bool(self._records.has_next())

    def next_batch(self) -> Any:
        batch = self._records.next_batch()
        return None if batch is None else _GuardedBatch(self._tp, batch)


def seam_available() -> bool:
    """Whether aiokafka still builds ``PartitionRecords(tp, records, ...)`` by module attribute."""
    module = importlib.import_module(FETCHER_MODULE)
    return isinstance(getattr(module, "PartitionRecords", None), type) and hasattr(module, "Fetcher")


def install() -> None:
    """Replace aiokafka's ``PartitionRecords`` by the guarded subclass (idempotent)."""
    module = importlib.import_module(FETCHER_MODULE)
    base = module.PartitionRecords
    if getattr(base, "forethought_guarded", False):
        return
    if not seam_available():
        raise RuntimeError(f"{FETCHER_MODULE}.PartitionRecords is gone: the undecodable-batch guard needs updating")

    class GuardedPartitionRecords(base):  # type: ignore[misc, valid-type]
        forethought_guarded = True

        def __init__(self, tp: Any, records: Any, *args: Any, **kwargs: Any) -> None:
            super().__init__(tp, _GuardedRecords(tp, records), *args, **kwargs)

    module.PartitionRecords = GuardedPartitionRecords  # type: ignore[attr-defined]  # aiokafka's fetcher, patched
