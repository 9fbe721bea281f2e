"""Decline: a sustained fall of a customer's weekly activity against their own level.

Each closed day feeds ``log(1 + events in the 7 days ending that day)`` to River's PageHinkley
test in "down" mode; the 7-day window smooths nights and weekends away. A window with no activity
at all is silence (the silence detector's case) and resets the test. The test's four numbers
live in the customer state; a River detector is rebuilt from them for each update.

>>> from forethought.core.config import EngineConfig
>>> config = EngineConfig(decline_enabled=True, decline_min_days=5, decline_threshold=1.0)
>>> data: list[float] = []
>>> fired = [day for day, weekly in enumerate([70] * 20 + [10] * 5)
...          if (data := update(data, weekly, config))[0] == -1]
>>> fired
[20]
"""

from __future__ import annotations

import math

from river import drift, stats

from forethought.core.config import EngineConfig

DETECTED = -1.0


def update(data: list[float], weekly_events: float, config: EngineConfig) -> list[float]:
    """Feed one closed day; returns the new test state, or ``[-1, level]`` when a decline is detected.

    ``level`` is the customer's usual weekly activity (events per 7 days) before the fall.
    """
    if weekly_events <= 0:
        return []
    test = _restore(data, config)
    test.update(math.log1p(weekly_events))
    if test.drift_detected:
        return [DETECTED, math.expm1(test._x_mean.get())]
    return [test._x_mean.n, test._x_mean.get(), test._sum_decrease, test._max_decrease]


def usual_level(data: list[float]) -> float | None:
    """The customer's usual weekly activity according to the test's running mean."""
    return math.expm1(data[1]) if len(data) == 4 else None


def _restore(data: list[float], config: EngineConfig) -> drift.PageHinkley:
    test = drift.PageHinkley(min_instances=config.decline_min_days, delta=config.decline_delta,
                             threshold=config.decline_threshold, alpha=config.decline_alpha, mode="down")
    if len(data) == 4:
        test._x_mean = stats.Mean._from_state(n=data[0], mean=data[1])
        test._sum_decrease, test._max_decrease = data[2], data[3]  # type: ignore[assignment]  # River starts them at int 0
    return test
