"""How a simulated customer answers a message: hidden traits, what they do, and their true uplift.

Every customer gets hidden *traits* from their own random stream (seed and index, never the order
in which messages arrive): a response type, a responsiveness and two effect sizes. A message's
fate then depends on the channel, the variant, the hour it arrives in the customer's own week and
the type (docs/simulator-response.md gives every number):

- ``persuadable`` (planned to drop off, a message can stop it): opens, may click, and comes back;
- ``lost_cause`` (planned to drop off, nothing helps): may open, never clicks, stays gone;
- ``sure_thing`` (not leaving anyway): opens and clicks, their own visits go on as planned;
- ``sleeping_dog`` (not leaving, unless disturbed): on opening, may leave (and unsubscribe).

>>> from forethought.simulate.plans import SimulationConfig, plan_customer
>>> model = ResponseModel(seed=3)
>>> plan = plan_customer(SimulationConfig(customers=5, days=30, seed=3), 0)
>>> model.traits(plan) == model.traits(plan), model.traits(plan).kind in KINDS
(True, True)
>>> reaction = model.react(plan, "email", "default", at_ms=plan.active_from, key="t1")
>>> reaction == model.react(plan, "email", "default", at_ms=plan.active_from, key="t1")
True
>>> model.react(plan, "email", "nope", at_ms=plan.active_from, key="t1")
Traceback (most recent call last):
...
forethought.simulate.response.UnknownVariant: unknown variant 'nope' (known: default, offer, personal, short)
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from forethought.simulate.plans import CustomerPlan
from forethought.simulate.timeline import BIN_MS, DAY_MS, HOUR_MS, SECOND_MS, day_weights

KINDS = ("persuadable", "sure_thing", "lost_cause", "sleeping_dog")
DEFAULT_VARIANT = "default"

# Per channel: P(open) and P(click | open) of an average customer at their busiest hour.
CHANNELS: dict[str, tuple[float, float]] = {
    "email": (0.30, 0.20), "in_app": (0.55, 0.25), "push": (0.15, 0.15), "sms": (0.45, 0.12),
    "cs_outreach": (0.60, 0.35), "webhook": (0.0, 0.0),
}
# Among customers planned to drop off: the share a message can bring back, by segment.
PERSUADABLE_SHARE = {"integration": 0.10, "daily": 0.45, "weekly": 0.55, "monthly": 0.35}
# Among customers not planned to drop off: the share a message pushes away, by segment.
SLEEPING_DOG_SHARE = {"integration": 0.05, "daily": 0.20, "weekly": 0.12, "monthly": 0.08}
OFF_HOUR_FLOOR = 0.3  # the hour factor at a customer's quietest half hour (1.0 at their busiest)
MAX_P = 0.95


class UnknownVariant(ValueError):
    """A trigger names a variant the response model does not know."""


@dataclass(frozen=True, slots=True)
class Variant:
    """A message variant: multipliers on P(open) and P(click | open) per segment (absent: 1)."""

    name: str
    open: dict[str, float] = field(default_factory=dict)
    click: dict[str, float] = field(default_factory=dict)


VARIANTS: tuple[Variant, ...] = (
    Variant("default"),
    Variant("short", click={"daily": 1.3, "weekly": 1.3, "monthly": 0.8}),
    Variant("personal", open={"monthly": 1.25, "daily": 0.9, "weekly": 0.9}),
    Variant("offer", click={"monthly": 1.5, "daily": 0.9, "weekly": 0.9}),
)


@dataclass(frozen=True, slots=True)
class Traits:
    """One customer's hidden response traits."""

    kind: str
    responsiveness: float  # multiplies P(open)
    persuaded_after_open: float  # persuadable: P(come back | opened, did not click)
    leaves_after_open: float  # sleeping dog: P(leave | opened)


