"""Ranking and operating-point metrics: AUC, average precision, precision/recall at a flag, bootstrap."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from forethought.core.baselines import normal_cdf

from .data import RULE_DAYS

PRF = dict[str, float | int | None]


def auc(score: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC as the Mann–Whitney statistic with mid-ranks (a tie counts one half)."""
    ranks = stats.rankdata(score)
    n_pos = int(positive.sum())
    n_neg = len(score) - n_pos
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(score: np.ndarray, positive: np.ndarray) -> float:
    """Σ (R_k − R_{k−1})·P_k over distinct thresholds, high to low (scikit-learn's definition)."""
    order = np.argsort(-score, kind="mergesort")
    s, y = score[order], positive[order].astype(float)
    tp = np.cumsum(y)
    cut = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each tied group
    tp, flagged = tp[cut], cut + 1.0
    recall = tp / tp[-1]
    precision = tp / flagged
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def prf(flag: np.ndarray, positive: np.ndarray) -> PRF:
    """Flagged, true positives, precision, recall and F1 of a 0/1 flag."""
    tp = int((flag & positive).sum())
    n_flag, n_pos = int(flag.sum()), int(positive.sum())
    precision = tp / n_flag if n_flag else None
    recall = tp / n_pos if n_pos else None
    f1 = 2 * precision * recall / (precision + recall) if precision and recall else None
    return {"flagged": n_flag, "true_positives": tp, "precision": precision, "recall": recall, "f1": f1}


def top_k(score: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """The k highest scores; ties broken by a fixed random order."""
    order = np.lexsort((rng.permutation(len(score)), -score))
    flag = np.zeros(len(score), bool)
    flag[order[:k]] = True
    return flag


def bootstrap_auc(scores: dict[str, np.ndarray], positive: np.ndarray, reference: str, n: int,
                  rng: np.random.Generator) -> dict[str, dict[str, tuple[float, float]]]:
    """95 % percentile intervals of each AUC and of (AUC − reference AUC), resampling customers."""
    if n <= 0:
        return {}
    draws: dict[str, list[float]] = {name: [] for name in scores}
    for _ in range(n):
        idx = rng.integers(0, len(positive), len(positive))
        y = positive[idx]
        for name, score in scores.items():
            draws[name].append(auc(score[idx], y))
    ref = np.array(draws[reference])
    pct = lambda v: (float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5)))  # noqa: E731
    return {name: {"auc": pct(np.array(v)), "diff_vs_forethought": pct(np.array(v) - ref)}
            for name, v in draws.items()}


def score_metrics(scores: dict[str, np.ndarray], y: np.ndarray, repeat: np.ndarray, k: int,
                  intervals: dict[str, dict[str, tuple[float, float]]], rng: np.random.Generator,
                  probabilities: tuple[str, ...] = ()) -> dict[str, Any]:
    """Per score: AUC, lift quality and AP overall and per group, precision at the engine's alert volume
    ``k``; the Brier score of those in ``probabilities`` (meant as the probability of the truth)."""
    metrics: dict[str, Any] = {}
    for name, score in scores.items():
        metrics[name] = {
            "auc": auc(score, y), "average_precision": average_precision(score, y),
            "lift_quality": 2 * auc(score, y) - 1,  # Braze's scale: "Excellent" from 0.60
            "brier": float(np.mean((score - y) ** 2)) if name in probabilities else None,
            "auc_repeat_customers": auc(score[repeat], y[repeat]),
            "ap_repeat_customers": average_precision(score[repeat], y[repeat]),
            "auc_one_time_buyers": auc(score[~repeat], y[~repeat]),
            "at_engine_alert_volume": prf(top_k(score, k, rng), y),
            "at_engine_alert_volume_repeat_customers": prf(top_k(score[repeat], k, rng), y[repeat]),
            **({"auc_95ci": intervals[name]["auc"], "auc_diff_vs_forethought_95ci": intervals[name]["diff_vs_forethought"]}
               if intervals else {}),
        }
    return metrics


def operating_points(triggered: np.ndarray, dropoff: np.ndarray, silence: np.ndarray, y: np.ndarray,
                     repeat: np.ndarray, silence_z: float) -> tuple[float, dict[str, PRF], dict[str, PRF]]:
    """The dropoff threshold Φ(silence_z), and the fixed rules on all customers and on repeat customers."""
    threshold = normal_cdf(silence_z)
    operating = {
        "Forethought trigger fired (present silence)": prf(triggered, y),
        f"Forethought dropoff ≥ Φ({silence_z}) = {threshold:.4f}": prf(dropoff >= threshold, y),
        f"Silent > {RULE_DAYS:g} days": prf(silence > RULE_DAYS, y),
        "Flag everyone": prf(np.ones_like(y), y),
    }
    operating_repeat = {
        "Forethought trigger fired (present silence)": prf(triggered[repeat], y[repeat]),
        f"Silent > {RULE_DAYS:g} days": prf(silence[repeat] > RULE_DAYS, y[repeat]),
    }
    return threshold, operating, operating_repeat
