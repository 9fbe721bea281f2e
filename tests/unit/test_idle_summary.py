"""Idle eviction keeps a summary: the whole base stays scored, and a customer who comes back keeps
their history (issue #13 point 2)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import msgpack  # type: ignore[import-untyped]
import pytest

from forethought.contracts.events import PageView
from forethought.core.config import EngineConfig
from forethought.core.runtime import PartitionRuntime
from forethought.core.state import CustomerState
from forethought.core.summary import MAGIC, Summary, decode_stored
from forethought.ops.metrics import Metrics
from forethought.replay.runner import snapshot_rows
from forethought.stream.processor import BatchProcessor, RawRecord

DAY = 86_400.0
T0 = 1_790_000_000.0
CONFIG = EngineConfig(idle_ttl_seconds=30 * DAY, prior_gap_seconds=2 * DAY)
DATA = Path(__file__).parent / "data"


def page(customer: str, t: float, n: int) -> PageView:
    return PageView(event_id=f"{customer}-{n}", customer_id=customer, page="/",
                    occurred_at=datetime.fromtimestamp(t, tz=UTC))


def regular(runtime: PartitionRuntime, customer: str, visits: int = 6, every: float = 2 * DAY) -> float:
    """``visits`` visits ``every`` apart from T0; returns the last one's time."""
    for n in range(visits):
        for emission in runtime.feed(page(customer, T0 + n * every, n)):
            assert emission.error is None
    return T0 + (visits - 1) * every


def test_an_evicted_customer_stays_in_the_snapshot_scored_as_gone_with_the_reason() -> None:
    runtime = PartitionRuntime(0, CONFIG)
    last = regular(runtime, "gone")
    regular(runtime, "here", visits=40, every=DAY)  # active until after gone's TTL
    runtime.advance(T0 + 45 * DAY)
    assert [s.customer_id for s in runtime.customers()] == ["here"]  # gone left the live states...
    summary = runtime.summary("gone")
    assert summary is not None and (summary.events, summary.visits, summary.first_seen) == (6, 6, T0)
    assert summary.last_seen == last
    rows = {row["customer_id"]: row for row in snapshot_rows(runtime.customers(), T0 + 60 * DAY, CONFIG,
                                                             summaries=runtime.summaries())}
    assert set(rows) == {"gone", "here"}  # ...not the base
    gone = rows["gone"]
    assert gone["summarised"] is True and gone["scores"]["dropoff"] > 0.999
    assert gone["reasons"][0]["signal"] == "idle_seconds" and "No activity for 50 days" in gone["reasons"][0]["text"]
    silence = gone["reasons"][1]
    assert silence["signal"] == "silence_seconds" and silence["observed"] == pytest.approx(50 * DAY)
    assert silence["baseline"] == pytest.approx(2 * DAY, rel=0.05), "scored against the customer's own gaps"
    assert "summarised" not in rows["here"]


def test_the_summary_is_written_in_the_states_place_in_tens_of_bytes() -> None:
    runtime = PartitionRuntime(0, CONFIG)
    regular(runtime, "customer-000123")
    runtime.take_dirty()
    runtime.advance(T0 + 60 * DAY)
    taken = runtime.take_dirty().states["customer-000123"]
    assert isinstance(taken, Summary)
    raw = taken.to_bytes()
    assert raw[0] == MAGIC and len(raw) < 64
    assert decode_stored(raw, CONFIG) == taken


def test_a_customer_who_comes_back_after_the_ttl_keeps_tenure_counts_and_gaps() -> None:
    runtime = PartitionRuntime(0, CONFIG)
    last = regular(runtime, "c1")
    gaps_before = runtime.state("c1").slice("silence").gaps  # type: ignore[union-attr]
    back = last + 90 * DAY
    runtime.advance(back - DAY)
    assert runtime.state("c1") is None and runtime.summary("c1") is not None
    emitted = runtime.feed(page("c1", back, 99))
    assert emitted[-1].error is None
    state = runtime.state("c1")
    assert state is not None and runtime.summary("c1") is None
    assert (state.first_seen, state.created, state.events, state.visits) == (T0, T0, 7, 7)
    assert state.last_seen == back
    assert state.slice("silence").gaps.n == gaps_before.n + 1, "the gap of the comeback is learned"
    assert runtime.take_dirty().states["c1"] is state  # the state replaces the summary in the store


def test_a_comeback_when_the_clock_is_held_back_keeps_the_history_too() -> None:
    runtime = PartitionRuntime(0, CONFIG)
    last = regular(runtime, "c1")
    runtime.limit = last + DAY  # another input lags: events may not move the clock past it
    runtime.feed(page("c1", last + 90 * DAY, 99))
    state = runtime.state("c1")
    assert state is not None and (state.first_seen, state.events, state.visits) == (T0, 7, 7)


def test_a_never_seen_customer_starts_afresh() -> None:
    runtime = PartitionRuntime(0, CONFIG)
    runtime.feed(page("new", T0, 1))
    state = runtime.state("new")
    assert state is not None and (state.events, state.visits, state.first_seen) == (1, 1, T0)
    assert runtime.summary("new") is None and runtime.summary("unknown") is None