@dataclass(frozen=True, slots=True)
class Reaction:
    """What one message did, with event times (epoch ms); None: it did not happen."""

    delivered: int
    opened: int | None = None
    clicked: int | None = None
    returned: int | None = None  # came back (a persuadable): their activity resumes from here
    left: int | None = None  # a sleeping dog left: no activity from here
    unsubscribed: int | None = None

    @property
    def statuses(self) -> list[tuple[str, int]]:
        """``(outcome status, time)`` in time order; ``converted`` when the message brought them back
        or a sure thing clicked (what a sender's last-click attribution would report)."""
        out = [("delivered", self.delivered)]
        out += [(s, t) for s, t in (("opened", self.opened), ("clicked", self.clicked),
                                    ("unsubscribed", self.unsubscribed)) if t is not None]
        converted = self.returned if self.returned is not None else self.clicked
        if converted is not None and self.left is None:
            out.append(("converted", converted))
        return sorted(out, key=lambda s: s[1])


class ResponseModel:
    """The response model of one seed; ``variants`` and ``channels`` (P(open), P(click | open) per
    channel) replace the built-in catalogue and rates."""

    def __init__(self, seed: int, variants: tuple[Variant, ...] = VARIANTS,
                 channels: dict[str, tuple[float, float]] | None = None) -> None:
        self.seed = seed
        self.variants = {v.name: v for v in variants}
        self.channels = CHANNELS if channels is None else channels

    def traits(self, plan: CustomerPlan) -> Traits:
        """The hidden traits of ``plan``'s customer (their own stream: ``seed/index/response``)."""
        return _traits(self.seed, plan)

    def variant(self, name: str | None) -> Variant:
        """The variant called ``name`` (None: ``default``); raises :class:`UnknownVariant`."""
        found = self.variants.get(name or DEFAULT_VARIANT)
        if found is None:
            raise UnknownVariant(f"unknown variant {name!r} (known: {', '.join(sorted(self.variants))})")
        return found

    def p_open(self, plan: CustomerPlan, channel: str, variant: str | None, hour_factor: float) -> float:
        """P(open) of a message on ``channel`` arriving when the customer's hour factor is ``hour_factor``."""
        base = self.channels.get(channel, (0.0, 0.0))[0]
        seg = plan.segment.name
        return min(MAX_P, base * self.variant(variant).open.get(seg, 1.0) * self.traits(plan).responsiveness
                   * hour_factor)

    def p_click(self, plan: CustomerPlan, channel: str, variant: str | None) -> float:
        """P(click | open); zero for lost causes and sleeping dogs (a click would be a visit)."""
        if self.traits(plan).kind in ("lost_cause", "sleeping_dog"):
            return 0.0
        base = self.channels.get(channel, (0.0, 0.0))[1]
        return min(MAX_P, base * self.variant(variant).click.get(plan.segment.name, 1.0))

    def uplift(self, plan: CustomerPlan, channel: str, variant: str | None, hour_factor: float = 1.0) -> float:
        """P(back within the window | messaged) - P(back | not): a persuadable who has lapsed, a
        sleeping dog who was going to come back; zero for the others."""
        traits = self.traits(plan)
        opened = self.p_open(plan, channel, variant, hour_factor)
        if traits.kind == "persuadable":
            click = self.p_click(plan, channel, variant)
            return opened * (click + (1 - click) * traits.persuaded_after_open)
        if traits.kind == "sleeping_dog":
            return -opened * traits.leaves_after_open
        return 0.0

    def react(self, plan: CustomerPlan, channel: str, variant: str | None, at_ms: int, key: str) -> Reaction:
        """The reaction to one message arriving at ``at_ms``; ``key`` (the trigger id) seeds its draws,
        so the same message always gets the same answer whatever else happened before it."""
        traits, hour = self.traits(plan), hour_factor(plan, at_ms)
        p_open, p_click = self.p_open(plan, channel, variant, hour), self.p_click(plan, channel, variant)
        rng = random.Random(f"{self.seed}/{plan.index}/message/{key}")
        if rng.random() >= p_open:
            return Reaction(at_ms)
        opened = at_ms + int(rng.expovariate(hour / HOUR_MS)) + SECOND_MS  # sooner at a busy hour
        clicked = opened + int(rng.uniform(10, 300) * SECOND_MS) if rng.random() < p_click else None
        if traits.kind == "persuadable":
            returned = clicked
            if returned is None and rng.random() < traits.persuaded_after_open:
                returned = opened + int(rng.uniform(0.5, 24) * HOUR_MS)
            return Reaction(at_ms, opened, clicked, returned=returned)
        if traits.kind == "sleeping_dog" and rng.random() < traits.leaves_after_open:
            unsubscribed = opened + int(rng.uniform(10, 120) * SECOND_MS) if rng.random() < 0.5 else None
            return Reaction(at_ms, opened, None, left=opened, unsubscribed=unsubscribed)
        return Reaction(at_ms, opened, clicked)

    def truth(self, plan: CustomerPlan) -> dict[str, Any]:
        """The ``response`` part of a truth record: type, traits, and the true uplift per channel and
        variant for a message at the customer's busiest (``uplift``) and quietest half hour."""
        traits = self.traits(plan)
        names = sorted(self.variants)

        def table(hour: float) -> dict[str, dict[str, float]]:
            return {channel: {name: round(self.uplift(plan, channel, name, hour), 4) for name in names}
                    for channel in self.channels}

        return {"type": traits.kind, "responsiveness": round(traits.responsiveness, 4),
                "persuaded_after_open": round(traits.persuaded_after_open, 4),
                "leaves_after_open": round(traits.leaves_after_open, 4),
                "uplift": table(1.0), "uplift_off_hours": table(OFF_HOUR_FLOOR)}


