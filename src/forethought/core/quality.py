"""How good a score is at telling who leaves: ranking, lift quality, precision, calibration.

Pure functions over ``(score, label)`` pairs (label 1: the customer dropped), stdlib only, so the
replay report and the worker's prequential gauge compute them the same way:

- :func:`roc_auc`: the Mann–Whitney statistic, a tie between a positive and a negative counting one half;
- :func:`lift_quality`: Braze's "prediction quality", 2·AUC − 1 in percent (0: random, 100: perfect),
  with its grade (:func:`grade`: Excellent from 60, Good from 40, Fair from 20, else Poor);
- :func:`average_precision`: Σ (R_k − R_{k−1})·P_k over distinct thresholds, high to low
  (scikit-learn's definition; the share of positives for a random score);
- :func:`brier`: the mean squared error of a probability;
- :func:`calibration`: deciles of the predicted value, each with its mean prediction and observed rate;
- :class:`Prequential`: a learned model's AUC on its last resolved labels (scored before learning each)
  beside the prior's on the same labels (the worker's ``forethought_model_prequential_auc``).

>>> pairs = [(0.9, 1), (0.8, 0), (0.7, 1), (0.1, 0)]
>>> roc_auc(pairs), lift_quality(roc_auc(pairs)), grade(lift_quality(roc_auc(pairs)))
(0.75, 50.0, 'Good')
>>> round(average_precision(pairs), 4), round(brier(pairs), 4)
(0.8333, 0.1875)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

Pair = tuple[float, int]
GRADES = ((60.0, "Excellent"), (40.0, "Good"), (20.0, "Fair"), (0.0, "Poor"))
"""Braze's recommendation per range of lift quality (percent); below 0 the score ranks worse than chance."""


def roc_auc(pairs: Iterable[Pair]) -> float | None:
    """The probability that a random positive scores above a random negative (ties count one half);
    None without both a positive and a negative.

    >>> roc_auc([(0.5, 1), (0.5, 0)]), roc_auc([(0.2, 1), (0.9, 1)]), roc_auc([])
    (0.5, None, None)
    """
    ordered = sorted(pairs, key=lambda p: p[0])
    positives = sum(y for _, y in ordered)
    negatives = len(ordered) - positives
    if not positives or not negatives:
        return None
    rank_sum, i = 0.0, 0
    while i < len(ordered):  # mid-ranks: a group of tied scores shares the mean of its ranks
        j = i
        while j < len(ordered) and ordered[j][0] == ordered[i][0]:
            j += 1
        rank_sum += (i + 1 + j) / 2 * sum(y for _, y in ordered[i:j])
        i = j
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def lift_quality(auc: float | None) -> float | None:
    """Braze's lift quality in percent: 2·AUC − 1 (the Gini coefficient), 0 for a random score.

    >>> lift_quality(0.8), lift_quality(None)
    (60.0, None)
    """
    return None if auc is None else round((2 * auc - 1) * 100, 10)


def grade(quality: float | None) -> str | None:
    """Braze's name for a lift quality: Excellent (60–100), Good (40–60), Fair (20–40), Poor (0–20);
    "Worse than random" below 0.

    >>> [grade(q) for q in (75.0, 60.0, 59.9, 20.0, 0.0, -5.0, None)]
    ['Excellent', 'Excellent', 'Good', 'Fair', 'Poor', 'Worse than random', None]
    """
    if quality is None:
        return None
    return next((name for floor, name in GRADES if quality >= floor), "Worse than random")


def average_precision(pairs: Iterable[Pair]) -> float | None:
    """Precision averaged over the recall gained at each distinct threshold, high to low; None
    without a positive (1.0 when every pair is positive).

    >>> average_precision([(0.3, 1), (0.3, 0)]), average_precision([(0.3, 0)])
    (0.5, None)
    """
    ordered = sorted(pairs, key=lambda p: -p[0])
    positives = sum(y for _, y in ordered)
    if not positives:
        return None
    total, tp, last_recall = 0.0, 0, 0.0
    for i, (score, label) in enumerate(ordered):
        tp += label
        if i + 1 < len(ordered) and ordered[i + 1][0] == score:
            continue  # ties: one point per threshold
        recall = tp / positives
        total += (recall - last_recall) * tp / (i + 1)
        last_recall = recall
    return total


