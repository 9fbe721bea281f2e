"""A learned correction to the churn score, trained online on cadence-relative delayed labels.

``scores.churn`` (:mod:`forethought.core.detectors.churn`) is a buy-till-you-die model in closed form:
P(no activity within the horizon) from three numbers per customer and a population prior. This module
learns, per partition, how far that probability is off for customers who look alike, and corrects it
in log-odds: ``scores.churn_learned`` = σ(logit(BTYD probability) + correction(features)).

**Examples and labels.** At a daily look an *example* starts: its horizon ``h`` is relative to the
customer's own cadence (``k`` times their expected gap between active days, the BTYD posterior mean
(α + T)/(r + x), clamped to [``h_min``, ``h_max``] days). Its answer is "came back" (0) when the
customer is active within ``h`` days, else "stayed silent" (1), and the partition **learns it only
at the first look at or after start + h, whatever the answer**: a "came back" seen earlier is only
noted. Learning a "came back" as soon as it is seen would bias the model: at any moment the examples
whose answer is already known would over-represent those who came back quickly (near the end of a
stream, or of a young partition, nearly all of them), and the model would learn that long silences
are followed by returns. A pending example is never labelled before its horizon (right-censoring).
The next example starts at the end of the previous one, so starts fall on a grid that does not
depend on what the customer did.

**No look-ahead, in a few bytes.** The example keeps its start and horizon, and, once the customer
came back, their repeat count and last activity as they were at the start (the state moves on after
that); while they stay silent the state itself is still the start's. The features are computed from
these at the start's age (``tests/unit/test_churn_learned.py`` fails if the future leaks in).

**The model** is a logistic regression on standardised features with the BTYD log-odds as a fixed
offset (River's scaler + logistic arithmetic on plain dicts, as :mod:`forethought.core.dropoff_model`,
plus the offset): with zero weights it *is* the BTYD score, and until ``min_labels`` labels (a tenth
of each class) its correction is not applied at all, so a cold partition scores exactly
``scores.churn``. Its parameters are checkpointed with the partition's models as plain numbers.

>>> model = Correction(min_labels=4)
>>> f = features(x=0, tx=0.0, T=30.0, p_btyd=0.8)
>>> model.correction(f), round(model.blend(0.8, f), 6)  # cold: the BTYD score itself
(0.0, 0.8)
>>> for i in range(8):
...     _ = model.learn(features(x=i % 2, tx=0.0, T=30.0, p_btyd=0.8), 0.8, i % 2 == 0)
>>> model.warm, model.labels, model.positives
(True, 8, 4)
>>> again = Correction(min_labels=4)
>>> again.load_data(model.to_data())
>>> again.blend(0.8, f) == model.blend(0.8, f)
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from forethought.core import churn_context
from forethought.core.checkpoint import CheckpointError, floats, integer
from forethought.core.dropoff_model import learn_scaled

HISTORY: tuple[str, ...] = (
    "btyd_logit",  # the BTYD log-odds at the horizon (also the offset: the model may rescale it)
    "log_repeats",  # ln(1 + repeat active days)
    "log_silence_days",  # ln(1 + days since the last activity)
    "log_age_days",  # ln(1 + days since the first activity)
    "silence_vs_pace",  # ln(1 + silence / the customer's own mean gap), 0 for a one-time customer
    "one_time",  # 1 for a customer with no repeat active day
)
NAMES: tuple[str, ...] = HISTORY + churn_context.NAMES  # the purchase history, then the experience
CLIP = 1e12
LOGIT_CAP = 30.0  # σ saturates beyond this (River's sigmoid)
HELP = {
    "btyd_logit": "the buy-till-you-die odds", "log_repeats": "repeat active days",
    "log_silence_days": "days since the last activity", "log_age_days": "tenure",
    "silence_vs_pace": "silence against the customer's own pace", "one_time": "a one-time customer",
    **churn_context.HELP,
}


def logit(p: float) -> float:
    """ln(p / (1 − p)), capped at ±30."""
    p = min(max(p, 1e-13), 1 - 1e-13)
    return max(-LOGIT_CAP, min(LOGIT_CAP, math.log(p / (1 - p))))


def sigmoid(z: float) -> float:
    """1 / (1 + e^−z), 0 below −30 and 1 above 30 (River's)."""
    if z < -LOGIT_CAP:
        return 0.0
    if z > LOGIT_CAP:
        return 1.0
    return 1 / (1 + math.exp(-z))


def features(x: int, tx: float, T: float, p_btyd: float, experience: bytes = b"") -> dict[str, float]:
    """The model's inputs for a customer with ``x`` repeat active days, the last at age ``tx``, now at
    age ``T`` (days), whose BTYD score at the horizon is ``p_btyd``, and whose experience is
    ``experience`` (:func:`forethought.core.churn_context.codes`; none: the history features only).

    >>> f = features(x=3, tx=30.0, T=45.0, p_btyd=0.5)
    >>> f["btyd_logit"], round(f["silence_vs_pace"], 4), f["one_time"], len(f)
    (0.0, 0.9163, 0.0, 6)
    >>> len(features(3, 30.0, 45.0, 0.5, churn_context.codes(churn_context.Experience())))
    14
    """
    silence = max(0.0, T - tx)
    pace = silence / (tx / x) if x > 0 and tx > 0 else 0.0
    found = {
        "btyd_logit": logit(p_btyd), "log_repeats": math.log1p(x), "log_silence_days": math.log1p(silence),
        "log_age_days": math.log1p(max(0.0, T)), "silence_vs_pace": math.log1p(pace),
        "one_time": 1.0 if x == 0 else 0.0,
    }
    if experience:
        found.update(churn_context.values(experience))
    return found


def horizon_days(x: int, T: float, r: float, alpha: float, multiple: float, low: float, high: float) -> int:
    """A label horizon relative to the customer's cadence: ``multiple`` times their expected gap
    between active days ((α + T)/(r + x), the BTYD posterior mean), in whole days within [low, high].

    >>> horizon_days(x=20, T=20.0, r=0.5, alpha=5.0, multiple=3.0, low=1.0, high=90.0)  # an every-day customer
    4
    >>> horizon_days(x=3, T=30.0, r=0.5, alpha=5.0, multiple=3.0, low=1.0, high=90.0)  # every ten days or so
    30
    """
    gap = (alpha + max(0.0, T)) / (r + x)
    return int(max(low, min(high, round(multiple * gap))))


class Correction:
    """The partition's learned correction: standardised features (running count, mean and variance
    per feature, River's ``StandardScaler``), weights and an intercept learned by SGD on the log loss
    of σ(offset + intercept + Σ wᵢ·xᵢ), the offset being the BTYD log-odds; ``labels`` and
    ``positives`` ("stayed silent") count what it learned; warm from ``min_labels`` (a tenth of each)."""

    __slots__ = ("counts", "means", "vars", "weights", "intercept", "labels", "positives", "lr", "min_labels")

    def __init__(self, lr: float = 0.003, min_labels: int = 200) -> None:
        self.lr, self.min_labels = lr, min_labels
        self.counts: dict[str, int] = {}
        self.means: dict[str, float] = {}
        self.vars: dict[str, float] = {}
        self.weights: dict[str, float] = {}
        self.intercept = 0.0
        self.labels = 0
        self.positives = 0

    @property
    def warm(self) -> bool:
        """Enough labels of both kinds for the correction to be applied."""
        each = max(1, self.min_labels // 10)
        return self.labels >= self.min_labels and min(self.positives, self.labels - self.positives) >= each

    def terms(self, x: Mapping[str, float]) -> dict[str, float]:
        """Each feature's part of the correction (log-odds), the intercept under ``""``."""
        out = {"": self.intercept}
        for name, value in x.items():
            v = self.vars.get(name, 0.0)
            out[name] = self.weights.get(name, 0.0) * ((value - self.means.get(name, 0.0)) / v**0.5 if v else 0.0)
        return out

    def correction(self, x: Mapping[str, float]) -> float:
        """The log-odds added to the BTYD score (0.0 while cold)."""
        return sum(self.terms(x).values()) if self.warm else 0.0

    def blend(self, p_btyd: float, x: Mapping[str, float]) -> float:
        """The corrected probability (exactly ``p_btyd`` while cold)."""
        if not self.warm:
            return p_btyd
        return sigmoid(logit(p_btyd) + self.correction(x))

    def learn(self, x: Mapping[str, float], p_btyd: float, silent: bool) -> float | None:
        """One resolved example; returns what the model predicted for it first (None while cold)."""
        predicted = self.blend(p_btyd, x) if self.warm else None
        scaled, total = learn_scaled(x, self.counts, self.means, self.vars, self.weights)
        weights = self.weights
        p = sigmoid(logit(p_btyd) + total + self.intercept)
        gradient = float(min(max(p - (1.0 if silent else 0.0), -CLIP), CLIP))
        self.intercept -= self.lr * gradient
        for i, xs in scaled:
            weights[i] -= self.lr * xs * gradient
        self.labels += 1
        self.positives += int(silent)
        return predicted

    def to_data(self) -> dict[str, Any]:
        """Plain data for the partition's checkpoint; :meth:`load_data` reads it back."""
        return {"features": list(NAMES), "counts": dict(self.counts), "means": dict(self.means),
                "vars": dict(self.vars), "weights": dict(self.weights), "intercept": self.intercept,
                "labels": self.labels, "positives": self.positives}

    def load_data(self, data: Any) -> None:
        """Replace the parameters by :meth:`to_data`'s (checked: :class:`CheckpointError`)."""
        if not isinstance(data, dict):
            raise CheckpointError("corrupt model checkpoint: the churn correction is not a map")
        if data.get("features") not in (list(NAMES), list(HISTORY)):  # HISTORY: written before the experience
            raise CheckpointError("incompatible model checkpoint: the churn correction was written for other features")
        counts = floats(data.get("counts"), "churn correction counts")
        maps = {k: floats(data.get(k), f"churn correction {k}") for k in ("means", "vars", "weights")}
        if any(set(m) - set(NAMES) for m in (counts, *maps.values())):
            raise CheckpointError("corrupt model checkpoint: the churn correction names an unknown feature")
        if any(c != int(c) or c < 0 for c in counts.values()) or any(v < 0 for v in maps["vars"].values()):
            raise CheckpointError("corrupt model checkpoint: the churn correction's statistics are malformed")
        intercept = floats({"intercept": data.get("intercept")}, "churn correction intercept")["intercept"]
        labels = integer(data.get("labels"), "churn correction labels")
        positives = integer(data.get("positives"), "churn correction positives")
        if positives > labels:
            raise CheckpointError("corrupt model checkpoint: more silent labels than labels in the churn correction")
        self.counts = {k: int(c) for k, c in counts.items()}
        self.means, self.vars, self.weights = maps["means"], maps["vars"], maps["weights"]
        self.intercept, self.labels, self.positives = intercept, labels, positives
