"""Simulated customers answering triggers: outcome records and the customer's changed activity.

A :class:`Responder` holds the population's plans and what each message has done to each customer
so far. :meth:`~Responder.answer` turns one trigger into an :class:`Answer`: the outcome records
(``delivered``, ``opened``, ``clicked``, ``converted``, ``unsubscribed``, at their event times) and,
when the customer comes back or leaves, from when their own activity changes. A bad trigger (not
JSON, not a trigger, a customer the population does not have, a variant the response model does
not know) is skipped and counted by reason, never raised: one trigger never stops the loop.

Both drivers use it: the in-process closed loop (:mod:`forethought.closed_loop`) and the
live responder against a broker (:mod:`forethought.simulate.respond_live`).

>>> from forethought.simulate.plans import SimulationConfig
>>> responder = Responder(SimulationConfig(customers=3, days=7, seed=2))
>>> responder.decode(b"{oops") is None, dict(responder.skipped)
(True, {'malformed': 1})
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import orjson
from pydantic import ValidationError

from forethought.contracts.records import Trigger
from forethought.simulate.behaviour import Customer, Item
from forethought.simulate.plans import CustomerPlan, SimulationConfig
from forethought.simulate.population import plans
from forethought.simulate.response import DEFAULT_VARIANT, Reaction, ResponseModel, UnknownVariant
from forethought.simulate.timeline import iso

Timed = tuple[int, dict[str, Any]]  # (epoch ms, record)


@dataclass(slots=True)
class Answer:
    """What one trigger did: outcome records, and from when the customer's activity changes."""

    index: int
    playbook: str
    variant: str
    reaction: Reaction
    outcomes: list[Timed] = field(default_factory=list)
    resumed: Customer | None = None  # a persuadable coming back: their activity from ``reaction.returned``
    generation: int = 0  # the generation of the customer's activity that ``resumed`` starts
    cut_at: int | None = None  # the customer's previous activity ends here (returned or left)


@dataclass(slots=True)
class Fate:
    """What messages have done to one customer so far."""

    generation: int = 0  # 0: their own planned activity; n: the n-th resumption after a message
    back: bool = False
    gone: bool = False
    changed_at: int | None = None  # when they came back or left (epoch ms)


class Responder:
    """Answers triggers for the population of ``config`` with ``model`` (default: the seed's)."""

    def __init__(self, config: SimulationConfig, model: ResponseModel | None = None,
                 population: list[CustomerPlan] | None = None) -> None:
        self.config = config
        self.model = model or ResponseModel(config.seed)
        self.population = population if population is not None else plans(config)
        self.by_id = {plan.customer_id: plan for plan in self.population}
        self.fates: dict[int, Fate] = {}
        self.skipped: Counter[str] = Counter()
        self.tally: dict[str, Counter[str]] = {}

    def decode(self, raw: bytes) -> tuple[Trigger, object] | None:
        """A trigger from its JSON bytes and its ``variant`` field as sent (None: absent); None,
        counted, when malformed."""
        try:
            body = orjson.loads(raw)
            trigger = Trigger.model_validate(body)
        except (orjson.JSONDecodeError, ValidationError, TypeError, ValueError):
            self.skipped["malformed"] += 1
            return None
        return trigger, body.get("variant")

    def answer(self, trigger: Trigger, now_ms: int, variant: object = None) -> Answer | None:
        """The customer's answer to ``trigger``, arriving at its release (or firing) time but not
        before ``now_ms``; None, counted in :attr:`skipped`, for a trigger that cannot be answered.
        ``variant``: the trigger's variant as sent (None: its ``variant`` field, absent: ``default``)."""
        plan = self.by_id.get(trigger.customer_id)
        if plan is None:
            self.skipped["unknown_customer"] += 1
            return None
        if variant is None:
            variant = getattr(trigger, "variant", None) or DEFAULT_VARIANT
        if not isinstance(variant, str):
            self.skipped["malformed"] += 1
            return None
        arrives = max(now_ms, _ms(trigger.released_at or trigger.fired_at))
        try:
            reaction = self.model.react(plan, trigger.channel, variant, arrives, trigger.trigger_id)
        except UnknownVariant:
            self.skipped["unknown_variant"] += 1
            return None
        return self._settle(trigger, plan, variant, reaction)

    def _settle(self, trigger: Trigger, plan: CustomerPlan, variant: str, reaction: Reaction) -> Answer:
        fate = self.fates.setdefault(plan.index, Fate())
        end = self.config.end_ms
        answer = Answer(plan.index, trigger.playbook, variant, reaction)
        for status, at in reaction.statuses:
            if at < end:
                answer.outcomes.append((at, outcome_record(trigger, status, at)))
        tally = self.tally.setdefault(trigger.playbook, Counter())
        tally.update(status for _, record in answer.outcomes for status in (record["status"],))
        if reaction.left is not None and not fate.gone and reaction.left < end:
            fate.gone, answer.cut_at = True, reaction.left
            fate.changed_at = reaction.left
            tally["left"] += 1
        elif reaction.returned is not None and not fate.back and not fate.gone and reaction.returned < end:
            fate.back, fate.generation, fate.changed_at = True, fate.generation + 1, reaction.returned
            answer.cut_at, answer.generation = reaction.returned, fate.generation
            answer.resumed = self.resume(plan, reaction.returned, fate.generation)
            tally["returned"] += 1
        return answer

    def resume(self, plan: CustomerPlan, at_ms: int, generation: int) -> Customer:
        """The customer's activity from ``at_ms`` to the horizon's end: their own segment, cadence and
        hours, without the planned drop-off, decline or anomaly; a first visit at ``at_ms``."""
        again = replace(plan, active_from=at_ms, stop=self.config.end_ms, dropoff=None, decline_from=None,
                        precursors=(), anomaly=None, stall_step=None)
        customer = Customer(again, self.config.seed, stream=f"return/{generation}", tag=f"r{generation}-")
        customer.pending.clear()  # the profile: the customer has one already
        customer.visit(at_ms)
        return customer

    def report(self) -> dict[str, Any]:
        """Per playbook: outcomes by status, ``returned`` and ``left``; and the skipped by reason."""
        return {"responses_by_playbook": {p: dict(sorted(c.items())) for p, c in sorted(self.tally.items())},
                "skipped_triggers": dict(sorted(self.skipped.items()))}


def resumed_items(customer: Customer) -> list[Item]:
    """Every record of a resumed customer to the horizon's end (the live responder sends them at once)."""
    out: list[Item] = []
    for day in range(customer.first_day, customer.last_day + 1):
        out.extend(customer.day(day))
    return out


def outcome_record(trigger: Trigger, status: str, at_ms: int) -> dict[str, Any]:
    """The outcome record of ``status`` for ``trigger`` (its id: a digest of trigger and status)."""
    digest = hashlib.blake2b(f"{trigger.trigger_id}/{status}".encode(), digest_size=12).hexdigest()
    return {"type": "outcome", "outcome_id": f"sim-{digest}", "trigger_id": trigger.trigger_id,
            "customer_id": trigger.customer_id, "channel": trigger.channel, "status": status,
            "occurred_at": iso(at_ms), "detail": "simulated"}


def _ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)
