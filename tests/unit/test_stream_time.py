"""Stream time per partition: a topic that lags holds the clock back; caught-up topics do not."""

from __future__ import annotations

from forethought.core.config import EngineConfig
from forethought.ops.metrics import Metrics
from forethought.stream.processor import BatchProcessor


def processor(pending: set[tuple[str, int]]) -> BatchProcessor:
    return BatchProcessor(EngineConfig(), {}, {}, Metrics(), idle_grace=10.0,
                          pending=lambda topic, partition: (topic, partition) in pending)


def test_a_lagging_topic_holds_back_its_partitions_stream_time() -> None:
    lagging = {("errors", 0)}
    proc = processor(lagging)
    proc.clock("clicks", 0).observe(5_000.0, wall=100.0)
    proc.clock("errors", 0).observe(1_000.0, wall=100.0)
    assert proc.stream_time(0, wall=100.0) == 1_000.0
    lagging.clear()  # the errors backlog has been drained
    assert proc.stream_time(0, wall=100.0) == 5_000.0


def test_a_sparse_topic_that_is_caught_up_does_not_hold_the_clock_back() -> None:
    proc = processor(set())
    proc.clock("clicks", 0).observe(5_000.0, wall=100.0)
    proc.clock("errors", 0).observe(1_000.0, wall=100.0)  # last error long ago, nothing pending
    assert proc.stream_time(0, wall=100.0) == 5_000.0
    assert proc.stream_time(0, wall=150.0) == 5_040.0  # idle for 50 s, 10 s grace


def test_partitions_keep_separate_time_and_an_unseen_partition_has_none() -> None:
    proc = processor(set())
    proc.clock("clicks", 0).observe(5_000.0, wall=100.0)
    proc.clock("clicks", 1).observe(2_000.0, wall=100.0)
    assert (proc.stream_time(0, 100.0), proc.stream_time(1, 100.0), proc.stream_time(2, 100.0)) == (5_000.0, 2_000.0, None)


def test_a_clock_that_has_seen_no_event_does_not_move_its_partition_to_the_wall_clock() -> None:
    proc = processor(set())
    proc.clock("", 0)  # e.g. a restored-time clock created before any time was known
    assert proc.stream_time(0, wall=1_000_000.0) is None
    proc.clock("clicks", 0).observe(5_000.0, wall=100.0)
    assert proc.stream_time(0, wall=100.0) == 5_000.0