def _traits(seed: int, plan: CustomerPlan) -> Traits:
    return _drawn(seed, plan.index, plan.segment.name, plan.dropoff is not None)


@lru_cache(maxsize=65536)
def _drawn(seed: int, index: int, segment: str, leaving: bool) -> Traits:
    rng = random.Random(f"{seed}/{index}/response")
    roll = rng.random()
    if leaving:
        kind = "persuadable" if roll < PERSUADABLE_SHARE.get(segment, 0.3) else "lost_cause"
    else:
        kind = "sleeping_dog" if roll < SLEEPING_DOG_SHARE.get(segment, 0.1) else "sure_thing"
    return Traits(kind, min(2.5, max(0.4, rng.lognormvariate(0, 0.35))), rng.uniform(0.2, 0.5),
                  rng.uniform(0.4, 0.8))


def hour_factor(plan: CustomerPlan, at_ms: int) -> float:
    """How well a message lands at ``at_ms``: 1 at the customer's busiest half hour of the week,
    :data:`OFF_HOUR_FLOOR` at their quietest, linear in their own activity weight between.

    >>> from forethought.simulate.plans import SimulationConfig, plan_customer
    >>> plan = plan_customer(SimulationConfig(customers=3, days=7, seed=1), 1)
    >>> OFF_HOUR_FLOOR <= hour_factor(plan, plan.active_from) <= 1.0
    True
    """
    day = at_ms // DAY_MS
    weights = day_weights(plan.segment.profile, plan.weekend, plan.timezone, day).weights
    weight = weights[min(len(weights) - 1, (at_ms - day * DAY_MS) // BIN_MS)]
    low, high = _week_range(plan.segment.profile, round(plan.weekend, 2))
    return OFF_HOUR_FLOOR + (1 - OFF_HOUR_FLOOR) * (weight - low) / max(high - low, 1e-9)


@lru_cache(maxsize=256)
def _week_range(profile: str, weekend: float) -> tuple[float, float]:
    """The lowest and highest half-hour weight of a local week (a week of UTC days in UTC)."""
    weights = [w for d in range(7) for w in day_weights(profile, weekend, "UTC", 4 + d).weights]
    return min(weights), max(weights)

