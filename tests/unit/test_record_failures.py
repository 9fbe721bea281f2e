"""A record the engine raises on is dead-lettered (processing_error); the batch and the replay go on.

The failing record is real, not a mock: a playbook whose context joins two profile attributes of
1000 characters builds a trigger context value longer than the contract's 1024 characters, and
the core raises while making the trigger.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest

from forethought.contracts.decode import bounded_dead_letter
from forethought.contracts.records import DeadLetter, Profile
from forethought.core.config import EngineConfig
from forethought.core.policy.profiles import ProfileState
from forethought.core.state import CustomerState
from forethought.ops.metrics import Metrics
from forethought.ops.playbooks import load_rules
from forethought.replay.reader import Line
from forethought.replay.runner import Replayer
from forethought.stream.processor import BatchProcessor, RawRecord

PLAYBOOKS = Path(__file__).parents[1] / "integration" / "playbooks" / "long_context.yaml"
CONFIG = EngineConfig(bucket_seconds=60, burst_min_errors=5)
T0 = 1_790_000_040.0
ERRORS = "events.errors"


def error(customer: str, n: int, at: float) -> bytes:
    return json.dumps({"event_id": f"{customer}-{n}", "customer_id": customer, "type": "error", "code": "E500",
                       "severity": "critical", "occurred_at": datetime.fromtimestamp(at, tz=timezone.utc).isoformat()
                       }).encode()


def profile_of(customer: str) -> bytes:
    body = {"type": "profile", "customer_id": customer, "updated_at": "2026-09-20T00:00:00Z",
            "attributes": {"company": "c" * 1000, "segment": "s" * 1000}}
    return orjson.dumps(ProfileState().with_profile(Profile.model_validate(body)).to_dict())


def processor(**tables: dict[bytes, bytes]) -> BatchProcessor:
    return BatchProcessor(CONFIG, tables.get("table", {}), {ERRORS: frozenset({"error"})}, Metrics(),
                          profiles=tables.get("profiles", {}), rules=load_rules(PLAYBOOKS))


def batch(records: list[tuple[str, bytes]]) -> list[RawRecord]:
    return [RawRecord(ERRORS, 0, offset, key.encode(), value, T0) for offset, (key, value) in enumerate(records)]


def test_the_failing_record_is_dead_lettered_and_the_rest_of_the_batch_is_processed() -> None:
    profiles = {b"bad": profile_of("bad")}
    table: dict[bytes, bytes] = {}
    work = processor(table=table, profiles=profiles)
    records = [("bad", error("bad", i, T0 + i)) for i in range(4)]  # four errors: no burst yet
    work.commit(work.handle(batch(records), T0 + 10))
    before = table[b"bad"]
    mixed = [(f"good-{c}", error(f"good-{c}", i, T0 + 5 + i)) for i in range(6) for c in range(10)]
    mixed.insert(30, ("bad", error("bad", 4, T0 + 5)))  # the fifth error: a burst, and a trigger that cannot be built
    outbox = work.handle(batch(mixed), T0 + 20)
    work.commit(outbox)
    [letter] = outbox.deadletters
    assert letter.reason == "processing_error" and letter.source_offset == 30
    assert letter.detail.startswith("ValidationError: ") and len(letter.detail) <= 500
    assert json.loads(base64.b64decode(letter.value_b64))["event_id"] == "bad-4"
    assert table[b"bad"] == before, "the customer keeps the state it had before the failing record"
    assert sorted(t.customer_id for t, _ in outbox.triggers) == sorted(f"good-{c}" for c in range(10))
    for c in range(10):
        assert CustomerState.from_dict(orjson.loads(table[f"good-{c}".encode()]), CONFIG).events == 6
    text = work.metrics.exposition().decode()
    assert 'forethought_processing_errors_total{stage="record"} 1.0' in text


def test_a_failing_record_does_not_leak_its_partial_state_to_later_records_of_the_customer() -> None:
    """Within one batch: the records after the failing one start from the state before it."""
    work = processor(profiles={b"bad": profile_of("bad")})
    records = [("bad", error("bad", i, T0 + i)) for i in range(6)]
    outbox = work.handle(batch(records), T0 + 10)
    # the 5th error fails; the 6th again finds 4 errors before it, reaches 5, and fails too
    assert [d.source_offset for d in outbox.deadletters] == [4, 5]
    assert outbox.states[b"bad"] is not None and outbox.states[b"bad"].error_total == 4
    assert outbox.triggers == []


def test_a_tick_that_raises_keeps_the_state_and_is_not_retried_every_sweep() -> None:
    table: dict[bytes, bytes] = {}
    work = processor(table=table)
    work.commit(work.handle(batch([("c1", error("c1", 0, T0))]), T0))
    table[b"c1"] = table[b"c1"].replace(b'"v":3', b'"v":3,"pol":{"s":[["not a time"]]}')  # the ledger cannot be read
    broken = table[b"c1"]
    work.index(b"c1").set(b"c1", T0)  # due now
    work.clock(ERRORS, 0).observe(T0 + 3600, T0 + 3600)
    outbox = work.sweep(T0 + 3600, owns=lambda _k: True)
    assert b"c1" not in outbox.states and table[b"c1"] == broken
    assert 'forethought_processing_errors_total{stage="tick"} 1.0' in work.metrics.exposition().decode()
    assert work.sweep(T0 + 3601, owns=lambda _k: True).states == {}  # not tried again at every sweep
    assert work.metrics.exposition().decode().count('stage="tick"} 1.0') == 1


def test_replay_dead_letters_the_failing_record_and_goes_on() -> None:
    letters: list[DeadLetter] = []
    fired = []
    replay = Replayer(CONFIG, on_trigger=fired.append, on_deadletter=letters.append, rules=load_rules(PLAYBOOKS))
    body = {"type": "profile", "customer_id": "bad", "updated_at": "2026-09-20T00:00:00Z",
            "attributes": {"company": "c" * 1000, "segment": "s" * 1000}}
    lines = [Line(T0 - 86_400, 0, 0, json.dumps(body).encode())]
    lines += [Line(T0 + i, 0, i + 1, error("bad", i, T0 + i)) for i in range(5)]
    lines += [Line(T0 + 10 + i, 0, i + 10, error("good", i, T0 + 10 + i)) for i in range(6)]
    for line in lines:
        replay.feed(line)
    replay.finish()
    assert [(d.reason, d.source_offset) for d in letters] == [("processing_error", 5)]
    assert replay.counts.invalid == {"processing_error": 1}
    assert [t.customer_id for t in fired] == ["good"]
    assert replay.states["bad"].error_total == 4


def test_replay_reports_the_issue_quantity_as_a_schema_error_and_processes_the_later_reports(tmp_path: Path) -> None:
    from forethought.replay.command import run_replay

    rows = [{"event_id": f"u{i}", "customer_id": "c", "type": "usage", "metric": "m", "quantity": q,
             "occurred_at": datetime.fromtimestamp(T0 + i * 60, tz=timezone.utc).isoformat()}
            for i, q in enumerate([1.7976931348623157e308, 5, 6, 1.7976931348623157e308, 7])]
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\n".join(orjson.dumps(r) for r in rows) + b"\n")
    report = run_replay([source], CONFIG, deadletter_out=tmp_path / "dead.jsonl", quiet=True)
    assert report["valid"] == 3 and report["invalid_by_reason"] == {"schema": 2}


# --- the size bound of dead letters -------------------------------------------------------------

WHERE = {"reason": "oversized", "detail": "900000 bytes (limit 65536)", "source_topic": "t.events.usage",
         "source_partition": 2, "source_offset": 77, "received_at": datetime(2026, 1, 1, tzinfo=timezone.utc)}


@pytest.mark.parametrize("limit", [16 * 1024, 100_000, 256 * 1024])
def test_an_oversized_original_is_cut_to_a_prefix_with_its_size_and_sha256(limit: int) -> None:
    import hashlib

    value = bytes(range(256)) * 3600  # 921600 bytes
    letter = bounded_dead_letter(WHERE, b"cust-1", value, limit)
    assert len(letter.model_dump_json()) <= limit
    prefix = base64.b64decode(letter.value_b64)
    assert letter.truncated and value.startswith(prefix) and len(prefix) > limit // 2
    assert (letter.original_value_bytes, letter.original_value_sha256) == (len(value), hashlib.sha256(value).hexdigest())
    assert base64.b64decode(letter.key_b64 or "") == b"cust-1"
    assert letter.detail == f"900000 bytes (limit 65536); dead letter truncated to {limit} bytes: value 921600 bytes, key 6 bytes"
    assert DeadLetter.model_validate_json(letter.model_dump_json()) == letter


def test_a_huge_key_is_cut_too_and_the_value_keeps_most_of_the_room() -> None:
    import hashlib

    key, value = b"k" * 500_000, b"v" * 500_000
    letter = bounded_dead_letter(WHERE, key, value, 64 * 1024)
    assert len(letter.model_dump_json()) <= 64 * 1024
    kept_key, kept_value = base64.b64decode(letter.key_b64 or ""), base64.b64decode(letter.value_b64)
    assert key.startswith(kept_key) and len(kept_key) == 1024
    assert value.startswith(kept_value) and len(kept_value) > 40_000
    assert (letter.original_key_bytes, letter.original_key_sha256) == (len(key), hashlib.sha256(key).hexdigest())


def test_a_record_that_fits_is_kept_whole_and_a_long_detail_is_bounded() -> None:
    letter = bounded_dead_letter({**WHERE, "detail": "x" * 10_000}, None, b"{}", 16 * 1024)
    assert not letter.truncated and letter.value_b64 == "e30=" and letter.key_b64 is None
    assert len(letter.detail) == 2000 and letter.original_value_sha256 is None


def test_control_characters_in_the_detail_cannot_push_a_dead_letter_past_the_limit() -> None:
    letter = bounded_dead_letter({**WHERE, "detail": "\x00" * 5000}, b"\x00" * 5000, b"\x00" * 90_000, 16 * 1024)
    assert len(letter.model_dump_json()) <= 16 * 1024 and letter.truncated


def test_the_limit_is_a_validated_setting() -> None:
    from pydantic import ValidationError

    from forethought.ops.settings import Settings

    assert Settings().deadletter_max_bytes == 256 * 1024
    for wrong in (1000, 2_000_000):
        with pytest.raises(ValidationError, match="deadletter_max_bytes"):
            Settings(deadletter_max_bytes=wrong)


def test_replay_bounds_the_dead_letter_of_a_900_kb_line(tmp_path: Path) -> None:
    from forethought.replay.command import run_replay

    huge = orjson.dumps({"event_id": "big", "customer_id": "c", "type": "click", "occurred_at": "2026-09-20T00:00:00Z",
                         "properties": {"blob": "x" * 900_000}})
    ok = orjson.dumps({"event_id": "ok", "customer_id": "c", "type": "click", "occurred_at": "2026-09-20T00:00:01Z"})
    source = tmp_path / "in.jsonl"
    source.write_bytes(huge + b"\n" + ok + b"\n")
    dead = tmp_path / "dead.jsonl"
    report = run_replay([source], CONFIG, deadletter_out=dead, quiet=True, deadletter_max_bytes=64 * 1024)
    [line] = dead.read_bytes().splitlines()
    letter = DeadLetter.model_validate_json(line)
    assert report["valid"] == 1 and len(line) <= 64 * 1024
    assert letter.truncated and letter.original_value_bytes == len(huge) and letter.source_offset == 1
