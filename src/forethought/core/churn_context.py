"""What the customer experienced, as the learned churn correction sees it: eight numbers in eight bytes.

Buy-till-you-die models see only when a customer was active. The learned correction
(:mod:`forethought.core.churn_learned`) also sees what the stream says about *how* it went: the
usage trend, errors met, sessions, features adopted, tenure (from the signup date the profile gives:
a customer first seen today may have been with the product for years), the plan, and earlier triggers and how the
customer answered them. These are taken from the customer's state **at an example's start** and kept
there, one byte each (clipped to a fixed range and quantised to 256 levels, as the learned drop-off
model's snapshots are: :mod:`forethought.core.snapshots`), until the example is learned: what the model
learns from is what it would have been asked at that moment, never the future. A score reads the
same codes from the state as it is now, so training and scoring see the same quantised values.

The counts come from the state (:func:`forethought.core.detectors.churn_learned.experience`: some
belong to other detectors, ``decline``'s weekly counts and ``lifecycle``'s features used; when one of
them does not run, its feature is taken as unknown: ln 2 for the usage trend, 0 for the others).

>>> found = values(codes(Experience(week=2, usual=10.0, errors=5, events=100, visits=30, active_days=10,
...                                 features=3, tenure_days=364.0, paid=True, sent=1, engaged=1)))
>>> {k: round(v, 2) for k, v in found.items()}  # doctest: +NORMALIZE_WHITESPACE
{'week_vs_usual': 0.19, 'error_share': 0.05, 'log_sessions_per_day': 1.39, 'log_features_used': 1.39,
 'log_tenure_days': 5.9, 'paid_plan': 1.0, 'log_triggers_sent': 0.69, 'log_engaged': 0.69}
>>> len(codes(Experience())), values(b"") == {}
(8, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from forethought.core.snapshots import Feature

FEATURES: tuple[Feature, ...] = (
    Feature("week_vs_usual", 0.0, 2.5,
            "ln(1 + events in the 7 days up to the last activity / usual), ln 2 while unknown"),
    Feature("error_share", 0.0, 1.0, "errors / events"),
    Feature("log_sessions_per_day", 0.0, 5.0, "ln(1 + visits / active days)"),
    Feature("log_features_used", 0.0, 3.0, "ln(1 + distinct features used)"),
    Feature("log_tenure_days", 0.0, 8.0, "ln(1 + days since signup (the profile's), or since first seen when later)"),
    Feature("paid_plan", 0.0, 1.0, "1 on a paid plan (the profile names a plan that is not one of FREE_PLANS)"),
    Feature("log_triggers_sent", 0.0, 3.0, "ln(1 + triggers sent to the customer, as the policy remembers them)"),
    Feature("log_engaged", 0.0, 3.0, "ln(1 + messages the customer engaged with: opened, clicked, converted)"),
)
NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
FREE_PLANS = ("free", "trial", "freemium", "none")  # plan names (any case) that are not paid
HELP = {f.name: f.help.split(" (")[0] for f in FEATURES}
_VALUES = tuple(tuple(f.value(code) for code in range(256)) for f in FEATURES)


@dataclass(frozen=True, slots=True)
class Experience:
    """The raw counts behind the features (``usual`` None: the usual weekly level is not known yet)."""

    week: int = 0
    usual: float | None = None
    errors: int = 0
    events: int = 0
    visits: int = 0
    active_days: int = 1
    features: int = 0
    tenure_days: float = 0.0
    paid: bool = False
    sent: int = 0
    engaged: int = 0

    def raw(self) -> tuple[float, ...]:
        """The unclipped feature values, in :data:`FEATURES` order."""
        trend = math.log1p(self.week / self.usual) if self.usual else math.log(2.0)
        return (trend, self.errors / self.events if self.events else 0.0,
                math.log1p(self.visits / max(1, self.active_days)), math.log1p(self.features),
                math.log1p(max(0.0, self.tenure_days)), 1.0 if self.paid else 0.0, math.log1p(self.sent),
                math.log1p(self.engaged))


def codes(experience: Experience) -> bytes:
    """One byte per feature."""
    return bytes(f.code(v) for f, v in zip(FEATURES, experience.raw()))


def values(data: bytes) -> dict[str, float]:
    """The features the codes stand for; ``{}`` for no codes (an example started before they were kept:
    the model then learns from its purchase-history features only)."""
    if len(data) != len(FEATURES):
        return {}
    return {name: table[code] for name, table, code in zip(NAMES, _VALUES, data)}


def is_paid(profile: Any, free_plans: tuple[str, ...] = FREE_PLANS) -> bool | None:
    """Whether the profile's plan is a paid one (None without a profile or a plan).

    >>> from forethought.core.policy.profiles import ProfileState
    >>> from forethought.contracts.records import Profile
    >>> held = ProfileState(Profile(customer_id="c1", updated_at="2026-01-01T00:00:00Z", plan="Pro"))
    >>> is_paid(held), is_paid(ProfileState()), is_paid(None), is_paid(held, ("pro",))
    (True, None, None, False)
    """
    plan = None if profile is None or profile.profile is None else profile.profile.plan
    return None if plan is None else plan.lower() not in free_plans


def signup_day(profile: Any) -> int | None:
    """The profile's signup date as whole days since 1970-01-01 (None without one).

    >>> from forethought.core.policy.profiles import ProfileState
    >>> from forethought.contracts.records import Profile
    >>> signup_day(ProfileState(Profile(customer_id="c1", updated_at="2026-01-01T00:00:00Z", signup_date="1970-01-11")))
    10
    """
    days = None if profile is None else profile.days_since_signup(0.0)  # from the signup to 1970-01-01
    return None if days is None else round(-days)
