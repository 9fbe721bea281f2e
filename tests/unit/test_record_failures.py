"""A record the engine raises on is dead-lettered (processing_error); the batch and the replay go on.

The failing records are realistic, not mocks: a customer whose state in the changelogged table
cannot be loaded (forged with an unknown version, as anyone who can write to the
``customer_state`` changelog could, or by an incompatible release), and one whose stored state
loads but has a wrong shape the engine only trips on halfway through an error event. Replay has
no changelog, so its guard is proved with a clearly named fault-injecting double.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forethought.contracts.bounded import MIN_DEADLETTER_MAX_BYTES, clean_text
from forethought.contracts.decode import bounded_dead_letter
from forethought.contracts.records import DeadLetter
from forethought.core.config import EngineConfig
from forethought.core.policy.expr import Expression
from forethought.core.policy.rules import Rules
from forethought.core.state import CustomerState
from forethought.ops.metrics import Metrics
from forethought.ops.playbooks import parse_rules
from forethought.replay.reader import Line
from forethought.replay.runner import Replayer
from forethought.stream.processor import BatchProcessor, RawRecord

RULES = parse_rules("""playbooks:
  - name: burst
    on: [error_burst]
    channels: [in_app]
    priority: 70
""")
CONFIG = EngineConfig(bucket_seconds=60, burst_min_errors=5)
T0 = 1_790_000_040.0
ERRORS, CLICKS = "events.errors", "events.clickstream"
FORGED = b'{"v":999,"id":"bad","n":1000000}'  # valid JSON, a version no release can read


def error(customer: str, n: int, at: float) -> bytes:
    return json.dumps({"event_id": f"{customer}-{n}", "customer_id": customer, "type": "error", "code": "E500",
                       "severity": "critical", "occurred_at": datetime.fromtimestamp(at, tz=timezone.utc).isoformat()
                       }).encode()


def click(customer: str, n: int, at: float) -> bytes:
    return json.dumps({"event_id": f"{customer}-c{n}", "customer_id": customer, "type": "click",
                       "occurred_at": datetime.fromtimestamp(at, tz=timezone.utc).isoformat()}).encode()


def processor(table: dict[bytes, bytes] | None = None, rules: Rules = RULES) -> BatchProcessor:
    return BatchProcessor(CONFIG, {} if table is None else table,
                          {ERRORS: frozenset({"error"}), CLICKS: frozenset({"click"})}, Metrics(), rules=rules)


def batch(records: list[tuple[str, bytes]], topic: str = ERRORS) -> list[RawRecord]:
    return [RawRecord(topic, 0, offset, key.encode(), value, T0) for offset, (key, value) in enumerate(records)]


def test_the_records_of_a_customer_whose_state_cannot_be_loaded_are_dead_lettered_and_the_batch_goes_on() -> None:
    table: dict[bytes, bytes] = {b"bad": FORGED}
    work = processor(table)
    mixed = [(f"good-{c}", error(f"good-{c}", i, T0 + 5 + i)) for i in range(6) for c in range(20)]
    for at in (30, 70, 110):  # three records of the customer with the forged state, among 120 good ones
        mixed.insert(at, ("bad", error("bad", at, T0 + 5)))
    outbox = work.handle(batch(mixed), T0 + 20)
    work.commit(outbox)
    assert [(d.reason, d.source_offset) for d in outbox.deadletters] == [("processing_error", at) for at in (30, 70, 110)]
    for letter in outbox.deadletters:
        assert letter.detail == "ValueError: unsupported customer state version 999"
        assert json.loads(base64.b64decode(letter.value_b64))["customer_id"] == "bad"
    assert table[b"bad"] == FORGED, "the stored state is left as it was, for people to inspect"
    assert sorted(t.customer_id for t, _ in outbox.triggers) == sorted(f"good-{c}" for c in range(20))
    for c in range(20):
        assert CustomerState.from_bytes(table[f"good-{c}".encode()], CONFIG).events == 6
    text = work.metrics.exposition().decode()
    assert 'forethought_processing_errors_total{stage="record"} 3.0' in text


def corrupted_state(table: dict[bytes, bytes]) -> bytes:
    """A real state of ``bad`` (two clicks) whose severity counts were corrupted into text: it loads,
    and the engine raises only when an error event is counted, after it has changed the state."""
    work = processor(table)
    work.commit(work.handle(batch([("bad", click("bad", i, T0 + i)) for i in range(2)], CLICKS), T0 + 5))
    data = CustomerState.from_bytes(table[b"bad"], CONFIG).to_dict()  # written back as JSON, which still loads
    data["sev"] = {"critical": "many"}
    table[b"bad"] = orjson.dumps(data)
    return table[b"bad"]


def test_a_failing_record_does_not_leak_its_partial_state_to_later_records_of_the_customer() -> None:
    """Within one batch: the records after the failing one start from the state before it."""
    table: dict[bytes, bytes] = {}
    before = corrupted_state(table)
    work = processor(table)
    records = [("bad", click("bad", 10, T0 + 10)), ("bad", error("bad", 0, T0 + 11)),
               ("bad", click("bad", 11, T0 + 12)), ("bad", error("bad", 0, T0 + 11))]  # the same error again
    raw = [RawRecord(ERRORS if b'"type": "error"' in value else CLICKS, 0, offset, key.encode(), value, T0)
           for offset, (key, value) in enumerate(records)]
    outbox = work.handle(raw, T0 + 20)
    # the error counts 1 event, 1 error, remembers its id and fills the bucket before it raises:
    # none of that reaches the click after it, and the same error again is not a duplicate but fails again
    assert [(d.reason, d.source_offset) for d in outbox.deadletters] == [("processing_error", 1), ("processing_error", 3)]
    assert outbox.deadletters[0].detail.startswith("TypeError: ")
    state = outbox.states[b"bad"]
    assert state is not None and (state.events, state.error_total, state.by_type) == (4, 0, {"click": 4})
    assert state.slice("error_burst").errors.count(int((T0 + 11) // CONFIG.bucket_seconds)) == 0
    assert table[b"bad"] == before and outbox.triggers == []


def test_a_state_that_cannot_be_loaded_is_skipped_and_counted_when_the_index_is_rebuilt() -> None:
    """After a restart every stored state is loaded to rebuild the deadlines; one forged state
    must not stop that (it would stop the worker at every restart: a crash loop)."""
    table: dict[bytes, bytes] = {}
    work = processor(table)
    work.commit(work.handle(batch([(f"c{i}", click(f"c{i}", 0, T0)) for i in range(5)], CLICKS), T0))
    table[b"bad"], table[b"odd"] = FORGED, b'["not", "a", "state"]'
    restarted = processor(table)
    assert restarted.rebuild_index(owns=lambda _k: True) == 5
    assert sum(len(index) for index in restarted.deadlines.values()) == 5
    text = restarted.metrics.exposition().decode()
    assert 'forethought_processing_errors_total{stage="restore"} 2.0' in text
    restarted.clock(CLICKS, 0).observe(T0 + 10 * 86_400, T0 + 10 * 86_400)
    swept = restarted.sweep(T0 + 10 * 86_400, owns=lambda _k: True)  # and the others' deadlines still come
    assert sorted(swept.states) == [f"c{i}".encode() for i in range(5)]
    assert table[b"bad"] == FORGED


def test_a_tick_that_raises_keeps_the_state_and_is_not_retried_every_sweep() -> None:
    table: dict[bytes, bytes] = {}
    work = processor(table)
    work.commit(work.handle(batch([("c1", error("c1", 0, T0))]), T0))
    data = CustomerState.from_bytes(table[b"c1"], CONFIG).to_dict()  # written back as JSON, which still loads
    table[b"c1"] = orjson.dumps({**data, "pol": {"s": [["not a time"]]}})  # the ledger cannot be read
    broken = table[b"c1"]
    work = processor(table)  # a restarted worker reads the stored state (a live one is never re-read)
    work.index(b"c1").set("c1", T0)  # due now
    work.clock(ERRORS, 0).observe(T0 + 3600, T0 + 3600)
    outbox = work.sweep(T0 + 3600, owns=lambda _k: True)
    assert b"c1" not in outbox.states and table[b"c1"] == broken
    assert 'forethought_processing_errors_total{stage="tick"} 1.0' in work.metrics.exposition().decode()
    assert work.sweep(T0 + 3601, owns=lambda _k: True).states == {}  # not tried again at every sweep
    assert work.metrics.exposition().decode().count('stage="tick"} 1.0') == 1


@dataclasses.dataclass(frozen=True)
class FaultInjectedCondition:
    """TEST DOUBLE: a playbook condition that raises RuntimeError for a customer whose profile
    carries the attribute ``inject_fault`` (the expression environment names no customer).

    Replay reads no changelog (each state is built from the replayed events themselves), and after
    the contract bounds and the overflow-safe core no known valid input makes the engine raise; a
    bug of that kind is what the guard exists for, so it is injected here where the policy runs.
    """

    real: Expression

    @property
    def source(self) -> str:
        return self.real.source

    def holds(self, env: dict[str, Any]) -> bool:
        if env["profile"]["attributes"].get("inject_fault"):
            raise RuntimeError("fault injected")
        return self.real.holds(env)


def test_replay_dead_letters_the_failing_record_and_goes_on() -> None:
    """Uses :class:`FaultInjectedCondition` (see its docstring for why replay needs a double)."""
    [book] = RULES.playbooks
    rules = Rules(playbooks=(dataclasses.replace(book, condition=FaultInjectedCondition(book.condition)),))
    letters: list[DeadLetter] = []
    fired = []
    replay = Replayer(CONFIG, on_trigger=fired.append, on_deadletter=letters.append, rules=rules)  # type: ignore[arg-type]
    marked = {"type": "profile", "customer_id": "bad", "updated_at": "2026-09-20T00:00:00Z",
              "attributes": {"inject_fault": True}}
    lines = [Line(T0 - 86_400, 0, 0, json.dumps(marked).encode())]
    lines += [Line(T0 + i, 0, i + 1, error("bad", i, T0 + i)) for i in range(5)]
    lines += [Line(T0 + 10 + i, 0, i + 10, error("good", i, T0 + 10 + i)) for i in range(6)]
    for line in lines:
        replay.feed(line)
    replay.finish()
    assert [(d.reason, d.source_offset, d.detail) for d in letters] == [
        ("processing_error", 5, "RuntimeError: fault injected")]
    assert replay.counts.invalid == {"processing_error": 1}
    assert [t.customer_id for t in fired] == ["good"]
    assert replay.states["bad"].error_total == 4, "the customer keeps the state before the failing record"


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
    assert len(letter.model_dump_json().encode()) <= limit
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
    assert len(letter.model_dump_json().encode()) <= 64 * 1024
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
    assert len(letter.model_dump_json().encode()) <= 16 * 1024 and letter.truncated


def test_the_bound_is_in_utf8_bytes_not_characters() -> None:
    """5000 '€' are 5000 characters but 15000 bytes: the published letter still fits."""
    letter = bounded_dead_letter({**WHERE, "detail": "€" * 5000}, "ключ".encode() * 100, b"x" * 100_000, 16 * 1024)
    published = letter.model_dump_json().encode()
    assert len(published) <= 16 * 1024 and letter.truncated
    assert letter.detail.endswith("dead letter truncated to 16384 bytes: value 100000 bytes, key 800 bytes")
    assert set(letter.detail.split(";")[0]) == {"€"}  # cut between characters, never inside one
    assert len(base64.b64decode(letter.value_b64)) > 8000


def test_a_lone_surrogate_in_the_detail_is_replaced_not_a_crash() -> None:
    letter = bounded_dead_letter({**WHERE, "detail": "type '\ud800' is unknown"}, None, b"{}", 16 * 1024)
    assert letter.detail == "type '?' is unknown" and not letter.truncated


originals = st.binary(max_size=300) | st.tuples(st.binary(min_size=1, max_size=16), st.integers(0, 400_000)).map(
    lambda t: (t[0] * (t[1] // len(t[0]) + 1))[: t[1]])
any_text = st.text(st.sampled_from("€\x00\"\\é😀a\n") | st.characters(exclude_categories=()), max_size=5000)
bounds = st.integers(MIN_DEADLETTER_MAX_BYTES, 64 * 1024) | st.integers(MIN_DEADLETTER_MAX_BYTES, 900_000)


@settings(max_examples=150, deadline=None)
@given(value=originals, key=st.none() | originals, detail=any_text, bound=bounds)
def test_any_dead_letter_fits_its_bound_in_bytes_and_keeps_what_it_can(
        value: bytes, key: bytes | None, detail: str, bound: int) -> None:
    import hashlib

    letter = bounded_dead_letter({**WHERE, "detail": detail}, key, value, bound)
    published = letter.model_dump_json().encode()
    assert len(published) <= bound
    assert DeadLetter.model_validate_json(published) == letter
    kept_value = base64.b64decode(letter.value_b64)
    kept_key = None if letter.key_b64 is None else base64.b64decode(letter.key_b64)
    if not letter.truncated:
        assert (kept_value, kept_key) == (value, key) and letter.detail == clean_text(detail, 2000)
    else:
        assert value.startswith(kept_value) and letter.original_value_sha256 == hashlib.sha256(value).hexdigest()
        assert letter.original_value_bytes == len(value)
        if key is not None:
            assert kept_key is not None and key.startswith(kept_key) and letter.original_key_bytes == len(key)


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


def test_a_forged_profile_in_the_profile_table_dead_letters_that_customers_records_only() -> None:
    """The ``customer_profile`` changelog can be forged like the state's: the customer's records are
    dead-lettered, everyone else's are processed, and the forged bytes are left for people to inspect."""
    forged = b'{"p": {"type": "profile", "customer_id": "bad", "updated_at": "not a time"}, "u": {}}'
    profiles: dict[bytes, bytes] = {b"bad": forged}
    table: dict[bytes, bytes] = {}
    work = BatchProcessor(CONFIG, table, {ERRORS: frozenset({"error"})}, Metrics(), rules=RULES, profiles=profiles)
    mixed = [(f"good-{c}", error(f"good-{c}", i, T0 + 5 + i)) for i in range(6) for c in range(5)]
    mixed.insert(12, ("bad", error("bad", 0, T0 + 5)))
    outbox = work.handle(batch(mixed), T0 + 20)
    work.commit(outbox)
    assert [(d.reason, d.source_offset) for d in outbox.deadletters] == [("processing_error", 12)]
    assert sorted(t.customer_id for t, _ in outbox.triggers) == [f"good-{c}" for c in range(5)]
    assert outbox.deadletters[0].detail.startswith("ValidationError: ")
    assert b"bad" not in table and profiles[b"bad"] == forged
