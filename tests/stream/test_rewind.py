"""The worker's consumer reads again, after a rebalance, the records it dropped on an input partition
nobody has committed yet (issue #12, the ``join-leave`` chaos loss; docs/runtime/ordered-inputs.md).

Faust's own ``Consumer.perform_seek`` (what it runs after every rebalance) is driven here; only its
consumer thread, which talks to the broker, is replaced by a recorder. What aiokafka does with
those calls is tested against the real broker in tests/integration/test_rewind_uncommitted.py.
"""

from __future__ import annotations

from typing import Any

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
