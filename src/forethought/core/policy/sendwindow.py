"""What a send window writes and reads in the policy (docs/playbooks.md, "Send windows"): the check a
trigger's ``why`` gets, and which held triggers wait for their customer's likeliest active hour.
The hour itself is chosen by :func:`forethought.core.sendtime.choose`.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from forethought.core.policy.timing import QuietHours
from forethought.core.sendtime import HOUR, MIN_OWN, Activity, choose, quiet_at

CHECK = "send time:"  # the check a send window's choice writes into the trigger's ``why``


def hold(now: float, window: float, zone: str | None, activity: Activity | None, quiet: QuietHours | None,
         quiet_zone: str | None, verb: str = "deferred") -> tuple[float | None, str]:
    """``(release instant or None for now, the check for the trigger's why)`` of a trigger decided at
    ``now`` by a playbook with a send window of ``window`` seconds. Hours that begin inside the
    customer's quiet hours are not chosen (a release that still lands inside them, across a DST
    change, moves to their end).

    >>> hold(1_795_998_000.0, 86_400.0, None, Activity(b"", None), None, None)
    (None, 'send time: now (within 24h; no activity profile yet)')
    >>> late = Activity(bytes([0] * 11 + [0x90]), None)    # nine active hours at 23:00
    >>> at, check = hold(1_795_998_000.0, 86_400.0, "UTC", late, QuietHours.parse("22:00-08:00"), "UTC")
    >>> check.split(", ")  # doctest: +NORMALIZE_WHITESPACE
    ['send time: 08:00 UTC',
     "this customer's likeliest active hour outside quiet hours 22:00-08:00 (9 active hours of their own)",
     'within 24h: deferred to 2026-11-30 08:00']

    (23:00 is quiet: the first hour after them, as every other hour weighs 0.)
    """
    span = _span(window)
    mask = quiet if quiet_zone is not None else None
    choice = None if activity is None else choose(now, window, zone, activity, mask)
    if choice is None:
        return None, f"{CHECK} now (within {span}; no activity profile yet)"
    shown = zone or "UTC"
    outside = "" if mask is None else _outside(mask)
    why = (f"{choice.hour:02d}:00 {shown}, this customer's likeliest active hour{outside}"
           f" ({choice.seen} active hours of their own)" if choice.source == "own" else
           f"{choice.hour:02d}:00 {shown}, the population's likeliest active hour{outside}"
           f" (this customer has {choice.seen} active hours, fewer than {MIN_OWN})")
    if choice.at <= now:
        return None, f"{CHECK} now, {why}, within {span}"
    at, local, moved = choice.at, choice.local, ""
    if mask is not None and quiet_zone is not None and quiet_at(mask, local.time()):  # (a DST change)
        at, moved = mask.next_open(at, quiet_zone), ", moved to the end of quiet hours"
        local = datetime.fromtimestamp(at, ZoneInfo(quiet_zone))
    return at, f"{CHECK} {why}, within {span}: {verb} to {_clock(local)}{moved}"


@cache
def _span(window: float) -> str:
    return f"{window / HOUR:g}h"


@cache
def _outside(quiet: QuietHours) -> str:
    return f" outside quiet hours {quiet}"


def waits_for_activity(trigger: dict[str, Any]) -> bool:
    """Whether a held trigger (its JSON form) waits for its send time, not for quiet hours to end.

    >>> waits_for_activity({"why": {"checks": ["send time: ... within 24h: deferred to 2026-11-30 09:00"]}})
    True
    """
    checks = (trigger.get("why") or {}).get("checks") or ()
    return any(c.startswith(CHECK) and ": deferred to" in c for c in checks) and not any(
        c.startswith("quiet hours: deferred") for c in checks)


def with_check(trigger: dict[str, Any], check: str) -> dict[str, Any]:
    """A copy of a held trigger (its JSON form) with one more check in its why."""
    why = dict(trigger.get("why") or {})
    why["checks"] = [*(why.get("checks") or []), check]
    return {**trigger, "why": why}


def active_note(now: float, zone: str | None) -> str:
    """The check of a trigger released because its customer became active before its planned hour."""
    return f"{CHECK} active at {_clock(datetime.fromtimestamp(now, ZoneInfo(zone or 'UTC')))}, released before" \
        " the planned hour"


def _clock(local: datetime) -> str:
    """``2026-11-30 09:00`` (what strftime gives, a few times faster)."""
    return f"{local.year}-{local.month:02d}-{local.day:02d} {local.hour:02d}:{local.minute:02d}"
