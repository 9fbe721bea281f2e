"""decode_event: every dead-letter reason from a realistic input, every kind decoded, no crashes."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forethought.contracts.decode import DEFAULT_MAX_BYTES, Rejection, decode_event, validate_event
from forethought.contracts.events import (
    CLICKSTREAM_KINDS,
    EVENT_KINDS,
    MAX_PROPERTIES,
    Click,
    Envelope,
    ErrorEvent,
    FeatureUsed,
    PageView,
    SessionEnd,
    SessionStart,
    Usage,
)

PROPERTY_SETTINGS = settings(max_examples=200, deadline=None)
WHEN = "2026-11-22T10:00:00+01:00"


def event(type_: str = "page_view", **fields: Any) -> dict[str, Any]:
    """A valid event of ``type_`` as a producer would send it; ``fields`` override or add."""
    data: dict[str, Any] = {
        "event_id": "evt-1", "customer_id": "cust-42", "type": type_, "occurred_at": WHEN,
    }
    data.update(EXTRA_BY_KIND.get(type_, {}))
    data.update(fields)
    return data


def raw(data: Any) -> bytes:
    return orjson.dumps(data)


EXTRA_BY_KIND: dict[str, dict[str, Any]] = {
    "page_view": {"page": "/billing"},
    "click": {"target": "upgrade-button"},
    "feature_used": {"feature": "export"},
    "error": {"code": "E500", "severity": "critical", "message": "upstream timeout"},
    "usage": {"metric": "api_calls", "quantity": 12.5, "unit": "calls"},
}

# ---- every dead-letter reason ---------------------------------------------------------------

REJECTIONS = [
    pytest.param(b"", "not_json", id="empty-bytes"),
    pytest.param(None, "not_json", id="tombstone-none"),
    pytest.param(b"customer_id=c1&type=click", "not_json", id="form-encoded"),
    pytest.param(raw(event())[:-5], "not_json", id="truncated-json"),
    pytest.param(b'{"customer_id": "c\xff"}', "not_json", id="invalid-utf8"),
    pytest.param(raw(event("error", message="Traceback...\n" * 6_000)), "oversized",
                 id="stack-trace-over-64KiB"),
    pytest.param(raw({k: v for k, v in event().items() if k != "customer_id"}), "missing_customer",
                 id="no-customer_id"),
    pytest.param(raw(event(customer_id="")), "missing_customer", id="empty-customer_id"),
    pytest.param(raw(event(customer_id="   \t")), "missing_customer", id="whitespace-customer_id"),
    pytest.param(raw(event(customer_id=None)), "missing_customer", id="null-customer_id"),
    pytest.param(raw(event(type="purchase")), "unknown_type", id="unknown-type"),
    pytest.param(raw({k: v for k, v in event().items() if k != "type"}), "unknown_type",
                 id="no-type"),
    pytest.param(raw(event(occurred_at="2026-11-22T10:00:00")), "schema", id="naive-datetime"),
    pytest.param(raw(event("usage", quantity=-3)), "schema", id="negative-quantity"),
    pytest.param(raw(event(properties={f"p{i}": i for i in range(MAX_PROPERTIES + 1)})), "schema",
                 id="too-many-properties"),
    pytest.param(raw(event("feature_used", feature=None)), "schema", id="feature-missing"),
    pytest.param(raw([event()]), "schema", id="json-array"),
]


@pytest.mark.parametrize(("payload", "reason"), REJECTIONS)
def test_bad_input_is_rejected_with_its_reason(payload: bytes | None, reason: str) -> None:
    result = decode_event(payload)
    assert isinstance(result, Rejection), result
    assert result.reason == reason, result.detail
    assert result.detail


def test_an_unknown_field_is_ignored_and_reported_not_dead_lettered() -> None:
    ignored: list[str] = []
    result = decode_event(raw(event("usage", colour="red", zz_team="growth")), ignored=ignored)
    assert isinstance(result, Usage) and result.quantity == 12.5
    assert ignored == ["colour", "zz_team"]


def test_a_strict_topic_dead_letters_an_unknown_field_naming_it() -> None:
    ignored: list[str] = []
    result = decode_event(raw(event("usage", colour="red")), strict=True, ignored=ignored)
    assert isinstance(result, Rejection) and result.reason == "unknown_field"
    assert "'colour'" in result.detail and ignored == []
    assert isinstance(decode_event(raw(event("usage")), strict=True), Usage)  # known fields only: fine


def test_a_record_invalid_on_a_known_field_is_a_schema_error_and_reports_nothing() -> None:
    ignored: list[str] = []
    result = decode_event(raw(event("usage", quantity="12", colour="red")), ignored=ignored)
    assert isinstance(result, Rejection) and result.reason == "schema" and ignored == []


def test_30_properties_of_1_KiB_are_a_schema_problem_not_size() -> None:
    # A 30 KiB record is under the size limit: it fails only on the 1 KiB value length.
    payload = raw(event(properties={f"k{i}": "x" * 1025 for i in range(30)}))
    assert len(payload) < DEFAULT_MAX_BYTES
    assert decode_event(payload).reason == "schema"


def test_oversized_respects_the_configured_limit() -> None:
    payload = raw(event())
    assert isinstance(decode_event(payload, max_bytes=len(payload)), PageView)
    rejection = decode_event(payload, max_bytes=len(payload) - 1)
    assert rejection.reason == "oversized"
    assert str(len(payload)) in rejection.detail


def test_wrong_topic_for_an_error_on_the_clickstream_topic() -> None:
    rejection = decode_event(raw(event("error")), allowed_kinds=CLICKSTREAM_KINDS)
    assert rejection.reason == "wrong_topic"
    assert "error" in rejection.detail
    # the same record is fine on a topic that allows errors
    assert isinstance(decode_event(raw(event("error")), allowed_kinds=frozenset({"error"})), ErrorEvent)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (event(occurred_at="2026-11-22T10:00:00"), "occurred_at"),
        (event("usage", quantity=-1), "quantity"),
        (event(properties={f"p{i}": i for i in range(MAX_PROPERTIES + 1)}), "properties"),
    ],
)
def test_schema_detail_names_the_field(payload: dict[str, Any], field: str) -> None:
    assert field in decode_event(raw(payload)).detail


# ---- every kind decodes ---------------------------------------------------------------------

KIND_CLASSES = {
    "page_view": PageView, "click": Click, "session_start": SessionStart,
    "session_end": SessionEnd, "feature_used": FeatureUsed, "error": ErrorEvent, "usage": Usage,
}


def test_the_seven_kinds_are_covered() -> None:
    assert set(KIND_CLASSES) == EVENT_KINDS


@pytest.mark.parametrize("kind", sorted(KIND_CLASSES))
def test_valid_event_decodes_to_its_class(kind: str) -> None:
    result = decode_event(raw(event(kind, account_id="acct-7", properties={"plan": "pro"})))
    assert type(result) is KIND_CLASSES[kind]
    assert (result.type, result.customer_id, result.account_id) == (kind, "cust-42", "acct-7")
    assert result.properties == {"plan": "pro"}
    assert result.epoch == datetime(2026, 11, 22, 9, tzinfo=timezone.utc).timestamp()  # +01:00


def test_kind_specific_fields_survive_decoding() -> None:
    error = decode_event(raw(event("error")))
    usage = decode_event(raw(event("usage")))
    assert (error.code, error.severity, error.message) == ("E500", "critical", "upstream timeout")
    assert (usage.metric, usage.quantity, usage.unit) == ("api_calls", 12.5, "calls")


# ---- no input crashes the decoder -----------------------------------------------------------

text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)
scalars = (
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | text
)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)
good_ids = st.sampled_from(["c1", "  c1 ", "e-9"]) | text.filter(str.strip)
ids = st.integers(0, 3).flatmap(  # mostly good, so later checks are reached
    lambda k: good_ids if k else st.sampled_from(["", "   ", "x" * 129]) | scalars
)
times = st.sampled_from([WHEN, "2026-11-22T10:00:00Z", "2026-11-22T10:00:00", "yesterday"]) | scalars
known_kinds = st.sampled_from(sorted(EVENT_KINDS))
kinds_or_scalars = st.integers(0, 3).flatmap(lambda k: known_kinds if k else scalars)
kinds_or_json = st.integers(0, 3).flatmap(lambda k: known_kinds if k else json_values)
kind_fields = {
    "page": text, "target": text, "feature": text, "code": text, "message": text,
    "severity": st.sampled_from(["info", "warning", "error", "critical", "fatal"]),
    "metric": text, "quantity": scalars, "unit": text,
    "properties": st.dictionaries(text, json_values, max_size=40),
}


def json_events(kinds: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts near the event shape (so valid events occur too) plus arbitrary extra keys.

    The envelope keys are always present (their values vary, blank and null included) so
    the checks behind them are reached and some draws are valid; absent keys are covered
    by the explicit rejections above.
    """
    shaped = st.fixed_dictionaries(
        {"customer_id": ids, "type": kinds, "event_id": ids, "occurred_at": times},
        optional={"account_id": ids, **kind_fields},
    )
    extra = st.just({}) | st.dictionaries(text, json_values, max_size=3)
    return st.tuples(shaped, extra).map(lambda pair: pair[1] | pair[0])


