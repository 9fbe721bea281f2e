"""Churn: P(no activity within the horizon), for every customer from their first event, with reasons.

The score (``scores.churn``) is the closed form of a buy-till-you-die model (:mod:`forethought.core.btyd`,
MBG/NBD) on three numbers per customer: ``x`` repeat active periods (days by default; this slice
counts them, 1-3 bytes), the age at the last activity ``t_x`` and the age now ``T`` (both from the
core state's ``first_seen`` and ``last_seen``). The population prior (r, α, a, b) starts as the
configured one and is then learned per partition (``models.churn``, checkpointed with the other
models): each customer adds their summary once, at a fixed age drawn from their id between
``churn_sample_min_days`` and ``churn_sample_max_days`` (so the sample is censored at an age that
does not depend on their activity: long silences are seen as often as they happen), and the
partition refits by maximum likelihood as the table grows (docs/churn.md).

The signal ``churn`` fires once per silence, when the score reaches ``churn_threshold``: the
time is known in closed form at each new active period (the score only grows with silence).

>>> from forethought.core.config import EngineConfig
>>> from forethought.core.state import CustomerState
>>> config = EngineConfig()
>>> s = config.section(NAME)
>>> state = CustomerState.new("c1", config)
>>> round(score(state, 1_790_000_000.0, s, prior(s, None)), 4)  # never active: a newcomer's prior
0.5826
>>> state.first_seen = state.last_seen = 1_790_000_000.0
>>> of(state).churn_repeats = 0
>>> round(score(state, 1_790_000_000.0 + 60 * DAY, s, prior(s, None)), 4)  # a one-time customer, 60 days on
0.942
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, ClassVar

from forethought.contracts.records import Reason
from forethought.core import btyd, churn_context
from forethought.core.codec_kinds import INT, TIME
from forethought.core.due import slot_at_or_after
from forethought.core.plugin import NEVER, Detector, Look, Moment, Slice, check_positive
from forethought.core.signals import Detection, human, unit_hash, utc
from forethought.core.state_codec import Field

if TYPE_CHECKING:
    from forethought.contracts.events import InboundEvent
    from forethought.core.state import CustomerState

NAME = "churn"
DAY = 86_400.0
LIMIT_DAYS = 10 * 365.0  # a churn deadline further than this is not set


@dataclass(frozen=True, slots=True)
class ChurnSettings:
    """The churn score: horizon, activity period, the prior before any fit, the online fit, the signal."""

    churn_horizon_seconds: float = 0.0  # 0: the learned drop-off model's label_horizon_seconds
    churn_period_seconds: float = DAY  # activity in one period (UTC days) is one "transaction"
    churn_prior_r: float = 0.5  # λ ~ Gamma(r, α): activity rate per day while alive (mean r/α = 0.1)
    churn_prior_alpha_days: float = 5.0
    churn_prior_a: float = 0.5  # p ~ Beta(a, b): chance of leaving at an active period (mean 0.14)
    churn_prior_b: float = 3.0
    churn_learn_prior: bool = True  # learn (r, α, a, b) from the partition's customers
    churn_min_samples: int = 200  # customer summaries before the first fit replaces the prior
    churn_sample_min_days: float = 7.0  # each customer is summarised once, at an age in this range
    churn_sample_max_days: float = 150.0  # (capped at 90 % of idle_ttl_seconds: nobody is evicted before)
    churn_threshold: float = 0.9  # the signal ``churn`` fires when the score reaches this
    churn_joined_within_days: float = 7.0  # signed up longer before the first event: not in the prior

    def __post_init__(self) -> None:
        check_positive(self, {"churn_horizon_seconds", "churn_learn_prior"})
        if not 0 < self.churn_threshold < 1:
            raise ValueError(f"churn_threshold must be in (0, 1), got {self.churn_threshold}")
        if self.churn_sample_min_days > self.churn_sample_max_days:
            raise ValueError("churn_sample_min_days must be <= churn_sample_max_days")


@dataclass(slots=True)
class ChurnState(Slice):
    """Repeat active periods (None: a state written before this detector; ``visits − 1`` stands in),
    whether the fixed-age summary was given to the prior, the pending deadline, the fired silence, and
    the signup date of the customer's latest profile record (days since 1970-01-01; None: none known),
    which the prior's left-truncation decision reads (never the profile table: after a crash it can be
    ahead of the records run again)."""

    KEY: ClassVar[str] = "n"
    FIELDS: ClassVar[tuple[Field, ...]] = (  # append only
        Field("churn_repeats", INT),
        Field("churn_sampled", INT, 0),
        Field("churn_deadline", TIME),
        Field("churn_fired_for", TIME),
        Field("churn_signup_day", INT),
    )
    # (field names are unique across slices: the legacy JSON form flattens every slice into one map)

    churn_repeats: int | None = None
    churn_sampled: int = 0
    churn_deadline: float | None = None
    churn_fired_for: float | None = None
    churn_signup_day: int | None = None

    def copy(self) -> ChurnState:
        return ChurnState(self.churn_repeats, self.churn_sampled, self.churn_deadline, self.churn_fired_for,
                          self.churn_signup_day)


def of(state: CustomerState) -> ChurnState:
    """The customer's churn slice."""
    return state.slices[NAME]  # type: ignore[no-any-return]


