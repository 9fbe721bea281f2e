"""Qini curves and the Qini coefficient, normalised as scikit-uplift's ``qini_auc_score``.

The Qini curve (Radcliffe 2007, "Using control groups to target on predicted lift") ranks customers
by a score, best first, and plots, for the top ``n``, the incremental responses targeting them
would give. From a randomised experiment (treated and control customers, a binary outcome) it is
estimated as ``Y_t(n) - Y_c(n) * N_t(n) / N_c(n)`` (:func:`qini_curve`); when every customer's true
effect ``tau`` is known (a simulator), it is the sum of ``tau`` over the top ``n`` (:func:`effect_curve`).
Customers with equal scores form one step (the curve has a point only where the score changes, as
scikit-learn's ROC curve and scikit-uplift's ``qini_curve`` do).

**The coefficient** (:func:`coefficient`): the area between the curve and the random-targeting line
(the straight line from (0, 0) to the curve's end, (N, total incremental)), divided by the same area
of the perfect ranking's curve: ``(AUC - AUC_random) / (AUC_perfect - AUC_random)``, areas by the
trapezoidal rule. 1 is the perfect ranking, about 0 a random one, negative worse than random. This is
scikit-uplift's ``qini_auc_score`` (``negative_effect=True``): its perfect ranking of observed data puts
treated responders first and control responders last (:func:`qini_auc_score`); with true effects the
perfect ranking is by ``tau`` itself (:func:`true_qini_score`).

>>> round(true_qini_score([0.3, 0.2, 0.1], [3, 2, 1]), 6)
1.0
>>> round(true_qini_score([0.3, 0.2, 0.1], [1, 2, 3]), 6)
-1.0
"""

from __future__ import annotations

from collections.abc import Sequence

Curve = list[tuple[float, float]]  # (customers targeted, incremental responses), from (0, 0)


def _order(score: Sequence[float]) -> list[int]:
    """Indices by descending score; equal scores keep a fixed order (the steps group them anyway)."""
    return sorted(range(len(score)), key=lambda i: -score[i])


def _steps(score: Sequence[float], order: list[int]) -> list[int]:
    """Positions (1-based counts) after which the score changes, and the last one."""
    ends = [k + 1 for k in range(len(order) - 1) if score[order[k]] != score[order[k + 1]]]
    return [*ends, len(order)] if order else []


def effect_curve(tau: Sequence[float], score: Sequence[float]) -> Curve:
    """The Qini curve of known individual effects ``tau`` ranked by ``score``: sum of ``tau`` over the top ``n``.

    >>> effect_curve([0.5, -0.2, 0.1], [0.9, 0.1, 0.9])
    [(0, 0.0), (2, 0.6), (3, 0.4)]
    """
    order = _order(score)
    running, sums = 0.0, []
    for i in order:
        running += tau[i]
        sums.append(running)
    return [(0, 0.0)] + [(n, round(sums[n - 1], 12)) for n in _steps(score, order)]


def qini_curve(y: Sequence[int], treated: Sequence[int], score: Sequence[float]) -> Curve:
    """The Qini curve of an experiment: outcomes ``y`` (0/1), ``treated`` (1) or control (0), ranked
    by ``score``; at each step ``Y_t - Y_c * N_t / N_c`` (``N_c`` = 0: ``Y_t``), as scikit-uplift.

    >>> qini_curve([1, 0, 1, 0], [1, 1, 0, 0], [4, 3, 2, 1])
    [(0, 0.0), (1, 1.0), (2, 1.0), (3, -1.0), (4, 0.0)]
    """
    order = _order(score)
    n_t = y_t = y_c = 0
    points: Curve = [(0, 0.0)]
    ends = set(_steps(score, order))
    for k, i in enumerate(order, 1):
        n_t += treated[i]
        y_t += y[i] * treated[i]
        y_c += y[i] * (1 - treated[i])
        if k in ends:
            n_c = k - n_t
            points.append((k, y_t - (y_c * n_t / n_c if n_c else 0.0)))
    return points


def area(curve: Curve) -> float:
    """Trapezoidal area under a curve.

    >>> area([(0, 0.0), (2, 2.0), (4, 2.0)])
    6.0
    """
    return sum((x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in zip(curve, curve[1:]))


def coefficient(curve: Curve, perfect: Curve) -> float | None:
    """``(AUC - AUC_random) / (AUC_perfect - AUC_random)``, the random line from (0, 0) to the end of
    ``perfect`` (the same end as ``curve``'s); None when the perfect curve is the random line.

    >>> coefficient([(0, 0.0), (1, 0.5), (2, 1.0)], [(0, 0.0), (1, 1.0), (2, 1.0)])
    0.0
    """
    n, total = perfect[-1]
    baseline = n * total / 2
    best = area(perfect) - baseline
    return None if best == 0 else (area(curve) - baseline) / best


def true_qini_score(tau: Sequence[float], score: Sequence[float]) -> float | None:
    """The Qini coefficient of ``score`` against known individual effects ``tau`` (perfect: ranked by ``tau``)."""
    return coefficient(effect_curve(tau, score), effect_curve(tau, tau))


def qini_auc_score(y: Sequence[int], treated: Sequence[int], score: Sequence[float]) -> float | None:
    """scikit-uplift's ``qini_auc_score`` (``negative_effect=True``) of an experiment; perfect: ranked
    by ``y * treated - y * (1 - treated)``."""
    perfect = [yi * ti - yi * (1 - ti) for yi, ti in zip(y, treated)]
    return coefficient(qini_curve(y, treated, score), qini_curve(y, treated, perfect))


def top(score: Sequence[float], n: int) -> list[int]:
    """The indices of the ``n`` highest scores (ties: the earlier index first).

    >>> top([0.1, 0.9, 0.5], 2)
    [1, 2]
    """
    return sorted(range(len(score)), key=lambda i: (-score[i], i))[:n]
