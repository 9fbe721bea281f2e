"""The tolerant reader in the worker's processor: an unknown field is ignored and counted by type and
field (bounded label values), a strict topic dead-letters it, and a re-keyed record is counted once."""

from __future__ import annotations

import time
from typing import Any

import orjson

from forethought.contracts.schemas import EXAMPLES
from forethought.core.config import EngineConfig
from forethought.ops.metrics import Metrics
from forethought.stream.processor import BatchProcessor, RawRecord

CLICKS, USAGE, REKEYED, PROFILES = "events.clickstream", "events.usage", "forethought.rekeyed", "customers.profile"
KINDS = {CLICKS: frozenset({"click", "page_view"}), USAGE: frozenset({"usage"}), PROFILES: frozenset({"profile"}),
         REKEYED: frozenset({"click", "page_view", "usage"})}


def processor(strict: frozenset[str] = frozenset()) -> BatchProcessor:
    work = BatchProcessor(EngineConfig(), {}, KINDS, Metrics(), profiles={})
    work.strict_topics = strict
    return work


def record(topic: str, offset: int, kind: str, key: bytes | None = b"cust-42", **extra: Any) -> RawRecord:
    body = {**EXAMPLES[kind], "event_id": f"e{offset}", **extra}
    return RawRecord(topic, 0, offset, key, orjson.dumps(body))


def unknown(work: BatchProcessor, kind: str, field: str) -> float:
    value = work.metrics.registry.get_sample_value("forethought_unknown_fields_total", {"type": kind, "field": field})
    return value or 0.0


def test_an_unknown_field_is_processed_and_counted_by_type_and_field() -> None:
    work = processor()
    outbox = work.handle([record(CLICKS, 0, "click", ab_variant="B"), record(CLICKS, 1, "click", ab_variant="A"),
                          record(USAGE, 0, "usage", ab_variant="B", region="eu"),
                          record(PROFILES, 0, "profile", tier="gold")], time.time())
    assert outbox.deadletters == []
    assert (unknown(work, "click", "ab_variant"), unknown(work, "usage", "ab_variant"),
            unknown(work, "usage", "region"), unknown(work, "profile", "tier")) == (2, 1, 1, 1)
    assert work.metrics.registry.get_sample_value(
        "forethought_events_in_total", {"topic": CLICKS, "type": "click"}) == 2


def test_a_strict_topic_dead_letters_the_unknown_field_and_the_tolerant_one_beside_it_does_not() -> None:
    work = processor(strict=frozenset({USAGE}))
    outbox = work.handle([record(USAGE, 0, "usage", region="eu"), record(USAGE, 1, "usage"),
                          record(CLICKS, 0, "click", region="eu")], time.time())
    assert [(d.reason, d.source_topic, d.source_offset) for d in outbox.deadletters] == [("unknown_field", USAGE, 0)]
    assert "'region'" in outbox.deadletters[0].detail
    assert (unknown(work, "usage", "region"), unknown(work, "click", "region")) == (0, 1)


def test_a_hostile_producer_cannot_explode_the_label_set() -> None:
    work = processor()
    fields = {f"f{i}": i for i in range(80)} | {"x" * 100: 1, "bad name": 2, 'q"uote': 3}
    work.handle([record(CLICKS, 0, "click", **fields)], time.time())
    exposition = work.metrics.exposition().decode()
    series = [line for line in exposition.splitlines() if line.startswith("forethought_unknown_fields_total{")]
    assert len(series) == 51  # the first 50 names, then "other"
    assert unknown(work, "click", "other") == 80 + 3 - 50


def test_a_record_keyed_otherwise_is_counted_once_after_its_re_key_hop() -> None:
    work = processor()
    first = work.handle([record(CLICKS, 0, "click", key=b"session-9", ab_variant="B")], time.time())
    assert len(first.rekeyed) == 1 and unknown(work, "click", "ab_variant") == 0
    hop = first.rekeyed[0]
    work.handle([RawRecord(REKEYED, 0, 0, hop.key, hop.value)], time.time())
    assert unknown(work, "click", "ab_variant") == 1
