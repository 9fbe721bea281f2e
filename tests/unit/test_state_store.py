"""The write-behind flush in two halves: what a flush covers is captured at once, and written later
(in the background, while batches go on). A customer that left memory in between is read from what
was captured, never from the older table, so no event is lost or counted twice."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from forethought.core.config import EngineConfig
from forethought.core.state import CustomerState
from forethought.ops.metrics import Metrics
from forethought.stream.processor import BatchProcessor, RawRecord

CONFIG = EngineConfig(bucket_seconds=60)
T0 = 1_790_000_040.0
CLICKS = "events.clickstream"


def click(customer: str, n: int) -> RawRecord:
    body = {"event_id": f"{customer}-{n}", "customer_id": customer, "type": "click",
            "occurred_at": datetime.fromtimestamp(T0 + n, tz=timezone.utc).isoformat()}
    return RawRecord(CLICKS, 0, n, customer.encode(), json.dumps(body).encode(), T0 + n)


def stored_events(table: dict[bytes, bytes], customer: str) -> int:
    return CustomerState.from_bytes(table[customer.encode()], CONFIG).events


def test_a_customer_evicted_from_memory_between_capture_and_write_is_read_from_the_capture() -> None:
    table: dict[bytes, bytes] = {}
    work = BatchProcessor(CONFIG, table, {CLICKS: frozenset({"click"})}, Metrics(), cache_customers=1)
    work.handle([click("c1", 1), click("c2", 2)], T0 + 10)
    captured = work.capture()  # c1 leaves memory (one customer cached); nothing is in the table yet
    assert table == {} and len(work.runtime(0)) == 1
    work.handle([click("c1", 3)], T0 + 10)  # c1 again, before the flush wrote it
    assert work.state(b"c1").events == 2, "read from what was captured, not started afresh"
    assert work.write(captured) == 2
    assert stored_events(table, "c2") == 1
    work.commit()
    assert stored_events(table, "c1") == 2, "the later state wins"


def test_writing_in_chunks_stores_every_captured_customer_once() -> None:
    table: dict[bytes, bytes] = {}
    work = BatchProcessor(CONFIG, table, {CLICKS: frozenset({"click"})}, Metrics())
    work.handle([click(f"c{i}", i) for i in range(10)], T0 + 20)
    captured = work.capture()
    written = [work.write(captured, limit=4) for _ in range(4)]
    assert written == [4, 4, 2, 0]
    assert sorted(table) == sorted(f"c{i}".encode() for i in range(10))
