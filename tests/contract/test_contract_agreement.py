"""One source of truth: the worker's decoder and the published JSON Schemas give the same verdict on
the same records — valid and invalid, on tolerant and strict topics.

Each case goes, as the same JSON bytes, to ``decode_event`` (what the worker accepts) and to the
``jsonschema`` package with format checking (what the published ``schemas/*.schema.json`` accept).
Each case also states the verdict it must get, so a change of contract is a visible change here.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forethought.contracts.decode import Rejection, decode_event
from forethought.contracts.events import EVENT_KINDS, MAX_PROPERTIES
from forethought.contracts.schemas import EXAMPLES
from forethought.ops.settings import REPO_ROOT

SCHEMAS = REPO_ROOT / "schemas"
ALL_INPUT_KINDS = EVENT_KINDS | {"profile", "outcome"}
OK, BAD = True, False


def validator(name: str, strict: bool) -> jsonschema.Draft202012Validator:
    file = SCHEMAS / f"{name}{'.strict' if strict else ''}.schema.json"
    schema = json.loads(file.read_text())
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


VALIDATORS = {(name, strict): validator(name, strict)
              for name in ("inbound-event", "profile", "outcome") for strict in (False, True)}


def schema_accepts(record: Any, strict: bool) -> bool:
    kind = record.get("type") if isinstance(record, dict) else None
    name = kind if kind in ("profile", "outcome") else "inbound-event"
    return VALIDATORS[(name, strict)].is_valid(record)


def worker_accepts(record: Any, strict: bool) -> bool:
    return not isinstance(decode_event(orjson.dumps(record), ALL_INPUT_KINDS, strict=strict), Rejection)


def ev(kind: str = "page_view", **changes: Any) -> dict[str, Any]:
    """The published example of ``kind`` with ``changes`` (a value of ``...`` removes the field)."""
    record = {**EXAMPLES[kind], **changes}
    return {k: v for k, v in record.items() if v is not ...}


# (id, record, verdict on a tolerant topic, verdict on a strict topic)
CASES: list[tuple[str, Any, bool, bool]] = [
    # -- the examples, and what is optional
    *[(f"example-{kind}", ev(kind), OK, OK) for kind in sorted(ALL_INPUT_KINDS)],
    ("minimal-page_view", {"type": "page_view", "event_id": "e", "customer_id": "c",
                           "occurred_at": "2026-11-22T10:00:00Z"}, OK, OK),
    ("error-without-severity", ev("error", severity=..., message=...), OK, OK),
    ("null-optionals", ev("page_view", account_id=None, session_id=None, page=None), OK, OK),
    # -- occurred_at: RFC 3339 strings with an offset, in range; never numbers
    ("time-Z", ev(occurred_at="2026-11-22T10:00:00Z"), OK, OK),
    ("time-minus-zero", ev(occurred_at="2026-11-22T10:00:00-00:00"), OK, OK),
    ("time-millis", ev(occurred_at="2026-11-22T10:00:00.123+05:30"), OK, OK),
    ("time-nanos-java", ev(occurred_at="2026-11-22T10:00:00.123456789Z"), OK, OK),
    ("time-leap-day", ev(occurred_at="2024-02-29T12:00:00Z"), OK, OK),
    ("time-earliest", ev(occurred_at="1970-01-02T00:00:00+23:59"), OK, OK),
    ("time-latest", ev(occurred_at="2099-12-30T23:59:59.999999-23:59"), OK, OK),
    ("time-no-offset", ev(occurred_at="2026-11-22T10:00:00"), BAD, BAD),
    ("time-epoch-int", ev(occurred_at=1763805600), BAD, BAD),
    ("time-epoch-float", ev(occurred_at=1763805600.5), BAD, BAD),
    ("time-epoch-string", ev(occurred_at="1763805600"), BAD, BAD),
    ("time-space-separator", ev(occurred_at="2026-11-22 10:00:00Z"), BAD, BAD),
    ("time-lowercase", ev(occurred_at="2026-11-22t10:00:00z"), BAD, BAD),
    ("time-no-seconds", ev(occurred_at="2026-11-22T10:00Z"), BAD, BAD),
    ("time-leap-second", ev(occurred_at="2026-12-31T23:59:60Z"), BAD, BAD),
    ("time-hour-24", ev(occurred_at="2026-11-22T24:00:00Z"), BAD, BAD),
    ("time-feb-29-not-leap", ev(occurred_at="2026-02-29T10:00:00Z"), BAD, BAD),
    ("time-april-31", ev(occurred_at="2026-04-31T10:00:00Z"), BAD, BAD),
    ("time-offset-24h", ev(occurred_at="2026-11-22T10:00:00+24:00"), BAD, BAD),
    ("time-offset-no-colon", ev(occurred_at="2026-11-22T10:00:00+0100"), BAD, BAD),
    ("time-10-fraction-digits", ev(occurred_at="2026-11-22T10:00:00.1234567891Z"), BAD, BAD),
    ("time-trailing-newline", ev(occurred_at="2026-11-22T10:00:00Z\n"), BAD, BAD),
    ("time-1970-01-01", ev(occurred_at="1970-01-01T12:00:00Z"), BAD, BAD),
    ("time-1969", ev(occurred_at="1969-12-31T23:00:00Z"), BAD, BAD),
    ("time-2099-12-31", ev(occurred_at="2099-12-31T00:00:00Z"), BAD, BAD),
    ("time-2100", ev(occurred_at="2100-01-01T00:00:00Z"), BAD, BAD),
    ("time-date-only", ev(occurred_at="2026-11-22"), BAD, BAD),
    ("time-null", ev(occurred_at=None), BAD, BAD),
    ("time-missing", ev(occurred_at=...), BAD, BAD),
    # -- ids: kept exactly as sent; never trimmed
    ("id-128", ev(customer_id="c" * 128, event_id="e" * 128), OK, OK),
    ("id-inner-space", ev(customer_id="acme corp/42"), OK, OK),
    ("id-unicode", ev(customer_id="kundin-ü-東京"), OK, OK),
    ("id-129", ev(customer_id="c" * 129), BAD, BAD),
    ("id-leading-space", ev(customer_id=" cust-42"), BAD, BAD),
    ("id-trailing-space", ev(customer_id="cust-42 "), BAD, BAD),
    ("id-trailing-newline", ev(customer_id="cust-42\n"), BAD, BAD),
    ("id-tab-inside", ev(customer_id="cust\t42"), BAD, BAD),
    ("id-nul-inside", ev(customer_id="cust\x0042"), BAD, BAD),
    ("id-only-spaces", ev(customer_id="   "), BAD, BAD),
    ("id-empty", ev(customer_id=""), BAD, BAD),
    ("id-number", ev(customer_id=42), BAD, BAD),
    ("id-null", ev(customer_id=None), BAD, BAD),
    ("id-missing", ev(customer_id=...), BAD, BAD),
    ("event-id-empty", ev(event_id=""), BAD, BAD),
    ("event-id-missing", ev(event_id=...), BAD, BAD),
    ("account-id-empty", ev(account_id=""), BAD, BAD),
    ("session-id-number", ev(session_id=7), BAD, BAD),
    # -- type: required, one of the kinds
    ("type-missing-but-shape-of-page_view", ev(type=...), BAD, BAD),
    ("type-unknown", ev(type="purchase"), BAD, BAD),
    ("type-number", ev(type=5), BAD, BAD),
    ("type-null", ev(type=None), BAD, BAD),
    # -- quantity: a JSON number from 0 to 1e18; never a string or a boolean
    ("quantity-int", ev("usage", quantity=120), OK, OK),
    ("quantity-zero", ev("usage", quantity=0), OK, OK),
    ("quantity-fraction", ev("usage", quantity=0.25), OK, OK),
    ("quantity-max", ev("usage", quantity=1e18), OK, OK),
    ("quantity-string", ev("usage", quantity="12"), BAD, BAD),
    ("quantity-bool", ev("usage", quantity=True), BAD, BAD),
    ("quantity-null", ev("usage", quantity=None), BAD, BAD),
    ("quantity-negative", ev("usage", quantity=-1), BAD, BAD),
    ("quantity-over-max", ev("usage", quantity=1.0000001e18), BAD, BAD),
    ("quantity-missing", ev("usage", quantity=...), BAD, BAD),
    ("metric-empty", ev("usage", metric=""), BAD, BAD),
    ("unit-129", ev("usage", unit="u" * 129), BAD, BAD),
    # -- kind fields
    ("feature-missing", ev("feature_used", feature=...), BAD, BAD),
    ("feature-129", ev("feature_used", feature="f" * 129), BAD, BAD),
    ("code-missing", ev("error", code=...), BAD, BAD),
    ("severity-unknown", ev("error", severity="fatal"), BAD, BAD),
    ("severity-null", ev("error", severity=None), BAD, BAD),
    ("message-2048", ev("error", message="m" * 2048), OK, OK),
    ("message-2049", ev("error", message="m" * 2049), BAD, BAD),
    ("page-number", ev(page=404), BAD, BAD),
    # -- properties: at most 32 keys of 1..128 characters; scalar values, text at most 1024
    ("properties-32", ev(properties={f"p{i}": i for i in range(MAX_PROPERTIES)}), OK, OK),
    ("properties-scalars", ev(properties={"s": "x" * 1024, "i": -3, "f": 0.5, "b": False, "n": None}), OK, OK),
    ("properties-33", ev(properties={f"p{i}": i for i in range(MAX_PROPERTIES + 1)}), BAD, BAD),
    ("property-text-1025", ev(properties={"s": "x" * 1025}), BAD, BAD),
    ("property-object", ev(properties={"o": {"a": 1}}), BAD, BAD),
    ("property-list", ev(properties={"l": [1, 2]}), BAD, BAD),
    ("property-key-empty", ev(properties={"": 1}), BAD, BAD),
    ("property-key-129", ev(properties={"k" * 129: 1}), BAD, BAD),
    ("properties-not-object", ev(properties="plan=pro"), BAD, BAD),
    # -- unknown fields: ignored on a tolerant topic, rejected on a strict one
    ("unknown-field", ev(ab_variant="B"), OK, BAD),
    ("unknown-object-field", ev("usage", region={"name": "eu"}), OK, BAD),
    ("another-kinds-field", ev("click", page="/billing"), OK, BAD),
    ("unknown-field-and-bad-known-field", ev("usage", ab_variant="B", quantity="12"), BAD, BAD),
    # -- not an object
    ("json-array", [ev()], BAD, BAD),
    ("json-string", "page_view", BAD, BAD),
    # -- profiles
    ("profile-minimal", {"type": "profile", "customer_id": "c", "updated_at": "2026-11-22T10:00:00Z"}, OK, OK),
    ("profile-quiet-hours", ev("profile", quiet_hours="22:00-08:00"), OK, OK),
    ("profile-dates-edges", ev("profile", signup_date="1970-01-01", renewal_date="2099-12-31"), OK, OK),
    ("profile-updated-epoch", ev("profile", updated_at=1763805600), BAD, BAD),
    ("profile-consent-string", ev("profile", consent={"email": "true"}), BAD, BAD),
    ("profile-consent-int", ev("profile", consent={"email": 1}), BAD, BAD),
    ("profile-consent-unknown-channel", ev("profile", consent={"fax": True}), BAD, BAD),
    ("profile-opted-out-string", ev("profile", opted_out="false"), BAD, BAD),
    ("profile-signup-epoch", ev("profile", signup_date=1736899200), BAD, BAD),
    ("profile-signup-datetime", ev("profile", signup_date="2026-01-15T00:00:00Z"), BAD, BAD),
    ("profile-signup-feb-30", ev("profile", signup_date="2026-02-30"), BAD, BAD),
    ("profile-signup-2100", ev("profile", signup_date="2100-01-01"), BAD, BAD),
    ("profile-quiet-hours-25", ev("profile", quiet_hours="25:00-08:00"), BAD, BAD),
    ("profile-quiet-hours-newline", ev("profile", quiet_hours="22:00-08:00\n"), BAD, BAD),
    ("profile-timezone-spaces", ev("profile", timezone=" Asia/Tokyo"), BAD, BAD),
    ("profile-attributes-65", ev("profile", attributes={f"a{i}": i for i in range(65)}), BAD, BAD),
    ("profile-unknown-field", ev("profile", tier="gold"), OK, BAD),
    # -- outcomes
    ("outcome-status-unknown", ev("outcome", status="sent"), BAD, BAD),
    ("outcome-channel-unknown", ev("outcome", channel="fax"), BAD, BAD),
    ("outcome-time-epoch", ev("outcome", occurred_at=1763805600), BAD, BAD),
    ("outcome-detail-2049", ev("outcome", detail="d" * 2049), BAD, BAD),
    ("outcome-unknown-field", ev("outcome", campaign="spring"), OK, BAD),
]


def test_case_ids_are_unique() -> None:
    ids = [case[0] for case in CASES]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("strict", [False, True], ids=["tolerant", "strict"])
@pytest.mark.parametrize(("record", "tolerant", "strict_verdict"), [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_worker_and_published_schema_agree(record: Any, tolerant: bool, strict_verdict: bool, strict: bool) -> None:
    expected = strict_verdict if strict else tolerant
    assert (worker_accepts(record, strict), schema_accepts(record, strict)) == (expected, expected)


# Checks only the worker can make (documented in docs/contracts.md): the schema accepts these.
WORKER_ONLY = [
    pytest.param(ev("profile", timezone="Mars/Olympus"), id="profile-unknown-iana-zone"),
]


@pytest.mark.parametrize("record", WORKER_ONLY)
def test_the_documented_worker_only_checks(record: dict[str, Any]) -> None:
    for strict in (False, True):
        assert schema_accepts(record, strict) and not worker_accepts(record, strict)


def test_the_tolerant_reader_drops_the_unknown_field_and_keeps_the_rest() -> None:
    ignored: list[str] = []
    decoded = decode_event(orjson.dumps(ev("usage", ab_variant="B")), ignored=ignored)
    assert not isinstance(decoded, Rejection)
    assert (decoded.quantity, ignored) == (120.0, ["ab_variant"])
    assert "ab_variant" not in decoded.model_dump()


# ---- beyond the list: the examples with random fields replaced, added or broken ----------------------

_text = st.text(max_size=12)
_int64 = st.integers(-(2**63), 2**63 - 1)
_values = st.one_of(
    st.none(), st.booleans(), _int64, st.floats(allow_nan=False, allow_infinity=False), _text,
    st.sampled_from(["2026-11-22T10:00:00Z", "2026-11-22T10:00:00", "2026-11-22T10:00:00.5+01:00", " c", "c ", "",
                     "x" * 129, "1e3", "22:00-08:00", "2026-01-15", "email", "delivered", "usage", "info"]),
    st.lists(st.integers(0, 9), max_size=2),
    st.dictionaries(_text, st.one_of(_int64, _text, st.none(), st.lists(st.integers(0, 9), max_size=1)), max_size=3),
)
_FIELDS = sorted({name for example in EXAMPLES.values() for name in example} - {"timezone"} | {"zz_new", "properties"})


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(st.sampled_from(sorted(ALL_INPUT_KINDS)), st.dictionaries(st.sampled_from(_FIELDS), _values, max_size=3),
       st.booleans())
def test_worker_and_published_schema_agree_on_mutated_examples(
    kind: str, changes: dict[str, Any], strict: bool,
) -> None:
    record = {**EXAMPLES[kind], **changes}  # timezone left alone: the one worker-only check
    assert worker_accepts(record, strict) == schema_accepts(record, strict), record
