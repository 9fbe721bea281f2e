"""A crash at every point of a small stream: the churn prior restarted from the store learns what an
undisturbed run learns (its left-truncation decision must not read a profile table ahead of the records).

As in ``test_crash_points``: the crash leaves the profiles and states of the last complete flush, the
profiles of the flush under way (written before its states) and none of its states, and an offset commit
that lags the flushes; here the store also keeps the partition's model checkpoint of each complete flush
(the one a restart takes: docs/durability.md). Three customers reach their sampling look (at one day of
age here): ``early`` sends a profile with an old signup date between their events, before the look,
and another after it; ``late`` sends theirs only after their look (so the undisturbed prior learns them);
``first`` sends theirs before any event. A restart that re-runs ``late``'s look with their profile already
restored must still let them teach the prior, and one that re-runs ``early``'s first profile with their
second already in the table must still give it to their state.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime

import pytest
from crash_kit import Store, feed

from forethought.contracts.events import PageView
from forethought.contracts.records import Profile
from forethought.core.config import EngineConfig
from forethought.core.models import PartitionModels
from forethought.core.runtime import PartitionRuntime, Record

CONFIG = EngineConfig(churn_sample_min_days=1.0, churn_sample_max_days=1.0)  # each look a day or two in
T0 = 1_790_000_000.0
HOUR = 3600.0
LANES = {"page_view": 0, "profile": 3}
OLD = date(2024, 1, 15)  # years before anyone's first event: left-truncated
# (hour, customer, kind): the filler's events move the clock past the others' looks
PLAN = [(0, "early", "page_view"), (1, "late", "page_view"), (2, "first", "profile"), (3, "first", "page_view"),
        (5, "early", "profile"), (10, "early", "page_view"), (11, "late", "page_view"), (12, "first", "page_view"),
        (30, "filler", "page_view"), (60, "filler", "page_view"), (80, "late", "profile"), (85, "early", "profile"),
        (90, "filler", "page_view"), (100, "early", "page_view")]


def _stream(plan: list[tuple[int, str, str]]) -> list[tuple[Record, tuple[int, int, int]]]:
    """The records of ``plan``, each with its (lane, partition, offset)."""
    out: list[tuple[Record, tuple[int, int, int]]] = []
    offsets = dict.fromkeys(LANES.values(), 0)
    for n, (hour, customer, kind) in enumerate(plan):
        at = datetime.fromtimestamp(T0 + hour * HOUR, tz=UTC)
        record: Record = (Profile(customer_id=customer, updated_at=at, plan="pro", signup_date=OLD)
                          if kind == "profile" else PageView(event_id=f"v{n}", customer_id=customer, occurred_at=at))
        lane = LANES[kind]
        out.append((record, (lane, 0, offsets[lane])))
        offsets[lane] += 1
    return out


STREAM = _stream(PLAN)
END = T0 + (PLAN[-1][0] + 1) * HOUR


def _prior(runtime: PartitionRuntime) -> dict[str, object]:
    """The partition's churn prior (its table of customer summaries) once the clock passed the stream."""
    runtime.advance(END)
    assert runtime.models is not None
    return runtime.models.churn.to_data()


def _fresh() -> PartitionRuntime:
    return PartitionRuntime(0, CONFIG, models=PartitionModels(config=CONFIG))


def _undisturbed() -> PartitionRuntime:
    runtime = _fresh()
    feed(runtime, STREAM)
    return runtime


def _states(runtime: PartitionRuntime) -> dict[str, dict[str, object]]:
    return {c: s.to_dict() for c in ("early", "late", "first", "filler") if (s := runtime.state(c)) is not None}


UNDISTURBED_RUN = _undisturbed()
UNDISTURBED = _prior(UNDISTURBED_RUN)
POINTS = [(committed, flushed, crash)  # committed <= flushed < crash
          for flushed, crash in itertools.combinations(range(len(STREAM) + 1), 2) for committed in range(flushed + 1)]


def test_the_undisturbed_prior_learns_late_and_filler_but_not_the_left_truncated() -> None:
    """``early`` and ``first`` had their old signup date noted before their look; ``late`` and ``filler``
    had no profile at theirs."""
    runtime = _undisturbed()
    assert runtime.models is not None and runtime.models.churn.samples == 2.0
    states = {c: runtime.state(c) for c in ("early", "late", "first", "filler")}
    assert all(s is not None and s.slice("churn").churn_sampled == 1 for s in states.values()), "all four looked"


@pytest.mark.parametrize("committed,flushed,crash", POINTS)
def test_a_crash_at_any_point_leaves_the_churn_prior_of_the_undisturbed_run(committed: int, flushed: int,
                                                                            crash: int) -> None:
    """Records up to ``flushed`` are flushed whole (states and models); the flush of the records up to
    ``crash`` wrote the profiles only; offsets are committed up to ``committed``."""
    store, runtime = Store(CONFIG, models=True), _fresh()
    feed(runtime, STREAM[:flushed])
    store.flush(runtime)
    feed(runtime, STREAM[flushed:crash])
    store.flush(runtime, only=0)
    restarted = store.restart()
    feed(restarted, STREAM[committed:])
    assert _prior(restarted) == UNDISTURBED
    assert _states(restarted) == _states(UNDISTURBED_RUN)  # the noted signup days (and plans) too
