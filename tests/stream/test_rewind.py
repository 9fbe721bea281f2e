"""The worker's consumer reads again, after a rebalance, the records it dropped on an input partition
nobody has committed yet (issue #12, the ``join-leave`` chaos loss; docs/runtime/ordered-inputs.md).

Faust's own ``Consumer.perform_seek`` (what it runs after every rebalance) is driven here; only its
consumer thread, which talks to the broker, is replaced by a recorder. What aiokafka does with
those calls is tested against the real broker in tests/integration/test_rewind_uncommitted.py.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from aiokafka.structs import ConsumerRecord
from faust.types import TP

from forethought.ops.settings import Settings
from forethought.stream.worker import build_worker


class Thread:
    """The consumer thread's answers: ``committed`` offsets; records what is sought to the beginning."""

    def __init__(self, committed: dict[TP, int | None]) -> None:
        self.committed, self.to_beginning = committed, list[TP]()

    async def seek_to_committed(self) -> dict[TP, int | None]:
        return dict(self.committed)

    async def seek_to_beginning(self, *partitions: TP) -> None:
        self.to_beginning.extend(partitions)


async def test_after_a_rebalance_an_input_partition_with_no_commit_is_read_again_from_its_beginning() -> None:
    worker = build_worker(Settings(topic_prefix="t."))
    consumer: Any = worker.app.consumer
    usage, clicks = TP("t.events.usage", 0), TP("t.events.clickstream", 0)
    changelog = TP(f"{worker.app.conf.id}-customer_state-changelog", 0)
    thread = consumer._thread = Thread({usage: None, clicks: 7, changelog: None})
    consumer._read_offset[usage] = 0  # Faust delivered offset 0 (dropped around the rebalance)
    consumer._read_offset[clicks] = 12

    await consumer.perform_seek()

    assert thread.to_beginning == [usage], "only the input partition with no commit; changelogs are the recovery's"
    assert consumer._read_offset[usage] is None, "Faust lets its records through again"
    assert consumer._read_offset[clicks] == 7


async def test_input_partitions_all_committed_are_only_sought_to_their_commits() -> None:
    worker = build_worker(Settings(topic_prefix="t."))
    consumer: Any = worker.app.consumer
    thread = consumer._thread = Thread({TP("t.events.usage", 0): 3, TP("t.events.errors", 1): 1})
    await consumer.perform_seek()
    assert thread.to_beginning == []


class WatchedThread(Thread):
    """Also notes whether Faust's flow was on when the seek reached the broker."""

    def __init__(self, consumer: Any, committed: dict[TP, int | None]) -> None:
        super().__init__(committed)
        self.consumer, self.flow_during_seek = consumer, list[bool]()

    async def seek_to_committed(self) -> dict[TP, int | None]:
        self.flow_during_seek.append(self.consumer.flow_active)
        return await super().seek_to_committed()


async def test_no_record_is_handed_out_while_faust_seeks_to_the_committed_offsets() -> None:
    """At the end of a rebalance that restored a table, Faust seeks with its flow on (it was turned on for
    the changelogs): its delivery loop then marked records of the new fetch as already read, and one was
    never processed while the commit passed it (the join-leave chaos loss). The seek runs with the flow
    stopped, and the flow is on again after it."""
    worker = build_worker(Settings(topic_prefix="t."))
    consumer: Any = worker.app.consumer
    thread = consumer._thread = WatchedThread(consumer, {TP("t.events.usage", 1): 289})
    consumer.resume_flow()  # as during a table recovery
    consumer._read_offset[TP("t.events.usage", 1)] = 317  # Faust handed out records past the commit

    await consumer.perform_seek()

    assert thread.flow_during_seek == [False], "the delivery loop was stopped while the seek ran"
    assert consumer.flow_active, "the flow is on again afterwards"
    assert consumer._read_offset[TP("t.events.usage", 1)] == 289, "everything after the commit is read again"


async def test_a_seek_while_the_flow_is_stopped_leaves_it_stopped() -> None:
    worker = build_worker(Settings(topic_prefix="t."))
    consumer: Any = worker.app.consumer
    consumer._thread = WatchedThread(consumer, {TP("t.events.usage", 0): 5})
    consumer.stop_flow()  # a rebalance: Faust turns the flow on itself when it is over
    await consumer.perform_seek()
    assert not consumer.flow_active


class FetchingThread(Thread):
    """A consumer thread that serves fetches: ``fetches`` in turn (then nothing), from ``position`` on."""

    def __init__(self, tp: TP, committed: int, records: int) -> None:
        super().__init__({tp: committed})
        self.tp, self.log, self.position = tp, list[int](), 0
        self.records = [ConsumerRecord(tp.topic, tp.partition, offset, 0, 0, b"k", b"v", None, 1, 1, ())
                        for offset in range(records)]

    def assignment(self) -> set[TP]:
        return {self.tp}

    def highwater(self, tp: TP) -> int:
        return len(self.records)

    async def getmany(self, active_partitions: Any, timeout: float) -> dict[TP, list[ConsumerRecord]]:
        await asyncio.sleep(0.01)
        batch, self.position = self.records[self.position:self.position + 10], self.position + 10
        return {self.tp: batch} if batch else {}

    async def seek_to_committed(self) -> dict[TP, int | None]:
        self.position = self.committed[self.tp] or 0  # the broker's fetch position goes back
        return await super().seek_to_committed()


async def test_a_seek_waits_for_the_record_being_handed_out_so_no_later_record_is_lost() -> None:
    """Faust's delivery loop marks a record read only after handing it out, and before that it may await a
    commit (the broker: any number of event-loop turns, more under load). A seek that lands meanwhile is
    undone by that mark: the records of the next fetch below it are dropped as already read (the
    join-leave loss under load). Driven with Faust's own delivery loop and a consumer thread that serves
    30 records: the commit before record 12 is slow while the seek back to the committed offset 8 runs;
    after the seek, the records must come again from 8."""
    worker = build_worker(Settings(topic_prefix="t."))
    consumer: Any = worker.app.consumer
    tp = TP("t.events.usage", 0)
    consumer._thread = FetchingThread(tp, committed=8, records=30)
    broker_answers, committing, delivered = asyncio.Event(), asyncio.Event(), list[int]()

    async def hand_out(message: Any) -> None:
        delivered.append(message.offset)
        if message.offset == 11:
            consumer._n_acked = 1  # the next record waits for a commit first

    async def commit(*_: Any, **__: Any) -> bool:
        committing.set()
        await broker_answers.wait()
        return True

    consumer.callback, consumer.commit = hand_out, commit
    consumer._commit_every, consumer._n_acked = 1, 0  # a commit once a record is acknowledged (none is here)
    consumer._set_active_tps({tp})  # as Faust's on_partitions_assigned does
    consumer.resume_flow()
    fetcher = SimpleNamespace(_stopped=asyncio.Event())
    loop = asyncio.create_task(consumer._drain_messages(fetcher))
    await asyncio.wait_for(committing.wait(), 10)
    seek = asyncio.create_task(consumer.perform_seek())  # the rebalance ends during the commit
    for _ in range(50):  # far more turns than a quiet machine needs
        await asyncio.sleep(0)
    broker_answers.set()
    await asyncio.wait_for(seek, 10)
    sought_at = len(delivered)
    while not delivered or delivered[-1] != 29:
        await asyncio.sleep(0.01)
    fetcher._stopped.set()
    await asyncio.wait_for(loop, 10)
    after = delivered[sought_at:]
    assert after[:1] == [8] and set(range(8, 30)) <= set(after), f"read again from the commit, no hole: {after}"
