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

from forethought.contracts.events import MAX_QUANTITY
from forethought.core.baselines import EwStats
from forethought.core.config import EngineConfig

LOG_CAP = math.log1p(MAX_QUANTITY)  # ≈ 41.4: log levels stay here, so exp() of a level is always finite

Verdict = tuple[str, float, float, float] | None  # (direction, ratio to usual, z, usual quantity)


def observe(data: list[float], quantity: float, config: EngineConfig) -> tuple[list[float], Verdict]:
    """Fold one report into ``data`` = ``[n, mean, var, episode, streak]``; say whether it is anomalous.

    ``episode`` is +1 during a spike, -1 during a drop, 0 otherwise; ``streak`` counts consecutive
    low reports (before a drop fires) or normal reports (before an episode ends).
    """
    stats = _stats(data)
    episode, streak = (int(data[3]), int(data[4])) if data else (0, 0)
    quantity = min(quantity, MAX_QUANTITY)  # the contract's bound; a larger value (an old record) counts as it
    x = math.log1p(quantity)
    sd = max(stats.std, config.usage_min_log_sd)
    z = _z(stats, quantity, config)
    verdict: Verdict = None
    armed = stats.n >= config.usage_min_reports
    ratio = math.exp(x - stats.mean) if stats.n else 1.0  # (1 + quantity) / exp(level), in log space
    high = armed and z >= config.usage_z and ratio >= config.usage_min_ratio
    low = armed and z <= -config.usage_z and ratio <= 1.0 / config.usage_min_ratio
    usual = math.expm1(stats.mean)
    if high:
        verdict = ("spike", quantity / max(usual, 1e-9), z, usual) if episode != 1 else None
        episode, streak = 1, 0
    elif low:
        streak = streak + 1 if episode != -1 else 0
        if episode != -1 and streak >= 2:
            verdict = ("drop", quantity / max(usual, 1e-9), z, usual)
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
    stats = _stats(data)
    return abs(_z(stats, min(quantity, MAX_QUANTITY), config)) if stats.n >= config.usage_min_reports else None


def _stats(data: list[float]) -> EwStats:
    """The metric's log-level statistics, the level clamped to ``[0, LOG_CAP]`` (a state written before
    quantities were bounded may hold a level whose exp() overflows)."""
    if not data:
        return EwStats()
    stats = EwStats.from_list(data[:3])
    if 0.0 <= stats.mean <= LOG_CAP and stats.var <= LOG_CAP * LOG_CAP:
        return stats
    return EwStats(stats.n, min(max(stats.mean, 0.0), LOG_CAP), min(max(stats.var, 0.0), LOG_CAP * LOG_CAP))


def _z(stats: EwStats, quantity: float, config: EngineConfig) -> float:
    """Signed spreads of log(1 + quantity) from the baseline (0 with no baseline)."""
    return (math.log1p(quantity) - stats.mean) / max(stats.std, config.usage_min_log_sd) if stats.n else 0.0