def assert_event_or_rejection(result: object) -> None:
    assert isinstance(result, (Envelope, Rejection)), result


@PROPERTY_SETTINGS
@given(st.binary(max_size=300) | json_values.map(orjson.dumps))
def test_arbitrary_bytes_never_raise(payload: bytes) -> None:
    assert_event_or_rejection(decode_event(payload))


@PROPERTY_SETTINGS
@given(json_events(kinds_or_scalars))
def test_arbitrary_json_dicts_with_scalar_type_never_raise(data: dict[str, Any]) -> None:
    assert_event_or_rejection(validate_event(data))
    assert_event_or_rejection(decode_event(orjson.dumps(data)))


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(json_events(kinds_or_json))
def test_arbitrary_json_dicts_never_raise(data: dict[str, Any]) -> None:
    assert_event_or_rejection(decode_event(orjson.dumps(data)))


@pytest.mark.parametrize("bad_type", [["click"], {"kind": "click"}])
def test_non_string_type_is_a_rejection_not_a_crash(bad_type: Any) -> None:
    result = decode_event(raw(event(type=bad_type)))
    assert isinstance(result, Rejection)
    assert result.reason in {"unknown_type", "schema"}


def test_deeply_nested_json_is_rejected_not_raised() -> None:
    assert decode_event(b"[" * 5000 + b"]" * 5000).reason == "not_json"


def test_event_times_before_1970_are_rejected_as_schema_errors() -> None:
    result = decode_event(raw(event(occurred_at="1969-12-31T23:00:00Z")))
    assert isinstance(result, Rejection) and result.reason == "schema"
    assert "occurred_at" in result.detail
