"""Built-in playbooks and trigger construction with deterministic ids.

The same customer, playbook and episode always give the same ``trigger_id``, so a replayed
input yields the same id and senders deduplicate:

>>> trigger_id("c1", "silence_dropoff", "silence-1700000000")
'7d27f11e-aa02-58fc-8089-7530db84014f'
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from forethought.contracts.records import Channel, Reason, Trigger

TRIGGER_NAMESPACE = uuid.UUID("6f0c4c1e-6a43-4c4e-9a51-2f6d4b8e9a10")


@dataclass(frozen=True, slots=True)
class Playbook:
    """What to do when a detector fires (declarative playbooks come later)."""

    name: str
    detector: str
    channel: Channel
    priority: int
    description: str


SILENCE_DROPOFF = Playbook(
    "silence_dropoff", "silence", "email", 50,
    "The customer has been silent much longer than their own usual gap between visits.",
)
ACTIVITY_DECLINE = Playbook(
    "activity_decline", "decline", "email", 55,
    "The customer's weekly activity has fallen well below their own usual level.",
)
USAGE_ANOMALY = Playbook(
    "usage_anomaly", "usage_anomaly", "cs_outreach", 60,
    "The customer reported usage far above or below their own level for that metric.",
)
ERROR_BURST = Playbook(
    "error_burst", "error_burst", "in_app", 70,
    "The customer is hitting errors far above their own baseline.",
)


def trigger_id(customer_id: str, playbook: str, episode: str) -> str:
    """A UUIDv5 of customer, playbook and episode."""
    return str(uuid.uuid5(TRIGGER_NAMESPACE, f"{customer_id}\x1f{playbook}\x1f{episode}"))


def utc(epoch: float) -> datetime:
    """POSIX seconds as an aware UTC datetime."""
    return datetime.fromtimestamp(epoch, tz=timezone.utc)


def build_trigger(
    playbook: Playbook,
    *,
    customer_id: str,
    account_id: str | None,
    episode: str,
    fired_at: float,
    ttl_seconds: float,
    scores: dict[str, float],
    reasons: list[Reason],
    context: dict[str, str | int | float | bool | None] | None = None,
) -> Trigger:
    """A trigger for ``playbook`` with its evidence; ``fired_at`` is event time."""
    fired = utc(fired_at)
    return Trigger(
        trigger_id=trigger_id(customer_id, playbook.name, episode),
        customer_id=customer_id, account_id=account_id, playbook=playbook.name,
        detector=playbook.detector, episode=episode, channel=playbook.channel,
        priority=playbook.priority, fired_at=fired, expires_at=fired + timedelta(seconds=ttl_seconds),
        scores={k: round(v, 6) for k, v in scores.items()}, reasons=reasons, context=context or {},
    )
