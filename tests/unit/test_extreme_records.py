"""Extreme but schema-valid records never make the core raise, and states still round-trip.

Hypothesis drives the real entry points (``process``, ``tick``, ``observe_profile``,
``observe_outcome``) with the shipped playbooks and a partition's River models, over records at
the edges of what the contracts allow: quantities from 0 and the smallest subnormal to the
contract's maximum, times from 1970 to the latest allowed instant, ids of the maximum length,
many metrics and features, out-of-order arrival and ticks far ahead.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forethought.contracts.events import (
    LATEST_EVENT_TIME,
    MAX_QUANTITY,
    Click,
    ErrorEvent,
    FeatureUsed,
    PageView,
    SessionEnd,
    SessionStart,
    Usage,
)
from forethought.contracts.records import Outcome, Profile
from forethought.core.config import EngineConfig
from forethought.core.engine import explain, next_due, observe_outcome, observe_profile, process, tick
from forethought.core.models import PartitionModels
from forethought.core.policy.profiles import ProfileState
from forethought.core.state import CustomerState
from forethought.ops.playbooks import PlaybookSource
from forethought.ops.settings import DEFAULT_PLAYBOOKS_FILE

RULES = PlaybookSource.open(DEFAULT_PLAYBOOKS_FILE).rules
CONFIGS = (
    EngineConfig(),
    EngineConfig(bucket_seconds=10, visit_gap_seconds=0, silence_min_seconds=1, usage_min_reports=2,
                 burst_min_errors=2, decline_enabled=True, decline_min_days=1, model_min_labels=1,
                 anomaly_min_reference=2, prior_learned=True, prior_min_customers=1, prior_min_gaps=1),
)
# The contract's edges: dated 1970-01-02 to 2099-12-30 as written, with any offset.
EARLIEST = datetime(1970, 1, 2, tzinfo=timezone(timedelta(hours=23, minutes=59)))  # 1970-01-01T00:01Z
LATEST = datetime(2099, 12, 30, 23, 59, 59, 999999, tzinfo=timezone(-timedelta(hours=23, minutes=59)))

times = st.one_of(
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2099, 12, 30, 23, 59, 59),
                 timezones=st.just(timezone.utc)),
    st.sampled_from([EARLIEST, LATEST, EARLIEST + timedelta(microseconds=1), LATEST - timedelta(days=1),
                     datetime(2026, 11, 22, tzinfo=timezone.utc)]),
)
quantities = st.one_of(
    st.floats(min_value=0, max_value=MAX_QUANTITY, allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, 5e-324, 2.2250738585072014e-308, 1e-300, 1.0, MAX_QUANTITY]),
)
ids = st.one_of(st.sampled_from(["c", "c" * 128, "ü" * 128]),
                st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=128)
                .map(lambda text: text.strip(" ") or "c"))  # the contract's ids (ID_PATTERN): no control, no edge space
names = st.one_of(st.sampled_from(["m", "x" * 128]), st.text(min_size=1, max_size=128))
props = st.dictionaries(st.text(min_size=1, max_size=8), st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20)), max_size=4)


def _kw(n: int, customer: str, when: datetime, extra: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": f"e{n}", "customer_id": customer, "occurred_at": when, **extra}


@st.composite
def records(draw: st.DrawFn) -> list[Any]:
    customer = draw(ids)
    out: list[Any] = []
    for n in range(draw(st.integers(min_value=1, max_value=25))):
        kind = draw(st.sampled_from(["page", "click", "start", "end", "feature", "error", "usage", "usage",
                                     "profile", "outcome", "tick"]))
        when = draw(times)
        extra = {"properties": draw(props), "account_id": draw(st.none() | ids)}
        if kind == "usage":
            out.append(Usage(**_kw(n, customer, when, extra), metric=draw(names), quantity=draw(quantities)))
        elif kind == "error":
            out.append(ErrorEvent(**_kw(n, customer, when, extra), code=draw(names),
                                  severity=draw(st.sampled_from(["info", "warning", "error", "critical"]))))
        elif kind == "feature":
            out.append(FeatureUsed(**_kw(n, customer, when, extra), feature=draw(names)))
        elif kind in ("page", "click", "start", "end"):
            cls = {"page": PageView, "click": Click, "start": SessionStart, "end": SessionEnd}[kind]
            out.append(cls(**_kw(n, customer, when, extra)))
        elif kind == "profile":
            out.append(Profile(customer_id=customer, updated_at=when,
                               plan=draw(st.sampled_from([None, "pro", "free"])),
                               timezone=draw(st.sampled_from(["UTC", "Pacific/Kiritimati", "Etc/GMT+12"])),
                               consent={"email": True, "in_app": True, "cs_outreach": True},
                               quiet_hours=draw(st.sampled_from([None, "22:00-08:00", "00:00-23:59"])),
                               signup_date=draw(st.none() | st.dates(date(1970, 1, 1), LATEST.date())),
                               renewal_date=draw(st.none() | st.dates(date(1970, 1, 1), LATEST.date()))))
        elif kind == "outcome":
            out.append(Outcome(outcome_id=f"o{n}", trigger_id=draw(ids), customer_id=customer,
                               channel=draw(st.sampled_from(["email", "in_app", "cs_outreach"])),
                               status=draw(st.sampled_from(["failed", "bounced", "opened", "unsubscribed"])),
                               occurred_at=when))
        else:
            out.append(when.timestamp())
    return out


def _round_trips(state: CustomerState, config: EngineConfig) -> None:
    raw = orjson.dumps(state.to_dict())  # what the worker writes to the changelog
    assert CustomerState.from_dict(orjson.loads(raw), config) == state


def _drive(items: list[Any], config: EngineConfig) -> None:
    models = PartitionModels(0, config.model_min_labels, config)
    state: CustomerState | None = None
    profile = ProfileState()
    for item in items:
        held, before = state, None if state is None else state.to_dict()
        state = None if state is None else state.copy()  # as the worker does: the held state stays untouched
        if isinstance(item, float):
            step = tick(state, item, config, RULES, profile, models) if state is not None else None
        elif isinstance(item, Profile):
            step = observe_profile(state, profile, item, item.updated_at.timestamp(), config)
        elif isinstance(item, Outcome):
            step = observe_outcome(state, profile, item, config, RULES, models)
        else:
            step = process(state, item, config, RULES, profile, models)
        if step is None:
            continue
        if before is not None:
            assert held.to_dict() == before, "running the engine on a copy changed the original"
        state, profile = step.state, step.profile or profile
        for trigger in (*step.triggers, *step.shadow):
            orjson.dumps(trigger.model_dump(mode="json"))
        if state is not None:
            _round_trips(state, config)
            due = next_due(state, config)
            explain(state, due if due is not None else 0.0, config, models)
    assert ProfileState.from_dict(orjson.loads(orjson.dumps(profile.to_dict()))) == profile
    PartitionModels.restore(models.to_bytes(), 0, config.model_min_labels, config)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(records(), st.sampled_from(CONFIGS))
def test_extreme_records_never_escape_the_core(items: list[Any], config: EngineConfig) -> None:
    _drive(items, config)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(quantities, min_size=1, max_size=30), st.sampled_from(CONFIGS))
def test_one_metric_fed_extreme_quantities_in_a_row(values: list[float], config: EngineConfig) -> None:
    start = datetime(2026, 11, 22, tzinfo=timezone.utc)
    items = [Usage(event_id=f"u{i}", customer_id="c", occurred_at=start + timedelta(minutes=i), metric="m",
                   quantity=q) for i, q in enumerate(values)]
    _drive(items, config)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=1, max_value=120), st.sampled_from(CONFIGS))
def test_many_metrics_and_features_stay_bounded(count: int, config: EngineConfig) -> None:
    start = datetime(2026, 11, 22, tzinfo=timezone.utc)
    items: list[Any] = []
    for i in range(count):
        at = start + timedelta(seconds=i)
        items.append(Usage(event_id=f"u{i}", customer_id="c", occurred_at=at, metric=f"m{i}", quantity=i))
        items.append(FeatureUsed(event_id=f"f{i}", customer_id="c", occurred_at=at, feature=f"f{i}"))
        items.append(ErrorEvent(event_id=f"x{i}", customer_id="c", occurred_at=at, code=f"E{i}"))
    _drive(items, config)
    state = None
    for item in items:
        state = process(state, item, config, RULES).state
    assert state is not None and len(state.slice("usage").usage) <= config.usage_metrics
    assert len(state.slice("lifecycle").features) <= config.feature_slots


def test_the_issue_quantity_followed_by_more_reports() -> None:
    """The audit's case: the largest double as a usage quantity, then ordinary reports."""
    start = datetime(2026, 11, 22, tzinfo=timezone.utc)
    quantities_seen = [MAX_QUANTITY, 5.0, 7.0, MAX_QUANTITY, 0.0] + [10.0] * 10
    items = [Usage(event_id=f"u{i}", customer_id="c", occurred_at=start + timedelta(minutes=i), metric="m",
                   quantity=q) for i, q in enumerate(quantities_seen)]
    for config in CONFIGS:
        _drive(items, config)


