"""Uplift per playbook: whom a playbook's message helps, learned online from its treated and held-out customers.

A two-model (T-learner) estimator per playbook, per partition: one online classifier learns
P(re-engaged within the window | features, treated) from the customers the playbook messaged, one
learns P(re-engaged | features, not messaged) from its held-out customers (the playbook's holdout and
the global control group); a customer's uplift is the difference. Each classifier is River's
``StandardScaler | LogisticRegression`` with plain SGD, computed by
:class:`~forethought.core.dropoff_model.ScaledLogistic` (the same floats as River's, on plain dicts).

The features are a small fixed vector read at *decision time* from what the playbook's condition
saw (:data:`FEATURES`), quantised to one byte each (:func:`snapshot`, 6 bytes) and kept with the
decision's re-engagement watch in the customer's ledger; the label (active again within the window
or not) arrives when the watch resolves, so nothing is learned before the window has said it.

Cold start: :meth:`UpliftModels.score` is None until both arms hold :data:`MIN_LABELS` labelled
outcomes, :data:`MIN_EACH` of each kind (docs/uplift.md says what a playbook then does).

>>> models = UpliftModels(min_labels=4, min_each=1)
>>> keen, asleep = {"scores": {"dropoff": 0.9}}, {"scores": {"dropoff": 0.1}}
>>> models.score("nudge", snapshot(keen)) is None
True
>>> chance = {(True, "treated"): 8, (True, "holdout"): 3, (False, "treated"): 2, (False, "holdout"): 4}  # in 10
>>> for i in range(800):  # a message helps "keen" customers and pushes "asleep" ones away
...     is_keen, group = i % 2 == 1, "treated" if i % 4 < 2 else "holdout"
...     models.learn("nudge", group, snapshot(keen if is_keen else asleep), (i // 4) % 10 < chance[is_keen, group])
>>> models.score("nudge", snapshot(keen)) > 0.2 > models.score("nudge", snapshot(asleep))
True
>>> UpliftModels.from_data(models.to_data()).score("nudge", snapshot(keen)) == models.score("nudge", snapshot(keen))
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from forethought.core.checkpoint import CheckpointError, integer, integers
from forethought.core.dropoff_model import ScaledLogistic

FEATURES = ("dropoff", "churn", "recency", "frequency", "tenure", "recent_events")
"""What the estimator reads, in snapshot order: ``scores.dropoff``, ``scores.churn`` (0..1);
log(1 + ``features.days_since_last_seen``), log(1 + ``features.visits``),
log(1 + ``features.days_since_first_seen``), log(1 + ``features.events_last_7_days``)."""

_SOURCES = (("scores", "dropoff", 1.0), ("scores", "churn", 1.0), ("features", "days_since_last_seen", 6.0),
            ("features", "visits", 10.0), ("features", "days_since_first_seen", 7.0),
            ("features", "events_last_7_days", 8.0))  # (section, name, top of the quantised range)
MIN_LABELS = 50
"""Labelled outcomes each arm (treated, held out) needs before a score is given."""
MIN_EACH = 5
"""Of which at least this many re-engaged and this many not, in each arm."""
LEARNING_RATE = 0.02
MAX_PLAYBOOKS = 256  # a checkpoint holding more estimators than this is refused
CONTROL_GROUPS = frozenset({"holdout", "global_control"})


def snapshot(env: Mapping[str, Any]) -> bytes:
    """The features of :data:`FEATURES` in ``env`` (what a condition reads), one byte each; a
    missing or non-numeric value reads as 0.

    >>> snapshot({"scores": {"dropoff": 0.5}, "features": {"visits": 3, "days_since_last_seen": None}}).hex()
    '800000230000'
    """
    scores: Mapping[str, Any] = env.get("scores") or {}
    features: Mapping[str, Any] = env.get("features") or {}
    score, feature = scores.get, features.get
    steps = _STEPS
    return bytes((_level(score("dropoff"), steps[0]), _level(score("churn"), steps[1]),
                  _log_level(feature("days_since_last_seen"), steps[2]), _log_level(feature("visits"), steps[3]),
                  _log_level(feature("days_since_first_seen"), steps[4]),
                  _log_level(feature("events_last_7_days"), steps[5])))


def _level(value: Any, step: float) -> int:
    """A positive number as 1..255 (``value * step``, capped); anything else (None, text, bool) as 0."""
    if value.__class__ is float or value.__class__ is int:
        return 0 if value <= 0 else min(255, round(value * step))
    return 0


def _log_level(value: Any, step: float) -> int:
    """:func:`_level` of log(1 + value)."""
    if value.__class__ is float or value.__class__ is int:
        return 0 if value <= 0 else min(255, round(math.log1p(value) * step))
    return 0


_STEPS = tuple(255 / top for _, _, top in _SOURCES)
_LEVELS = tuple(tuple(round(b / 255 * top, 4) for b in range(256)) for _, _, top in _SOURCES)


def vector(raw: bytes) -> dict[str, float]:
    """A snapshot back as the estimator's features (each on its quantised scale).

    >>> vector(bytes([255, 0, 0, 0, 0, 51]))["recent_events"]
    1.6
    """
    return {name: levels[b] for name, b, levels in zip(FEATURES, raw, _LEVELS)}


def _linear(model: ScaledLogistic) -> tuple[tuple[float, ...], float]:
    """The classifier's logit as ``sum(a[i] * level[i]) + c`` over the snapshot's feature levels:
    the scaler folded into the weights, so a score costs six multiplications (the same answer as
    :meth:`ScaledLogistic.logit` up to rounding)."""
    slopes, constant = [], model.intercept
    for name in FEATURES:
        v, w = model.vars.get(name, 0.0), model.weights.get(name, 0.0)
        if not v:
            slopes.append(0.0)
            continue
        sd = v**0.5
        slopes.append(w / sd)
        constant -= w * model.means.get(name, 0.0) / sd
    return tuple(slopes), constant


def _proba(line: tuple[tuple[float, ...], float], raw: bytes) -> float:
    slopes, z = line
    for a, b, levels in zip(slopes, raw, _LEVELS):
        z += a * levels[b]
    return 0.0 if z < -30 else 1.0 if z > 30 else 1 / (1 + math.exp(-z))


class Arms:
    """One playbook's two classifiers and their label counts: ``counts`` is
    ``[treated, treated re-engaged, held out, held out re-engaged]``."""

    __slots__ = ("treated", "control", "counts", "_lines", "_warm")

    def __init__(self) -> None:
        self.treated, self.control = ScaledLogistic(LEARNING_RATE), ScaledLogistic(LEARNING_RATE)
        self.counts = [0, 0, 0, 0]
        self._lines: tuple[Any, Any] | None = None  # both arms' :func:`_linear`, until the next label
        self._warm: tuple[int, int, bool] | None = None  # (min_labels, min_each, ready) until the next label

    def uplift(self, raw: bytes) -> float:
        """P(re-engaged | messaged) - P(re-engaged | not) for snapshot ``raw``."""
        if self._lines is None:
            self._lines = (_linear(self.treated), _linear(self.control))
        return _proba(self._lines[0], raw) - _proba(self._lines[1], raw)

    def ready(self, min_labels: int, min_each: int) -> bool:
        """Enough labelled outcomes of both kinds in both arms."""
        known = self._warm
        if known is not None and known[0] == min_labels and known[1] == min_each:
            return known[2]
        n_t, back_t, n_c, back_c = self.counts
        ready = all(n >= min_labels and min(back, n - back) >= min_each for n, back in ((n_t, back_t), (n_c, back_c)))
        self._warm = (min_labels, min_each, ready)
        return ready


class UpliftModels:
    """The uplift estimators of one partition, one :class:`Arms` per playbook (made on first label)."""

    def __init__(self, min_labels: int = MIN_LABELS, min_each: int = MIN_EACH) -> None:
        self.min_labels, self.min_each = min_labels, min_each
        self.playbooks: dict[str, Arms] = {}

    def learn(self, playbook: str, group: str, raw: bytes, reengaged: bool) -> None:
        """One resolved watch: ``group`` ``treated`` (messaged) or a control group (held out)."""
        if len(raw) != len(FEATURES):
            return  # a watch started without a snapshot (or by another version) teaches nothing
        arms = self.playbooks.get(playbook)
        if arms is None:
            if len(self.playbooks) >= MAX_PLAYBOOKS:
                return
            arms = self.playbooks[playbook] = Arms()
        treated = group == "treated"
        if not treated and group not in CONTROL_GROUPS:
            return
        (arms.treated if treated else arms.control).learn_one(vector(raw), reengaged)
        arms._lines = arms._warm = None  # noqa: SLF001 - what was worked out from the parameters is stale
        at = 0 if treated else 2
        arms.counts[at] += 1
        arms.counts[at + 1] += int(reengaged)

    def ready(self, playbook: str) -> bool:
        arms = self.playbooks.get(playbook)
        return arms is not None and arms.ready(self.min_labels, self.min_each)

    def score(self, playbook: str, raw: bytes) -> float | None:
        """P(re-engaged | messaged) - P(re-engaged | not) for the customer of snapshot ``raw``;
        None while the playbook's estimator is cold."""
        arms = self.playbooks.get(playbook)
        if arms is None or not arms.ready(self.min_labels, self.min_each):
            return None
        return round(arms.uplift(raw), 6)

    def view(self, raw: bytes) -> dict[str, dict[str, Any]]:
        """Per playbook: the customer's score (None while cold) and the labels each arm has."""
        return {name: {"score": self.score(name, raw), "ready": arms.ready(self.min_labels, self.min_each),
                       "treated_labels": arms.counts[0], "holdout_labels": arms.counts[2]}
                for name, arms in sorted(self.playbooks.items())}

    def to_data(self) -> dict[str, Any]:
        """The estimators as JSON-ready data (:mod:`forethought.core.checkpoint`): per playbook the
        label counts and, per arm, the scaler's and the regression's parameters in :data:`FEATURES` order."""
        return {"features": list(FEATURES),
                "playbooks": {name: {"counts": list(arms.counts), "treated": _params(arms.treated),
                                     "control": _params(arms.control)} for name, arms in self.playbooks.items()}}

    @classmethod
    def from_data(cls, data: Any, min_labels: int = MIN_LABELS, min_each: int = MIN_EACH) -> UpliftModels:
        """Inverse of :meth:`to_data`; anything else raises :class:`CheckpointError` saying what.

        >>> UpliftModels.from_data({"features": ["dropoff"], "playbooks": {}})
        Traceback (most recent call last):
        ...
        forethought.core.checkpoint.CheckpointError: incompatible model checkpoint: uplift written for other features
        """
        if not isinstance(data, dict) or not isinstance(data.get("playbooks"), dict):
            raise CheckpointError("corrupt model checkpoint: uplift estimators are not a map")
        if data.get("features") != list(FEATURES):
            raise CheckpointError("incompatible model checkpoint: uplift written for other features")
        if len(data["playbooks"]) > MAX_PLAYBOOKS:
            raise CheckpointError(f"corrupt model checkpoint: more than {MAX_PLAYBOOKS} uplift estimators")
        models = cls(min_labels, min_each)
        for name, entry in data["playbooks"].items():
            if not isinstance(entry, dict) or not 0 < len(name) <= 128:
                raise CheckpointError("corrupt model checkpoint: an uplift estimator is not a map")
            arms = Arms()
            arms.counts = integers(entry.get("counts"), "uplift label counts", length=4)
            if any(c < 0 for c in arms.counts) or arms.counts[1] > arms.counts[0] or arms.counts[3] > arms.counts[2]:
                raise CheckpointError("corrupt model checkpoint: uplift label counts are not counts")
            arms.treated, arms.control = _model(entry.get("treated")), _model(entry.get("control"))
            models.playbooks[name] = arms
        return models


