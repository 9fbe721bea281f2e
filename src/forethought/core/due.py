"""When the engine must next look at a customer: only when something can change for them.

Looks happen on a per-customer daily grid (a customer-specific time of day, so looks spread over
the day), but not every day: a look is due at the first grid time (a *slot*) at which one of these
can change anything —

* the learned drop-off model needs a snapshot (none pending, the customer has been active): the
  next slot;
* a pending snapshot's label horizon passes (it is labelled "dropped"): the first slot at or after
  ``taken_at + label_horizon_seconds``;
* a playbook listening to ``daily`` can hold: every slot inside the lifecycle span its condition
  allows for this customer's profile (:mod:`forethought.core.policy.lifecycle`), every slot for a
  condition without lifecycle bounds;
* the learned population prior counts this customer (``prior_learned``): every slot;
* ``look_every_day`` (an evaluation aid): every slot.

Silence deadlines, deferred releases and re-engagement windows keep their own due times (state
and policy ledger). A skipped slot is one at which a daily look would have changed nothing, so
results are the same as looking every day (tests/unit/test_due_times.py checks this).

>>> slot_after("c1", 1_790_000_000.0) - 1_790_000_000.0 <= DAY
True
>>> at = slot_after("c1", 0.0); slot_at_or_after("c1", at) == at and slot_after("c1", at) == at + DAY
True
"""

from __future__ import annotations

import math
from datetime import date
from functools import lru_cache

from forethought.core import snapshots
from forethought.core.config import EngineConfig
from forethought.core.models import PartitionModels
from forethought.core.policy.profiles import ProfileState
from forethought.core.policy.rules import Rules
from forethought.core.policy.timing import unit_hash
from forethought.core.state import CustomerState

DAY = 86_400.0


@lru_cache(maxsize=1 << 16)
def _offset(customer_id: str) -> float:
    return float(math.floor(unit_hash("daily", customer_id) * DAY))


def slot_after(customer_id: str, after: float) -> float:
    """The customer's first daily slot strictly after ``after``."""
    offset = _offset(customer_id)
    at = math.floor((after - offset) / DAY) * DAY + offset
    return at + DAY if at <= after else at


def slot_at_or_after(customer_id: str, when: float) -> float:
    """The customer's first daily slot at or after ``when``."""
    offset = _offset(customer_id)
    at = math.floor((when - offset) / DAY) * DAY + offset
    return at if at >= when else at + DAY


def next_look(state: CustomerState, after: float, config: EngineConfig, rules: Rules, profile: ProfileState,
              models: PartitionModels | None) -> float | None:
    """The first slot after ``after`` at which a look can change something (None: none is due)."""
    cid, soon = state.customer_id, slot_after(state.customer_id, after)
    if config.look_every_day or (config.prior_learned and models is not None and state.gaps.n >= config.prior_min_gaps):
        return soon
    due = math.inf
    if models is not None:
        due = _learning(state, soon, config)
        if due <= soon:
            return soon
    if rules.daily_bounds:
        due = min(due, _lifecycle(cid, soon, due, rules, profile))
    return None if due == math.inf else due


def lifecycle_open(rules: Rules, profile: ProfileState, at: float) -> bool:
    """Whether any playbook listening to ``daily`` can hold at ``at`` for this profile."""
    signup, renewal = _dates(profile)
    for bounds in rules.daily_bounds:
        if bounds is None:
            return True
        start, end = bounds.span(signup, renewal)
        if start <= at <= end:
            return True
    return False


def _learning(state: CustomerState, soon: float, config: EngineConfig) -> float:
    """The learned model's next need: a snapshot (soon) or a label horizon."""
    if state.snapshot is None:
        return soon if state.last_seen is not None else math.inf
    try:
        taken = snapshots.taken_at(state.snapshot)
    except ValueError:  # unreadable: the next look clears it
        return soon
    return max(soon, slot_at_or_after(state.customer_id, taken + config.label_horizon_seconds))


def _lifecycle(cid: str, soon: float, before: float, rules: Rules, profile: ProfileState) -> float:
    """The first slot from ``soon`` (and before ``before``) at which a lifecycle playbook can hold."""
    signup, renewal = _dates(profile)
    best = before
    for bounds in rules.daily_bounds:
        if bounds is None:
            return soon
        start, end = bounds.span(signup, renewal)
        if end < soon or start > end or start >= best:
            continue  # over, never, or not before what is already due
        at = max(soon, slot_at_or_after(cid, start)) if start > soon else soon
        if at <= end and at < best:
            best = at
    return best


def _dates(profile: ProfileState) -> tuple[date | None, date | None]:
    p = profile.profile
    return (None, None) if p is None else (p.signup_date, p.renewal_date)
