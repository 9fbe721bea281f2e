"""BucketRing against a dict-based reference model.

The model keeps every amount ever added per bucket and the newest bucket seen; a ring of
``size`` buckets must report exactly the sums for buckets in ``(head - size, head]`` and 0
elsewhere, must call an add "late" exactly when its bucket had already fallen off the ring,
and must hand back the buckets that closed when its head moves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from forethought.core.windows import BucketRing

MAX_BUCKET = 40
PROPERTY_SETTINGS = settings(max_examples=200, deadline=None)


@dataclass
class Reference:
    """The obvious model: a dict of sums and the newest bucket seen."""

    size: int
    head: int | None = None
    sums: dict[int, float] = field(default_factory=dict)

    def count(self, bucket: int) -> float:
        if self.head is None or not self.head - self.size < bucket <= self.head:
            return 0.0
        return self.sums.get(bucket, 0.0)

    def add(self, bucket: int, amount: float) -> str:
        late = self.head is not None and bucket <= self.head - self.size
        if not late:
            self.head = bucket if self.head is None else max(self.head, bucket)
        self.sums[bucket] = self.sums.get(bucket, 0.0) + amount
        return "late" if late else "ok"

    def advance(self, bucket: int, max_closed: int | None) -> list[tuple[int, float]]:
        if self.head is None:
            self.head = bucket
            return []
        if bucket <= self.head:
            return []
        closed = [(b, self.count(b)) for b in range(self.head, bucket)]
        limit = self.size if max_closed is None else max_closed
        self.head = bucket
        return closed[len(closed) - min(limit, len(closed)) :]

    def total(self, last: int | None) -> float:
        if self.head is None:
            return 0.0
        span = self.size if last is None else min(last, self.size)
        return sum(self.count(b) for b in range(self.head - span + 1, self.head + 1))


# Quarter amounts keep every sum exact, so equality needs no tolerance.
amounts = st.integers(min_value=1, max_value=40).map(lambda k: k / 4)
buckets = st.integers(min_value=0, max_value=MAX_BUCKET)
adds = st.tuples(st.just("add"), buckets, amounts)
advances = st.tuples(st.just("advance"), buckets, st.none() | st.integers(min_value=0, max_value=10))
operations = st.lists(st.one_of(adds, advances), max_size=60)
sizes = st.integers(min_value=1, max_value=8)


def assert_same_counts(ring: BucketRing, ref: Reference) -> None:
    for bucket in range(-1, MAX_BUCKET + ref.size + 2):
        assert ring.count(bucket) == ref.count(bucket), f"bucket {bucket}"


@PROPERTY_SETTINGS
@given(size=sizes, ops=operations)
def test_ring_agrees_with_reference_model(size: int, ops: list[tuple]) -> None:
    ring, ref = BucketRing.empty(size), Reference(size)
    for kind, bucket, arg in ops:
        if kind == "add":
            assert ring.add(bucket, arg) == ref.add(bucket, arg), (kind, bucket)
        else:
            assert ring.advance(bucket, arg) == ref.advance(bucket, arg), (kind, bucket, arg)
        assert ring.head == (-1 if ref.head is None else ref.head)
        assert_same_counts(ring, ref)


@PROPERTY_SETTINGS
@given(size=sizes, ops=st.lists(adds, max_size=60), last=st.none() | st.integers(0, 12))
def test_total_is_the_sum_of_the_newest_buckets(
    size: int, ops: list[tuple], last: int | None
) -> None:
    ring, ref = BucketRing.empty(size), Reference(size)
    for _, bucket, amount in ops:
        ring.add(bucket, amount)
        ref.add(bucket, amount)
        assert ring.total(last) == ref.total(last)
        assert ring.total() == ref.total(None)


@PROPERTY_SETTINGS
@given(size=sizes, ops=operations)
def test_to_list_from_list_round_trips(size: int, ops: list[tuple]) -> None:
    ring = BucketRing.empty(size)
    for kind, bucket, arg in ops:
        ring.add(bucket, arg) if kind == "add" else ring.advance(bucket, arg)
        restored = BucketRing.from_list(size, ring.to_list())
        assert restored == ring
        assert restored.to_list() == ring.to_list()
        assert [restored.count(b) for b in range(MAX_BUCKET + 1)] == [
            ring.count(b) for b in range(MAX_BUCKET + 1)
        ]


def test_add_reports_late_only_once_the_bucket_left_the_ring() -> None:
    ring = BucketRing.empty(size=5)
    assert ring.add(100, 1) == "ok"
    assert ring.add(96, 1) == "ok"  # oldest bucket still inside (95, 100]
    assert ring.add(95, 1) == "late"  # just fell off
    assert ring.count(95) == 0 and ring.count(96) == 1 and ring.total() == 2


def test_long_gap_closes_at_most_max_closed_buckets_and_clears_the_ring() -> None:
    ring = BucketRing.empty(size=4)
    ring.add(10, 3)
    closed = ring.advance(1_000, max_closed=2)
    assert closed == [(998, 0.0), (999, 0.0)]
    assert ring.total() == 0 and ring.head == 1_000


def test_compact_form_drops_trailing_zeros_and_keeps_integers_as_ints() -> None:
    ring = BucketRing.empty(size=6)
    ring.add(20, 2)
    ring.add(22, 0.5)
    assert ring.to_list() == [22, 0.5, 0, 2]
    assert BucketRing.empty(size=6).to_list() == [-1]