class Churn(Detector):
    """Offers ``scores.churn`` and ``features.p_alive``; fires ``churn`` once per silence."""

    name: ClassVar[str] = NAME
    Settings = ChurnSettings
    State = ChurnState
    signals = ("churn",)
    scores = ("churn",)
    features = ("p_alive", "churn_horizon_days")
    needs = ("learned_dropoff",)  # its label horizon is the default churn horizon
    look_cost = 1

    def on_profile(self, state: CustomerState, s: ChurnSettings, m: Moment) -> None:
        """Note the new profile's signup date (or that it has none) for the prior's look."""
        of(state).churn_signup_day = churn_context.signup_day(m.profile)

    def before_event(self, state: CustomerState, event: InboundEvent, ts: float, s: ChurnSettings,
                     m: Moment) -> None:
        sl = of(state)
        last = state.last_seen
        if last is None:
            sl.churn_repeats = 0
        elif math.floor(ts / s.churn_period_seconds) > math.floor(last / s.churn_period_seconds):
            sl.churn_repeats = repeats(state) + 1
        else:  # the same period: the silence starts later (on_due corrects the small rest, if any)
            if sl.churn_deadline is not None and ts > last:
                sl.churn_deadline += ts - last
            return
        sl.churn_deadline = None  # a new active period: on_event sets the new deadline

    def on_event(self, state: CustomerState, event: InboundEvent, ts: float, s: ChurnSettings, m: Moment) -> None:
        sl = of(state)
        if sl.churn_deadline is None and sl.churn_fired_for != state.last_seen:
            sl.churn_deadline = deadline(state, s, prior(s, m.models), horizon_days(s, m))

    def due(self, state: CustomerState, s: ChurnSettings) -> float | None:
        return state.peek(NAME).churn_deadline  # type: ignore[no-any-return]

    def on_due(self, state: CustomerState, due: float, s: ChurnSettings, m: Moment) -> None:
        at = state.peek(NAME).churn_deadline  # read only: most ticks are due for something else
        if at is None or at > due or state.last_seen is None:
            return
        sl = of(state)
        params, horizon = prior(s, m.models), horizon_days(s, m)
        p = score(state, at, s, params, horizon)
        if p >= s.churn_threshold - 1e-6:
            if m.rules is None or m.rules.by_signal.get("churn"):  # its reasons only when a playbook listens
                m.detect(detection(state, at, s, params, horizon, p))
            sl.churn_fired_for, sl.churn_deadline = state.last_seen, None
        else:  # the prior was refit since, or activity later in the same period: the deadline moved
            later = deadline(state, s, params, horizon)
            sl.churn_deadline = None if later is None else max(later, due + 60.0)

    def look_due(self, state: CustomerState, soon: float, s: ChurnSettings, m: Moment) -> float:
        if m.models is None or not s.churn_learn_prior or state.peek(NAME).churn_sampled or state.first_seen is None:
            return NEVER
        return max(soon, slot_at_or_after(state.customer_id, sample_at(state, s, m.config)))

    def on_look(self, state: CustomerState, s: ChurnSettings, m: Moment, look: Look) -> None:
        """At the customer's sampling age: their summary goes into the partition's prior."""
        sl = of(state)
        if sl.churn_sampled or m.models is None or not s.churn_learn_prior or state.first_seen is None:
            return
        if state.last_seen is None or m.at < sample_at(state, s, m.config):
            return
        sl.churn_sampled = 1
        if joined_before_seen(sl.churn_signup_day, state.first_seen, s):
            return  # left-truncated: their (x, t_x, T) counts from our first sight, not from their birth
        fit = m.models.churn
        fit.min_samples = s.churn_min_samples
        fit.start = btyd.Params(s.churn_prior_r, s.churn_prior_alpha_days, s.churn_prior_a, s.churn_prior_b)
        x, tx, T = summary(state, m.at)
        if fit.learn(x, tx, T):
            m.observe("churn_prior", {"at": m.at, "samples": fit.samples, **fit.fitted._asdict()})
        m.models.unsaved += 1

    def facts(self, state: CustomerState, now: float, s: ChurnSettings, m: Moment, found: dict[str, Any],
              brief: bool) -> None:
        if brief:  # the learned model's snapshot does not read it
            return
        params, horizon = prior(s, m.models), horizon_days(s, m)
        x, tx, T = summary(state, now)
        found["scores"]["churn"] = round(btyd.p_silent(params, x, tx, T, horizon), 6)
        found["features"]["p_alive"] = round(btyd.p_alive(params, x, tx, T), 6)
        found["features"]["churn_horizon_days"] = horizon

    def explain(self, state: CustomerState, now: float, s: ChurnSettings, m: Moment) -> dict[str, Any]:
        params, horizon = prior(s, m.models), horizon_days(s, m)
        x, tx, T = summary(state, now)
        fit = getattr(m.models, "churn", None)
        return {"churn": {
            "score": round(score(state, now, s, params, horizon), 6), "horizon_days": horizon,
            "p_alive": round(btyd.p_alive(params, x, tx, T), 6), "repeat_periods": x,
            "age_days": round(T, 3), "days_since_last_active": round(T - tx, 3),
            "deadline": of(state).churn_deadline, "fired_for": of(state).churn_fired_for,
            "prior": {**{k: round(v, 6) for k, v in params._asdict().items()},
                      "learned": fit is not None and fit.params() is not None and s.churn_learn_prior,
                      "samples": 0.0 if fit is None else fit.samples},
            "reasons": [r.text for r in reasons(state, now, s, params, horizon)],
        }}

    def summarise(self, state: CustomerState, s: ChurnSettings) -> list[float | int] | None:
        """What idle eviction keeps (the idle summary of issue #13 point 2): repeat periods and whether
        the prior has this customer; first and last activity are the summary's own."""
        return _summarise(state)

    def revive(self, state: CustomerState, part: list[float | int], s: ChurnSettings) -> None:
        """Put :meth:`summarise`'s part back (ValueError when malformed)."""
        _revive(state, part)


