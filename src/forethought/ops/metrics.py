"""Prometheus metrics on the project's own registry (not the global one).

Every registry made here also carries the process, platform and garbage-collector collectors
(``process_resident_memory_bytes``, ``python_info``, ...) and ``forethought_build_info``.

>>> m = Metrics()
>>> m.events_in.labels(topic="events.errors", type="error").inc()
>>> text = m.exposition()
>>> b"forethought_events_in_total" in text and b"forethought_build_info{" in text
True
"""

from __future__ import annotations

import platform
import re
from importlib.metadata import PackageNotFoundError, version

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

# The distributions named in forethought_build_info: label → distribution.
BUILD_PACKAGES = {"version": "forethought", "faust": "faust-streaming", "river": "river"}

# Sub-millisecond resolution where the core lives; seconds where Kafka round trips live.
PROCESSING_BUCKETS = (
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 1.0,
)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def package_version(distribution: str) -> str:
    """The installed version of ``distribution``, or ``unknown``.

    >>> package_version("no-such-distribution-here")
    'unknown'
    """
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"


def build_labels() -> dict[str, str]:
    """The labels of ``forethought_build_info``: this package's, Python's, Faust's and River's versions.

    >>> sorted(build_labels())
    ['faust', 'python', 'river', 'version']
    >>> build_labels()["python"] == platform.python_version()
    True
    """
    labels = {label: package_version(dist) for label, dist in BUILD_PACKAGES.items()}
    return {**labels, "python": platform.python_version()}


def register_runtime(registry: CollectorRegistry) -> None:
    """Add the process, platform and GC collectors and ``forethought_build_info`` (always 1) to ``registry``.

    The collectors are the ones prometheus_client puts on its global registry; a project registry
    has none of them unless they are added here.

    >>> r = CollectorRegistry()
    >>> register_runtime(r)
    >>> r.get_sample_value("forethought_build_info", build_labels())
    1.0
    """
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    info = Gauge("forethought_build_info", "Always 1; the labels name the versions running.",
                 [*BUILD_PACKAGES, "python"], registry=registry)
    info.labels(**build_labels()).set(1)


class FieldLabels:
    """Label values for field names a producer chose: bounded, so a hostile producer cannot explode the
    series count. A name is kept when it is a short identifier and among the first ``limit`` distinct ones.

    >>> labels = FieldLabels(limit=2)
    >>> [labels(name) for name in ("plan", "seats", "plan", "colour", "bad name", "x" * 65)]
    ['plan', 'seats', 'plan', 'other', 'other', 'other']
    """

    OTHER = "other"
    _IDENTIFIER = re.compile(r"[A-Za-z0-9_.-]{1,64}")

    def __init__(self, limit: int = 50) -> None:
        self.limit = limit
        self.seen: set[str] = set()

    def __call__(self, name: str) -> str:
        if name in self.seen:
            return name
        if len(self.seen) >= self.limit or not self._IDENTIFIER.fullmatch(name):
            return self.OTHER
        self.seen.add(name)
        return name