def test_long_metric_and_feature_names_still_make_valid_triggers() -> None:
    """A 128-character metric or feature name (the contract's limit) fits the trigger's names."""
    config = CONFIGS[1]
    start = datetime(2026, 11, 22, tzinfo=timezone.utc)
    metric, feature = "m" * 128, "f" * 128
    items: list[Any] = [Usage(event_id=f"u{i}", customer_id="c", occurred_at=start + timedelta(minutes=i),
                              metric=metric, quantity=10.0) for i in range(12)]
    items += [Usage(event_id=f"spike{i}", customer_id="c", occurred_at=start + timedelta(minutes=13 + i), metric=metric,
                    quantity=1e6) for i in range(2)]  # a spike is two high reports in a row
    items.append(FeatureUsed(event_id="feat", customer_id="c", occurred_at=start + timedelta(minutes=15),
                             feature=feature))
    state, fired = None, []
    for item in items:
        step = process(state, item, config, RULES)
        state, fired = step.state, fired + [*step.triggers, *step.shadow]
    usage = [t for t in fired if t.detector == "usage_anomaly"]
    assert usage and usage[0].reasons[0].signal.startswith("usage.mmm") and len(usage[0].reasons[0].signal) == 128


def test_values_beyond_the_contract_from_older_records_and_states_do_not_overflow() -> None:
    """The audit's exact value, as an old state or a record built without validation, is clamped."""
    config = CONFIGS[0]
    start = datetime(2026, 11, 22, tzinfo=timezone.utc)
    state = None
    for i, q in enumerate([1.7976931348623157e308, 5.0, 1.7976931348623157e308, 7.0]):
        event = Usage.model_construct(event_id=f"u{i}", customer_id="c", occurred_at=start + timedelta(minutes=i),
                                      metric="m", quantity=q, properties={}, account_id=None, session_id=None,
                                      unit=None, type="usage")
        state = process(state, event, config, RULES).state
    assert state is not None
    _round_trips(state, config)
    old = state.to_dict()
    old["use"] = {"m": [3, 709.782713, 0.0, 0, 0]}  # what the unbounded engine stored for 1.797e308
    restored = CustomerState.from_dict(old, config)
    later = Usage(event_id="u9", customer_id="c", occurred_at=start + timedelta(hours=1), metric="m", quantity=3.0)
    assert process(restored, later, config, RULES).state is not None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(records(), st.sampled_from(CONFIGS))