def _summarise(state: CustomerState) -> list[float | int]:
    return [repeats(state), of(state).churn_sampled]


def _revive(state: CustomerState, part: list[float | int]) -> None:
    if len(part) != 2 or not all(type(v) is int for v in part) or part[0] < 0 or part[1] not in (0, 1):
        raise ValueError("a stored churn summary is malformed")
    sl = of(state)
    sl.churn_repeats, sl.churn_sampled = int(part[0]), int(part[1])


def repeats(state: CustomerState) -> int:
    """Repeat active periods (``visits − 1`` for a state written before this detector)."""
    x = of(state).churn_repeats
    return max(0, state.visits - 1) if x is None else x


def summary(state: CustomerState, now: float) -> tuple[int, float, float]:
    """``(x, t_x, T)``: repeat periods, age at the last activity and age at ``now``, in days
    (a customer never active is a newcomer: ``(0, 0, 0)``)."""
    if state.first_seen is None or state.last_seen is None:
        return 0, 0.0, 0.0
    first = state.first_seen
    T = max(0.0, now - first) / DAY
    return repeats(state), min(T, max(0.0, state.last_seen - first) / DAY), T


def prior(s: ChurnSettings, models: Any) -> btyd.Params:
    """The partition's learned prior once fitted (and ``churn_learn_prior``), else the configured one."""
    if s.churn_learn_prior and models is not None:
        fitted = models.churn.params()
        if fitted is not None:
            return fitted  # type: ignore[no-any-return]
    return btyd.Params(s.churn_prior_r, s.churn_prior_alpha_days, s.churn_prior_a, s.churn_prior_b)


def horizon_days(s: ChurnSettings, m: Moment) -> float:
    """The churn horizon in days (``churn_horizon_seconds``, else the learned model's label horizon)."""
    seconds = s.churn_horizon_seconds
    if not seconds:
        seconds = m.config.section("learned_dropoff").label_horizon_seconds
    return seconds / DAY


def score(state: CustomerState, now: float, s: ChurnSettings, params: btyd.Params,
          horizon: float | None = None) -> float:
    """P(no activity within the horizon after ``now``)."""
    h = 14.0 if horizon is None else horizon
    x, tx, T = summary(state, now)
    return btyd.p_silent(params, x, tx, T, h)


