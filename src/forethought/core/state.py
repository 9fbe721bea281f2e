"""Per-customer state: event-time windows, baselines, deadlines and episode bookkeeping.

The state serialises to compact JSON (the changelog value) and back without loss:

>>> from forethought.core.config import EngineConfig
>>> state = CustomerState.new("c1", EngineConfig())
>>> state.remember("event-1")
False
>>> state.remember("event-1")
True
>>> CustomerState.from_bytes(state.to_bytes(), EngineConfig()) == state
True
"""

from __future__ import annotations

import base64
import json
import hashlib
from dataclasses import dataclass, field
from typing import Any

from forethought.core.baselines import EwStats
from forethought.core.config import EngineConfig
from forethought.core.windows import BucketRing

STATE_VERSION = 1
ID_DIGEST_BYTES = 6


@dataclass(slots=True)
class CustomerState:
    """Everything the engine remembers about one customer. Times are POSIX seconds."""

    customer_id: str
    activity: BucketRing
    errors: BucketRing
    account_id: str | None = None
    first_seen: float | None = None
    last_seen: float | None = None
    events: int = 0
    late: int = 0
    error_total: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    visits: int = 0
    gaps: EwStats = field(default_factory=EwStats)
    long_gap: float = 0.0
    long_gap_at: float = 0.0
    day: int = -1
    week: list[int] = field(default_factory=lambda: [0] * 7)
    decline: list[float] = field(default_factory=list)
    usage: dict[str, list[float]] = field(default_factory=dict)
    error_baseline: EwStats = field(default_factory=EwStats)
    burst_bucket: int | None = None
    quiet_buckets: int = 0
    deadline: float | None = None
    silence_fired_for: float | None = None
    recent_ids: bytes = b""

    @classmethod
    def new(cls, customer_id: str, config: EngineConfig) -> CustomerState:
        """A customer never seen before."""
        return cls(
            customer_id=customer_id,
            activity=BucketRing.empty(config.ring_buckets),
            errors=BucketRing.empty(config.ring_buckets),
        )

    def remember(self, event_id: str, keep: int = 32) -> bool:
        """Record ``event_id``; True when it was already among the last ``keep`` ids.

        Ids are kept as 6-byte BLAKE2b digests: a false "duplicate" needs a 48-bit collision
        with one of ``keep`` recent ids (about 1 in 9e12 per event at the default).
        """
        digest = hashlib.blake2b(event_id.encode(), digest_size=ID_DIGEST_BYTES).digest()
        ids = self.recent_ids
        if any(ids[i : i + ID_DIGEST_BYTES] == digest for i in range(0, len(ids), ID_DIGEST_BYTES)):
            return True
        self.recent_ids = (ids + digest)[-ID_DIGEST_BYTES * keep :]
        return False

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form; short keys keep the changelog small."""
        return {
            "v": STATE_VERSION, "id": self.customer_id, "acct": self.account_id,
            "first": self.first_seen, "last": self.last_seen, "n": self.events,
            "late": self.late, "errn": self.error_total, "types": self.by_type,
            "visits": self.visits, "gaps": self.gaps.to_list(), "lg": [self.long_gap, self.long_gap_at],
            "day": self.day, "wk": self.week, "dec": self.decline, "use": self.usage,
            "errb": self.error_baseline.to_list(), "act": self.activity.to_list(),
            "err": self.errors.to_list(), "burst": self.burst_bucket, "quiet": self.quiet_buckets,
            "due": self.deadline, "fired": self.silence_fired_for,
            "ids": base64.b64encode(self.recent_ids).decode(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], config: EngineConfig) -> CustomerState:
        """Inverse of :meth:`to_dict`."""
        if data.get("v") != STATE_VERSION:
            raise ValueError(f"unsupported customer state version {data.get('v')!r}")
        return cls(
            customer_id=data["id"], account_id=data["acct"], first_seen=data["first"],
            last_seen=data["last"], events=data["n"], late=data["late"],
            error_total=data["errn"], by_type=dict(data["types"]), visits=data["visits"],
            gaps=EwStats.from_list(data["gaps"]), long_gap=data["lg"][0], long_gap_at=data["lg"][1], day=data["day"], week=list(data["wk"]),
            decline=list(data["dec"]), usage={k: list(v) for k, v in data["use"].items()}, error_baseline=EwStats.from_list(data["errb"]),
            activity=BucketRing.from_list(config.ring_buckets, data["act"]),
            errors=BucketRing.from_list(config.ring_buckets, data["err"]),
            burst_bucket=data["burst"], quiet_buckets=data["quiet"], deadline=data["due"],
            silence_fired_for=data["fired"], recent_ids=base64.b64decode(data["ids"]),
        )

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes, config: EngineConfig) -> CustomerState:
        return cls.from_dict(json.loads(raw), config)
