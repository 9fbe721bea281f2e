"""The re-key hop in the worker's processor: a record keyed otherwise, or placed by another partitioner
(librdkafka's default), goes to ``forethought.rekeyed`` with its headers and original timestamp, is
processed once there, and its trigger's latency is measured from the original record.
The real broker and librdkafka producer: tests/integration/test_real_clients.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from forethought.core.config import EngineConfig
from forethought.ops.metrics import Metrics
from forethought.ops.playbooks import parse_rules
from forethought.ops.topics import load_catalogue, partition_of
from forethought.stream.processor import BatchProcessor, RawRecord
from forethought.stream.rekey import FROM_HEADER, MAX_CARRIED_AGE, MAX_HEADER_BYTES, MAX_HEADERS

ERRORS, PROFILES, REKEYED = "events.errors", "customers.profile", "forethought.rekeyed"
KINDS = {ERRORS: frozenset({"error"}), PROFILES: frozenset({"profile"}), REKEYED: frozenset({"error", "profile"})}
RULES = parse_rules("playbooks:\n  - name: burst\n    on: [error_burst]\n    channels: [in_app]\n    priority: 70\n")
T0 = 1_790_000_040.0
TRACE = ("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
JSON = ("content-type", b"application/json")


def processor() -> BatchProcessor:
    return BatchProcessor(EngineConfig(bucket_seconds=60, burst_min_errors=5), {}, KINDS, Metrics(), rules=RULES,
                          partition_for=lambda key: partition_of(key, 4))


def error(customer: str, n: int, at: float) -> bytes:
    return json.dumps({"event_id": f"{customer}-{n}", "customer_id": customer, "type": "error", "code": "E500",
                       "severity": "critical", "occurred_at": datetime.fromtimestamp(at, tz=UTC).isoformat()
                       }).encode()


def elsewhere(customer: str) -> int:
    """A partition that is not ``customer``'s under murmur2 (where a CRC32 partitioner may put it)."""
    return (partition_of(customer.encode(), 4) + 1) % 4


def test_a_record_on_the_wrong_partition_keeps_its_headers_and_timestamp_through_the_hop() -> None:
    work = processor()
    record = RawRecord(ERRORS, elsewhere("c1"), 7, b"c1", error("c1", 0, T0), T0 - 2.5, (TRACE, JSON, ("x", None)))
    outbox = work.handle([record], T0)
    (hop,) = outbox.rekeyed
    assert (hop.key, hop.value, hop.timestamp) == (b"c1", record.value, T0 - 2.5)
    assert hop.headers == (TRACE, JSON, ("x", None), (FROM_HEADER, f"{ERRORS}:{record.partition}:7".encode()))
    assert work.state(b"c1") is None, "not processed where it landed"


def test_a_record_keyed_otherwise_is_re_keyed_and_a_profile_too() -> None:
    work = processor()
    profile = json.dumps({"customer_id": "c2", "type": "profile", "plan": "pro",
                          "updated_at": "2026-11-22T09:30:00+00:00"}).encode()
    outbox = work.handle([RawRecord(ERRORS, 0, 0, b"session-9", error("c2", 0, T0), T0, (TRACE,)),
                          RawRecord(PROFILES, 0, 0, None, profile, T0 - 60, (JSON,))], T0)
    assert [(h.key, h.timestamp, h.headers[0]) for h in outbox.rekeyed] == [(b"c2", T0, TRACE), (b"c2", T0 - 60, JSON)]


def test_re_keyed_records_are_processed_once_and_the_trigger_latency_counts_from_the_original_record() -> None:
    work = processor()
    home = partition_of(b"c3", 4)
    sent = [RawRecord(ERRORS, elsewhere("c3"), n, b"c3", error("c3", n, T0 + n), T0 + n, (TRACE,)) for n in range(6)]
    hops = work.handle(sent, T0 + 10).rekeyed
    assert len(hops) == 6 and work.state(b"c3") is None
    again = [RawRecord(REKEYED, home, n, h.key, h.value, h.timestamp, h.headers) for n, h in enumerate(hops)]
    outbox = work.handle(again, T0 + 10)
    assert outbox.rekeyed == [], "a record on its customer's partition takes no second hop"
    state = work.state(b"c3")
    assert state is not None and state.to_dict()["n"] == 6, "each record processed once"
    (trigger, origin), = outbox.triggers
    assert trigger.customer_id == "c3"
    assert origin == T0 + 4, "the latency runs from the original record that completed the burst, not the hop"


def test_a_producer_cannot_forge_the_origin_header_or_make_the_hop_too_large() -> None:
    work = processor()
    flood = [(f"h{i}", b"x" * 1000) for i in range(900)]  # 900 KB of headers: the broker takes it, a re-send would not
    forged = [(FROM_HEADER, b"somewhere:0:0"), *flood]
    (hop,) = work.handle([RawRecord(ERRORS, 0, 3, b"session", error("c4", 0, T0), T0, forged)], T0).rekeyed
    carried = hop.headers[:-1]
    assert 0 < len(carried) <= MAX_HEADERS and sum(len(n) + len(v or b"") for n, v in carried) <= MAX_HEADER_BYTES
    assert carried == tuple(flood[: len(carried)]), "the first headers, in order"
    assert [v for n, v in hop.headers if n == FROM_HEADER] == [f"{ERRORS}:0:3".encode()]


def test_a_record_without_a_timestamp_is_stamped_by_the_producer() -> None:
    work = processor()
    for missing in (None, -0.001):  # no timestamp; Kafka's -1 ms as Faust gives it
        (hop,) = work.handle([RawRecord(ERRORS, 0, 0, b"session", error("c5", 0, T0), missing)], T0).rekeyed
        assert hop.timestamp is None and hop.headers == ((FROM_HEADER, f"{ERRORS}:0:0".encode()),)


def test_a_backfilled_record_older_than_half_the_re_key_topics_retention_is_stamped_anew() -> None:
    work = processor()
    old = T0 - 2 * 86400  # an event backfilled with its time as the record timestamp: the broker would delete
    (hop,) = work.handle([RawRecord(ERRORS, 0, 0, b"session", error("c6", 0, old), old, (TRACE,))], T0).rekeyed
    assert hop.timestamp is None and hop.headers[0] == TRACE
    retention_ms = int(load_catalogue().by_name[REKEYED].config()["retention.ms"])
    assert MAX_CARRIED_AGE <= retention_ms / 1000 / 2, "a carried timestamp leaves the worker half the retention"
