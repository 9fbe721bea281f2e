"""The binary state codec: exact round trips of engine-made states, old JSON still loads, and
hostile bytes (truncated, bit-flipped, forged counts) raise ValueError or decode to a valid state.

States come from the real engine (``process``/``tick``/``observe_*`` with the shipped playbooks),
driven by the extreme-but-valid records of ``test_extreme_records``.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import fields
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_extreme_records import CONFIGS, RULES, records

from forethought.contracts.records import Outcome, Profile
from forethought.core.baselines import EwStats
from forethought.core.codec_kinds import TIME, time_back, time_out
from forethought.core.config import EngineConfig
from forethought.core.engine import observe_outcome, observe_profile, process, tick
from forethought.core.ledger import Pending, PolicyLedger, Sent, Watch
from forethought.core.models import PartitionModels
from forethought.core.policy.profiles import ProfileState
from forethought.core.registry import Registry
from forethought.core.state import CustomerState, decode_state, encode_state
from forethought.core.state_codec import FIELDS, FIELDS_V1, MAGIC, MAGIC_V1, Field, decode_fields, encode_fields
from forethought.core.windows import BucketRing

CONFIG = EngineConfig()
T0 = 1_790_000_000.0


def states_of(items: list[Any], config: EngineConfig) -> list[CustomerState]:
    """Every state the engine holds while it runs through ``items``."""
    models = PartitionModels(0, config.model_min_labels, config)
    state: CustomerState | None = None
    profile, seen = ProfileState(), []
    for item in items:
        if isinstance(item, float):
            step = tick(state.copy(), item, config, RULES, profile, models) if state is not None else None
        elif isinstance(item, Profile):
            step = observe_profile(state, profile, item, item.updated_at.timestamp(), config)
        elif isinstance(item, Outcome):
            step = observe_outcome(state, profile, item, config, RULES, models)
        else:
            step = process(None if state is None else state.copy(), item, config, RULES, profile, models)
        if step is None:
            continue
        state, profile = step.state, step.profile or profile
        if state is not None:
            seen.append(state.copy())
    return seen


def busy_state() -> CustomerState:
    """A customer with something in every part: rings, usage, features, errors, a policy ledger."""
    state = CustomerState.new("cust-ü-1", CONFIG)
    sil, burst, dec, use, life, beh, learned = (state.slice(name) for name in (
        "silence", "error_burst", "decline", "usage", "lifecycle", "behaviour", "learned_dropoff"))
    state.account_id, state.first_seen, state.last_seen = "acct-1", T0 - 86_400 * 3 + 0.123456, T0 + 0.25
    state.events, state.visits, state.error_total, dec.day, dec.week = 412, 37, 9, 20717, [3, 0, 9, 400, 0, 0, 1]
    state.by_type = {"page_view": 300, "click": 100, "error": 9, "usage": 3}
    sil.gaps, burst.error_baseline = EwStats(36, 3512.25, 1.5e-7), EwStats(5, 0.2, 0.16)
    sil.long_gap, sil.long_gap_at, sil.deadline = 16.8510000705719, T0 - 3600.5, T0 + 7200.123456789
    use.usage = {"api_calls": [8, 3.414354, 0.112821, 0, 0], "seats": [2, 1.0, 0.0, 1, 2]}
    life.features = {"export": [T0 - 86_400, T0], "reports": [T0 - 10, T0 - 10]}
    burst.error_codes, burst.error_severity = {"E500": 4, "E503": 5}, {"error": 6, "critical": 3}
    state.daily_at, state.session_start, beh.odd = T0 + 50_000, int(T0) - 60, [29_833_000, 29_833_004]
    state.created, learned.snapshot = T0 - 86_400 * 9, "AAECAwQFBgcICQoLDA0O"
    state.hours.add(int(T0) // 3600, 3.0)
    state.hours.add(int(T0) // 3600 - 5, 300.0)
    for bucket, amount in ((29_833_333, 2.0), (29_833_330, 7.0), (29_833_300, 1.5)):
        state.activity.add(bucket, amount)
    burst.errors.add(29_833_333, 70_000.0)
    for i in range(32):
        state.remember(f"event-{i}")
    state.policy = PolicyLedger(
        sent=[Sent(T0 - 100, "error_burst", "in_app", 70), Sent(T0 - 50.5, "my_playbook", "email", 10)],
        episodes=b"123456abcdef", pending=[Pending(T0 + 3600, "silence", {"trigger_id": "t1", "x": [1, 2.5]})],
        watch=[Watch("error_burst", "treated", T0 - 100, T0 + 86_400 * 14)],
        recent=[(T0 + 86_400, {"trigger_id": "t0", "reasons": [{"text": "ü"}]})])
    return state


def test_the_field_table_lists_every_state_field_in_order() -> None:
    assert [f.name for f in FIELDS] == [f.name for f in fields(CustomerState)]


def test_a_busy_state_round_trips_exactly_and_is_well_under_its_json() -> None:
    state = busy_state()
    raw = state.to_bytes()
    assert raw[0] == MAGIC
    again = CustomerState.from_bytes(raw, CONFIG)
    assert again == state
    assert [type(x) for x in again.slice("usage").usage["api_calls"]] == [int, float, float, int, int]  # ints stay
    assert again.to_bytes() == raw
    assert len(raw) < 0.65 * len(json.dumps(state.to_dict(), separators=(",", ":")))


def test_an_empty_state_is_a_few_bytes() -> None:
    state = CustomerState.new("c1", CONFIG)
    assert decode_state(encode_state(state), CONFIG) == state
    assert len(encode_state(state)) < 16


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(items=records(), config=st.sampled_from(CONFIGS))
def test_every_state_the_engine_makes_round_trips_and_old_json_still_loads(items: list[Any],
                                                                           config: EngineConfig) -> None:
    for state in states_of(items, config):
        raw = encode_state(state)
        assert decode_state(raw, config) == state
        old = json.dumps(state.to_dict()).encode()  # what the worker wrote before the binary codec
        assert decode_state(old, config) == CustomerState.from_dict(json.loads(old), config)


def test_old_json_states_of_versions_2_and_3_load() -> None:
    state = busy_state()
    v3 = json.dumps(state.to_dict()).encode()
    assert CustomerState.from_bytes(v3, CONFIG) == state
    v2 = {k: v for k, v in state.to_dict().items() if k not in ("hr", "ses", "am", "be", "mu", "odd")} | {"v": 2}
    old = CustomerState.from_bytes(json.dumps(v2).encode(), CONFIG)
    assert old.events == state.events and old.hours.head == -1 and old.slice("behaviour").odd == []
    assert decode_state(encode_state(old), CONFIG) == old  # and it is written back in the new form


def test_a_state_written_under_a_larger_ring_keeps_its_newest_buckets() -> None:
    state = busy_state()
    smaller = EngineConfig(ring_buckets=10)
    again = decode_state(encode_state(state), smaller)
    via_json = CustomerState.from_dict(state.to_dict(), smaller)
    assert again.activity == via_json.activity and again.activity.size == 10


@pytest.mark.parametrize("value", [0.0, -0.0, 1.0, 0.1, 1e-300, 5e-324, 1.7976931348623157e308, math.inf,
                                   -math.inf, 1_790_000_000.123456, 1_790_000_000.5, -3.25, 2.0**60])
def test_times_come_back_bit_for_bit(value: float) -> None:
    got = time_back(msgpack.unpackb(msgpack.packb(time_out(value, 1_790_000_000))), 1_790_000_000)
    assert struct.pack("<d", got) == struct.pack("<d", value)


_LEVEL = st.tuples(st.integers(0, 2**40), st.floats(allow_nan=False), st.floats(allow_nan=False)).flatmap(
    lambda level: st.sampled_from([list(level)]) | st.tuples(st.integers(-1, 1), st.integers(-99, 99)).flatmap(
        lambda episode: st.sampled_from([[*level, *episode]]) | st.floats(min_value=0.0, max_value=4.1e9).map(
            lambda since: [*level, *episode, float(int(since))])))  # usage.observe's lists: 3, 5 or 6 numbers


def _exact(values: list[float | int]) -> list[tuple[type, object]]:
    return [(type(v), struct.pack("<d", v) if isinstance(v, float) else v) for v in values]


@given(st.lists(st.floats(allow_nan=False) | st.integers(-(2**53), 2**53), max_size=20),
       # times are event times, which the contract bounds to 1970..2100 (a time of -0.0 cannot occur)
       st.lists(st.floats(min_value=0.0, max_value=4.1e9), max_size=8), st.integers(-(2**40), 2**40), _LEVEL)
def test_any_numbers_round_trip_bit_for_bit_with_their_type(series: list[float | int], times: list[float],
                                                            anchor: int, level: list[float | int]) -> None:
    state = CustomerState.new("c", CONFIG)
    state.slice("usage").usage, state.slice("decline").decline = {"m": level}, series
    state.slice("lifecycle").features = {"f": times}
    state.slice("silence").gaps = EwStats(7, *level[1:3])
    state.last_seen = float(anchor) + 0.5
    again = decode_state(encode_state(state), CONFIG)
    assert _exact(again.slice("usage").usage["m"]) == _exact(level)
    assert _exact(again.slice("decline").decline) == _exact(series)
    gaps = again.slice("silence").gaps
    assert _exact([gaps.n, gaps.mean, gaps.var]) == _exact([7, *level[1:3]])
    assert [struct.pack("<d", t) for t in again.slice("lifecycle").features.get("f", [])] == [
        struct.pack("<d", t) for t in times]


def _valid(state: CustomerState, config: EngineConfig) -> None:
    """A decoded state is usable: the declared types, rings of the configured sizes, and it
    encodes and decodes again to itself."""
    assert isinstance(state, CustomerState) and isinstance(state.customer_id, str)
    assert state.activity.size == state.slice("error_burst").errors.size == config.ring_buckets
    assert state.hours.size == 24 and isinstance(state.slice("decline").day, int)
    assert all(isinstance(getattr(state, n), int) for n in ("events", "late", "error_total", "visits"))
    assert isinstance(state.recent_ids, bytes) and isinstance(state.policy, PolicyLedger)
    assert decode_state(encode_state(state), config) == state


def _decodes_or_refuses(raw: bytes) -> None:
    try:
        state = decode_state(raw, CONFIG)
    except ValueError:
        return
    _valid(state, CONFIG)


def test_every_truncation_of_a_valid_encoding_is_refused() -> None:
    raw = busy_state().to_bytes()
    for end in range(len(raw)):
        with pytest.raises(ValueError):
            decode_state(raw[:end], CONFIG)


def test_every_single_bit_flip_decodes_to_a_valid_state_or_raises_value_error() -> None:
    raw = busy_state().to_bytes()
    for i in range(len(raw) * 8):
        flipped = bytearray(raw)
        flipped[i // 8] ^= 1 << (i % 8)
        _decodes_or_refuses(bytes(flipped))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.integers(0, 2000))
def test_random_bytes_after_the_magic_byte_decode_or_raise_value_error(tail: bytes, cut: int) -> None:
    _decodes_or_refuses(bytes([MAGIC]) + tail)
    raw = busy_state().to_bytes()
    _decodes_or_refuses(raw[:cut % len(raw)] + tail[:8] + raw[cut % len(raw) + 8:])


def _forged_v1(*items: Any) -> bytes:
    """A version 1 state (one flat table, before slices): still read, so still checked."""
    return MAGIC_V1 + msgpack.packb(list(items), use_bin_type=True)


def _forged(*items: Any) -> bytes:
    return bytes([MAGIC]) + msgpack.packb(list(items), use_bin_type=True)


SLICES_BIT = 1 << 2  # FIELDS index 2: the detectors' slices


@pytest.mark.parametrize("raw", [
    b"", b"{", b"{}", b"[1, 2]", b"\x00", b"\x82", b"\x81", b"\x83", b"\x81\xdd\xff\xff\xff\xff",  # 2**32 items
    b"\x82\xdd\xff\xff\xff\xff",
    b'{"v": 3, "id": "c", "act": "no"}', b'{"v": 9, "id": "c"}', b'{"v": 3}', b"{" + b"[" * 100_000,
    b"\x81" + b"\x91" * 100_000,  # arrays nested 100,000 deep
    b"\x82" + b"\x91" * 100_000,
    _forged(1 << 40, 0),  # a presence bit beyond the table: written by a newer version
    _forged(1, 0),
    _forged(1, 0, "c", "extra"),
    _forged(1, 0, 7),
    _forged(1 | 1 << 5, 0, "c", 1.5),  # a count that is a float
    _forged(1 | 1 << 7, 0, "c", {"page_view": "many"}),
    _forged(1 | 1 << 1, 0, "c", [5, [[0], []]]),
    _forged(1 | 1 << 4, 0, "c", 7),  # a time with an unknown unit
    _forged(1 | 1 << 16, 0, "c", [[], b"", [[0, "silence", "[]"]], [], []]),  # a held trigger that is no object
    _forged(1 | SLICES_BIT, 0, "c", []),  # slices that are no map
    _forged(1 | SLICES_BIT, 0, "c", {"s": 5}),  # a slice that is no list
    _forged(1 | SLICES_BIT, 0, "c", {"s": [3, 1, [0, 0.0, 0.0]]}),  # a slice version from the future
    _forged(1 | SLICES_BIT, 0, "c", {"s": [2, 1, [0, 15, 0.0]]}),  # a short decimal of 15 places
    _forged(1 | SLICES_BIT, 0, "c", {"s": [2, 1, [0, "1", 0.0]]}),  # a decimal that is text
    _forged(1 | SLICES_BIT, 0, "c", {"u": [2, 1, {"m": [1, 2]}]}),  # a usage level of two numbers
    _forged(1 | SLICES_BIT, 0, "c", {"u": [2, 1, {"m": [1, 2, 3, 0, 0.5]}]}),  # a streak that is a float
    _forged(1 | SLICES_BIT, 0, "c", {"u": [1, 1, {"m": [1.5, 2.0, 3.0]}]}),  # (version 1) a count that is a float
    _forged(1 | SLICES_BIT, 0, "c", {"b": [2, 1 << 5, [1, 2, 3, 4, 5]]}),  # five severities of four
    _forged(1 | SLICES_BIT, 0, "c", {"b": [2, 1 << 5, [1, 2.5]]}),  # a severity count that is a float
    _forged(1 | SLICES_BIT, 0, "c", {"s": [0, 1, [0, 0.0, 0.0]]}),  # slice version 0
    _forged(1 | SLICES_BIT, 0, "c", {"s": [1, 1 << 9, 5]}),  # a slice field beyond its table
    _forged(1 | SLICES_BIT, 0, "c", {"s": [1, 1]}),  # a slice field announced, none there
    _forged(1 | SLICES_BIT, 0, "c", {"s": [1, 1, ["n", 0.0, 0.0]]}),  # a slice field of the wrong type
    _forged(1 | SLICES_BIT, 0, "c", {"b": [1, 1 << 4, {"E1": 1.5}]}),
    _forged(1 | SLICES_BIT, 0, "c", {"s": ["1", 1, [0, 0.0, 0.0]]}),
    _forged(1 | SLICES_BIT, 0, "c", {1: [1, 0]}),  # a key that is no string
    _forged_v1(1 << 40, 0),  # a presence bit beyond the table: written by a newer version
    _forged_v1(1, 0),  # a field announced, none there
    _forged_v1(1, 0, "c", "extra"),
    _forged_v1(1, 0, 7),  # a customer id that is a number
    _forged_v1(1, 0, b"c"),
    _forged_v1(1 | 1 << 6, 0, "c", 1.5),  # a count that is a float
    _forged_v1(1 | 1 << 6, 0, "c", True),
    _forged_v1(1 | 1 << 9, 0, "c", {"page_view": "many"}),
    _forged_v1(1 | 1 << 9, 0, "c", {b"page_view": 1}),
    _forged_v1(1 | 1 << 1, 0, "c", [5, [[0], []]]),  # a ring whose ages and counts disagree
    _forged_v1(1 | 1 << 1, 0, "c", [-5, b"\x01"]),
    _forged_v1(1 | 1 << 1, 0, "c", [5, [b"\x01"]]),  # two-byte counts of odd length
    _forged_v1(1 | 1 << 5, 0, "c", 7),  # a time with an unknown unit
    _forged_v1(1 | 1 << 5, 0, "c", math.nan),
    _forged_v1(1 | 1 << 11, 0, "c", [1, 2.0]),
    _forged_v1(1 | 1 << 29, 0, "c", [[], b"", [[0, "silence", "[" * 100 + "]" * 100]], [], []]),  # nested 100 deep
    _forged_v1(1 | 1 << 29, 0, "c", [[], b"", [[0, "silence", "[]"]], [], []]),  # a held trigger that is no object
    _forged_v1(1 | 1 << 29, 0, "c", [[[0, "p", "email"]], b"", [], [], []]),
    bytes([MAGIC]) + msgpack.packb([1, 0, "c"]) + b"\x00",  # trailing bytes
    bytes([MAGIC]) + b"\x93\x01\x00\xd4\x05\x01",  # an extension type
], ids=lambda raw: raw[:12].hex())
def test_hostile_bytes_raise_value_error(raw: bytes) -> None:
    with pytest.raises(ValueError):
        decode_state(raw, CONFIG)


def test_a_field_added_at_the_end_of_the_table_still_reads_older_encodings() -> None:
    state = busy_state()
    older = encode_fields(state)  # written before the new field existed
    newer_table = (*FIELDS, Field("next_look", TIME))
    fields_read = decode_fields(older, CONFIG, newer_table)
    assert "next_look" not in fields_read  # → the dataclass default, once the dataclass has the field
    assert CustomerState(**fields_read) == state
    with pytest.raises(ValueError, match="newer"):
        decode_fields(_forged(1 << len(FIELDS) | 1, 0, "c", 5), CONFIG)


def test_a_ring_with_large_or_fractional_counts_round_trips() -> None:
    for counts in ([1.0, 255.0], [256.0, 65_535.0], [65_536.0], [0.5], [1e300, -1.0]):
        ring = BucketRing.empty(60)
        for age, c in enumerate(counts):
            ring.counts[(1000 - age) % 60] = c
        ring.head = 1000
        state = CustomerState(customer_id="c", activity=ring, slices=CONFIG.detectors.new_slices(CONFIG))
        assert decode_state(encode_state(state), CONFIG).activity == ring


DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("name", ["state-v1-busy.bin", "state-v3-busy.json"])
def test_states_written_before_detectors_had_slices_load_into_the_slices(name: str) -> None:
    """Bytes written by the previous release (binary version 1 and JSON version 3, made by the
    code of commit 4d84db2 from this file's ``busy_state``): every field lands in its detector's
    slice, and the state is written back in the version 2 form, which reads back the same."""
    old = (DATA / name).read_bytes()
    state = decode_state(old, CONFIG)
    assert state == busy_state()
    assert state.slice("silence").deadline == T0 + 7200.123456789 and state.slice("error_burst").errors.total() == 70_000
    again = state.to_bytes()
    assert again[0] == MAGIC and decode_state(again, CONFIG) == state


def test_a_slice_of_a_detector_no_longer_registered_is_dropped_and_a_new_detector_starts_fresh() -> None:
    state = busy_state()
    raw = state.to_bytes()
    without_decline = Registry(tuple(d for d in CONFIG.detectors if d.name != "decline"))
    fewer = decode_state(raw, EngineConfig(without_decline))
    assert "decline" not in fewer.slices and fewer.slice("silence") == state.slice("silence")
    back = decode_state(fewer.to_bytes(), CONFIG)  # the detector is back: its slice starts empty
    assert back.slice("decline").week == [0] * 7 and back.slice("lifecycle") == state.slice("lifecycle")
    with pytest.raises(ValueError, match="'behaviour' needs 'usage'"):
        Registry(tuple(d for d in CONFIG.detectors if d.name != "usage"))