def _params(model: ScaledLogistic) -> list[Any]:
    """``[counts, means, variances, weights, intercept, iterations]``, lists in :data:`FEATURES` order."""
    return [[model.counts.get(f, 0) for f in FEATURES], [model.means.get(f, 0.0) for f in FEATURES],
            [model.vars.get(f, 0.0) for f in FEATURES], [model.weights.get(f, 0.0) for f in FEATURES],
            model.intercept, model.iterations]


def _model(params: Any) -> ScaledLogistic:
    """A classifier holding ``params`` (as :func:`_params` wrote them), every number checked."""
    if not isinstance(params, list) or len(params) != 6:
        raise CheckpointError("corrupt model checkpoint: an uplift classifier is not a parameter list")
    counts, means, vars_, weights, intercept, iterations = params
    model = ScaledLogistic(LEARNING_RATE)
    seen = integers(counts, "uplift scaler counts", length=len(FEATURES))
    if any(c < 0 for c in seen):
        raise CheckpointError("corrupt model checkpoint: uplift scaler counts are not counts")
    named = {what: _numbers(values, what, len(FEATURES)) for what, values in (("means", means), ("variances", vars_),
                                                               ("weights", weights))}
    if any(v < 0 for v in named["variances"]):
        raise CheckpointError("corrupt model checkpoint: an uplift scaler variance is negative")
    model.counts = {f: c for f, c in zip(FEATURES, seen) if c}
    model.means = {f: m for f, m, c in zip(FEATURES, named["means"], seen) if c}
    model.vars = {f: v for f, v, c in zip(FEATURES, named["variances"], seen) if c}
    model.weights = {f: w for f, w, c in zip(FEATURES, named["weights"], seen) if c}
    model.intercept = _numbers([intercept], "intercept", 1)[0]
    model.iterations = integer(iterations, "uplift optimiser iterations")
    return model


def _numbers(values: Any, what: str, length: int) -> list[float]:
    if not isinstance(values, list) or len(values) != length or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and abs(v) < 2.0**63
            for v in values):
        raise CheckpointError(f"corrupt model checkpoint: uplift {what} are not {length} finite numbers")
    return [float(v) for v in values]
