""""Why (not)?": a customer's recent decisions beside their scores and facts, with ISO-8601 times.

:func:`customer_view` is what ``/customers/{id}`` answers and ``forethought explain`` prints: the
engine's :func:`~forethought.core.engine.explain` plus the decisions the policy ledger kept
(:meth:`~forethought.core.ledger.PolicyLedger.note`) and the times the customer was first and last
seen; :func:`with_iso_times` turns every point in time of such a view into ISO-8601 UTC text
(durations such as ``silence_seconds`` stay numbers). Pure: the caller says what ``now`` is.

>>> from forethought.core.ledger import Noted, PolicyLedger
>>> ledger = PolicyLedger(decisions=[Noted(1_790_000_000.0, "error_burst", "suppressed", "cooldown")])
>>> decisions_view(ledger)
[{'at': 1790000000.0, 'playbook': 'error_burst', 'verdict': 'suppressed', 'reason': 'cooldown', \
'channel': None, 'count': 1, 'since': 1790000000.0, 'why': 'the playbook sent within its cooldown'}]
>>> with_iso_times({"as_of": 1_790_000_000.5, "silence_seconds": 12.0, "policy": {"sent": [{"at": 0}]}})
{'as_of': '2026-09-21T14:13:20.500000Z', 'silence_seconds': 12.0, 'policy': {'sent': [{'at': '1970-01-01T00:00:00Z'}]}}
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from forethought.core.config import EngineConfig
from forethought.core.engine import explain
from forethought.core.ledger import PolicyLedger
from forethought.core.models import PartitionModels
from forethought.core.state import CustomerState

TIME_KEYS = frozenset({
    "as_of", "at", "since", "first_seen", "last_seen", "release_at", "until", "next_daily_check",
    "silence_deadline", "taken_at", "evicted_at", "first", "last", "first_bucket_start", "last_bucket_start",
})
"""Keys whose number is a point in time (POSIX seconds) wherever they occur in a view."""

WHY = {
    "episode": "the playbook already acted on this episode",
    "cooldown": "the playbook sent within its cooldown",
    "arbitration": "a trigger of equal or higher priority went out (or waits) within the arbitration window",
    "opted_out": "the customer opted out",
    "consent": "no channel of the playbook has the customer's consent",
    "frequency_cap": "a frequency cap is reached on every channel of the playbook",
    "quiet_hours": "quiet hours (the playbook drops rather than defers)",
    "condition_error": "the playbook's condition could not be evaluated",
    "playbook_removed": "the playbook was removed while the trigger waited",
    "no_fallback_channel": "the delivery failed and no further channel is allowed",
    "low_uplift": "the playbook's uplift condition says its message would not help this customer",
    "holdout": "in the playbook's holdout group (measured, not messaged)",
    "global_control": "in the global control group (measured, not messaged)",
}
"""A sentence per reason, for people (the reason itself stays the stable, machine-readable name)."""

VERDICT_TEXT = {
    "sent": "sent", "shadow": "would have sent (shadow mode)", "deferred": "deferred by quiet hours",
    "released": "sent after quiet hours", "fallback": "sent on a fallback channel", "held_out": "held out",
    "suppressed": "suppressed",
}


def decisions_view(ledger: PolicyLedger, until: float | None = None) -> list[dict[str, Any]]:
    """The kept decisions, oldest first (those at or before ``until`` when given), each with a
    sentence for its reason (``why``: None when there is none to give)."""
    return [{"at": n.at, "playbook": n.playbook, "verdict": n.verdict, "reason": n.reason, "channel": n.channel,
             "count": n.count, "since": n.first, "why": WHY.get(n.reason or "", n.reason)}
            for n in ledger.decisions if until is None or n.first <= until]


def customer_view(state: CustomerState, now: float, config: EngineConfig,
                  models: PartitionModels | None = None) -> dict[str, Any]:
    """:func:`~forethought.core.engine.explain` as of ``now`` with the customer's recent decisions
    and first and last times seen (numbers: :func:`with_iso_times` makes them text)."""
    view = explain(state, now, config, models)
    return {**view, "first_seen": state.first_seen, "last_seen": state.last_seen,
            "decisions": decisions_view(state.policy)}


def with_iso_times(view: Any) -> Any:
    """``view`` with the number under each of :data:`TIME_KEYS` (at any depth) as ISO-8601 UTC text."""
    if isinstance(view, dict):
        return {k: _time_text(v) if k in TIME_KEYS else with_iso_times(v) for k, v in view.items()}
    if isinstance(view, list):
        return [with_iso_times(v) for v in view]
    return view


def iso(at: float) -> str:
    """POSIX seconds as ISO-8601 UTC text with a ``Z``.

    >>> iso(1_790_000_000), iso(1_790_000_000.25)
    ('2026-09-21T14:13:20Z', '2026-09-21T14:13:20.250000Z')
    """
    return datetime.fromtimestamp(at, tz=UTC).isoformat().replace("+00:00", "Z")


def _time_text(value: Any) -> Any:
    """A point in time as text; anything else (None, a time out of range) as it is."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return with_iso_times(value)
    try:
        return iso(value)
    except (OverflowError, ValueError, OSError):
        return value