def brier(pairs: Iterable[Pair]) -> float | None:
    """The mean of (p − y)²: 0 for a perfect probability, 0.25 for a constant one half; None when empty.

    >>> brier([(1.0, 1), (0.0, 0)]), brier([(0.5, 1), (0.5, 0)]), brier([])
    (0.0, 0.25, None)
    """
    pairs = list(pairs)
    return sum((p - y) ** 2 for p, y in pairs) / len(pairs) if pairs else None


def calibration(pairs: Iterable[Pair], bins: int = 10) -> list[dict[str, Any]]:
    """Equal-count bins (deciles by default) of the predicted value, lowest first: each with its
    count, mean prediction and observed rate of positives (tied predictions stay in one bin).

    >>> [(b["n"], b["predicted"], b["observed"]) for b in calibration([(0.1, 0), (0.2, 0), (0.8, 1), (0.9, 0)], 2)]
    [(2, 0.15, 0.0), (2, 0.85, 0.5)]
    """
    ordered = sorted(pairs, key=lambda p: p[0])
    out: list[dict[str, Any]] = []
    start = 0
    for k in range(1, bins + 1):
        stop = round(k * len(ordered) / bins)
        while 0 < stop < len(ordered) and ordered[stop][0] == ordered[stop - 1][0]:
            stop += 1  # a tie is not split between two bins
        if stop <= start:
            continue
        chunk = ordered[start:stop]
        out.append({"n": len(chunk), "predicted": round(sum(p for p, _ in chunk) / len(chunk), 4),
                    "observed": round(sum(y for _, y in chunk) / len(chunk), 4)})
        start = stop
    return out


def score_quality(pairs: Sequence[Pair], bins: int = 10) -> dict[str, Any]:
    """Every measure of one score's ``pairs``: counts and base rate, AUC, lift quality and its grade,
    average precision, and, when every score lies in [0, 1] (a probability), Brier score and calibration.

    >>> q = score_quality([(0.9, 1), (0.8, 0), (0.7, 1), (0.1, 0)], bins=2)
    >>> q["auc"], q["lift_quality"], q["grade"], q["brier"], len(q["calibration"])
    (0.75, 50.0, 'Good', 0.1875, 2)
    """
    positives = sum(y for _, y in pairs)
    auc = roc_auc(pairs)
    probability = bool(pairs) and all(0.0 <= p <= 1.0 for p, _ in pairs)
    quality = lift_quality(auc)
    return {
        "n": len(pairs), "positives": positives, "base_rate": _round(positives / len(pairs) if pairs else None),
        "auc": _round(auc), "lift_quality": _round(quality, 2), "grade": grade(quality),
        "average_precision": _round(average_precision(pairs)),
        "brier": _round(brier(pairs)) if probability else None,
        "calibration": calibration(pairs, bins) if probability else [],
    }


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


class Prequential:
    """A model's last ``window`` resolved labels, each with the score the model gave before learning it
    and the prior's score (the silence score) of the same snapshot: the AUC of each on the same labels.

    >>> track = Prequential(window=3)
    >>> for score, prior, label in [(0.9, 0.2, 1), (0.1, 0.8, 0), (0.7, 0.6, 1), (0.2, 0.1, 0)]:
    ...     track.add(label, score, prior)
    >>> track.aucs()  # the first label has left the window
    (1.0, 0.5, 3)
    """

    def __init__(self, window: int = 2000) -> None:
        self.model: deque[Pair] = deque(maxlen=window)
        self.prior: deque[Pair] = deque(maxlen=window)
        self.added = 0

    def add(self, label: int, score: float, prior: float) -> None:
        """One resolved label with the model's and the prior's scores."""
        self.model.append((score, label))
        self.prior.append((prior, label))
        self.added += 1

    def aucs(self) -> tuple[float | None, float | None, int]:
        """The model's AUC, the prior's AUC (None without both classes) and the labels in the window."""
        return roc_auc(self.model), roc_auc(self.prior), len(self.model)
