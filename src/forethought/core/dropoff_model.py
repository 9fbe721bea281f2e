"""The learned drop-off model's arithmetic without River's per-dict pipeline.

:func:`forethought.core.models.dropoff_pipeline` is River's ``StandardScaler | LogisticRegression``
with plain SGD. Run through River's :class:`~river.compose.Pipeline`, one ``learn_one`` walks the
pipeline's plan, copies the features into a scaled dict, wraps the weights in a masked
``VectorDict`` and builds a gradient ``VectorDict``; one ``predict_proba_one`` scales into a new
dict too. On sparse replays (CDNOW) every daily look both learns and scores, and that overhead was
about a seventh of the replay's CPU (docs/runtime/core-speed.md).

:class:`ScaledLogistic` does the same floating-point operations in the same order on plain dicts:
the scaler's running count, mean and variance per feature (``StandardScaler.learn_one``, then
``transform_one`` with the updated statistics), the log loss's gradient clamped to ±1e12, the
intercept step at River's default intercept rate 0.01 and the weights' SGD step. Scores and
learned parameters are therefore equal to River's bit for bit (``tests/unit/test_dropoff_model.py``
checks it against River itself), and a checkpoint holds the same parameters either way
(:func:`forethought.core.models.dropoff_params`).

>>> model = ScaledLogistic(lr=0.002)
>>> for i in range(20):
...     model.learn_one({"a": float(i % 2), "b": 0.5}, i % 2 == 1)
>>> low, high = model.proba({"a": 0.0, "b": 0.5}), model.proba({"a": 1.0, "b": 0.5})
>>> low < 0.5 < high, model.predict_proba_one({"a": 1.0, "b": 0.5})[True] == high
(True, True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping

CLIP = 1e12  # River's LogisticRegression clip_gradient
INTERCEPT_LR = 0.01  # River's LogisticRegression intercept_lr (a constant schedule)


def learn_scaled(x: Mapping[str, float], counts: dict[str, int], means: dict[str, float], vars_: dict[str, float],
                 weights: dict[str, float]) -> tuple[list[tuple[str, float]], float]:
    """River's ``StandardScaler.learn_one`` then ``transform_one`` on ``x``, in one pass (each feature's
    scaling reads only its own running count, mean and variance); returns each feature scaled and the
    weights' dot product with them, a missing weight added at zero first (River's learn mode).

    >>> counts, means, vars_, weights = {}, {}, {}, {"a": 2.0}
    >>> learn_scaled({"a": 1.0}, counts, means, vars_, weights)
    ([('a', 0.0)], 0.0)
    >>> learn_scaled({"a": 3.0, "b": 5.0}, counts, means, vars_, weights)
    ([('a', 1.0), ('b', 0.0)], 2.0)
    >>> counts, means, vars_, weights["b"]
    ({'a': 2, 'b': 1}, {'a': 2.0, 'b': 5.0}, {'a': 1.0, 'b': 0.0}, 0.0)
    """
    scaled, total = [], 0.0
    for i, xi in x.items():
        n = counts[i] = counts.get(i, 0) + 1
        old = means.get(i, 0.0)
        mean = means[i] = old + (xi - old) / n
        v = vars_.get(i, 0.0)
        v = vars_[i] = v + ((xi - old) * (xi - mean) - v) / n
        xs = (xi - mean) / v**0.5 if v else 0.0
        scaled.append((i, xs))
        w = weights.get(i)
        if w is None:
            w = weights[i] = 0.0
        total += w * xs
    return scaled, total


class ScaledLogistic:
    """Standard scaling then logistic regression with plain SGD at ``lr`` (see the module docstring).

    ``counts``, ``means`` and ``vars`` are the scaler's running statistics, ``weights`` and
    ``intercept`` the regression's, ``iterations`` the optimiser's step count: the parameters
    River's pipeline holds, under the same names."""

    __slots__ = ("counts", "means", "vars", "weights", "intercept", "iterations", "lr")

    def __init__(self, lr: float) -> None:
        self.lr = lr
        self.counts: dict[str, int] = {}
        self.means: dict[str, float] = {}
        self.vars: dict[str, float] = {}
        self.weights: dict[str, float] = {}
        self.intercept = 0.0
        self.iterations = 0

    def logit(self, x: Mapping[str, float]) -> float:
        """The weights' dot product with ``x`` scaled (``StandardScaler.transform_one``:
        ``(x - mean) / var ** 0.5``, 0 while the variance is 0), plus the intercept."""
        means, vars_, weights, total = self.means, self.vars, self.weights, 0.0
        for i, xi in x.items():
            v = vars_.get(i, 0.0)
            total += weights.get(i, 0.0) * ((xi - means.get(i, 0.0)) / v**0.5 if v else 0.0)
        return total + self.intercept

    def proba(self, x: Mapping[str, float]) -> float:
        """P(True | x): River's ``sigmoid`` of the logit (0 below -30, 1 above 30)."""
        z = self.logit(x)
        if z < -30:
            return 0.0
        if z > 30:
            return 1.0
        return 1 / (1 + math.exp(-z))

    def predict_proba_one(self, x: Mapping[str, float]) -> dict[bool, float]:
        """River's answer: ``{False: 1 - p, True: p}``."""
        p = self.proba(x)
        return {False: 1.0 - p, True: p}

    def learn_one(self, x: Mapping[str, float], y: bool) -> None:
        """One labelled example: the scaler learns it, then the regression learns it scaled (each
        feature's scaling reads only its own statistics, so one pass does both)."""
        scaled, total = learn_scaled(x, self.counts, self.means, self.vars, self.weights)
        sign = 1 if y else -1
        z = (total + self.intercept) * sign
        if z > 18.0:
            gradient = math.exp(-z) * -sign
        elif z < -18.0:
            gradient = 1.0 * -sign
        else:
            gradient = 1.0 * -sign / (math.exp(z) + 1.0)
        gradient = float(min(max(gradient, -CLIP), CLIP))
        self.intercept -= INTERCEPT_LR * gradient
        lr, weights = self.lr, self.weights
        for i, xs in scaled:
            weights[i] -= lr * (xs * gradient)
        self.iterations += 1
