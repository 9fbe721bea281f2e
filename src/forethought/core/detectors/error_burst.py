"""Anomaly by error burst: errors per bucket far above this customer's own baseline.

The baseline is an EW mean and variance of errors per closed bucket (winsorised at the threshold,
so a burst does not become the new normal), where the spread is at least Poisson (sqrt of the
mean) and the threshold never falls below ``burst_min_errors``. A burst fires once and ends after
``burst_quiet_buckets`` quiet buckets.

>>> from forethought.core.config import EngineConfig
>>> from forethought.core.state import CustomerState
>>> config = EngineConfig()
>>> state = CustomerState.new("c1", config)
>>> burst_threshold(state, config.section("error_burst"), config.prior_weight)
5.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from forethought.contracts.events import ErrorEvent
from forethought.contracts.records import Reason
from forethought.core.baselines import EwStats
from forethought.core.codec_kinds import COUNTS, EW, EW_DECIMAL, INT, RING, SEVERITY_COUNTS
from forethought.core.plugin import Detector, Moment, Slice, check_positive
from forethought.core.signals import Detection
from forethought.core.state_codec import Field
from forethought.core.views import EngineView
from forethought.core.windows import BucketRing

if TYPE_CHECKING:
    from forethought.contracts.events import InboundEvent
    from forethought.core.state import CustomerState

NAME = "error_burst"
MAX_ERROR_CODES = 8


@dataclass(frozen=True, slots=True)
class BurstSettings:
    """Error bursts: errors per bucket against the customer's own EW baseline."""

    burst_alpha: float = 0.05
    burst_z: float = 4.0
    burst_min_errors: int = 5
    prior_errors_per_bucket: float = 0.1
    burst_quiet_buckets: int = 3

    def __post_init__(self) -> None:
        check_positive(self)
        if not 0 < self.burst_alpha <= 1:
            raise ValueError("burst_alpha must be in (0, 1]")


def _ring(config: EngineView, _fields: dict[str, Any]) -> BucketRing:
    return BucketRing.empty(config.ring_buckets)


@dataclass(slots=True)
class BurstState(Slice):
    """Errors per bucket, their baseline, the burst in progress and errors by code and severity."""

    KEY: ClassVar[str] = "b"
    VERSION: ClassVar[int] = 2  # 2: the baseline as short decimals, the severities as four counts
    FIELDS: ClassVar[tuple[Field, ...]] = (  # append only
        Field("errors", RING, skip=lambda ring, _s: ring.head < 0, fill=_ring),
        Field("error_baseline", EW_DECIMAL, EwStats()),
        Field("burst_bucket", INT),
        Field("quiet_buckets", INT, 0),
        Field("error_codes", COUNTS, {}),
        Field("error_severity", SEVERITY_COUNTS, {}),
    )
    FIELDS_BEFORE: ClassVar[dict[int, tuple[Field, ...]]] = {
        1: (FIELDS[0], Field("error_baseline", EW, EwStats()), *FIELDS[2:5], Field("error_severity", COUNTS, {}))}

    errors: BucketRing
    error_baseline: EwStats = field(default_factory=EwStats)
    burst_bucket: int | None = None
    quiet_buckets: int = 0
    error_codes: dict[str, int] = field(default_factory=dict)
    error_severity: dict[str, int] = field(default_factory=dict)

    def copy(self) -> BurstState:
        return BurstState(self.errors.copy(), self.error_baseline, self.burst_bucket, self.quiet_buckets,
                          dict(self.error_codes), dict(self.error_severity))


def of(state: CustomerState) -> BurstState:
    """The customer's error-burst slice."""
    return state.slices[NAME]  # type: ignore[no-any-return]


def seen(state: CustomerState) -> BurstState:
    """The slice to read only (:meth:`~forethought.core.state.CustomerState.peek`: no draft copy)."""
    return state.peek(NAME)  # type: ignore[no-any-return]


class ErrorBurst(Detector):
    """Fires ``error_burst``; offers ``scores.anomaly`` and ``features.errors_in_current_bucket``."""

    name: ClassVar[str] = NAME
    Settings = BurstSettings
    State = BurstState
    signals = ("error_burst",)
    scores = ("anomaly", "error_burst_z")
    event_types = frozenset({"error"})  # on_event acts on these only
    features = ("errors_in_current_bucket",)

    def before_event(self, state: CustomerState, event: InboundEvent, ts: float, s: BurstSettings,
                     m: Moment) -> None:
        """Buckets closed by the event's bucket teach the baseline (runs of empty ones in one step)."""
        windows = m.config.windows
        bucket, sl = math.floor(ts / windows.bucket_seconds), of(state)
        old_head = sl.errors.head
        if bucket <= old_head:
            return  # the same bucket (or a late event's): nothing closed
        ring_buckets = windows.ring_buckets
        folded = sl.errors.advance(bucket, max_closed=ring_buckets)
        skipped = 0 if old_head < 0 else max(0, bucket - old_head - len(folded))
        fold_closed_buckets(sl, folded, skipped, s, windows.prior_weight)

    def on_event(self, state: CustomerState, event: InboundEvent, ts: float, s: BurstSettings, m: Moment) -> None:
        if isinstance(event, ErrorEvent):
            m.detect(check_burst(of(state), event, ts, s, m.config.windows))

    def facts(self, state: CustomerState, now: float, s: BurstSettings, m: Moment, found: dict[str, Any],
              brief: bool) -> None:
        if brief:
            return
        errors_now = seen(state).errors.count(math.floor(now / m.config.windows.bucket_seconds))
        found["scores"]["anomaly"] = round(burst_score(errors_now, seen(state), s, m.config.windows.prior_weight), 6)
        found["features"]["errors_in_current_bucket"] = errors_now

    def explain(self, state: CustomerState, now: float, s: BurstSettings, m: Moment) -> dict[str, Any]:
        sl, weight = seen(state), m.config.windows.prior_weight
        return {
            "errors_in_current_bucket": sl.errors.count(math.floor(now / m.config.windows.bucket_seconds)),
            "error_baseline_per_bucket": error_baseline(sl, s, weight)[0],
            "error_burst_threshold": burst_threshold(state, s, weight), "in_error_burst": sl.burst_bucket is not None,
            "errors_by_code": dict(sl.error_codes), "errors_by_severity": dict(sl.error_severity),
        }


