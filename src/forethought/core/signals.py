"""Detections (what a detector saw) and trigger construction with deterministic ids.

Detectors emit a :class:`Detection`; playbooks decide whether it becomes a trigger. The same
customer, playbook and episode always give the same ``trigger_id``, so a replayed input
yields the same id and senders deduplicate:

>>> trigger_id("c1", "silence_dropoff", "silence-1700000000")
'7d27f11e-aa02-58fc-8089-7530db84014f'
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from forethought.contracts.events import MAX_PROPERTY_CHARS
from forethought.contracts.records import Channel, Reason, Trigger

TRIGGER_NAMESPACE = uuid.UUID("6f0c4c1e-6a43-4c4e-9a51-2f6d4b8e9a10")


@dataclass(frozen=True, slots=True)
class Observation:
    """Something a driver may count or log: ``kind`` plus a few details."""

    kind: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Detection:
    """A signal about one customer at event time ``at``, with its evidence.

    ``signal`` is what playbooks listen to (``silence``, ``decline``, ``error_burst``,
    ``usage_anomaly``, ``feature_first_use``, ``daily``); ``episode`` names the occurrence
    (the same silence or burst keeps its episode, so it fires at most once).
    """

    signal: str
    episode: str
    at: float
    scores: dict[str, float]
    reasons: tuple[Reason, ...]
    context: dict[str, Any] = field(default_factory=dict)


def trigger_id(customer_id: str, playbook: str, episode: str) -> str:
    """A UUIDv5 of customer, playbook and episode."""
    return str(uuid.uuid5(TRIGGER_NAMESPACE, f"{customer_id}\x1f{playbook}\x1f{episode}"))


def bounded_name(text: str, limit: int = 128) -> str:
    """``text`` if it fits a contract ``Name``, else a prefix and a digest of the whole (still unique).

    >>> bounded_name("usage-spike-m-1.000")
    'usage-spike-m-1.000'
    >>> name = bounded_name("usage-spike-" + "x" * 200 + "-1.000")
    >>> len(name), name[:14], name == bounded_name("usage-spike-" + "x" * 200 + "-1.000")
    (128, 'usage-spike-xx', True)
    """
    if len(text) <= limit:
        return text
    digest = hashlib.blake2b(text.encode(), digest_size=12).hexdigest()
    return f"{text[: limit - len(digest) - 1]}~{digest}"


def bounded_text(value: Any, limit: int = MAX_PROPERTY_CHARS) -> Any:
    """``value`` as a trigger's context may carry it: a string longer than ``limit`` is cut to
    ``limit`` characters, the last one an ellipsis to mark the cut; anything else is unchanged.

    >>> bounded_text("short"), bounded_text(42), bounded_text(None)
    ('short', 42, None)
    >>> cut = bounded_text("x" * 2049)
    >>> len(cut), cut[-2:]
    (1024, 'x…')
    """
    if isinstance(value, str) and len(value) > limit:
        return value[: limit - 1] + "…"
    return value


def utc(epoch: float) -> datetime:
    """POSIX seconds as an aware UTC datetime."""
    return datetime.fromtimestamp(epoch, tz=UTC)


def build_trigger(
    detection: Detection,
    *,
    playbook: str,
    channel: Channel,
    priority: int,
    customer_id: str,
    account_id: str | None,
    episode: str,
    ttl: float,
    context: dict[str, Any],
    mode: str = "live",
) -> Trigger:
    """The trigger ``playbook`` makes of ``detection``; ``fired_at`` is the detection's event time."""
    fired = utc(detection.at)
    return Trigger(
        trigger_id=trigger_id(customer_id, playbook, episode),
        customer_id=customer_id, account_id=account_id, playbook=playbook, detector=detection.signal,
        episode=bounded_name(episode), channel=channel, priority=priority, fired_at=fired,
        expires_at=fired + timedelta(seconds=ttl), scores={k: round(v, 6) for k, v in detection.scores.items()},
        reasons=list(detection.reasons), context=context, mode=mode,
    )


def human(seconds: float) -> str:
    """A duration for people.

    >>> human(90061), human(45)
    ('1.0 d', '45 s')
    """
    for unit, size in (("d", 86_400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def unit_hash(*parts: str) -> float:
    """A value in ``[0, 1)`` from BLAKE2b of the parts joined by ``"\\x1f"``; stable everywhere.

    >>> unit_hash("exp-1", "cust-42") == unit_hash("exp-1", "cust-42")
    True
    """
    digest = hashlib.blake2b("\x1f".join(parts).encode("utf-8"), digest_size=8).digest()
    return (int.from_bytes(digest, "big") >> 11) / 2.0**53  # 53 bits: exact, never 1.0