class Metrics:
    """Every metric the worker exports. Names are the contract with alerts and dashboards."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        register_runtime(r)
        self.events_in = Counter(
            "forethought_events_in", "Valid inbound events, by topic and type.", ["topic", "type"], registry=r
        )
        self.invalid = Counter(
            "forethought_invalid_events", "Records sent to the dead-letter topic, by reason.", ["reason"], registry=r
        )
        self.processing_errors = Counter(
            "forethought_processing_errors", "Records, due-time ticks and stored states the engine raised on, by stage"
            " (record: dead-lettered as processing_error; tick: the customer's deadline skipped; restore: a stored"
            " state that cannot be loaded, skipped when the deadline index is rebuilt), the customer's prior state"
            " kept.", ["stage"], registry=r,
        )
        self.duplicates = Counter("forethought_duplicate_events", "Events ignored as repeats.", registry=r)
        self.late = Counter("forethought_late_events", "Events older than the allowed lateness.", registry=r)
        self.replayed = Counter(
            "forethought_replayed_records", "Records read again (after a crash) that the customer's state had"
            " applied already: skipped by offset, nothing changed (exactly-once effects).", registry=r
        )
        self.recovery = Gauge(
            "forethought_recovery_seconds", "How long the last loss of readiness lasted, by cause (start: process"
            " start to ready; rebalance: a rebalance and its state restore; broker: the broker unreachable).",
            ["cause"], registry=r
        )
        self.broker_reachable = Gauge(
            "forethought_broker_reachable", "1 while the Kafka cluster answers metadata requests, 0 while it does"
            " not (/ready is then false).", registry=r
        )
        self.rekeyed = Counter(
            "forethought_rekeyed_events", "Records sent round through forethought.rekeyed: keyed by something"
            " other than customer_id, or on another partition than its murmur2 one (librdkafka's default"
            " partitioner).", registry=r
        )
        self.triggers = Counter("forethought_triggers", "Triggers published, by playbook.", ["playbook"], registry=r)
        self.evicted = Counter("forethought_evicted_customers", "Customers evicted after idling past the TTL.",
                               registry=r)
        self.processing = Histogram(
            "forethought_processing_seconds", "Core time per event.", buckets=PROCESSING_BUCKETS, registry=r
        )
        self.batch = Histogram(
            "forethought_batch_seconds", "Wall time per batch, Kafka sends included.", buckets=LATENCY_BUCKETS,
            registry=r
        )
        self.ordering_buffered = Gauge(
            "forethought_ordering_buffered", "Input records buffered to be processed in event-time order.", registry=r
        )
        self.ordering_enforced = Counter(
            "forethought_ordering_enforced",
            "Records released while a topic-partition of their partition was still awaited (its wait ran out,"
            " or the buffer was full): they may be processed out of event-time order.", registry=r,
        )
        self.event_to_trigger = Histogram(
            "forethought_event_to_trigger_seconds",
            "From the event's Kafka timestamp (the original record's when it was re-keyed; or the silence"
            " deadline) to the trigger's publication.",
            ["detector"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.consumer_lag = Gauge(
            "forethought_consumer_lag", "Messages behind the end of each input partition.", ["topic", "partition"],
            registry=r
        )
        self.customers = Gauge("forethought_customers", "Customers held in local state (live, and idle ones as"
                               " summaries).", registry=r)
        self.state_restored = Counter(
            "forethought_state_restored_records", "Changelog records restored into the local RocksDB tables (at"
            " start: only those past what the data directory held).", ["table"], registry=r)
        self.state_bytes = Gauge("forethought_state_bytes", "Mean serialized bytes per customer state.", registry=r)
        self.event_time_lag = Gauge(
            "forethought_event_clock_lag_seconds", "Wall clock minus the event-time clock.", registry=r
        )
        self.decisions = Counter(
            "forethought_decisions",
            "Policy decisions by playbook, verdict (sent, shadow, deferred, released, fallback, held_out,"
            " suppressed), reason (suppressions and holdouts) and mode.",
            ["playbook", "verdict", "reason", "mode"], registry=r,
        )
        self.reengagement = Counter(
            "forethought_reengagement",
            "Measured decisions by playbook, group (treated, holdout, global_control) and result"
            " (reengaged: active again within the window).", ["playbook", "group", "result"], registry=r,
        )
        self.variant_pulls = Counter(
            "forethought_variant_pulls", "Triggers sent with a playbook variant a bandit chose, by playbook and"
            " variant.", ["playbook", "variant"], registry=r)
        self.variant_rewards = Counter(
            "forethought_variant_rewards", "Variant pulls settled, by playbook, variant and result (success:"
            " a counted outcome or the customer's return; failure: unsubscribed or no success in the window).",
            ["playbook", "variant", "result"], registry=r)
        self.control_in = Counter(
            "forethought_control_records_in", "Valid profiles and outcomes read, by type.", ["type"], registry=r
        )
        self.outcomes = Counter(
            "forethought_outcomes", "Sender outcomes received, by status and channel.", ["status", "channel"],
            registry=r
        )
        self.playbook_reloads = Counter(
            "forethought_playbook_reloads", "Playbook file reloads, by result (loaded, rejected).", ["result"],
            registry=r
        )
        self.playbooks = Gauge("forethought_playbooks", "Playbooks running, by mode.", ["mode"], registry=r)
        self.model_labels = Counter(
            "forethought_model_labels", "Delayed labels resolved and learned, by model and label (returned:"
            " active again within the horizon; dropped: not).", ["model", "label"], registry=r,
        )
        self.model_labels_seen = Gauge(
            "forethought_model_labels_seen", "Labels the partition's model has learned in its life (restored"
            " checkpoints included); below the minimum the model is cold and scores are absent.", ["partition"],
            registry=r,
        )
        self.model_prequential_auc = Gauge(
            "forethought_model_prequential_auc", "ROC-AUC of the learned model on its last resolved labels, each"
            " scored before it was learned (prequential), while the model serves scores.", ["model"], registry=r,
        )
        self.model_prior_auc = Gauge(
            "forethought_model_prior_auc", "ROC-AUC of the prior (the silence drop-off score) on the same labels as"
            " forethought_model_prequential_auc: the learned model should stay above it.", ["model"], registry=r,
        )
        self.model_prequential_labels = Gauge(
            "forethought_model_prequential_labels", "Resolved labels behind forethought_model_prequential_auc (the"
            " last ones, at most a window).", ["model"], registry=r,
        )
        self.model_checkpoints = Counter(
            "forethought_model_checkpoints", "Partition model checkpoints, by result (written; failed: kept in"
            " memory and retried at the next checkpoint).", ["result"], registry=r,
        )
        self.model_checkpoint_bytes = Gauge(
            "forethought_model_checkpoint_bytes", "Size of the partition's last model checkpoint.", ["partition"],
            registry=r,
        )
        self.model_restores = Counter(
            "forethought_model_restores", "Partition models loaded on assignment, by result (restored; fresh: no"
            " checkpoint; failed: a corrupt or incompatible checkpoint, replaced by a fresh model).", ["result"],
            registry=r,
        )

        self.behaviour_reference = Gauge(
            "forethought_behaviour_reference_minutes", "Customer-minutes in the reference window of the partition's"
            " Half-Space Trees; below anomaly_min_reference the detector is cold (no scores).", ["partition"],
            registry=r,
        )
        self.behaviour_threshold = Gauge(
            "forethought_behaviour_threshold", "The partition's adaptive alert threshold on Half-Space Trees scores"
            " (NaN while cold).", ["partition"], registry=r,
        )

        self.unknown_fields = Counter(
            "forethought_unknown_fields", "Fields the contract does not know, ignored in accepted records (tolerant"
            " reader), by record type and field name (the first 50 names seen; later ones, and names that are not"
            " short identifiers, as 'other').", ["type", "field"], registry=r,
        )
        self._field_labels = FieldLabels()

    def count_unknown_fields(self, kind: str, fields: list[str]) -> None:
        """Count each ignored field of an accepted record of type ``kind``, with a bounded label set.

        >>> m = Metrics()
        >>> m.count_unknown_fields("click", ["ab_variant", "x" * 500])
        >>> m.registry.get_sample_value("forethought_unknown_fields_total", {"type": "click", "field": "other"})
        1.0
        """
        for field in fields:
            self.unknown_fields.labels(type=kind, field=self._field_labels(field)).inc()

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)