def check_burst(sl: BurstState, event: ErrorEvent, ts: float, s: BurstSettings, windows: Any) -> Detection | None:
    """Errors in this bucket far above this customer's own baseline (once per burst)."""
    width = windows.bucket_seconds
    bucket = math.floor(ts / width)
    sl.errors.add(bucket)
    sl.error_severity[event.severity] = sl.error_severity.get(event.severity, 0) + 1
    if event.code in sl.error_codes or len(sl.error_codes) < MAX_ERROR_CODES:  # the first few codes seen
        sl.error_codes[event.code] = sl.error_codes.get(event.code, 0) + 1
    count = sl.errors.count(bucket)
    threshold = _threshold(sl, s, windows.prior_weight)
    if sl.burst_bucket is not None or count < threshold:
        return None
    sl.burst_bucket, sl.quiet_buckets = bucket, 0
    mean, _ = error_baseline(sl, s, windows.prior_weight)
    score = burst_score(count, sl, s, windows.prior_weight)
    reason = Reason(
        signal="errors_per_bucket", observed=count, baseline=round(mean, 4), unit=f"errors/{width}s",
        text=f"{count:g} errors in {width}s (latest {event.code}, {event.severity});"
        f" this customer usually sees {mean:.2g}.",
    )
    return Detection(
        "error_burst", f"burst-{bucket * width}", ts, {"anomaly": score, "error_burst_z": score},
        (reason,), {"error_code": event.code, "severity": event.severity},
    )


def error_baseline(sl: BurstState, s: BurstSettings, prior_weight: float) -> tuple[float, float]:
    """Mean and spread of errors per bucket; spread is at least Poisson's sqrt(mean)."""
    prior = s.prior_errors_per_bucket
    mean, sd = sl.error_baseline.shrunk(prior, math.sqrt(prior), prior_weight)
    return mean, max(sd, math.sqrt(max(mean, 1e-9)))


def burst_threshold(state: CustomerState, s: BurstSettings, prior_weight: float) -> float:
    """Errors in one bucket that count as a burst for this customer."""
    return _threshold(seen(state), s, prior_weight)


def _threshold(sl: BurstState, s: BurstSettings, prior_weight: float) -> float:
    mean, spread = error_baseline(sl, s, prior_weight)
    return max(float(s.burst_min_errors), mean + s.burst_z * spread)


def burst_score(count: float, sl: BurstState, s: BurstSettings, prior_weight: float) -> float:
    """How many spreads ``count`` lies above the customer's error baseline."""
    mean, spread = error_baseline(sl, s, prior_weight)
    return (count - mean) / spread


def fold_closed_buckets(sl: BurstState, closed: list[tuple[int, float]], skipped: int, s: BurstSettings,
                        prior_weight: float) -> None:
    """Teach the baseline from closed buckets (winsorised at the threshold) and end bursts."""
    zeros = skipped
    for _, count in closed:
        if count == 0:
            zeros += 1
            continue
        _fold_zeros(sl, zeros, s)
        zeros = 0
        threshold = _threshold(sl, s, prior_weight)
        sl.error_baseline = sl.error_baseline.update_rounded(min(count, threshold), s.burst_alpha)
        _track_quiet(sl, count < threshold, s)
    _fold_zeros(sl, zeros, s)


def _fold_zeros(sl: BurstState, buckets: int, s: BurstSettings) -> None:
    if buckets > 0:
        sl.error_baseline = sl.error_baseline.update_repeated(0.0, buckets, s.burst_alpha).rounded()
        _track_quiet(sl, True, s, buckets=buckets)


def _track_quiet(sl: BurstState, quiet: bool, s: BurstSettings, buckets: int = 1) -> None:
    if sl.burst_bucket is None:
        return
    sl.quiet_buckets = sl.quiet_buckets + buckets if quiet else 0
    if sl.quiet_buckets >= s.burst_quiet_buckets:
        sl.burst_bucket, sl.quiet_buckets = None, 0
