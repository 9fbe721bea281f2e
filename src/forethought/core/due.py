"""When the engine must next look at a customer: only when something can change for them.

Looks happen on a per-customer daily grid (a customer-specific time of day, so looks spread over
the day), but not every day: a look is due at the first grid time (a *slot*) at which one of these
can change anything. Each detector says when it needs one
(:meth:`~forethought.core.plugin.Detector.look_due`); the built-in ones ask for —

* the learned drop-off model needs a snapshot (none pending, the customer has been active): the
  next slot, or with ``snapshot_backoff`` > 1 the silence's next snapshot time
  (:func:`~forethought.core.detectors.learned_dropoff.snapshot_slot`);
* a pending snapshot's label horizon passes (it is labelled "dropped"): the first slot at or after
  ``taken_at + label_horizon_seconds``;
* a playbook listening to ``daily`` can hold: every slot inside the lifecycle span its condition
  allows for this customer's profile (:mod:`forethought.core.policy.lifecycle`), every slot for a
  condition without lifecycle bounds (:mod:`forethought.core.detectors.lifecycle`);
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
from functools import lru_cache
from typing import TYPE_CHECKING

from forethought.core.signals import unit_hash

if TYPE_CHECKING:
    from forethought.core.plugin import Moment
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


def next_look(state: CustomerState, after: float, m: Moment) -> float | None:
    """The first slot after ``after`` at which a look can change something (None: none is due):
    the earliest of what each detector asks for (:meth:`~forethought.core.plugin.Detector.look_due`)."""
    soon = slot_after(state.customer_id, after)
    config = m.config
    if config.windows.look_every_day:
        return soon
    due = math.inf
    for detector, settings in config.look_hooks:  # the cheap ones first: the first "soon" ends the search
        due = min(due, detector.look_due(state, soon, settings, m))
        if due <= soon:
            return soon
    return None if due == math.inf else due


def look_by(state: CustomerState, at: float) -> None:
    """Make sure a look happens no later than ``at`` (a daily slot)."""
    if state.daily_at is None or at < state.daily_at:
        state.daily_at = at
