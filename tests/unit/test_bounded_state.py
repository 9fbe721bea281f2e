"""Bounded memory whatever the number of customers (issue #12 point 1): beyond the cache's capacity
states live only in the store and come back on demand; the deadline index keeps one small entry per
customer; a restart rebuilds it from each stored state's hint instead of decoding every state."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from forethought.contracts.partitioning import partition_of
from forethought.core.config import EngineConfig
from forethought.core.deadlines import DeadlineIndex
from forethought.core.engine import next_due
from forethought.core.state import CustomerState
from forethought.ops.metrics import Metrics
from forethought.stream.processor import BatchProcessor, RawRecord
from forethought.stream.state_store import due_hint, read_hint
from forethought.stream.table_store import DueHints

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


def spread(table: dict[bytes, bytes], hints: dict[bytes, bytes] | DueHints | None) -> BatchProcessor:
    """A processor whose customers spread over four partitions (as the worker's murmur2 places them)."""
    work = BatchProcessor(CONFIG, table, {CLICKS: frozenset({"click"})}, Metrics(), cache_customers=20,
                          partition_for=lambda key: partition_of(key, 4))
    work.due_hints = hints
    return work


def clicks_spread(customers: list[str], first: int, count: int) -> list[RawRecord]:
    """``count`` clicks per customer from ``first`` seconds on, each on its customer's partition."""
    records = []
    for n in range(first, first + count):
        for i, customer in enumerate(customers):
            record = click(customer, n * 1000 + i)
            records.append(RawRecord(CLICKS, partition_of(customer.encode(), 4), n * 1000 + i, record.key,
                                     record.value, record.timestamp))
    return records


def index_of(work: BatchProcessor) -> dict[int, tuple[dict[str, float], float | None, float | None]]:
    """Each partition's whole deadline index, its runtime's clock and its restored-state clock."""
    return {p: (dict(r.deadlines._due), r.now, work.clocks[("", p)].event_max if ("", p) in work.clocks else None)
            for p, r in work.runtimes.items()}


@pytest.mark.parametrize("store", ["dict", "rocksdb"])
def test_the_index_rebuilt_from_hints_equals_the_index_of_every_state_decoded(store: str, tmp_path: Path) -> None:
    customers = [f"p{i}" for i in range(120)]
    table: dict[bytes, bytes] = {}
    hints: dict[bytes, bytes] | DueHints = {} if store == "dict" else DueHints(tmp_path / "due-hints.db")
    first = spread(table, hints)
    first.handle(clicks_spread(customers, 0, 2), T0 + 10_000)
    first.commit()
    first.handle(clicks_spread(customers[:30], 5, 1), T0 + 20_000)  # later events for some: other due times
    first.commit()
    before = dict(table)
    table[b"p1"] = CustomerState.from_bytes(table[b"p2"], CONFIG).to_bytes().replace(b"p2", b"p1")  # stale hint
    hints[b"p3"] = b"garbage"
    del hints[b"p4"]
    other = CONFIG.replace(silence_z=CONFIG.silence_z + 1.0)
    hints[b"p5"] = due_hint(CustomerState.from_bytes(table[b"p5"], other), table[b"p5"], other)  # other settings
    assert table[b"p2"] == before[b"p2"] and table[b"p1"] != before[b"p1"]

    decoded = spread(dict(table), None)
    assert decoded.rebuild_index(lambda _k: True) == len(customers)
    hinted = spread(table, hints)
    assert hinted.rebuild_index(lambda _k: True) == len(customers)
    assert (hinted.rebuilt.hinted, hinted.rebuilt.decoded) == (len(customers) - 4, 4), "only the four are decoded"
    assert len(hinted.runtimes) == 4 and sum(len(r.deadlines) for r in hinted.runtimes.values()) == len(customers)
    assert index_of(hinted) == index_of(decoded), "the same deadlines and clocks, partition by partition"
    for partition, (dues, now, clock) in index_of(hinted).items():
        states = [CustomerState.from_bytes(raw, CONFIG) for key, raw in table.items()
                  if partition_of(key, 4) == partition]
        assert now == clock == max(s.last_seen for s in states), "the clock at the partition's newest event"
        assert dues == {s.customer_id: next_due(s, CONFIG) for s in states}
    for key in (b"p1", b"p3", b"p4", b"p5"):
        assert read_hint(hints[key], table[key], CONFIG) is not None, "a state read in full gets its hint again"
    again = spread(table, hints)
    again.rebuild_index(lambda _k: True)
    assert (again.rebuilt.hinted, again.rebuilt.decoded) == (len(customers), 0)
    assert index_of(again) == index_of(decoded)
    due = min(min(dues.values()) for dues, _, _ in index_of(decoded).values())
    assert sorted(sum((r.deadlines.pop_due(due) for r in again.runtimes.values()), [])) == sorted(
        sum((r.deadlines.pop_due(due) for r in decoded.runtimes.values()), [])), "the first due customers fire alike"
    if isinstance(hints, DueHints):
        hints.close()


def test_a_rebuild_reads_only_the_owned_customers_of_a_memory_table() -> None:
    customers = [f"p{i}" for i in range(40)]
    table: dict[bytes, bytes] = {}
    first = spread(table, {})
    first.handle(clicks_spread(customers, 0, 1), T0 + 10_000)
    first.commit()
    work = spread(table, {})
    owned = {c for c in customers if partition_of(c.encode(), 4) in (0, 2)}
    assert work.rebuild_index(lambda key: partition_of(key, 4) in (0, 2)) == len(owned)
    assert set(work.runtimes) <= {0, 2}
    assert {c for r in work.runtimes.values() for c in r.deadlines._due} == owned
