"""The deadline index rebuilt from the local store after a restart or a rebalance (a mixin of
:class:`~forethought.stream.processor.BatchProcessor`).

Due looks (silence, daily, churn...) fire from each partition's
:class:`~forethought.core.deadlines.DeadlineIndex`, which lives in memory only: after a start or a
rebalance every stored state of the held partitions must be read once. Reading is cheap, decoding
is not, so each state written also writes a *due hint* (:func:`~forethought.stream.state_store.due_hint`:
next due, last event time, CRC-32 of the state's exact bytes). The rebuild:

1. reads each held partition's RocksDB database straight through the binding (raw bytes, no Faust
   layers; the partition is the database's, no key is hashed), in chunks of ``step`` rows;
2. fetches the chunk's hints in one multi-get and believes a hint only when its CRC matches the
   stored bytes, the engine settings and the release (``hint_seed``); any other state (restored
   from the changelog tail, written by another version or under other settings, a corrupt hint)
   is decoded as before and gets its hint again;
3. collects the believed deadlines and builds each partition's index in one bulk operation
   (one heapify instead of a push per customer), and moves the partition's clock once, to its
   newest event time.

It yields between chunks so the caller's event loop (consumer heartbeats) goes on. The worker
reports ``/ready`` only once it has finished (``stream.web.readiness``): a ready worker fires the
due looks of every customer it holds. A memory table (tests) is read the same way, grouped by
partition first.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import islice

from forethought.contracts.decode import describe
from forethought.core.clock import EventClock
from forethought.core.config import EngineConfig
from forethought.core.runtime import PartitionRuntime
from forethought.core.state import CustomerState
from forethought.core.summary import Summary
from forethought.ops.logs import get_logger
from forethought.ops.metrics import Metrics
from forethought.stream.state_store import HINT, due_hint, hint_seed
from forethought.stream.table_store import DueHints, held_partitions

engine_log = get_logger("engine")
Row = tuple[bytes, bytes]  # a stored state: key bytes, state bytes
HINT_SIZE = HINT.size
DECODE_STEP = 512  # states decoded between two yields (a chunk of hinted rows costs far less)
_unpack = HINT.unpack


@dataclass(slots=True)
class Restored:
    """What one partition's rebuild gathered from hints: each due customer's deadline and the
    newest event time (``-inf``: none yet), applied at once by :meth:`apply`."""

    dues: dict[str, float] = field(default_factory=dict)
    newest: float = -math.inf

    def apply(self, runtime: PartitionRuntime, clock: Callable[[], EventClock]) -> None:
        """Put the gathered deadlines into ``runtime``'s index (in bulk) and the newest time on its
        restored-time clock (``clock()``: made only when there is a time to put on it)."""
        newest = None if self.newest == -math.inf else self.newest
        runtime.restore_dues(self.dues, newest)
        if newest is not None:
            clock().observe(newest, time.time())

    @property
    def empty(self) -> bool:
        """Nothing was gathered: no deadline and no event time (a partition with no stored state)."""
        return not self.dues and self.newest == -math.inf


def believe_hints(rows: Sequence[Row], hints: Sequence[bytes | None], restored: Restored, seed: int) -> list[Row]:
    """Take into ``restored`` every row whose hint was written for its exact bytes (the CRC-32
    from ``seed``: :func:`~forethought.stream.state_store.hint_seed`); return the others.

    >>> from forethought.core.config import EngineConfig
    >>> state = CustomerState.new("c1", EngineConfig())
    >>> raw = state.to_bytes()
    >>> hint = HINT.pack(50.0, 40.0, zlib.crc32(raw, 7))
    >>> restored = Restored()
    >>> others = believe_hints([(b"c1", raw), (b"c2", raw), (b"c3", raw + b"x")], [hint, None, hint], restored, 7)
    >>> [key for key, _ in others]   # no hint; a hint written for other bytes
    [b'c2', b'c3']
    >>> restored
    Restored(dues={'c1': 50.0}, newest=40.0)
    """
    others: list[Row] = []
    dues, newest, crc32 = restored.dues, restored.newest, zlib.crc32
    for row, hint in zip(rows, hints, strict=True):
        if hint is not None and len(hint) == HINT_SIZE:
            due, seen, crc = _unpack(hint)
            if crc == crc32(row[1], seed):
                if due == due:  # not NaN: something is due
                    dues[row[0].decode()] = due
                if seen > newest:  # NaN (no event yet) compares false
                    newest = seen
                continue
        others.append(row)
    restored.newest = newest
    return others


def hints_for(hints: MutableMapping[bytes, bytes] | None, keys: list[bytes]) -> list[bytes | None]:
    """The hints of ``keys`` (None each when there is no hint store): one multi-get on RocksDB."""
    if hints is None:
        return [None] * len(keys)
    if isinstance(hints, DueHints):
        return hints.get_many(keys)
    return [hints.get(key) for key in keys]


@dataclass(frozen=True, slots=True)
class Rebuilt:
    """How the last rebuild restored the stored states: from their hint, or decoded (unreadable
    ones are neither: they are logged and counted in ``forethought_processing_errors``)."""

    hinted: int = 0
    decoded: int = 0


class IndexRebuild:
    """The rebuild side of ``BatchProcessor`` (see the module docstring)."""

    rebuilt: Rebuilt = Rebuilt()

    config: EngineConfig
    metrics: Metrics
    table: MutableMapping[bytes, bytes]
    table_on_disk: bool
    due_hints: MutableMapping[bytes, bytes] | None
    runtimes: dict[int, PartitionRuntime]
    partition_for: Callable[[bytes], int]

    def runtime(self, partition: int) -> PartitionRuntime:
        raise NotImplementedError

    def clock(self, topic: str, partition: int) -> EventClock:
        raise NotImplementedError

    def load(self, raw: bytes) -> CustomerState | Summary:
        raise NotImplementedError

    def restore_clocks(self) -> None:
        raise NotImplementedError

    def rebuild_index(self, owns: Callable[[bytes], bool]) -> int:
        """After a restart or rebalance: every owned stored state into its partition's runtime
        (deadlines, and the clock at its newest event). Commit first: held runtimes are replaced.

        A stored state that cannot be loaded (forged or corrupted in the changelog, or written by
        an incompatible version) is skipped, logged and counted (``stage="restore"``): it gets no
        deadline, and each record of its customer is dead-lettered until the state is replaced.
        """
        *_, count = self.rebuilding(owns)
        return count

    def rebuilding(self, owns: Callable[[bytes], bool], step: int = 4_096) -> Iterator[int]:
        """:meth:`rebuild_index` in steps: yields how many states it has restored after every
        ``step`` stored states read, and at the end. Beyond the runtimes' capacity only the
        deadline of a state stays in memory."""
        self.runtimes = {}
        hinted = decoded = 0
        seed = hint_seed(self.config)
        for partition, rows in self._stored_partitions(owns):
            restored = Restored()
            while chunk := list(islice(rows, step)):
                others = believe_hints(chunk, hints_for(self.due_hints, [key for key, _ in chunk]), restored, seed)
                hinted += len(chunk) - len(others)
                for start in range(0, len(others), DECODE_STEP):  # ~85 µs a state: yield more often
                    decoded += self._decode(partition, others[start:start + DECODE_STEP], restored)
                    yield hinted + decoded
                yield hinted + decoded
            if not restored.empty:  # a partition with no stored state gets no runtime and no restored-time
                # clock here: an empty clock would take part in its stream time, unlike in replay
                restored.apply(self.runtime(partition), partial(self.clock, "", partition))
        self.rebuilt = Rebuilt(hinted, decoded)
        self.restore_clocks()  # the clock of the models' checkpoint, the flush's cut (model_checkpoints)
        yield hinted + decoded

    def _stored_partitions(self, owns: Callable[[bytes], bool]) -> Iterator[tuple[int, Iterator[Row]]]:
        """Each held partition's stored states: straight from its RocksDB database (only the held
        partitions are open), or from the memory table grouped by partition (copied first: it may
        change meanwhile)."""
        held = held_partitions(self.table) if self.table_on_disk else None
        if held is not None:
            for partition, rows in held:
                yield partition, iter(rows)
            return
        grouped: dict[int, list[Row]] = {}
        for key, raw in list(self.table.items()):
            if owns(key):
                grouped.setdefault(self.partition_for(key), []).append((key, raw))
        for partition, stored in grouped.items():
            yield partition, iter(stored)

    def _decode(self, partition: int, rows: Iterable[Row], restored: Restored) -> int:
        """Decode the states no hint vouched for (each gets its hint for the next rebuild); returns
        how many were restored (an unreadable one is logged and counted instead)."""
        count = 0
        for key, raw in rows:
            try:
                state = self.load(raw)
                self.runtime(partition).restore([state])
                if self.due_hints is not None and isinstance(state, CustomerState):
                    self.due_hints[key] = due_hint(state, raw, self.config)
            except Exception as error:  # noqa: BLE001 - one unreadable state never stops a restart
                self.metrics.processing_errors.labels(stage="restore").inc()
                engine_log.error("state_unreadable", customer_id=key.decode(errors="replace"),
                                 error_type=type(error).__name__, error=describe(error), bytes=len(raw))
                continue
            if state.last_seen is not None and state.last_seen > restored.newest:
                restored.newest = state.last_seen
            count += 1
        return count


def rebuild_cost(started: tuple[float, float]) -> dict[str, float]:
    """Wall and CPU seconds since ``started`` (``(time.monotonic(), time.process_time())``), for the log.

    >>> sorted(rebuild_cost((time.monotonic(), time.process_time())))
    ['cpu_seconds', 'seconds']
    """
    return {"seconds": round(time.monotonic() - started[0], 3),
            "cpu_seconds": round(time.process_time() - started[1], 3)}

