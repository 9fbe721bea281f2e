"""What one simulated customer does: visits on their own activity clock, sessions, usage, errors.

:func:`customer_stream` yields ``(epoch_ms, index, seq, record)`` in time order, profile first.
Gaps between visits are drawn on an *activity clock* that runs at the customer's local
half-hour weight (fast in working hours, almost still at night and, for office workers, at
weekends), so the mean gap in real time is the customer's cadence. Events are produced one UTC
day at a time: memory stays bounded by a day's events per customer.

>>> from forethought.simulate.plans import SimulationConfig, plan_customer
>>> plan = plan_customer(SimulationConfig(customers=1, days=7, seed=1), 0)
>>> items = list(customer_stream(plan, seed=1))
>>> items[0][3]["type"], all(a[:3] < b[:3] for a, b in zip(items, items[1:]))
('profile', True)
"""

from __future__ import annotations

import random
from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from forethought.simulate.plans import ONBOARDING_STEPS, CustomerPlan
from forethought.simulate.timeline import BIN_MS, DAY_MS, MINUTE_MS, SECOND_MS, day_of, day_weights, iso

Item = tuple[int, int, int, dict[str, Any]]
SEVERITIES = ("warning", "warning", "error")
BASELINE_ERRORS = ("E400_VALIDATION", "E404_NOT_FOUND", "TIMEOUT", "E500_INTERNAL", "RATE_LIMITED")
DEVICES = {"web": 0.6, "ios": 0.2, "android": 0.2}


def customer_stream(plan: CustomerPlan, seed: int) -> Iterator[Item]:
    """Every record of ``plan``'s customer, sorted by time (ties: generation order)."""
    customer = Customer(plan, seed)
    for day in range(customer.first_day, customer.last_day + 1):
        yield from customer.day(day)


