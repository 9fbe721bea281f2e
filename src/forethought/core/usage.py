"""Usage anomalies: a reported quantity far above or below the customer's own level for that metric.

Each metric keeps an EW mean and variance of log(1 + quantity) (winsorised, so an anomaly does not
become the new normal at once). One report beyond ``usage_z`` spreads above is a spike; two in a
row below is a drop. An episode fires once and ends after ``usage_quiet_reports`` normal reports.

>>> from forethought.core.config import EngineConfig
>>> config = EngineConfig()
>>> stats: list[float] = []
>>> verdicts = []
>>> for q in [100, 120, 90, 110, 95, 105, 100, 115, 98, 102, 2000]:
...     stats, verdict = observe(stats, q, config)
...     verdicts.append(verdict)
>>> verdicts[-1][0], round(verdicts[-1][1], 1)
('spike', 19.4)
"""

from __future__ import annotations

import math

from forethought.core.baselines import EwStats
from forethought.core.config import EngineConfig

Verdict = tuple[str, float, float, float] | None  # (direction, ratio to usual, z, usual quantity)


def observe(data: list[float], quantity: float, config: EngineConfig) -> tuple[list[float], Verdict]:
    """Fold one report into ``data`` = ``[n, mean, var, episode, streak]``; say whether it is anomalous.

    ``episode`` is +1 during a spike, -1 during a drop, 0 otherwise; ``streak`` counts consecutive
    low reports (before a drop fires) or normal reports (before an episode ends).
    """
    stats = EwStats.from_list(data[:3]) if data else EwStats()
    episode, streak = (int(data[3]), int(data[4])) if data else (0, 0)
    x = math.log1p(quantity)
    sd = max(stats.std, config.usage_min_log_sd)
    z = _z(stats, quantity, config)
    verdict: Verdict = None
    armed = stats.n >= config.usage_min_reports
    ratio = (1.0 + quantity) / math.exp(stats.mean) if stats.n else 1.0
    high = armed and z >= config.usage_z and ratio >= config.usage_min_ratio
    low = armed and z <= -config.usage_z and ratio <= 1.0 / config.usage_min_ratio
    if high:
        verdict = ("spike", quantity / max(math.expm1(stats.mean), 1e-9), z, math.expm1(stats.mean)) if episode != 1 else None
        episode, streak = 1, 0
    elif low:
        streak = streak + 1 if episode != -1 else 0
        if episode != -1 and streak >= 2:
            verdict = ("drop", quantity / max(math.expm1(stats.mean), 1e-9), z, math.expm1(stats.mean))
            episode, streak = -1, 0
    elif episode != 0:
        streak += 1
        if streak >= config.usage_quiet_reports:
            episode, streak = 0, 0
    else:
        streak = 0
    bound = config.usage_z * sd
    clipped = min(max(x, stats.mean - bound), stats.mean + bound) if stats.n else x
    stats = stats.update(clipped, config.usage_alpha)
    # rounded here, not when serialised, so a restored state equals the live one
    return [stats.n, round(stats.mean, 6), round(stats.var, 6), episode, streak], verdict


def distance(data: list[float], quantity: float, config: EngineConfig) -> float | None:
    """How many spreads ``quantity`` lies from the metric's usual level (``data`` as :func:`observe`
    keeps it), or None before ``usage_min_reports`` reports made a level."""
    stats = EwStats.from_list(data[:3]) if data else EwStats()
    return abs(_z(stats, quantity, config)) if stats.n >= config.usage_min_reports else None


def _z(stats: EwStats, quantity: float, config: EngineConfig) -> float:
    """Signed spreads of log(1 + quantity) from the baseline (0 with no baseline)."""
    return (math.log1p(quantity) - stats.mean) / max(stats.std, config.usage_min_log_sd) if stats.n else 0.0
