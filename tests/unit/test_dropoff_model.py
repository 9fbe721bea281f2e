"""The learned drop-off model without River's pipeline gives River's floats, bit for bit.

Scores and labels of replays must not change with the faster arithmetic (core.dropoff_model), and
checkpoints written by either must restore to the same model.
"""

from __future__ import annotations

import random

import pytest

from forethought.core import snapshots
from forethought.core.dropoff_model import ScaledLogistic
from forethought.core.models import PartitionModels, dropoff_from_params, dropoff_params, river_pipeline


def _examples(seed: int, n: int) -> list[tuple[dict[str, float], bool]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        codes = bytes(rng.randrange(256) if rng.random() < 0.7 else 0 for _ in snapshots.NAMES)
        out.append((snapshots.from_codes(codes), rng.random() < 0.2))
    return out


@pytest.mark.parametrize("lr", [0.002, 0.9])  # 0.9: logits beyond ±18 and ±30 (the loss's and sigmoid's cut-offs)
def test_learns_and_scores_exactly_as_river(lr: float) -> None:
    river, fast = river_pipeline(), ScaledLogistic(lr)
    river.steps["LogisticRegression"].optimizer.lr.learning_rate = lr
    seen_extreme = False
    for x, dropped in _examples(11, 6_000):
        expected = river.predict_proba_one(x).get(True, 0.0)
        assert fast.proba(x) == expected
        seen_extreme |= expected in (0.0, 1.0) or abs(fast.logit(x)) > 18
        river.learn_one(x, dropped)
        fast.learn_one(x, dropped)
    assert dropoff_params(fast) == dropoff_params(river)
    assert seen_extreme == (lr > 0.5)


def test_a_checkpoint_written_with_rivers_pipeline_restores_the_same_model() -> None:
    river = river_pipeline()
    for x, dropped in _examples(3, 2_000):
        river.learn_one(x, dropped)
    restored = dropoff_from_params(dropoff_params(river))
    for x, _ in _examples(4, 500):
        assert restored.proba(x) == river.predict_proba_one(x).get(True, 0.0)


def test_partition_models_round_trip_through_a_checkpoint() -> None:
    models = PartitionModels(partition=1, min_labels=10)
    for x, dropped in _examples(5, 400):
        models.learn_dropoff(x, dropped)
    again = PartitionModels.restore(models.to_bytes(), partition=1, min_labels=10)
    assert again.origin == "restored"
    for x, dropped in _examples(6, 200):
        assert again.dropoff(x) == models.dropoff(x) is not None
        again.learn_dropoff(x, dropped)
        models.learn_dropoff(x, dropped)


def test_unseen_features_score_as_river_does() -> None:
    river, fast = river_pipeline(), ScaledLogistic(0.002)
    for i in range(30):
        x = {"a": float(i % 3), "b": 0.5 * (i % 2)}
        river.learn_one(x, i % 2 == 0)
        fast.learn_one(x, i % 2 == 0)
    probe = {"a": 2.0, "c": 7.0}  # "c" never learned: no weight, no statistics
    assert fast.proba(probe) == river.predict_proba_one(probe)[True]
