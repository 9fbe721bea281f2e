"""The chaos workload: a simulated population (:mod:`forethought.simulate`) as keyed Kafka records.

Records come out in strictly increasing event time (ties moved 1 ms apart, so the worker's ordered
merge across topics and the replay's sort agree), each on the catalogue topic of its kind. One
``page_view`` per partition ends the stream ("sentinels", a second after the last record), so every
partition's event clock ends at the same time as the replay's, which advances all partitions together.

>>> load = build_workload(customers=4, days=2, seed=3)
>>> times = [r.at for r in load.records]
>>> times == sorted(times) and len(set(times)) == len(times)
True
>>> sorted({r.topic for r in load.records}) >= ['customers.profile', 'events.clickstream']
True
>>> [r.key for r in load.records[-load.partitions:]] == [s.encode() for s in load.sentinels]
True
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from forethought.contracts.partitioning import partition_of
from forethought.ops.topics import load_catalogue
from forethought.simulate.plans import SimulationConfig
from forethought.simulate.population import simulate

TIME_FIELD = {"profile": "updated_at"}  # the field holding a record's event time; events: occurred_at


@dataclass(frozen=True, slots=True)
class ChaosRecord:
    """One record to produce: catalogue topic (unprefixed), key, JSON value and event time (POSIX s)."""

    topic: str
    key: bytes
    value: bytes
    at: float


@dataclass(frozen=True, slots=True)
class Workload:
    """The records in production order, the customers they concern and the sentinel customers."""

    records: list[ChaosRecord]
    customers: list[str]
    sentinels: list[str]
    partitions: int


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def topic_of_kind() -> dict[str, str]:
    """Record kind → the catalogue topic that carries it (the first one listing it)."""
    found: dict[str, str] = {}
    for topic in load_catalogue().topics:
        for kind in topic.kinds:
            found.setdefault(kind, topic.name)
    return found


def sentinel_ids(partitions: int) -> list[str]:
    """One customer id per partition (``chaos-end-<n>``), in partition order.

    >>> [partition_of(c.encode(), 4) for c in sentinel_ids(4)]
    [0, 1, 2, 3]
    """
    found: dict[int, str] = {}
    n = 0
    while len(found) < partitions:
        found.setdefault(partition_of(f"chaos-end-{n}".encode(), partitions), f"chaos-end-{n}")
        n += 1
    return [found[p] for p in range(partitions)]


def build_workload(customers: int, days: float, seed: int = 7) -> Workload:
    """The simulated population of ``customers`` over ``days``, plus the sentinels."""
    topics, partitions = topic_of_kind(), load_catalogue().partitions
    records: list[ChaosRecord] = []
    last = float("-inf")
    for body in simulate(SimulationConfig(customers=customers, days=days, seed=seed)):
        field = TIME_FIELD.get(body["type"], "occurred_at")
        at = max(round(_epoch(body[field]), 3), round(last + 0.001, 3))
        body[field], last = _iso(at), at
        records.append(ChaosRecord(topics[body["type"]], body["customer_id"].encode(), orjson.dumps(body), at))
    sentinels = sentinel_ids(partitions)
    for n, customer in enumerate(sentinels):
        at = round(last + 1 + n / 1000, 3)
        body = {"event_id": f"{customer}-end", "customer_id": customer, "type": "page_view", "occurred_at": _iso(at),
                "page": "/chaos/end"}
        records.append(ChaosRecord(topics["page_view"], customer.encode(), orjson.dumps(body), at))
    who = sorted({r.key.decode() for r in records} - set(sentinels))
    return Workload(records, who, sentinels, partitions)
