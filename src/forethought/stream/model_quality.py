"""The learned models' prequential quality as gauges: each resolved label (the core's ``label``
observation) carries the score the model gave its snapshot before learning it and the prior's score
of the same snapshot; the worker keeps the last labels per model and exports both AUCs
(``forethought_model_prequential_auc`` and ``forethought_model_prior_auc``, alert
``ForethoughtModelBelowPrior``). Labels scored while the model was cold (no score served) are left out.

>>> from forethought.ops.metrics import Metrics
>>> metrics, tracks = Metrics(), ModelQuality(every=2)
>>> for score, prior, label in [(0.9, 0.2, 1), (0.1, 0.8, 0), (0.8, 0.3, 1), (0.2, 0.9, 0)]:
...     tracks.observe({"model": "dropoff", "label": label, "predicted": score, "prior": prior}, metrics)
>>> [gauge.labels(model="dropoff")._value.get() for gauge in (metrics.model_prequential_auc, metrics.model_prior_auc)]
[1.0, 0.0]
"""

from __future__ import annotations

from typing import Any

from forethought.core.quality import Prequential
from forethought.ops.metrics import Metrics


class ModelQuality:
    """Per model: the last ``window`` labels, the gauges refreshed every ``every`` labels (an AUC
    sorts the window: about a millisecond for 2,000 labels)."""

    def __init__(self, window: int = 2000, every: int = 50) -> None:
        self.window, self.every = window, every
        self.tracks: dict[str, Prequential] = {}

    def observe(self, detail: dict[str, Any], metrics: Metrics) -> None:
        """One ``label`` observation's detail."""
        predicted, prior = detail.get("predicted"), detail.get("prior")
        if predicted is None or prior is None:
            return
        model = str(detail["model"])
        track = self.tracks.get(model)
        if track is None:
            track = self.tracks[model] = Prequential(self.window)
        track.add(int(detail["label"]), float(predicted), float(prior))
        if track.added % self.every == 0:
            self.export(model, metrics)

    def export(self, model: str, metrics: Metrics) -> None:
        """Set ``model``'s gauges from its window (an AUC without both classes in it is left as it was)."""
        learned, prior, n = self.tracks[model].aucs()
        metrics.model_prequential_labels.labels(model=model).set(n)
        if learned is not None and prior is not None:
            metrics.model_prequential_auc.labels(model=model).set(learned)
            metrics.model_prior_auc.labels(model=model).set(prior)
