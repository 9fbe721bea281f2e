"""Exactly-once effects on state: a record re-delivered after a crash (its state already on the
changelog, its offset not yet committed) changes nothing, however many times it comes again."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from forethought.core import applied
from forethought.core.config import EngineConfig
from forethought.core.state import CustomerState
from forethought.core.state_codec import FIELDS, encode_fields
from forethought.ops.metrics import Metrics
from forethought.stream.processor import BatchProcessor, RawRecord

CONFIG = EngineConfig(bucket_seconds=60, burst_min_errors=3)
T0 = 1_790_000_040.0
CLICKS, ERRORS = "t.events.clickstream", "t.events.errors"
KINDS = {CLICKS: frozenset({"click", "page_view"}), ERRORS: frozenset({"error"})}
DATA = Path(__file__).parent / "data"


def record(topic: str, partition: int, offset: int, customer: str, n: int) -> RawRecord:
    kind = "error" if topic == ERRORS else "page_view"
    body = {"event_id": f"{customer}-{kind}-{n}", "customer_id": customer, "type": kind,
            "occurred_at": datetime.fromtimestamp(T0 + n, tz=UTC).isoformat(),
            **({"code": "E500"} if kind == "error" else {})}
    return RawRecord(topic, partition, offset, customer.encode(), json.dumps(body).encode(), T0 + n)


def processor(table: dict[bytes, bytes], partition: int = 0) -> BatchProcessor:
    return BatchProcessor(CONFIG, table, KINDS, Metrics(), partition_for=lambda _key: partition)


def replayed(work: BatchProcessor) -> float:
    return work.metrics.registry.get_sample_value("forethought_replayed_records_total") or 0.0


def stored(table: dict[bytes, bytes], customer: str) -> CustomerState:
    return CustomerState.from_bytes(table[customer.encode()], CONFIG)


def test_a_record_delivered_again_at_the_same_offset_changes_nothing_and_publishes_nothing() -> None:
    table: dict[bytes, bytes] = {}
    work = processor(table)
    first = work.handle([record(ERRORS, 0, k, "c1", k) for k in range(3)], T0 + 10)
    work.commit()
    assert len(first.triggers) == 1, "three errors in a bucket: a burst"
    again = processor(table).handle([record(ERRORS, 0, k, "c1", k) for k in range(3)], T0 + 10)
    assert again.triggers == [] and again.deadletters == [] and b"c1" not in again.states
    assert stored(table, "c1").events == 3


def test_a_restart_from_an_older_committed_offset_applies_only_what_the_state_lacks() -> None:
    """Offsets 0-9 flushed, committed up to 4: the restart reads 4-14 and counts only 10-14."""
    table: dict[bytes, bytes] = {}
    work = processor(table)
    work.handle([record(CLICKS, 0, k, "c1", k) for k in range(10)], T0 + 60)
    work.commit()
    restarted = processor(table)
    out = restarted.handle([record(CLICKS, 0, k, "c1", k) for k in range(4, 15)], T0 + 60)
    restarted.commit()
    assert stored(table, "c1").events == 15 and replayed(restarted) == 6
    assert stored(table, "c1").applied == (0, 15)
    assert b"c1" in out.states


def test_each_input_topic_has_its_own_position() -> None:
    table: dict[bytes, bytes] = {}
    work = processor(table)
    work.handle([record(CLICKS, 0, 50, "c1", 0), record(ERRORS, 0, 7, "c1", 1)], T0 + 10)
    assert work.state(b"c1").applied == (0, 51, 8)
    out = work.handle([record(ERRORS, 0, 8, "c1", 2), record(CLICKS, 0, 50, "c1", 0)], T0 + 10)
    assert work.state(b"c1").events == 3 and replayed(work) == 1
    assert out.deadletters == []


def test_another_customers_offsets_do_not_hide_a_customers_new_record() -> None:
    table: dict[bytes, bytes] = {}
    work = processor(table)
    work.handle([record(CLICKS, 0, 100, "c1", 0), record(CLICKS, 0, 101, "c2", 1)], T0 + 10)
    work.handle([record(CLICKS, 0, 102, "c1", 2)], T0 + 10)
    assert (work.state(b"c1").events, work.state(b"c2").events) == (2, 1)


def test_a_record_from_another_partition_is_applied_and_the_state_follows_that_partition() -> None:
    """After the topic's partitions changed (the customer's key hashes elsewhere), offsets of the new
    partition say nothing about the old one: the record is applied, from there on the new one counts."""
    table: dict[bytes, bytes] = {}
    old = processor(table, partition=3)
    old.handle([record(CLICKS, 3, 900, "c1", 0)], T0 + 10)
    old.commit()
    moved = processor(table, partition=5)
    moved.handle([record(CLICKS, 5, 12, "c1", 1), record(CLICKS, 5, 12, "c1", 1)], T0 + 10)
    moved.commit()
    assert stored(table, "c1").events == 2 and stored(table, "c1").applied == (5, 13)
    assert replayed(moved) == 1


@pytest.mark.parametrize("name", ["state-v1-busy.bin", "state-v3-busy.json"])
def test_the_golden_states_from_before_applied_offsets_load_with_nothing_applied(name: str) -> None:
    old = CustomerState.from_bytes((DATA / name).read_bytes(), EngineConfig())
    assert old.applied == ()
    assert not applied.seen(old.applied, 0, 0, 0), "so the first record read after the upgrade is applied"
    assert CustomerState.from_bytes(old.to_bytes(), EngineConfig()) == old


def test_a_binary_state_without_the_field_reads_as_nothing_applied_and_applies_every_record() -> None:
    work = processor({})
    work.handle([record(CLICKS, 0, k, "c1", k) for k in range(4)], T0 + 10)
    state = work.state(b"c1")
    raw = encode_fields(state, FIELDS[:[f.name for f in FIELDS].index("applied")])  # what the release before wrote
    table = {b"c1": raw}
    assert CustomerState.from_bytes(raw, CONFIG).applied == ()
    upgraded = processor(table)
    upgraded.handle([record(CLICKS, 0, 3, "c1", 13), record(CLICKS, 0, 4, "c1", 14)], T0 + 20)
    assert upgraded.state(b"c1").events == 6 and upgraded.state(b"c1").applied == (0, 5), \
        "without offsets a re-read record counts again (as before this change); from then on none does"
    state.applied = (2, 0, 70_000)
    assert CustomerState.from_bytes(state.to_bytes(), CONFIG) == state


@pytest.mark.parametrize("raw", [bytes([0x80]), bytes([0xFF] * 10 + [1]), bytes(66)], ids=["truncated", "huge", "long"])
def test_malformed_applied_offsets_are_refused(raw: bytes) -> None:
    with pytest.raises(ValueError, match="applied offsets"):
        applied.decode(raw)


def test_a_stored_state_whose_offsets_are_not_bytes_is_refused() -> None:
    import msgpack  # type: ignore[import-untyped]

    state = CustomerState.new("c1", CONFIG)
    state.applied = (0, 1)
    items = msgpack.unpackb(state.to_bytes()[1:])
    items[-1] = [0, 1]
    with pytest.raises(ValueError, match="applied offsets"):
        CustomerState.from_bytes(state.to_bytes()[:1] + msgpack.packb(items), CONFIG)


@pytest.mark.parametrize("seed", range(5))
def test_after_any_number_of_crashes_every_state_equals_that_of_an_undisturbed_run(seed: int) -> None:
    """Five crashes at random points, each after some state flushes: the restart reads again from
    the last committed offset, which lags the last flush by up to 150 records (more than the 32
    event ids a state keeps, per customer). The states end equal to an undisturbed run's."""
    rng = random.Random(seed)
    customers = ["c0", "c1"]
    stream = [record(rng.choice((CLICKS, ERRORS)), 0, 0, rng.choice(customers), n) for n in range(600)]
    offsets: dict[str, int] = {}
    for i, r in enumerate(stream):  # offsets per topic, in order
        offsets[r.topic] = offsets.get(r.topic, -1) + 1
        stream[i] = RawRecord(r.topic, 0, offsets[r.topic], r.key, r.value, r.timestamp)

    quiet: dict[bytes, bytes] = {}
    undisturbed = processor(quiet)
    undisturbed.handle(stream, T0 + 700)
    undisturbed.commit()

    table: dict[bytes, bytes] = {}
    committed, skipped = 0, 0.0  # records before this index are committed
    for _crash in range(5):
        work, flushed = processor(table), committed
        crash_at = rng.randint(committed + 1, len(stream) - 1)
        for at in range(committed, crash_at, 25):
            work.handle(stream[at:min(at + 25, crash_at)], T0 + 700)
            if rng.random() < 0.5:
                work.commit()
                flushed = min(at + 25, crash_at)
        committed = max(committed, flushed - rng.randint(0, 150))  # the offset commit lags the flush
        skipped += replayed(work)
    work = processor(table)
    work.handle(stream[committed:], T0 + 700)
    work.commit()
    assert skipped + replayed(work) > 0, "records were read again and skipped"
    assert {k: stored(table, k.decode()) for k in table} == {k: stored(quiet, k.decode()) for k in quiet}
