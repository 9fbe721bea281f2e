"""Bounded memory whatever the number of customers (issue #12 point 1): beyond the cache's capacity
states live only in the store and come back on demand; the deadline index keeps one small entry per
customer; a restart rebuilds it from each stored state's hint instead of decoding every state."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from forethought.core.config import EngineConfig
from forethought.core.deadlines import DeadlineIndex
from forethought.core.engine import next_due
from forethought.core.state import CustomerState
from forethought.ops.metrics import Metrics
from forethought.stream.processor import BatchProcessor, RawRecord
from forethought.stream.state_store import read_hint

CONFIG = EngineConfig(bucket_seconds=60)
T0 = 1_790_000_040.0
CLICKS = "events.clickstream"
CUSTOMERS = [f"c{i}" for i in range(50)]


def click(customer: str, n: int) -> RawRecord:
    body = {"event_id": f"{customer}-{n}", "customer_id": customer, "type": "click",
            "occurred_at": datetime.fromtimestamp(T0 + n, tz=UTC).isoformat()}
    return RawRecord(CLICKS, 0, n, customer.encode(), json.dumps(body).encode(), T0 + n)


def processor(table: dict[bytes, bytes], hints: dict[bytes, bytes] | None, capacity: int) -> BatchProcessor:
    work = BatchProcessor(CONFIG, table, {CLICKS: frozenset({"click"})}, Metrics(), cache_customers=capacity)
    work.due_hints = hints
    return work


def test_the_deadline_index_stays_small_when_the_same_customers_change_again_and_again() -> None:
    index: DeadlineIndex[str] = DeadlineIndex()
    for n in range(50_000):
        index.set(f"c{n % 10}", float(n))
    assert len(index) == 10 and len(index._heap) <= 2 * 10 + 1025  # superseded entries are dropped
    assert sorted(index.pop_due(49_994.0)) == ["c0", "c1", "c2", "c3", "c4"]
    assert sorted(index.pop_due(60_000.0)) == ["c5", "c6", "c7", "c8", "c9"]


def test_a_restart_holds_at_most_the_capacity_and_reads_cold_customers_back_on_demand() -> None:
    table: dict[bytes, bytes] = {}
    first = processor(table, None, capacity=10)
    first.handle([click(c, n) for n, c in enumerate(CUSTOMERS)], T0 + 100)
    first.commit()
    restarted = processor(table, None, capacity=10)
    assert restarted.rebuild_index(lambda _k: True) == len(CUSTOMERS)
    runtime = restarted.runtime(0)
    assert len(runtime) == 10 and len(runtime.deadlines) == len(CUSTOMERS), "every deadline, ten states"
    restarted.handle([click(CUSTOMERS[-1], 100)], T0 + 200)  # a cold customer: read back from the table
    assert restarted.state(CUSTOMERS[-1].encode()).events == 2


def test_the_rebuild_reads_hints_written_for_the_exact_stored_bytes_and_decodes_the_rest() -> None:
    table: dict[bytes, bytes] = {}
    hints: dict[bytes, bytes] = {}
    first = processor(table, hints, capacity=100)
    first.handle([click(c, n) for n, c in enumerate(CUSTOMERS)], T0 + 100)
    first.commit()
    assert set(hints) == set(table), "each written state has its hint"
    decoded = processor(dict(table), None, capacity=100)
    decoded.rebuild_index(lambda _k: True)
    table[b"c3"] = CustomerState.from_bytes(table[b"c7"], CONFIG).to_bytes()  # c3's bytes changed: its hint is stale
    table[b"c3"] = table[b"c3"].replace(b"c7", b"c3")
    hints[b"c9"] = b"garbage"
    hinted = processor(table, hints, capacity=100)
    assert hinted.rebuild_index(lambda _k: True) == len(CUSTOMERS)
    want, got = decoded.runtime(0).deadlines, hinted.runtime(0).deadlines
    assert {c: want._due.get(c) for c in CUSTOMERS if c != "c3"} == {c: got._due.get(c) for c in CUSTOMERS
                                                                      if c != "c3"}
    changed = CustomerState.from_bytes(table[b"c3"], CONFIG)
    assert got._due["c3"] == next_due(changed, CONFIG) != want._due["c3"], "a stale hint is not believed"
    assert read_hint(hints[b"c9"], table[b"c9"], CONFIG) is not None, "a state read in full gets its hint again"
    assert hinted.runtime(0).now == decoded.runtime(0).now
    assert len(hinted.runtime(0)) < len(CUSTOMERS), "hinted customers stay on disk until they are needed"