class Customer:
    """One customer's generator; call :meth:`day` for each day from first_day to last_day."""

    def __init__(self, plan: CustomerPlan, seed: int, stream: str = "events", tag: str = "") -> None:
        """``stream`` names the random stream; ``tag`` goes into event and session ids (a customer's
        resumed activity after a message, :mod:`forethought.simulate.responder`, has its own of both)."""
        self.p = plan
        self.tag = tag
        self.rng = random.Random(f"{seed}/{plan.index}/{stream}")
        self.first_day = day_of(plan.active_from)
        self.last_day = max(self.first_day, day_of(plan.stop - 1))
        self.seq = 0
        self.sessions = 0
        self.onboarding = 0 if plan.signup == plan.active_from and plan.segment.clicks else None  # onboarding
        self.pending: list[Item] = [(plan.active_from, plan.index, 0, dict(plan.profile))]
        self.device = self.rng.choices(list(DEVICES), weights=list(DEVICES.values()))[0]
        self.need = 0.0 if self.onboarding is not None else self.rng.random() * self._gap()
        self.base: dict[str, Any] = {"customer_id": plan.customer_id}
        if plan.plan != "free":
            self.base["account_id"] = f"acct-{plan.index:06d}"

    def day(self, day: int) -> list[Item]:
        """Generate UTC ``day`` and return the records now final: those before the next day."""
        p = self.p
        if p.anomaly is not None and day == day_of(p.anomaly.start):
            self._anomaly()
        offset = p.active_from - day * DAY_MS if day == self.first_day else 0
        self.need = self._visits(day, offset, self.need)
        pending = self.pending
        pending.sort()
        if day >= self.last_day:
            self.pending = []
            return pending
        cut = bisect_left(pending, ((day + 1) * DAY_MS,))
        done = pending[:cut]
        del pending[:cut]
        return done

    def visit(self, t: int) -> None:
        """One visit at ``t`` (a customer coming back after a message), besides their own."""
        self._visit(t)

    # -- visits on the activity clock -------------------------------------------------------

    def _visits(self, day: int, offset: int, need: float) -> float:
        """Place the visits of UTC ``day`` from ``offset`` ms in; returns activity still needed."""
        p = self.p
        weights = day_weights(p.segment.profile, p.weekend, p.timezone, day)
        day_start = day * DAY_MS
        rate = BIN_MS * self._activity(day_start + DAY_MS // 2)
        x = weights.at(offset)
        while True:
            available = (weights.total - x) * rate
            if need >= available:
                return need - available
            x += need / rate
            t = max(p.active_from, day_start + int(weights.locate(x)))
            if t >= p.stop:
                return float("inf")
            self._visit(t)
            need = self._gap()

    def _gap(self) -> float:
        shape = self.p.segment.regularity
        return self.rng.gammavariate(shape, self.p.cadence / shape)

    def _activity(self, t: int) -> float:
        """Activity multiplier at ``t``: 1, declining towards the floor before a drop-off."""
        p = self.p
        if p.decline_from is None or t < p.decline_from:
            return 1.0
        progress = min(1.0, (t - p.decline_from) / max(1, p.stop - p.decline_from))
        return 1.0 - (1.0 - p.decline_floor) * progress

    def _error_p(self, t: int) -> float:
        p = self.p
        if "rising_errors" in p.precursors and p.decline_from is not None and t >= p.decline_from:
            progress = min(1.0, (t - p.decline_from) / max(1, p.stop - p.decline_from))
            return p.error_rate * (1.0 + (p.error_boost - 1.0) * progress)
        return p.error_rate

    # -- what happens in a visit --------------------------------------------------------------

    def _visit(self, t: int) -> None:
        if self.p.segment.clicks == 0:
            self._usage(t)
            if self.rng.random() < self._error_p(t):
                self._error(t + 200, None)
            return
        self._session(t)

    def _session(self, t: int) -> None:
        p, rng, seg, emit = self.p, self.rng, self.p.segment, self._emit
        random_ = rng.random
        self.sessions += 1
        sid = f"{p.customer_id}-{self.tag}s{self.sessions}"
        emit(t, "session_start", sid, {"properties": {"device": self.device, "app_version": "5.2.0"}})
        steps = self._onboarding_steps()
        error_p = self._error_p(t)
        for _ in range(1 + int(rng.expovariate(1.0 / p.clicks))):
            t += 1500 + int(rng.expovariate(1 / 12_000))  # a few seconds between events
            roll = random_()
            if steps:
                emit(t, "feature_used", sid, {"feature": steps.pop(0)})
            elif roll < 0.5:
                emit(t, "page_view", sid, {"page": _pick(seg.pages, random_())})
            elif roll < 0.8:
                emit(t, "click", sid, {"target": _pick(seg.targets, random_())})
            else:
                feature = self._feature()
                emit(t, "feature_used", sid, {"feature": feature})
                if feature == seg.key_feature and not seg.usage_p:  # purchasers: the order value
                    self._usage(t + int(rng.uniform(2, 30) * SECOND_MS), sid)
            if random_() < error_p:
                self._error(t + 150, sid)
        if seg.usage_p and random_() < seg.usage_p:
            t += int(rng.uniform(1, 20) * SECOND_MS)
            self._usage(t, sid)
        emit(t + int(rng.uniform(5, 90) * SECOND_MS), "session_end", sid)

    def _onboarding_steps(self) -> list[str]:
        if self.onboarding is None:
            return []
        last = self.p.stall_step or ONBOARDING_STEPS
        first = self.onboarding + 1
        self.onboarding = min(last, self.onboarding + self.rng.randint(1, 2))
        steps = [f"onboarding_step_{k}" for k in range(first, self.onboarding + 1)]
        if self.onboarding >= last:
            self.onboarding = None
        return steps

    def _feature(self) -> str:
        seg = self.p.segment
        if "no_key_feature" not in self.p.precursors and self.rng.random() < self.p.key_p:
            return seg.key_feature
        return _pick(seg.features, self.rng.random())

    def _usage(self, t: int, sid: str | None = None) -> None:
        metric, unit, scale = self.p.usage_metric
        quantity = round(scale * self.rng.lognormvariate(0, 0.4) * self._usage_factor(t), 2)
        self._emit(t, "usage", sid, {"metric": metric, "quantity": quantity, "unit": unit})

    def _usage_factor(self, t: int) -> float:
        a = self.p.anomaly
        if a is not None and a.kind != "error_burst" and a.start <= t <= a.end:
            return a.factor
        return 1.0

    def _error(self, t: int, sid: str | None) -> None:
        code = _pick(BASELINE_ERRORS, self.rng.random())
        self._emit(t, "error", sid, {"code": code, "severity": _pick(SEVERITIES, self.rng.random()),
                                     "message": code.lower().replace("_", " ")})

    def _anomaly(self) -> None:
        a, rng = self.p.anomaly, self.rng
        assert a is not None
        if a.kind == "error_burst":
            times = sorted(rng.randint(a.start, a.end) for _ in range(a.count - 2))
            for t in (a.start, *times, a.end):
                self._emit(t, "error", None, {"code": a.code, "severity": rng.choice(("error", "critical")),
                                        "message": "upstream failure"})
        elif a.kind == "usage_spike":
            t = a.start
            while t <= a.end:
                self._usage(t)
                t += int(rng.uniform(3, 15) * MINUTE_MS)

    def _emit(self, t: int, kind: str, sid: str | None, fields: dict[str, Any] | None = None) -> None:
        if t >= self.p.stop:
            return
        self.seq = seq = self.seq + 1
        record = {"event_id": f"{self.p.customer_id}-{self.tag}{seq}", "type": kind, "occurred_at": iso(t), **self.base}
        if sid is not None:
            record["session_id"] = sid
        if fields:
            record.update(fields)
        self.pending.append((t, self.p.index, seq, record))


def _pick(options: tuple[str, ...], u: float) -> str:
    """``options[floor(u * len)]``: a cheaper ``random.choice`` given a uniform ``u``."""
    return options[int(u * len(options))]
