"""A crash at every point of a small record stream: the restarted runtime ends where an undisturbed one does.

What a SIGKILLed worker leaves: the states of its last complete flush, part of the flush under way
(profiles are written before states, states a chunk at a time), and an offset commit that lags the
flushes. The restart restores every stored state (deadlines, and the clock at the newest event among
them, as ``rebuild_index`` does), lets its timer advance to that clock, and reads again from the last
committed offset. Every customer's state - counts, next daily look (``daily``), due times - must equal
that of a runtime that never crashed.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime

import pytest
from crash_kit import Store, feed

from forethought.contracts.events import ErrorEvent, PageView
from forethought.contracts.records import Profile
from forethought.core.config import EngineConfig
from forethought.core.runtime import PartitionRuntime, Record
from forethought.core.state import CustomerState

CONFIG = EngineConfig(bucket_seconds=60, burst_min_errors=2)
T0 = 1_790_000_000.0
HOUR = 3600.0
CUSTOMERS = ("c0", "c1", "c2")
LANES = {"page_view": 0, "error": 1, "profile": 3}


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(T0 + seconds, tz=UTC)


def _stream() -> list[tuple[Record, tuple[int, int, int]]]:
    """Events and profiles of three customers over two days, in strictly increasing time, each with
    its (lane, partition, offset): profiles arrive hours after the events before them, so a clock
    restored ahead of them would change their daily look."""
    kinds = ["page_view", "profile", "error", "page_view", "error", "profile", "page_view", "error",
             "profile", "page_view", "error", "profile", "profile", "profile", "page_view"]
    out: list[tuple[Record, tuple[int, int, int]]] = []
    offsets = dict.fromkeys(LANES.values(), 0)
    for n, kind in enumerate(kinds):
        customer, t = CUSTOMERS[n % 3], n * 3 * HOUR + (n % 3) * 600
        record: Record
        if kind == "profile":
            record = Profile(customer_id=customer, updated_at=_at(t), plan=f"p{n}", signup_date=date(2026, 9, 1))
        elif kind == "error":
            record = ErrorEvent(event_id=f"e{n}", customer_id=customer, code="E500", occurred_at=_at(t))
        else:
            record = PageView(event_id=f"v{n}", customer_id=customer, occurred_at=_at(t))
        lane = LANES[kind]
        out.append((record, (lane, 0, offsets[lane])))
        offsets[lane] += 1
    return out


STREAM = _stream()


def _final(runtime: PartitionRuntime) -> dict[str, dict[str, object]]:
    """Every customer's state once the clock passed the last record (what came due by then fired)."""
    runtime.advance(STREAM[-1][0].updated_at.timestamp() + 1 if isinstance(STREAM[-1][0], Profile)
                    else STREAM[-1][0].epoch + 1)
    states = {c: runtime.state(c) for c in CUSTOMERS}
    return {c: s.to_dict() for c, s in states.items() if s is not None}


def _undisturbed() -> dict[str, dict[str, object]]:
    runtime = PartitionRuntime(0, CONFIG)
    feed(runtime, STREAM)
    return _final(runtime)


UNDISTURBED = _undisturbed()
POINTS = [(committed, flushed, crash, cut)  # committed < flushed < crash, and 0-2 states of the last flush written
          for committed, flushed, crash in itertools.combinations(range(len(STREAM) + 1), 3) for cut in (0, 1, 2)]


def test_the_stream_exercises_daily_looks_profiles_and_errors() -> None:
    assert set(UNDISTURBED) == set(CUSTOMERS)
    assert sum(bool(s.get("daily")) for s in UNDISTURBED.values()) >= 2, "next daily looks pending"
    assert any(s.get("errn") for s in UNDISTURBED.values()) and any(s.get("due") for s in UNDISTURBED.values())


@pytest.mark.parametrize("committed,flushed,crash,cut", POINTS)
def test_a_crash_at_any_point_ends_in_the_undisturbed_states(committed: int, flushed: int, crash: int,
                                                              cut: int) -> None:
    """Records up to ``flushed`` are flushed whole; the flush of the records up to ``crash`` writes the
    profiles and only ``cut`` states; offsets are committed up to ``committed``."""
    restarted = _crash_and_restart(Store(CONFIG), committed, flushed, crash, cut)
    assert _final(restarted) == UNDISTURBED


def _crash_and_restart(store: Store, committed: int, flushed: int, crash: int, cut: int) -> PartitionRuntime:
    """Run the stream into ``store`` up to the crash (see the test above), restart from the store and
    feed again every record after the committed offset."""
    runtime = PartitionRuntime(0, CONFIG)
    feed(runtime, STREAM[:flushed])
    store.flush(runtime)
    feed(runtime, STREAM[flushed:crash])
    store.flush(runtime, only=cut)
    restarted = store.restart()
    feed(restarted, STREAM[committed:])
    return restarted


class LocalStore(Store):
    """A local store (RocksDB) in front of the changelog: a flush writes every state locally and sends
    it to the changelog; the crash loses the sends after the first ``only``."""

    def __init__(self) -> None:
        super().__init__(CONFIG)
        self.changelog: dict[str, bytes] = {}

    def flush(self, runtime: PartitionRuntime, only: int | None = None) -> None:
        before = dict(self.states)
        super().flush(runtime)
        sent = sorted(c for c in self.states if self.states[c] is not before.get(c))[:only]
        self.changelog.update({c: self.states[c] for c in sent})


@pytest.mark.parametrize("committed,flushed,crash,cut", [p for p in POINTS if p[3] == 0])
def test_the_changelog_catches_up_with_a_local_store_ahead_of_it(committed: int, flushed: int, crash: int,
                                                                  cut: int) -> None:
    """The crash lost the changelog writes of some states the local store holds: the records behind
    them come again and are skipped, and their states are written again, so the changelog (what a
    restore on another worker reads) ends equal to the undisturbed states."""
    store = LocalStore()
    restarted = _crash_and_restart(store, committed, flushed, crash, cut)
    expected = _final(restarted)
    store.flush(restarted)
    assert {c: CustomerState.from_bytes(raw, CONFIG).to_dict() for c, raw in store.changelog.items()} == expected
    assert expected == UNDISTURBED


def test_a_restored_state_overdue_at_the_restored_clock_fires_at_the_next_sweep() -> None:
    """A worker that read on past a customer's due look without holding their state (a restart that had
    not rebuilt its index yet) leaves that state stale: the next restart's clock (the newest stored event)
    is past its look, and the first sweep, to that very time, must fire it (not wait for a later event)."""
    runtime = PartitionRuntime(0, CONFIG)
    feed(runtime, STREAM)
    stale = CustomerState.from_bytes(runtime.state("c0").to_bytes(), CONFIG)  # type: ignore[union-attr]
    due = stale.daily_at
    assert due is not None
    later = PageView(event_id="late", customer_id="c9", occurred_at=_at(due - T0 + HOUR))
    other = PartitionRuntime(0, CONFIG)
    other.feed(later)
    restarted = PartitionRuntime(0, CONFIG)
    restarted.restore([stale, other.state("c9")])  # type: ignore[list-item]
    assert restarted.now == later.epoch
    fired = restarted.advance(restarted.now)  # the sweep: stream time is the restored clock
    assert [e.customer_id for e in fired] == ["c0"] and restarted.state("c0").daily_at != due  # type: ignore[union-attr]
