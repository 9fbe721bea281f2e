"""Live demo traffic: steady customers, some who go silent, some who hit error bursts.

The schedule is deterministic per seed and runs against any clock (seconds since start):

>>> gen = TrafficGenerator(plan_population(6, seed=1, duration=60), seed=1, start=0.0)
>>> batch = gen.due(5.0)
>>> {topic for topic, _, _ in batch} <= {"customers.profile", "events.clickstream", "events.errors", "events.usage"}
True
>>> batch[0][0]  # the profiles go out first
'customers.profile'
>>> gen.truth()["silent"] != [] and gen.truth()["burst"] != []
True
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import orjson

Fate = Literal["steady", "silent", "burst"]
Record = tuple[str, bytes | None, bytes]  # (catalogue topic, key, value)

MALFORMED: list[tuple[bytes | None, bytes]] = [
    (b"cust-x", b"{not json"),
    (None, b'{"event_id":"m2","type":"click","occurred_at":"2026-01-01T00:00:00Z"}'),
    (b"cust-x", b'{"event_id":"m3","customer_id":"cust-x","type":"click","occurred_at":"yesterday"}'),
    (b"cust-x", b'{"event_id":"m4","customer_id":"cust-x","type":"teleport","occurred_at":"2026-01-01T00:00:00Z"}'),
]


@dataclass(frozen=True, slots=True)
class DemoCustomer:
    """One simulated customer: their cadence and what happens to them, and when."""

    customer_id: str
    cadence: float
    fate: Fate
    change_at: float


def plan_population(customers: int, seed: int, duration: float) -> list[DemoCustomer]:
    """About 1 in 6 customers go silent and 1 in 6 hit an error burst, mid-run."""
    rng = random.Random(seed)
    plan = []
    for i in range(customers):
        fate: Fate = ("silent", "burst", "steady", "steady", "steady", "steady")[i % 6]
        change_at = rng.uniform(0.3, 0.6) * duration
        plan.append(DemoCustomer(f"cust-{i:03d}", rng.uniform(0.8, 2.5), fate, change_at))
    return plan


class TrafficGenerator:
    """Yields the records due by a given time (seconds since ``start`` of the run)."""

    def __init__(self, population: list[DemoCustomer], seed: int, start: float, malformed_every: float = 15.0) -> None:
        self.population = {c.customer_id: c for c in population}
        self.rng = random.Random(seed)
        self.start = start
        self.malformed_every = malformed_every
        self._heap: list[tuple[float, int, str, str]] = []
        self._seq = 0
        for c in population:
            self._push(self.rng.uniform(0, c.cadence), c.customer_id, "activity")
            if c.fate == "burst":
                self._push(c.change_at, c.customer_id, "burst")
        self._next_malformed = malformed_every / 2
        self._malformed_sent = 0
        self._profiles_sent = False

    def due(self, elapsed: float) -> list[Record]:
        """Every record scheduled at or before ``elapsed`` seconds into the run."""
        records: list[Record] = [] if self._profiles_sent else self.profiles()
        self._profiles_sent = True
        while self._heap and self._heap[0][0] <= elapsed:
            at, _, customer_id, what = heapq.heappop(self._heap)
            records.extend(self._emit(at, self.population[customer_id], what))
        while self._next_malformed <= elapsed:
            key, value = MALFORMED[self._malformed_sent % len(MALFORMED)]
            records.append(("events.clickstream", key, value))
            self._malformed_sent += 1
            self._next_malformed += self.malformed_every
        return records

    def profiles(self) -> list[Record]:
        """One profile per customer, sent first: plans, time zones and email consent vary; the
        first silent customer is in their quiet hours, so their trigger is deferred, not sent."""
        zones = ("UTC", "Asia/Tokyo", "America/New_York", "Europe/Berlin")
        quiet_one = next((c.customer_id for c in self.population.values() if c.fate == "silent"), None)
        records: list[Record] = []
        for i, c in enumerate(self.population.values()):
            zone = zones[i % len(zones)]
            body: dict[str, object] = {
                "type": "profile", "customer_id": c.customer_id, "plan": ("pro", "free")[i % 2], "timezone": zone,
                "consent": {"email": i % 3 != 0}, "updated_at": datetime.fromtimestamp(self.start, tz=UTC).isoformat(),
            }
            if c.customer_id == quiet_one:
                body["quiet_hours"] = _quiet_now(self.start, zone)
            records.append(("customers.profile", c.customer_id.encode(), orjson.dumps(body)))
        return records

    def truth(self) -> dict[str, list[str]]:
        """Which customers go silent and which burst (ground truth for the demo summary)."""
        return {fate: sorted(c.customer_id for c in self.population.values() if c.fate == fate)
                for fate in ("silent", "burst", "steady")}

    def _emit(self, at: float, c: DemoCustomer, what: str) -> list[Record]:
        if what == "burst":
            return [self._error(at + i * 0.1, c, "E503", "critical") for i in range(12)]
        if c.fate == "silent" and at >= c.change_at:
            return []
        self._push(at + c.cadence * self.rng.lognormvariate(0, 0.25), c.customer_id, "activity")
        roll = self.rng.random()
        if roll < 0.03:
            return [self._error(at, c, "E400", "warning")]
        if roll < 0.25:
            quantity = self.rng.randint(1, 50)
            return [("events.usage", *self._event(at, c, "usage", metric="api_calls", quantity=quantity))]
        kind = self.rng.choice(["page_view", "click", "feature_used"])
        extra = {"feature": self.rng.choice(["export", "reports", "alerts"])} if kind == "feature_used" else {}
        return [("events.clickstream", *self._event(at, c, kind, **extra))]

    def _error(self, at: float, c: DemoCustomer, code: str, severity: str) -> Record:
        return ("events.errors", *self._event(at, c, "error", code=code, severity=severity, message="demo"))

    def _event(self, at: float, c: DemoCustomer, kind: str, **fields: object) -> tuple[bytes, bytes]:
        self._seq += 1
        occurred = datetime.fromtimestamp(self.start + at, tz=UTC).isoformat()
        body = {"event_id": f"{c.customer_id}-{self._seq}", "customer_id": c.customer_id,
                "occurred_at": occurred, "type": kind, **fields}
        return c.customer_id.encode(), orjson.dumps(body)

    def _push(self, at: float, customer_id: str, what: str) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, customer_id, what))


def _quiet_now(start: float, zone: str) -> str:
    """Local quiet hours from an hour before ``start`` to three hours after, in ``zone``."""
    local = datetime.fromtimestamp(start, tz=ZoneInfo(zone))
    begin, end = local - timedelta(hours=1), local + timedelta(hours=3)
    return f"{begin:%H:%M}-{end:%H:%M}"