def sample_at(state: CustomerState, s: ChurnSettings, config: Any) -> float:
    """When this customer's summary goes into the prior: at an age fixed by their id alone, between
    ``churn_sample_min_days`` and ``churn_sample_max_days`` but below 90 % of the idle TTL (an idle
    customer is never evicted before their summary is taken)."""
    assert state.first_seen is not None
    high: float = min(s.churn_sample_max_days, 0.9 * config.windows.idle_ttl_seconds / DAY)
    low = min(s.churn_sample_min_days, high)
    return state.first_seen + (low + (high - low) * _age_share(state.customer_id)) * DAY


def joined_before_seen(signup_day: int | None, first_seen: float, s: ChurnSettings) -> bool:
    """Whether the customer signed up (``signup_day``: their profile's signup date in days since
    1970-01-01, :func:`forethought.core.churn_context.signup_day`) more than ``churn_joined_within_days``
    before their first event here: their history before it is unknown, so their summary would count a
    customer of years as a newcomer (left truncation) and make the population look more loyal than it
    is. Such a customer is scored, but does not teach the prior. Without a profile or a signup date
    (None), the first event is taken as the start (as in purchase logs).

    >>> from datetime import UTC, datetime
    >>> from forethought.contracts.records import Profile
    >>> from forethought.core.policy.profiles import ProfileState
    >>> seen = datetime(2026, 9, 7, tzinfo=UTC).timestamp()
    >>> def day(signup):
    ...     held = ProfileState(Profile(customer_id="c", updated_at="2026-09-07T00:00:00Z", signup_date=signup))
    ...     return churn_context.signup_day(held)
    >>> joined_before_seen(day("2024-05-01"), seen, ChurnSettings()), joined_before_seen(day("2026-09-05"), seen,
    ...                                                                                  ChurnSettings())
    (True, False)
    >>> joined_before_seen(day(None), seen, ChurnSettings()), joined_before_seen(None, seen, ChurnSettings())
    (False, False)
    """
    return signup_day is not None and round((first_seen - signup_day * DAY) / DAY, 4) > s.churn_joined_within_days


@lru_cache(maxsize=1 << 16)
def _age_share(customer_id: str) -> float:
    return unit_hash("churn-age", customer_id)


def deadline(state: CustomerState, s: ChurnSettings, params: btyd.Params, horizon: float) -> float | None:
    """When the score reaches ``churn_threshold`` if the customer stays silent (None: not within 10 years)."""
    if state.first_seen is None or state.last_seen is None:
        return None
    x, tx, T = summary(state, state.last_seen)
    age = btyd.age_at(params, x, tx, T, horizon, s.churn_threshold, LIMIT_DAYS)
    return None if age is None else state.first_seen + age * DAY


def reasons(state: CustomerState, now: float, s: ChurnSettings, params: btyd.Params,
            horizon: float) -> tuple[Reason, ...]:
    """What moved the score away from a newcomer's: the silence against the customer's own pace,
    and how often they were active against the population's expectation."""
    x, tx, T = summary(state, now)
    silent, pace = (T - tx) * DAY, btyd.expected_rate(params, x, tx) or 1e-9
    usual = DAY / pace
    newcomer = btyd.p_silent(params, 0, 0.0, 0.0, horizon)
    expected = params.r / params.alpha * T
    return (
        Reason(signal="silence_seconds", observed=round(silent, 3), baseline=round(usual, 3), unit="seconds",
               text=f"No activity for {human(silent)}; at this customer's pace they are active about every "
               f"{human(usual)}."),
        Reason(signal="active_periods", observed=float(x + 1), baseline=round(1 + expected, 3), unit="count",
               text=f"Active on {x + 1} day(s) in {human(T * DAY) if T > 0 else 'their first day'}; a newcomer "
               f"is expected on about {1 + expected:.1f}."),
        Reason(signal="churn", observed=round(btyd.p_silent(params, x, tx, T, horizon), 6),
               baseline=round(newcomer, 6), unit="probability",
               text=f"Chance of no activity in the next {horizon:g} days: "
               f"{btyd.p_silent(params, x, tx, T, horizon):.0%} (a newcomer's: {newcomer:.0%})."),
    )


def detection(state: CustomerState, at: float, s: ChurnSettings, params: btyd.Params, horizon: float,
              p: float) -> Detection:
    """The ``churn`` signal at ``at``, the score and its reasons."""
    assert state.last_seen is not None
    x, tx, T = summary(state, at)
    return Detection(
        "churn", f"churn-{state.last_seen:.3f}", at, {"churn": round(p, 6)},
        reasons(state, at, s, params, horizon),
        {"last_seen_at": utc(state.last_seen).isoformat(), "p_alive": round(btyd.p_alive(params, x, tx, T), 6),
         "horizon_days": horizon},
    )
