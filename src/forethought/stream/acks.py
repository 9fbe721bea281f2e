"""What the worker acknowledges to Kafka, and when: only batches whose effects are on the broker.

Faust's ``take_events`` acknowledges a batch in a ``finally``, whatever happened to it; these
helpers make that acknowledgement true (:func:`finish_batch`), or keep it from happening
(:func:`stop_unacknowledged`), and let a batch wait for its table writes (:func:`track_changelog`).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Iterable
from typing import Protocol

import faust

from forethought.ops.logs import get_logger

log = get_logger("worker")
_held: weakref.WeakSet[faust.types.Message] = weakref.WeakSet()  # every message the worker took in (hold)


class Stoppable(Protocol):
    """What :func:`stop_unacknowledged` needs of the worker (:class:`forethought.stream.worker.Worker`)."""

    app: faust.App
    failure: str | None


async def finish_batch(work: asyncio.Future[None]) -> None:
    """Await the batch in hand to its end even when the agent is cancelled meanwhile (Faust cancels
    agents when it stops): the cancel goes through only after the batch's triggers and state are on
    the broker, because ``take_events`` acknowledges the batch as the cancel passes through it.
    A batch that then fails raises as usual (and is not acknowledged: :func:`stop_unacknowledged`).
    """
    try:
        await asyncio.shield(work)
    except asyncio.CancelledError:
        await work
        raise


async def stop_unacknowledged(worker: Stoppable, events: Iterable[faust.EventT], error: BaseException) -> None:
    """Stop the worker after a failure outside one record, without acknowledging ``events`` or
    anything read after them.

    Faust's ``take_events`` acknowledges every event of a batch in a ``finally``, even when the
    batch failed; and once the agent stops, the stream goes on draining (and acknowledging) what
    was already fetched. Faust then commits the first unbroken run of acknowledged offsets, even
    one that starts after a gap, so one acknowledged later record would commit past the failed
    batch. So the consumer is fenced: from here on its ``ack`` refuses every message, and the
    failed batch's messages are marked acknowledged without telling it (a no-op ``finally``). The
    committed position stays before the failed batch and a restarted worker reads it again. Then
    the app crashes: ``/health`` answers 503 until the process exits with a non-zero code.
    """
    consumer = worker.app.consumer
    consumer.ack = lambda message: False  # type: ignore[method-assign]  # the fence: nothing more becomes committable
    held = list(events)
    for event in held:
        event.message.acked = True  # not consumer.ack(): that is what would make the offset committable
    worker.failure = worker.failure or f"{type(error).__name__}: {error}"[:500]  # the first failure is the cause
    first = {f"{e.message.topic}/{e.message.partition}": e.message.offset for e in reversed(held)}
    log.critical("worker_stopping", reason="a send or a state write failed; the batch is not acknowledged and"
                 " will be read again after a restart", error=worker.failure, events=len(held),
                 first_unacknowledged=first, exc_info=error)
    await worker.app.crash(error)


def track_changelog(table: object, pending: list[asyncio.Future[object]]) -> None:
    """Keep the future of each changelog write of ``table`` in ``pending`` (see :meth:`Worker.settle`)."""
    send = table.send_changelog  # type: ignore[attr-defined]

    def send_tracked(*args: object, **kwargs: object) -> asyncio.Future[object]:
        future: asyncio.Future[object] = send(*args, **kwargs)
        pending.append(future)
        return future

    table.send_changelog = send_tracked  # type: ignore[attr-defined]


def hold(events: Iterable[faust.EventT]) -> None:
    """Keep ``events`` from being acknowledged by ``take_events`` (which acks each batch it yields).

    Each message gets one more reference; :func:`acknowledge` takes it back. A held message's
    offset is never committed, so records buffered for ordering, or processed but whose state is
    not on the broker yet, are read again after a crash.

    Faust commits the first run of acknowledged offsets without checking that it starts right after
    the committed one (``Consumer._new_offset``), so acknowledge each topic-partition's messages in
    offset order, never one while an earlier message of the same partition is still held.
    """
    for event in events:
        event.message.incref()
        _held.add(event.message)


def acknowledge(events: Iterable[faust.EventT]) -> None:
    """Give back the references :func:`hold` took: each message becomes committable once no one
    else holds it. Call in offset order per topic-partition (see :func:`hold`)."""
    for event in events:
        event.ack()


def refuse_stale_acks(app: faust.App, inputs: Iterable[str] = ()) -> None:
    """Make an acknowledgement while a rebalance holds the flow, of a message read before the last
    rebalance, or of a message of ``inputs`` the worker never took in (:func:`hold`), a no-op.

    The last: at a clean stop Faust cancels the agent and its stream goes on draining what was
    fetched, acknowledging each record it skips; with the stop exemption below, such a record became
    committable although no batch ever held it, and the final commit passed it (the next owner of the
    partition started after it: the ``join-leave`` chaos loss of 2026-12-07, docs/chaos.md).

    At a rebalance Faust forgets the acknowledged offsets of the revoked partitions and, once they are
    assigned again, reads every partition again from its committed offset; but it still acknowledges
    the messages that reach a stream meanwhile (it skips them, and acks what it skips), and a batch
    finishing then acknowledges its own. Such an acknowledgement lands in the new generation's
    bookkeeping, and once the new generation's acknowledged offsets reach it, Faust commits past it,
    although its new copy may not be processed yet (it may wait in the ordering buffer): a crash then
    loses it. Refused, the offset only becomes committable when its new copy is processed.

    A clean stop suspends the flow as well, before Faust stops the agent and makes its final commit;
    a flush finishing meanwhile, the last flush included, must be acknowledged (``app.should_stop``:
    mode sets it before the stop begins), or the final commit misses its records and the restart
    reads them all again.
    """
    consumer = app.consumer
    ack = consumer.ack
    topics = frozenset(inputs)

    def current_only(message: faust.types.Message) -> bool:
        if message.topic in topics and message not in _held:
            return False  # not processed by the worker: Faust skipped it (read again by the next owner)
        generation = getattr(message, "generation_id", None)
        if generation not in (None, app.consumer_generation_id):
            return False
        if not app.flow_control.is_active() and not app.should_stop:  # a rebalance
            return False  # (a clean stop suspends the flow too: a flush finishing then acknowledges)
        return ack(message)

    consumer.ack = current_only  # type: ignore[method-assign]
