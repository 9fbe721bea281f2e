"""The Qini computation of the closed-loop evaluation (benchmarks/closedloopkit/qini.py): a hand-computed
example, a random ranking near 0, the perfect ranking at 1, the worst at -1, and scikit-uplift's
definition on observed outcomes (nothing here times anything)."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

from closedloopkit import qini  # noqa: E402 - after the path is set


def test_a_small_example_computed_by_hand() -> None:
    # effects 0.4, -0.2, 0.1, 0.0 of customers a, b, c, d; the score ranks them b, a, c, d
    tau, score = [0.4, -0.2, 0.1, 0.0], [0.8, 0.9, 0.5, 0.1]
    assert qini.effect_curve(tau, score) == [(0, 0.0), (1, -0.2), (2, 0.2), (3, 0.3), (4, 0.3)]
    # area under it (trapezoids): -0.1 + 0.0 + 0.25 + 0.3 = 0.45; random line (0,0)-(4,0.3): 0.6
    # perfect (a, c, d, b): 0, 0.4, 0.5, 0.5, 0.3 -> 0.2 + 0.45 + 0.5 + 0.4 = 1.55
    # coefficient: (0.45 - 0.6) / (1.55 - 0.6) = -0.15 / 0.95
    assert qini.area(qini.effect_curve(tau, score)) == pytest.approx(0.45)
    assert qini.true_qini_score(tau, score) == pytest.approx(-0.15 / 0.95)


def test_equal_scores_form_one_step() -> None:
    # a and c tie: the curve jumps from 0 to their sum at once, whatever their order
    assert qini.effect_curve([0.4, -0.2, 0.1], [0.5, 0.1, 0.5]) == [(0, 0.0), (2, 0.5), (3, 0.3)]
    assert qini.true_qini_score([0.4, -0.2, 0.1], [1, 1, 1]) == pytest.approx(0.0)  # all tied: the random line


def test_the_perfect_ranking_scores_one_and_the_reverse_minus_one() -> None:
    rng = random.Random(5)
    tau = [rng.uniform(-0.3, 0.4) for _ in range(300)]
    assert qini.true_qini_score(tau, tau) == pytest.approx(1.0)
    assert qini.true_qini_score(tau, [-t for t in tau]) == pytest.approx(-1.0)


def test_a_random_ranking_scores_near_zero() -> None:
    rng = random.Random(11)
    tau = [rng.choice([0.3, 0.0, 0.0, -0.3]) for _ in range(2000)]
    values = [qini.true_qini_score(tau, [rng.random() for _ in tau]) for _ in range(20)]
    assert abs(sum(values) / len(values)) < 0.05
    assert all(abs(v) < 0.2 for v in values)  # each about +-0.05 on 2,000 customers


def test_observed_qini_curve_and_scikit_uplift_normalisation_by_hand() -> None:
    # y, treated, score of 6 customers (scikit-uplift's qini_curve: Y_t - Y_c * N_t / N_c at each step)
    y, treated, score = [1, 0, 1, 1, 0, 0], [1, 1, 0, 1, 0, 0], [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    curve = qini.qini_curve(y, treated, score)
    # k=1: 1 - 0; k=2: 1 - 0; k=3: 1 - 1 * 2/1; k=4: 2 - 1 * 3/1; k=5: 2 - 1 * 3/2; k=6: 2 - 1 * 3/3
    assert curve == [(0, 0.0), (1, 1.0), (2, 1.0), (3, -1.0), (4, -1.0), (5, 0.5), (6, 1.0)]
    # area: 0.5 + 1 + 0 - 1 - 0.25 + 0.75 = 1.0; random line (0,0)-(6,1): 3.0
    # perfect (score y*t - y*(1-t): a, d tie at 1; b, e, f at 0; c at -1): (2, 2), (5, 2), (6, 1) -> 2 + 6 + 1.5
    assert qini.area(curve) == pytest.approx(1.0)
    assert qini.qini_auc_score(y, treated, score) == pytest.approx((1.0 - 3.0) / (9.5 - 3.0))
    assert qini.qini_auc_score(y, treated, [2 * yi * ti - yi for yi, ti in zip(y, treated)]) == pytest.approx(1.0)


def test_no_customers_or_no_spread_gives_no_coefficient() -> None:
    assert qini.true_qini_score([], []) is None
    assert qini.true_qini_score([0.1, 0.1], [0.2, 0.9]) is None  # every ranking is perfect and random alike


def test_top_takes_the_highest_scores() -> None:
    assert qini.top([0.2, 0.9, 0.5, 0.9], 3) == [1, 3, 2]
    assert qini.top([0.2], 5) == [0]