def test_the_worker_processor_dead_letters_no_extreme_record_as_a_processing_error(
    items: list[Any], config: EngineConfig,
) -> None:
    """The same records as raw Kafka bytes through the worker's BatchProcessor: none fails, and every
    committed state loads back as it was."""
    from forethought.ops.metrics import Metrics
    from forethought.stream.processor import BatchProcessor, RawRecord

    table: dict[bytes, bytes] = {}
    topic = "in"
    kinds = frozenset({"page_view", "click", "session_start", "session_end", "feature_used", "error", "usage",
                       "profile", "outcome"})
    work = BatchProcessor(config, table, {topic: kinds}, Metrics(), rules=RULES, profiles={})
    raws = [RawRecord(topic, 0, offset, item.customer_id.encode(), item.model_dump_json().encode())
            for offset, item in enumerate(i for i in items if not isinstance(i, float))]
    wall = LATEST_EVENT_TIME + 1.0  # no record is "from the future"
    outbox = work.handle(raws, wall)
    assert [d.reason for d in outbox.deadletters if d.reason == "processing_error"] == []
    work.commit(outbox)
    for key, state in outbox.states.items():
        if state is not None:
            assert work.load(table[key]) == state
    work.clock(topic, 0).observe(wall, wall)
    assert [d.reason for d in work.sweep(wall, owns=lambda _k: True).deadletters] == []
    assert b'stage="tick"} ' not in work.metrics.exposition()
