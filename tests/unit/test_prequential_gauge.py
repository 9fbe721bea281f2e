"""The worker's prequential gauges: each resolved label carries the learned model's score from just
before it was learned and the prior's; the worker exports both AUCs on the last labels (#13 point 4).
The alert on them (ForethoughtModelBelowPrior) has its promtool cases in deploy/prometheus/alerts_test.yml."""

from __future__ import annotations

import re

from forethought.core import snapshots
from forethought.core.config import EngineConfig
from forethought.core.detectors.learned_dropoff import observation, on_activity, on_check, take_snapshot
from forethought.core.models import PartitionModels
from forethought.core.state import CustomerState
from forethought.ops.metrics import Metrics
from forethought.stream.model_quality import ModelQuality

DAY = 86_400.0
T0 = 1_790_000_000.0


def gauge(metrics: Metrics, name: str, model: str = "dropoff") -> float | None:
    text = metrics.exposition().decode()
    found = re.search(rf'^{name}{{model="{model}"}} (\S+)$', text, re.M)
    return None if found is None else float(found.group(1))


def test_a_label_carries_the_score_the_model_gave_before_learning_it_and_the_priors() -> None:
    config = EngineConfig(label_horizon_seconds=14 * DAY)
    s, models = config.section("learned_dropoff"), PartitionModels(min_labels=4)
    details = []
    for n in range(8):
        state = CustomerState.new(f"c{n}", config)
        state.last_seen = T0
        x = bytes([200 if n % 2 else 10] + [0] * (len(snapshots.FEATURES) - 1))  # silence ratio high or low
        take_snapshot(state, T0 + DAY, x)
        expected = models.dropoff(snapshots.from_codes(x))
        label = on_check(state, T0 + 20 * DAY, s, models) if n % 2 else on_activity(state, T0 + 2 * DAY, s, models)
        assert label is not None and label.predicted == expected, "scored before it was learned"
        details.append(observation(label, models)[1])
    assert [d["predicted"] is None for d in details] == [True] * 4 + [False] * 4  # cold, then warm
    assert [d["label"] for d in details] == [0, 1] * 4
    assert all(d["prior"] == 0.0 for d in details), "the silence score in the snapshot (its second feature)"


def test_the_gauges_are_the_aucs_of_the_last_labels_and_cold_labels_are_left_out() -> None:
    metrics, quality = Metrics(), ModelQuality(window=4, every=1)
    quality.observe({"model": "dropoff", "label": 1, "predicted": None, "prior": 0.9}, metrics)  # cold: left out
    assert gauge(metrics, "forethought_model_prequential_labels") is None
    for score, prior, label in [(0.9, 0.4, 1), (0.2, 0.6, 0), (0.6, 0.5, 0), (0.7, 0.3, 1)]:
        quality.observe({"model": "dropoff", "label": label, "predicted": score, "prior": prior}, metrics)
    # learned: positives 0.9, 0.7 above negatives 0.2, 0.6 -> 1.0; prior: 0.4, 0.3 vs 0.6, 0.5 -> 0.0
    assert gauge(metrics, "forethought_model_prequential_auc") == 1.0
    assert gauge(metrics, "forethought_model_prior_auc") == 0.0
    assert gauge(metrics, "forethought_model_prequential_labels") == 4
    quality.observe({"model": "dropoff", "label": 0, "predicted": 0.95, "prior": 0.1}, metrics)  # the window slides
    assert gauge(metrics, "forethought_model_prequential_auc") == 2 / 3  # the one positive: above 0.2, 0.6, not 0.95
    assert gauge(metrics, "forethought_model_prequential_labels") == 4
