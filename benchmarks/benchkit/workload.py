"""The pre-built benchmark events: realistic kinds, Zipf-ish customers, increasing event times."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson

from forethought.contracts.decode import Rejection, decode_event
from forethought.contracts.events import InboundEvent

from .common import EVENT_SPAN_SECONDS, TOPIC_OF


@dataclass(frozen=True, slots=True)
class Workload:
    """The pre-built events: (catalogue topic, key, raw JSON) and the decoded pydantic objects."""

    records: list[tuple[str, bytes, bytes]]
    events: list[InboundEvent]
    customers: int


def _kind(rng: random.Random) -> str:
    """~5 % errors, ~20 % usage, the rest clickstream."""
    roll = rng.random()
    if roll < 0.05:
        return "error"
    if roll < 0.25:
        return "usage"
    return rng.choices(["page_view", "click", "feature_used", "session_start", "session_end"],
                       weights=[45, 35, 12, 4, 4])[0]


def _fields(kind: str, rng: random.Random) -> dict[str, Any]:
    """The kind-specific fields of one event."""
    if kind == "page_view":
        return {"page": rng.choice(["/home", "/reports", "/billing", "/settings", "/docs/api"]),
                "properties": {"referrer": "internal", "device": rng.choice(["web", "ios", "android"])}}
    if kind == "click":
        return {"target": rng.choice(["export-btn", "nav-reports", "save", "share"])}
    if kind == "feature_used":
        return {"feature": rng.choice(["export", "reports", "alerts", "sso"]), "properties": {"plan": "pro"}}
    if kind == "error":
        return {"code": rng.choice(["E400", "E404", "E500", "E503"]),
                "severity": rng.choice(["warning", "error", "critical"]), "message": "request failed"}
    if kind == "usage":
        return {"metric": rng.choice(["api_calls", "seats", "storage_gb"]),
                "quantity": round(rng.uniform(0, 50), 2), "unit": "count"}
    return {}


def build_workload(n: int, customers: int, end: float, seed: int = 7) -> Workload:
    """``n`` valid events with strictly increasing event times in ``(end - span, end]``."""
    rng = random.Random(seed)
    weights = [1 / math.sqrt(rank + 1) for rank in range(customers)]
    who = rng.choices(range(customers), weights=weights, k=n)
    records: list[tuple[str, bytes, bytes]] = []
    events: list[InboundEvent] = []
    for i, c in enumerate(who):
        customer, kind = f"cust-{c:05d}", _kind(rng)
        at = end - EVENT_SPAN_SECONDS * (n - i) / n
        body = {"event_id": f"{customer}-{i}", "customer_id": customer, "type": kind,
                "occurred_at": datetime.fromtimestamp(at, tz=timezone.utc).isoformat(),
                "account_id": f"acct-{c // 10:04d}", "session_id": f"s-{c}-{i // 500}", **_fields(kind, rng)}
        raw = orjson.dumps(body)
        event = decode_event(raw)
        if isinstance(event, Rejection):
            raise AssertionError(f"benchmark built an invalid event: {event}")
        records.append((TOPIC_OF[kind], customer.encode(), raw))
        events.append(event)
    return Workload(records, events, len(set(who)))
