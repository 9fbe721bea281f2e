"""Engine configuration: plain, frozen, validated at start-up by the settings layer.

>>> EngineConfig().silence_z
2.33
>>> EngineConfig(burst_z=-1)
Traceback (most recent call last):
...
ValueError: burst_z must be > 0, got -1
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Hyperparameters of windows and detectors. Times are in seconds of event time."""

    # windows
    bucket_seconds: int = 60
    ring_buckets: int = 60
    allowed_lateness_seconds: float = 300.0
    max_future_seconds: float = 300.0
    recent_ids: int = 32
    idle_ttl_seconds: float = 180 * 86_400.0
    # drop-off by silence: "long" is relative to the customer's own gaps between visits
    visit_gap_seconds: float = 1800.0
    prior_gap_seconds: float = 86_400.0
    prior_log_sd: float = 1.0
    prior_weight: float = 3.0
    gap_alpha: float = 0.2
    silence_z: float = 2.33
    silence_min_seconds: float = 3600.0
    silence_max_seconds: float = 90 * 86_400.0
    min_visits_to_arm: int = 2
    # prior_learned: the prior above is replaced by the partition's learned one (core.population) once
    # this many customers with at least prior_min_gaps gaps were seen in a day. Off by default: in a
    # young population the customers who qualify first are the frequent ones (README, "Detection quality")
    prior_learned: bool = False
    prior_min_customers: int = 50
    prior_min_gaps: int = 3
    long_gap_factor: float = 2.0
    long_gap_tau_seconds: float = 28 * 86_400.0
    # drop-off by decline: weekly activity against the customer's own level (River PageHinkley)
    decline_enabled: bool = False
    decline_min_days: int = 14
    decline_delta: float = 0.05
    decline_threshold: float = 2.0
    decline_alpha: float = 0.9999
    # anomaly by error burst: errors per bucket against the customer's own EW baseline
    burst_alpha: float = 0.05
    burst_z: float = 4.0
    burst_min_errors: int = 5
    prior_errors_per_bucket: float = 0.1
    burst_quiet_buckets: int = 3
    # anomaly by usage: a report far from the customer's own level for that metric
    usage_metrics: int = 4
    usage_alpha: float = 0.05
    usage_z: float = 3.0
    usage_min_ratio: float = 5.0
    usage_min_reports: int = 8
    usage_min_log_sd: float = 0.1
    usage_quiet_reports: int = 3
    # features and errors followed per customer (first few seen), for playbooks and reasons
    feature_slots: int = 16
    # learned drop-off (per-partition River model): a daily snapshot is labelled "dropped" when no
    # activity follows within the horizon; no score until the model has seen this many labels
    label_horizon_seconds: float = 14 * 86_400.0
    model_min_labels: int = 200
    # look at every customer every day (as before core.due): results are the same, only slower; an
    # evaluation aid for scores "at every daily check" (benchmarks/dropoff_auc.py)
    look_every_day: bool = False
    # multivariate anomaly (per-partition Half-Space Trees over each customer-minute's features):
    # masses per event-time window; alerts hold about ``anomaly_alert_rate`` of scored minutes
    anomaly_trees: int = 10
    anomaly_tree_height: int = 8
    anomaly_window_seconds: float = 86_400.0
    anomaly_alert_rate: float = 0.0005
    anomaly_min_reference: int = 1000
    anomaly_seed: int = 7
    anomaly_mass_floor: float = 0.1
    anomaly_quiet_buckets: int = 5

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            if spec.name in _MAY_BE_ZERO:
                if not value >= 0:  # written so that NaN fails too
                    raise ValueError(f"{spec.name} must be >= 0, got {value}")
            elif not value > 0:
                raise ValueError(f"{spec.name} must be > 0, got {value}")
        alphas = (self.gap_alpha, self.burst_alpha, self.decline_alpha, self.usage_alpha)
        if not all(0 < alpha <= 1 for alpha in alphas):
            raise ValueError("gap_alpha, burst_alpha, decline_alpha and usage_alpha must be in (0, 1]")
        if self.anomaly_tree_height > 8:
            raise ValueError(f"anomaly_tree_height must be <= 8 (memory and time double per level), "
                             f"got {self.anomaly_tree_height}")
        if not self.allowed_lateness_seconds < self.anomaly_window_seconds:
            raise ValueError("anomaly_window_seconds must be longer than allowed_lateness_seconds (the trees'"
                             f" reference is the last window closed that long ago), got {self.anomaly_window_seconds}")
        if not self.anomaly_alert_rate < 0.5:
            raise ValueError(f"anomaly_alert_rate must be < 0.5, got {self.anomaly_alert_rate}")
        if self.silence_min_seconds > self.silence_max_seconds:
            raise ValueError("silence_min_seconds must be <= silence_max_seconds")


_MAY_BE_ZERO = {"allowed_lateness_seconds", "max_future_seconds", "visit_gap_seconds", "long_gap_factor",
                "decline_delta", "decline_enabled", "anomaly_seed", "prior_learned",
                "look_every_day"}
