"""The first two detectors: silence longer than the customer's own gaps, and error bursts.

Silence: gaps between visits are modelled as log-normal. The customer's EW mean and variance
of log-gaps are shrunk toward a population prior while few gaps are known; the deadline is
where the silence becomes as unlikely as the ``silence_z`` quantile (2.33 → 1 in 100).

>>> from forethought.core.config import EngineConfig
>>> from forethought.core.state import CustomerState
>>> config = EngineConfig(prior_gap_seconds=3600, silence_min_seconds=60)
>>> state = CustomerState.new("c1", config)
>>> round(silence_threshold(state, config))  # no history: the prior alone, exp(ln 3600 + 2.33)
37001

Error bursts: errors per bucket against an EW baseline of closed buckets, where the spread is
at least Poisson (sqrt of the mean) and the threshold never falls below ``burst_min_errors``.

>>> burst_threshold(state, config)
5.0
"""

from __future__ import annotations

import math

from forethought.core.baselines import normal_cdf
from forethought.core.config import EngineConfig
from forethought.core.state import CustomerState


def gap_model(state: CustomerState, config: EngineConfig) -> tuple[float, float]:
    """Mean and sd of the customer's log gap between visits, shrunk toward the prior."""
    return state.gaps.shrunk(math.log(config.prior_gap_seconds), config.prior_log_sd, config.prior_weight)


def silence_threshold(state: CustomerState, config: EngineConfig) -> float:
    """Seconds of silence that count as unusually long for this customer.

    The larger of the log-normal quantile and a margin over the customer's longest recent break
    (so weekly rhythms, nights and weekends, are not mistaken for drop-off).
    """
    mu, sd = gap_model(state, config)
    raw = math.exp(mu + config.silence_z * sd)
    if state.last_seen is not None:
        raw = max(raw, config.long_gap_factor * recent_long_gap(state, state.last_seen, config))
    return min(max(raw, config.silence_min_seconds), config.silence_max_seconds)


def recent_long_gap(state: CustomerState, at: float, config: EngineConfig) -> float:
    """The customer's longest break between visits, fading with time constant ``long_gap_tau_seconds``."""
    return state.long_gap * math.exp(-max(0.0, at - state.long_gap_at) / config.long_gap_tau_seconds)


def note_gap(state: CustomerState, gap: float, at: float, config: EngineConfig) -> None:
    """Remember ``gap`` (ending at ``at``) if it is longer than the faded longest break."""
    if gap >= recent_long_gap(state, at, config):
        state.long_gap, state.long_gap_at = gap, at


def silence_deadline(state: CustomerState, config: EngineConfig) -> float | None:
    """When the present silence becomes unusual, or None while unarmed or already fired."""
    if state.last_seen is None or state.visits < config.min_visits_to_arm:
        return None
    if state.silence_fired_for == state.last_seen:
        return None
    return state.last_seen + silence_threshold(state, config)


def silence_probability(silence: float, state: CustomerState, config: EngineConfig) -> float:
    """How surely this silence is longer than the customer's usual gap: P(gap <= silence)."""
    if silence <= 0:
        return 0.0
    mu, sd = gap_model(state, config)
    return normal_cdf((math.log(silence) - mu) / sd)


def typical_gap(state: CustomerState, config: EngineConfig) -> float:
    """The customer's median gap between visits, in seconds."""
    return math.exp(gap_model(state, config)[0])


def error_baseline(state: CustomerState, config: EngineConfig) -> tuple[float, float]:
    """Mean and spread of errors per bucket; spread is at least Poisson's sqrt(mean)."""
    prior = config.prior_errors_per_bucket
    mean, sd = state.error_baseline.shrunk(prior, math.sqrt(prior), config.prior_weight)
    return mean, max(sd, math.sqrt(max(mean, 1e-9)))


def burst_threshold(state: CustomerState, config: EngineConfig) -> float:
    """Errors in one bucket that count as a burst for this customer."""
    mean, spread = error_baseline(state, config)
    return max(float(config.burst_min_errors), mean + config.burst_z * spread)


def burst_score(count: float, state: CustomerState, config: EngineConfig) -> float:
    """How many spreads ``count`` lies above the customer's error baseline."""
    mean, spread = error_baseline(state, config)
    return (count - mean) / spread


def fold_closed_error_buckets(
    state: CustomerState, closed: list[tuple[int, float]], skipped: int, config: EngineConfig
) -> None:
    """Teach the baseline from closed buckets (winsorised at the threshold) and end bursts.

    Runs of empty buckets (the common case) are folded in one step.
    """
    zeros = skipped
    for _, count in closed:
        if count == 0:
            zeros += 1
            continue
        _fold_zeros(state, zeros, config)
        zeros = 0
        threshold = burst_threshold(state, config)
        state.error_baseline = state.error_baseline.update(min(count, threshold), config.burst_alpha).rounded()
        _track_quiet(state, count < threshold, config)
    _fold_zeros(state, zeros, config)


def _fold_zeros(state: CustomerState, buckets: int, config: EngineConfig) -> None:
    if buckets > 0:
        state.error_baseline = state.error_baseline.update_repeated(0.0, buckets, config.burst_alpha).rounded()
        _track_quiet(state, True, config, buckets=buckets)


def _track_quiet(state: CustomerState, quiet: bool, config: EngineConfig, buckets: int = 1) -> None:
    if state.burst_bucket is None:
        return
    state.quiet_buckets = state.quiet_buckets + buckets if quiet else 0
    if state.quiet_buckets >= config.burst_quiet_buckets:
        state.burst_bucket, state.quiet_buckets = None, 0
