"""Who the simulated customers are: segments, plans, time zones, drop-offs and anomalies.

Every customer is planned from its own random stream (seed and index), so one customer's
plan never depends on how many others there are or in which order they are generated.

>>> config = SimulationConfig(customers=10, days=30, seed=3)
>>> plan = plan_customer(config, 0)
>>> plan == plan_customer(config, 0), plan.segment.name in SEGMENTS
(True, True)
>>> SimulationConfig(customers=0, days=1)
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for SimulationConfig
customers
  Input should be greater than or equal to 1 ...
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from forethought.simulate.timeline import DAY_MS, HOUR_MS, MINUTE_MS, day_of, day_weights, iso, to_ms

DEFAULT_START = datetime(2026, 9, 7, tzinfo=UTC)  # a Monday; fixed so runs are reproducible


class SimulationConfig(BaseModel):
    """What to simulate. Invalid values fail with the field named."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    customers: int = Field(1000, ge=1, le=10_000_000)
    days: float = Field(30.0, gt=0, le=3650)
    seed: int = 7
    start: AwareDatetime = DEFAULT_START
    churn_rate: float = Field(0.2, ge=0, le=1, description="Share of customers who drop off.")
    precursor_share: float = Field(0.75, ge=0, le=1, description="Share of drop-offs with warning signs.")
    anomaly_rate: float = Field(0.08, ge=0, le=1, description="Share of customers with an anomaly.")
    new_signup_rate: float = Field(0.1, ge=0, le=1, description="Share who sign up mid-horizon.")

    @field_validator("start", mode="before")
    @classmethod
    def _utc_when_naive(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    @property
    def start_ms(self) -> int:
        return to_ms(self.start)

    @property
    def end_ms(self) -> int:
        return self.start_ms + round(self.days * DAY_MS)


@dataclass(frozen=True, slots=True)
class Segment:
    """A kind of customer: how often they come back and what they do when they do."""

    name: str
    share: float
    profile: str  # local activity profile (timeline.PROFILES)
    cadence: float  # mean ms between visits, before per-customer spread
    spread: float  # lognormal sigma of the per-customer cadence
    bounds: tuple[float, float]  # per-customer cadence clipped to this (ms)
    regularity: float  # gamma shape of gaps between visits (1 = Poisson, higher = more regular)
    weekend: tuple[float, float]  # weekend activity relative to weekdays
    plans: tuple[float, float, float]  # P(free), P(pro), P(enterprise)
    clicks: float  # mean clickstream events per session (0: no sessions, single usage events)
    usage_p: float  # chance that a visit reports usage
    metrics: tuple[tuple[str, str, float], ...]  # (metric, unit, typical quantity)
    pages: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    key_feature: str = ""


_SAAS_METRICS = (("reports_generated", "reports", 3.0), ("records_synced", "records", 200.0),
                 ("storage_gb", "GB", 5.0), ("messages_sent", "messages", 40.0))
_SAAS: dict[str, Any] = dict(pages=("/home", "/dashboard", "/reports", "/settings", "/billing", "/projects", "/search"),
             targets=("save", "filter", "share", "new-project", "invite", "download"),
             features=("dashboard", "export_csv", "alerts", "integrations", "search", "share"),
             key_feature="reports")

SEGMENTS: dict[str, Segment] = {s.name: s for s in (
    Segment("integration", 0.015, "machine", 40 * MINUTE_MS, 0.6, (10 * MINUTE_MS, 2 * HOUR_MS), 1.0,
            (0.5, 1.0), (0.0, 0.4, 0.6), 0.0, 1.0, (("api_calls", "calls", 500.0),)),
    Segment("daily", 0.37, "office", 14 * HOUR_MS, 0.45, (2 * HOUR_MS, 36 * HOUR_MS), 1.5,
            (0.1, 0.5), (0.35, 0.45, 0.2), 2.2, 0.5, _SAAS_METRICS, **_SAAS),
    Segment("weekly", 0.33, "office", 5 * DAY_MS, 0.35, (2 * DAY_MS, 10 * DAY_MS), 2.5,
            (0.1, 0.6), (0.5, 0.4, 0.1), 4.0, 0.4, _SAAS_METRICS, **_SAAS),
    Segment("monthly", 0.285, "consumer", 18 * DAY_MS, 0.4, (7 * DAY_MS, 35 * DAY_MS), 4.0,
            (1.0, 1.8), (0.6, 0.35, 0.05), 5.0, 0.0, (("order_value", "USD", 60.0),),
            pages=("/", "/catalog", "/product", "/cart", "/account", "/offers"),
            targets=("add_to_cart", "buy_now", "filter", "wishlist"),
            features=("compare", "reviews", "wishlist"), key_feature="checkout"),
)}
PLANS = ("free", "pro", "enterprise")
PLAN_CADENCE = {"free": 1.25, "pro": 1.0, "enterprise": 0.8}  # enterprise customers come back more often
TIMEZONES = {  # share of customers
    "America/New_York": 0.2, "America/Chicago": 0.07, "America/Los_Angeles": 0.12, "America/Sao_Paulo": 0.05,
    "Europe/London": 0.1, "Europe/Berlin": 0.12, "Asia/Kolkata": 0.1, "Asia/Singapore": 0.04,
    "Asia/Tokyo": 0.08, "Australia/Sydney": 0.06, "UTC": 0.04, "Africa/Johannesburg": 0.02,
}
LOCALES = {"America/Sao_Paulo": "pt-BR", "Europe/London": "en-GB", "Europe/Berlin": "de-DE",
           "Asia/Kolkata": "en-IN", "Asia/Singapore": "en-SG", "Asia/Tokyo": "ja-JP",
           "Australia/Sydney": "en-AU", "Africa/Johannesburg": "en-ZA"}
BURST_CODES = ("E503_UPSTREAM_UNAVAILABLE", "PAYMENT_GATEWAY_TIMEOUT", "SYNC_FAILED",
               "AUTH_TOKEN_EXPIRED", "DB_CONNECTION_RESET")
ONBOARDING_STEPS = 5


@dataclass(frozen=True, slots=True)
class Anomaly:
    """An injected anomaly with exact onset and end (epoch ms, inclusive)."""

    kind: str  # error_burst | usage_spike | usage_drop
    start: int
    end: int
    code: str | None = None
    count: int = 0  # errors in a burst
    factor: float = 1.0  # usage multiplier in the window


@dataclass(frozen=True, slots=True)
class CustomerPlan:
    """Everything fixed about one customer before any event is generated (times in epoch ms)."""

    index: int
    customer_id: str
    segment: Segment
    timezone: str
    plan: str
    cadence: float
    weekend: float
    signup: int
    active_from: int  # max(start of horizon, signup)
    stop: int  # no events at or after this (drop-off or end of horizon)
    dropoff: int | None
    precursors: tuple[str, ...]
    decline_from: int | None  # activity (and errors, with rising_errors) change from here to stop
    decline_floor: float
    error_rate: float
    error_boost: float
    usage_metric: tuple[str, str, float]  # metric, unit, this customer's typical quantity
    clicks: float
    key_p: float
    stall_step: int | None  # new signups: onboarding stops after this step (None: completes)
    anomaly: Anomaly | None
    profile: dict[str, Any] = field(repr=False)


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def plan_customer(config: SimulationConfig, index: int) -> CustomerPlan:
    """The plan of customer ``index`` (deterministic in seed and index)."""
    rng = random.Random(f"{config.seed}/{index}/plan")
    start, end = config.start_ms, config.end_ms
    segment = SEGMENTS[_pick(rng, {name: s.share for name, s in SEGMENTS.items()})]
    tz = _pick(rng, TIMEZONES)
    plan = rng.choices(PLANS, weights=segment.plans)[0]
    low, high = segment.bounds
    cadence = min(high, max(low, segment.cadence * rng.lognormvariate(0, segment.spread) * PLAN_CADENCE[plan]))
    weekend = round(rng.uniform(*segment.weekend), 2)
    is_new = rng.random() < config.new_signup_rate
    if is_new:
        day = day_of(start + int(rng.uniform(0, 0.8) * (end - start)))
        weights = day_weights(segment.profile, weekend, tz, day)
        signup = max(start, day * DAY_MS + int(weights.locate(rng.uniform(0, weights.total))))
    else:
        signup = start - int(rng.uniform(30, 900) * DAY_MS)
    active_from = max(start, signup)
    dropoff, decline_from, stall = None, None, None
    precursors: tuple[str, ...] = ()
    if rng.random() < config.churn_rate:
        span = end - active_from
        fraction = rng.uniform(0.15, 0.95) if is_new else rng.uniform(0.25, 0.98)
        dropoff = active_from + int(fraction * (min(span, 21 * DAY_MS) if is_new else span))
        if rng.random() < config.precursor_share:
            if is_new and segment.clicks:  # integrations have no onboarding sessions
                precursors, stall = ("stalled_onboarding", "no_key_feature"), rng.randint(1, 3)
            else:
                precursors = ("declining_activity",) + (("rising_errors",) if rng.random() < 0.6 else ())
                decline_from = max(active_from, dropoff - int(rng.uniform(7, 21) * DAY_MS))
    stop = dropoff if dropoff is not None else end
    customer_id = f"cust-{index:06d}"
    return CustomerPlan(
        index=index, customer_id=customer_id, segment=segment, timezone=tz, plan=plan, cadence=cadence,
        weekend=weekend, signup=signup, active_from=active_from, stop=stop, dropoff=dropoff,
        precursors=precursors, decline_from=decline_from, decline_floor=rng.uniform(0.1, 0.35),
        error_rate=min(0.08, 0.01 * rng.lognormvariate(0, 0.7)), error_boost=rng.uniform(3, 8),
        usage_metric=_metric(rng, segment), clicks=segment.clicks * rng.lognormvariate(0, 0.3),
        key_p=rng.uniform(0.15, 0.6), stall_step=stall,
        anomaly=_plan_anomaly(rng, config, segment, active_from, stop),
        profile=_profile(rng, customer_id, plan, tz, signup, max(start, signup), start),
    )


def _metric(rng: random.Random, segment: Segment) -> tuple[str, str, float]:
    """The customer's usage metric, with their own typical quantity (lognormal around the segment's)."""
    metric, unit, typical = rng.choice(segment.metrics)
    return metric, unit, round(typical * rng.lognormvariate(0, 0.8), 3)


def _plan_anomaly(rng: random.Random, config: SimulationConfig, segment: Segment,
                  active_from: int, stop: int) -> Anomaly | None:
    if rng.random() >= config.anomaly_rate:
        return None
    low, high = active_from + DAY_MS, stop - 6 * HOUR_MS
    if high - low < DAY_MS:
        return None
    frequent_usage = segment.usage_p > 0 and segment.cadence <= DAY_MS  # a usage anomaly must be visible
    kinds: dict[str, float] = (
        {"error_burst": 0.5, "usage_spike": 0.25, "usage_drop": 0.25} if frequent_usage else {"error_burst": 1.0})
    kind = _pick(rng, kinds)
    if kind == "error_burst":
        count = rng.randint(10, 60)
        onset = rng.randint(low, high)
        duration = rng.randint(60_000, min(300_000, count * 12_000))  # >= 5 errors a minute
        return Anomaly(kind, onset, onset + duration, code=rng.choice(BURST_CODES), count=count)
    if kind == "usage_spike":
        duration = rng.randint(2 * HOUR_MS, 12 * HOUR_MS)
        factor = rng.uniform(5, 20)
    else:
        duration = min(high - low, rng.randint(2 * DAY_MS, 5 * DAY_MS))
        factor = rng.uniform(0.02, 0.15)
    onset = rng.randint(low, high - duration)
    return Anomaly(kind, onset, onset + duration, factor=round(factor, 3))


def _profile(rng: random.Random, customer_id: str, plan: str, tz: str, signup: int, updated: int,
             start: int) -> dict[str, Any]:
    signup_date = date(1970, 1, 1) + timedelta(milliseconds=signup)
    billing = "annual" if plan == "enterprise" or (plan == "pro" and rng.random() < 0.4) else "monthly"
    billing = "none" if plan == "free" else billing
    renewal = None
    if plan != "free":
        step = 365 if billing == "annual" else 30
        today = date(1970, 1, 1) + timedelta(milliseconds=start)
        periods = max(1, -(-(today - signup_date).days // step))
        renewal = (signup_date + timedelta(days=step * periods)).isoformat()
    seats = {"free": 1, "pro": rng.randint(2, 25), "enterprise": rng.randint(20, 500)}[plan]
    consent = {"email": rng.random() < 0.92, "in_app": rng.random() < 0.97,
               "push": rng.random() < 0.5, "sms": rng.random() < 0.2}
    record: dict[str, Any] = {"type": "profile", "customer_id": customer_id, "updated_at": iso(updated),
                              "plan": plan, "timezone": tz, "locale": LOCALES.get(tz, "en-US"),
                              "consent": consent, "signup_date": signup_date.isoformat(),
                              "renewal_date": renewal, "attributes": {"seats": seats, "billing": billing}}
    return record
