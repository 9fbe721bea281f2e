"""The running worker's state and its flush protocol (write-behind), apart from the Faust wiring.

:class:`Worker` holds what the running worker holds; :meth:`Worker.flush` is the durability
protocol: triggers on the broker, then states, then the records behind them acknowledged.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import faust
from faust.types import TP

from forethought.contracts.decode import Rejection
from forethought.core.runtime import Dirty
from forethought.ops import batch_guard
from forethought.ops.logs import get_logger
from forethought.ops.metrics import Metrics
from forethought.ops.playbooks import PlaybookSource
from forethought.ops.settings import Settings
from forethought.ops.topics import BEHAVIOUR_INPUTS
from forethought.stream.acks import acknowledge, stop_unacknowledged
from forethought.stream.index_rebuild import rebuild_cost
from forethought.stream.ordered import OrderedBatches
from forethought.stream.outputs import Outputs
from forethought.stream.processor import BatchProcessor, Outbox
from forethought.stream.recovery import Recovery

log = get_logger("worker")
FLUSH_RECORDS = 20_000  # handled records that make the write-behind flush before its interval
WRITE_CHUNK = 64  # states encoded and written between two chances for batches to run (a flush in the background)


@dataclass
class Worker:
    """Everything the running worker holds; built by :func:`build_worker`."""

    settings: Settings
    app: faust.App
    processor: BatchProcessor
    metrics: Metrics
    partitions: int
    lock: asyncio.Lock
    playbooks: PlaybookSource
    agent: faust.types.AgentT | None = None
    ordered: OrderedBatches | None = None
    outputs: Outputs | None = None
    index_stale: bool = True  # partitions were assigned since the deadline index was last rebuilt
    index_building: bool = False  # the rebuild is under way (in steps)
    failure: str | None = None
    changelog_pending: list[asyncio.Future[object]] = field(default_factory=list)  # state writes since the flush
    in_flight: list[asyncio.Future[object]] = field(default_factory=list)  # triggers etc. published since the flush
    enforced_seen: int = 0  # ordering releases already counted in the metrics
    unflushed: list[faust.EventT] = field(default_factory=list)  # handled, held until their state is flushed
    flushed_at: float = field(default_factory=time.monotonic)
    flushing: asyncio.Future[None] | None = None  # the flush under way in the background (flush_behind)
    recovery: Recovery | None = None  # the broker's reachability and recovery times (stream.recovery)

    def flush_due(self) -> bool:
        """Whether the write-behind state is due: a commit interval since the last flush, or many
        records waiting (their acknowledgement waits for it)."""
        if len(self.unflushed) >= FLUSH_RECORDS:
            return True
        waiting = self.unflushed or self.in_flight or self.processor.has_dirty()  # a sweep's too
        return bool(waiting) and time.monotonic() - self.flushed_at >= self.flush_seconds

    @property
    def flush_seconds(self) -> float:
        """How often live customer state is written to its changelog (and the records behind it acknowledged)."""
        return self.settings.state_flush_seconds or self.settings.commit_interval_seconds

    async def flush(self) -> None:
        """Flush and wait until it is done: every customer changed since the last flush written and
        on the broker, and the records handled before it acknowledged (see :meth:`flush_behind`).
        Raises when this or an earlier flush failed (nothing after the failure is acknowledged)."""
        if self.flushing is not None:
            await self.flushing
        self.flush_behind()
        if self.flushing is not None:
            await self.flushing
        if self.failure is not None:
            raise RuntimeError(f"the worker is stopping after a failure: {self.failure}")

    def flush_behind(self) -> None:
        """Start a flush and return (the caller holds the lock): batches go on while it waits for the
        broker, and run between its chunks of state writes. One flush at a time: while one is under
        way this does nothing (the next batch or timer starts the next one once it is done).

        What is flushed is fixed here, at once: the records handled so far, the triggers, dead
        letters and re-keyed records published for them, and the states they left (the runtimes'
        objects: no later record changes them, each runs on a draft). The order is the protocol:
        first every one of those triggers must be on the broker (a state that records a trigger as
        sent must never be stored while the trigger is not), then the states are written and
        awaited, then the records are acknowledged. Any failure marks the worker failed at once and
        stops it before anything is acknowledged (:func:`~forethought.stream.acks.stop_unacknowledged`):
        no later flush may store or acknowledge anything after it."""
        if self.failure is not None:
            raise RuntimeError(f"the worker is stopping after a failure: {self.failure}")
        if self.flushing is not None and not self.flushing.done():
            return
        delivered = list(self.in_flight)
        self.in_flight.clear()
        captured = self.processor.capture()
        done, self.unflushed = self.unflushed, []
        self.flushed_at = time.monotonic()
        self.flushing = asyncio.ensure_future(self._complete(delivered, captured, done))

    async def _complete(self, delivered: list[asyncio.Future[object]], captured: Dirty,
                        done: list[faust.EventT]) -> None:
        try:
            if delivered:
                await asyncio.gather(*delivered)
            if self.processor.write_models():  # the models of this cut on the broker before its states
                await self.settle()
            while True:
                self.processor.write(captured, WRITE_CHUNK)
                if not captured.states:
                    break
                await asyncio.sleep(0)  # batches run between chunks: a large flush is no long stall
            await self.settle()
        except Exception as error:  # noqa: BLE001 - stop before acknowledging (as a failed batch)
            self.failure = self.failure or f"{type(error).__name__}: {error}"[:500]
            await stop_unacknowledged(self, done, error)
            return
        if self.failure is None:
            acknowledge(done)

    async def last_flush(self) -> None:
        """At a clean stop: flush what was handled, so Faust's final commit covers it (a failure
        here only costs a re-read after the restart: the records stay unacknowledged)."""
        try:
            async with self.lock:
                pending = self.flushing is not None and not self.flushing.done()
                if self.failure is None and (pending or self.unflushed or self.in_flight or self.processor.has_dirty()):
                    await self.flush()
                    log.info("state_flushed_at_stop")
        except Exception as error:  # noqa: BLE001 - stopping anyway; nothing unflushed was acknowledged
            log.warning("last_flush_failed", error=f"{type(error).__name__}: {error}"[:500])

    async def settle(self) -> None:
        """Wait until every state and profile write since the last call is on the broker.

        Faust sends table changes to their changelogs in the background and only logs a failed send
        (the offsets of the batch behind it would then be committed all the same); awaiting each write
        turns a failed one into an exception before the batch is acknowledged.
        """
        pending = list(self.changelog_pending)  # in place: track_changelog appends to this very list
        self.changelog_pending.clear()
        if pending:
            await asyncio.gather(*pending)

    @property
    def index_ready(self) -> bool:
        """Whether the deadline index covers every held customer (``/ready`` waits for it)."""
        return not self.index_stale and not self.index_building

    async def rebuild_index(self) -> int:
        """Rebuild the held partitions' deadline index from the store (the caller holds ``lock``),
        in steps so the consumer's heartbeats go on; logs ``deadline_index_rebuilt`` with its wall
        and CPU seconds. An assignment while it runs marks the index stale again."""
        await self.flush()  # the rebuild replaces the live states
        started, count = (time.monotonic(), time.process_time()), 0
        self.index_stale, self.index_building = False, True
        try:
            for count in self.processor.rebuilding(self.owner()):  # noqa: B007 - the last count is logged
                await asyncio.sleep(0)
        finally:
            self.index_building = False
        log.info("deadline_index_rebuilt", customers=count, hinted=self.processor.rebuilt.hinted,
                 decoded=self.processor.rebuilt.decoded, **rebuild_cost(started))
        return count

    def owner(self) -> Callable[[bytes], bool]:
        """A test of "this worker holds the active partition of ``key``", as of this assignment."""
        actives = self.input_partitions(self.app.assignor.assigned_actives())
        return lambda key: self.processor.partition_for(key) in actives

    def input_partitions(self, tps: Iterable[TP]) -> set[int]:
        """The partitions of the behaviour inputs among ``tps`` (all inputs share partition numbers)."""
        topic = self.settings.topic(BEHAVIOUR_INPUTS[0])
        return {tp.partition for tp in tps if tp.topic == topic}

    def release_models(self, revoked: Iterable[TP]) -> None:
        """Partitions are leaving this worker: checkpoint their models, then forget them (a
        partition assigned again is restored from its checkpoint, which may be another worker's)."""
        partitions = self.input_partitions(revoked)
        self.processor.checkpoint_models(partitions)
        self.processor.forget_models(partitions)

    @staticmethod
    def undecodable(batches: list[batch_guard.SkippedBatch]) -> Outbox:
        """Dead letters (reason ``undecodable_batch``) for batches the fetcher skipped, located by offset."""
        now = time.time()
        return Outbox(deadletters=[
            Rejection("undecodable_batch", batch.describe()).dead_letter(
                source=batch.topic, partition=batch.partition, offset=batch.first_offset, key=None, value=b"", at=now)
            for batch in batches
        ])

    def skip_past(self, skipped: batch_guard.Inbox) -> None:
        """Count skipped offsets as processed, so a partition that ends in an undecodable batch is not
        "still pending" forever (which would hold its stream clock). Call after ``processor.handle``,
        which sets the processed offset of the records it sees."""
        processed = self.processor.processed
        for where, end in list(skipped.ends.items()):
            processed[where] = max(processed.get(where, 0), end)

    def reload_playbooks(self, force: bool = False) -> bool | None:
        """Pick up a changed playbook file; an invalid one keeps the running playbooks."""
        result = self.playbooks.refresh(force)
        if result is True:
            self.processor.rules = self.playbooks.rules
            self.metrics.playbook_reloads.labels(result="loaded").inc()
            log.info("playbooks_reloaded", file=str(self.playbooks.path), playbooks=len(self.playbooks.rules.playbooks))
        elif result is False:
            self.metrics.playbook_reloads.labels(result="rejected").inc()
            log.error("playbooks_rejected", file=str(self.playbooks.path), error=self.playbooks.error,
                      kept=len(self.processor.rules.playbooks))
        count_playbooks(self)
        return result


def count_playbooks(worker: Worker) -> None:
    """The playbooks gauge: how many live and shadow playbooks run."""
    for mode in ("live", "shadow"):
        running = [p for p in worker.processor.rules.playbooks if p.mode == mode]
        worker.metrics.playbooks.labels(mode=mode).set(len(running))
