"""Ordered inputs (issue #11, point 3): what the engine sees of several co-partitioned topics."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forethought.core.ordering import PartitionGroups

TOPICS = ["clicks", "errors", "usage"]
# (topic, partition, event time or None, unfetched-flags-after)
times = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True),
                  st.floats(min_value=0, max_value=1e6, allow_nan=False))
records = st.lists(st.tuples(st.sampled_from([*TOPICS, "rogue"]), st.integers(-3, 3), times), max_size=60)


def tagged(items: list[tuple[str, int, float | None]]) -> list[tuple[str, int, float | None, int]]:
    return [(topic, partition, at, n) for n, (topic, partition, at) in enumerate(items)]


def feed(groups: PartitionGroups, items: list[tuple[str, int, float | None, int]]) -> None:
    for topic, partition, at, n in items:
        groups.add(topic, partition, at, (topic, partition, at, n))


@given(records, st.lists(st.booleans(), max_size=20), st.floats(0, 5), st.integers(1, 30))
def test_one_topic_partition_never_reorders_and_nothing_is_lost(items, lagging, max_idle, max_buffered) -> None:
    answers = iter(lagging)
    groups = PartitionGroups(TOPICS, max_idle, unfetched=lambda t, p: next(answers, True), max_buffered=max_buffered)
    out, now = [], 0.0
    for chunk in (tagged(items)[i:i + 7] for i in range(0, len(items), 7)):
        feed(groups, chunk)
        out += groups.release(now)
        now += 0.3
    assert all(group.size <= max_buffered for group in groups.groups.values())
    rest = groups.forget(list(groups.groups))
    assert Counter(out + rest) == Counter(tagged(items))
    for source in {(t, p) for t, p, _, _ in tagged(items)}:
        seen = [n for t, p, _, n in out if (t, p) == source]
        assert seen == sorted(seen)


@given(st.lists(st.tuples(st.sampled_from(TOPICS), st.integers(0, 2), st.floats(0, 1e6)), max_size=80))
def test_output_is_in_event_time_order_when_nothing_is_missing(items) -> None:
    items = sorted(items, key=lambda r: r[2])  # each topic-partition in event-time order, as Kafka keeps it
    shuffled = sorted(tagged(items), key=lambda r: r[0])  # but arriving topic by topic
    groups = PartitionGroups(TOPICS, max_idle=1.0)
    feed(groups, shuffled)
    out = groups.release(now=0.0)
    assert len(out) == len(items) and len(groups) == 0
    for partition in range(3):
        released = [at for _, p, at, _ in out if p == partition]
        assert released == sorted(released)


@given(records, st.floats(0.01, 10), st.floats(0, 100))
def test_a_wait_for_unfetched_records_is_bounded(items, max_idle, start) -> None:
    """Each wait ends after ``max_idle``; a topic-partition that drains while still lagging starts a
    wait of its own, so with nothing more arriving the buffer empties within one wait per topic."""
    groups = PartitionGroups(TOPICS, max_idle, unfetched=lambda t, p: True)
    feed(groups, tagged(items))
    out, now = groups.release(start), start
    for _ in range(len(TOPICS) + 1):  # + the rogue topic
        if not len(groups):
            break
        assert groups.wake_at() == now + max_idle
        now = groups.wake_at()
        released = groups.release(now)
        assert released, "a release once the wait is over gives records"
        out += released
    assert len(out) == len(items) and len(groups) == 0


@given(records)
def test_no_wait_releases_everything_at_once(items) -> None:
    groups = PartitionGroups(TOPICS, max_idle=0, unfetched=lambda t, p: True)
    feed(groups, tagged(items))
    assert len(groups.release(0.0)) == len(items)
    assert groups.enforced == 0


def test_a_caught_up_topic_is_not_waited_for() -> None:
    groups = PartitionGroups(TOPICS, max_idle=5.0, unfetched=lambda t, p: t == "errors" and p == 1)
    groups.add("clicks", 0, 2.0, "p0")
    groups.add("clicks", 1, 1.0, "p1")
    assert groups.release(0.0) == ["p0"]  # partition 1 waits for its errors; partition 0 does not
    assert groups.wake_at() == 5.0
    assert groups.release(4.9) == [] and groups.release(5.0) == ["p1"]
    assert groups.enforced == 1


def test_the_wait_restarts_after_the_awaited_partition_delivered() -> None:
    lagging = {("errors", 0)}
    groups = PartitionGroups(TOPICS, max_idle=1.0, unfetched=lambda t, p: (t, p) in lagging)
    groups.add("clicks", 0, 10.0, "c10")
    assert groups.release(0.0) == []
    groups.add("errors", 0, 5.0, "e5")
    lagging.clear()
    assert groups.release(0.5) == ["e5", "c10"]
    groups.add("clicks", 0, 11.0, "c11")
    lagging.add(("errors", 0))
    assert groups.release(3.0) == [] and groups.wake_at() == 4.0  # a new wait, not the old deadline


def test_records_without_an_event_time_go_first_when_they_head_their_partition() -> None:
    groups = PartitionGroups(TOPICS, max_idle=1.0)
    groups.add("clicks", 0, 5.0, "c5")
    groups.add("clicks", 0, None, "junk-after-c5")
    groups.add("errors", 0, math.nan, "junk")
    groups.add("usage", 0, 1.0, "u1")
    assert groups.release(0.0) == ["junk", "u1", "c5", "junk-after-c5"]


def test_a_full_buffer_stops_waiting() -> None:
    groups = PartitionGroups(TOPICS, max_idle=60.0, unfetched=lambda t, p: t == "errors", max_buffered=3)
    for n in range(5):
        groups.add("clicks", 0, float(n), n)
    assert groups.release(0.0) == [0, 1]
    assert len(groups) == 3 and groups.enforced == 2


def test_forgetting_a_revoked_partition_returns_its_records() -> None:
    groups = PartitionGroups(TOPICS, max_idle=60.0, unfetched=lambda t, p: True)
    groups.add("clicks", 0, 1.0, "a")
    groups.add("usage", 1, 1.0, "b")
    assert groups.forget([0, 7]) == ["a"] and len(groups) == 1


@pytest.mark.parametrize("max_idle, max_buffered", [(-1.0, 10), (math.nan, 10), (1.0, 0)])
def test_nonsense_limits_are_refused(max_idle: float, max_buffered: int) -> None:
    with pytest.raises(ValueError):
        PartitionGroups(TOPICS, max_idle, max_buffered=max_buffered)


@settings(max_examples=30)
@given(st.integers(0, 3))
def test_a_partition_that_never_gets_records_costs_one_wait(partition) -> None:
    groups = PartitionGroups(TOPICS, max_idle=1.0, unfetched=lambda t, p: t == "usage")
    groups.add("clicks", partition, 1.0, "first")
    assert groups.release(0.0) == []
    assert groups.release(1.0) == ["first"]
    groups.add("clicks", partition, 2.0, "second")  # usage still has nothing: its wait is over already
    assert groups.release(1.1) == ["second"]