CLICKS = "events.clickstream"


def click(customer: str, t: float, n: int) -> RawRecord:
    body = {"event_id": f"{customer}-{n}", "customer_id": customer, "type": "click",
            "occurred_at": datetime.fromtimestamp(t, tz=UTC).isoformat()}
    return RawRecord(CLICKS, 0, n, customer.encode(), json.dumps(body).encode(), t)


def worker(table: dict[bytes, bytes]) -> BatchProcessor:
    return BatchProcessor(CONFIG, table, {CLICKS: frozenset({"click"})}, Metrics(), cache_customers=1)


def test_the_worker_stores_the_summary_restarts_with_it_and_resumes_from_it() -> None:
    table: dict[bytes, bytes] = {}
    first = worker(table)
    first.handle([click("c1", T0 + n * DAY, n) for n in range(5)], T0 + 5 * DAY)
    first.handle([click("c2", T0 + 60 * DAY, 1)], T0 + 60 * DAY)  # moves the clock: c1 is evicted
    first.sweep(T0 + 60 * DAY)
    first.commit()
    assert table[b"c1"][0] == MAGIC
    again = worker(table)  # a restart: the summary is read back, the customer is still known
    assert again.rebuild_index(lambda _k: True) == 2
    assert again.state(b"c1") is None
    summary = again.summary(b"c1")
    assert summary is not None and (summary.events, summary.first_seen) == (5, T0)
    again.handle([click("c1", T0 + 61 * DAY, 9)], T0 + 61 * DAY)
    again.commit()
    stored = decode_stored(table[b"c1"], CONFIG)
    assert isinstance(stored, CustomerState) and (stored.events, stored.first_seen) == (6, T0)


GARBLED = [
    bytes([MAGIC]),  # nothing after the format byte
    bytes([MAGIC]) + b"\xc1",  # a byte MessagePack never uses
    bytes([MAGIC]) + msgpack.packb([3, 0, "c1"]),  # a field missing
    bytes([MAGIC]) + msgpack.packb([1 << 40, 0, "c1"]),  # fields from a newer writer
    bytes([MAGIC]) + msgpack.packb([0b11, 0, "c1", "yesterday"]),  # a time of the wrong type
    bytes([MAGIC]) + msgpack.packb([0b10000000011, 0, "c1", 0, {"s": [1, "x", 2]}]),  # a part malformed
    bytes([MAGIC]) + msgpack.packb([0b10000000011, 0, "c1", 0, {"s": [1, 2]}]),  # a part too short
    bytes([MAGIC]) + b"\x92" + b"\xdd\xff\xff\xff\xff" * 2,  # a hostile length
]


@pytest.mark.parametrize("raw", GARBLED)
def test_a_garbled_summary_is_refused_with_a_clear_error(raw: bytes) -> None:
    with pytest.raises(ValueError, match="summary"):
        Summary.from_bytes(raw, CONFIG).revive(CONFIG)


def test_a_garbled_summary_fails_its_own_records_and_loses_nothing_else() -> None:
    table = {b"c1": GARBLED[6]}
    work = worker(table)
    assert work.rebuild_index(lambda _k: True) == 1  # each detector checks its part when the summary is revived
    outbox = work.handle([click("c1", T0, 1), click("c2", T0 + 1, 2)], T0 + 2)
    work.commit()
    assert [(d.reason, d.source_offset) for d in outbox.deadletters] == [("processing_error", 1)], "c1's record only"
    assert "silence summary is malformed" in (outbox.deadletters[0].detail or "")
    assert table[b"c1"] == GARBLED[6], "the stored summary is kept as it was"
    assert decode_stored(table[b"c2"], CONFIG).events == 1  # type: ignore[union-attr]


def test_a_summary_unreadable_at_restart_is_skipped_and_kept() -> None:
    table = {b"c1": GARBLED[5], b"c2": Summary("c2", T0, T0 - DAY, T0 - 9 * DAY, visits=2).to_bytes()}
    work = worker(table)
    assert work.rebuild_index(lambda _k: True) == 1  # c2; c1 is logged and counted
    assert work.summary(b"c2") is not None and table[b"c1"] == GARBLED[5]


def test_old_states_and_golden_files_still_load_beside_summaries() -> None:
    v1 = decode_stored((DATA / "state-v1-busy.bin").read_bytes(), EngineConfig())
    v3 = decode_stored((DATA / "state-v3-busy.json").read_bytes(), EngineConfig())
    assert isinstance(v1, CustomerState) and isinstance(v3, CustomerState) and v1.events > 0
    golden = decode_stored((DATA / "summary-v1.bin").read_bytes(), EngineConfig())
    assert golden == Summary("cdnow-00042", evicted_at=T0 + 200 * DAY, last_seen=T0 + 0.25,
                             first_seen=T0 - 300 * DAY, created=T0 - 300 * DAY, events=12, visits=9,
                             error_total=1, by_type={"click": 11, "error": 1}, account_id="acct-7",
                             parts={"s": [8, 14200, 6400]})
