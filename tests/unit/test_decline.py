"""Decline detection (River PageHinkley on 7-day activity) through the engine's entry points."""

from __future__ import annotations

from datetime import datetime, timezone

from forethought.contracts.events import PageView
from forethought.core.config import EngineConfig
from forethought.core.engine import process

ON = EngineConfig(decline_enabled=True)
MONDAY = datetime(2026, 9, 7, tzinfo=timezone.utc).timestamp()


def run(per_day: list[int], config: EngineConfig) -> list:
    """Office-hours visits: ``per_day[d]`` events on day d (none at weekends)."""
    state, fired, n = None, [], 0
    for day, count in enumerate(per_day):
        if day % 7 in (5, 6):
            continue
        for i in range(count):
            n += 1
            at = MONDAY + day * 86_400 + 9 * 3600 + i * (8 * 3600 / max(count, 1))
            step = process(state, PageView(event_id=f"e{n}", customer_id="c",
                                           occurred_at=datetime.fromtimestamp(at, tz=timezone.utc)), config)
            state, fired = step.state, fired + [t for t in step.triggers if t.playbook == "activity_decline"]
    return fired


def test_a_sharp_sustained_fall_fires_once_while_the_customer_is_still_active() -> None:
    fired = run([20] * 28 + [3] * 14, ON)
    assert len(fired) == 1
    trigger = fired[0]
    assert 28 * 86_400 <= trigger.fired_at.timestamp() - MONDAY <= 38 * 86_400
    reason = trigger.reasons[0]
    assert reason.signal == "events_per_7_days" and reason.observed < reason.baseline / 2
    assert "usual level" in reason.text


def test_a_steady_weekly_rhythm_never_fires() -> None:
    assert run([20] * 42, ON) == []


def test_decline_is_off_unless_enabled() -> None:
    assert run([20] * 28 + [3] * 14, EngineConfig()) == []
