"""The River models of one partition, their cold start and their checkpoints.

A :class:`PartitionModels` lives with a partition of the behaviour inputs (architecture rule 6):
the worker holds one per assigned partition, replay one per partition of the same catalogue, and
the engine's entry points take the customer's partition's models as an argument. It holds three:

* the learned drop-off classifier (below), which learns in input order (River's models here are
  deterministic, so the same input order gives the same model, bit for bit);
* the behaviour trees (:mod:`forethought.core.anomaly`, multivariate anomaly over customer-minutes)
  and the population prior (:mod:`forethought.core.population`), which count per event-time window
  and so do not depend on input order at all.

The learned drop-off model answers "will this customer *not* be active again within the label
horizon?" from a daily snapshot (:mod:`forethought.core.snapshots`). It is a
``StandardScaler | LogisticRegression`` with plain SGD at a small learning rate (0.002). Chosen on
the development seed only (``benchmarks/dropoff_auc.py``, 2,000 customers x 60 days, seed 1; AUC of
the model's own delayed label at snapshot time, prequential):

=========================================  =====  ==========  ===========  ===========
pipeline                                   AUC    checkpoint  learn        score
=========================================  =====  ==========  ===========  ===========
scaler + logistic, SGD 0.002 (this one)    0.876  2.0 KB      ~20-35 µs    ~5-8 µs
scaler + logistic, SGD 0.001               0.873  2.0 KB
scaler + logistic, SGD 0.01 (River's)      0.815  2.0 KB
scaler + logistic, SGD 0.1 / Adam 0.01     0.70   2.0 KB
adaptive random forest, 10 trees           0.815  6.7 MB      ~3 ms        ~0.5 ms
Gaussian naive Bayes                       0.722  85 KB       ~90 µs       ~0.6 ms
Hoeffding adaptive tree                    0.619  0.8 MB      ~0.9 ms      ~0.1 ms
=========================================  =====  ==========  ===========  ===========

(Times from a busy 2-core machine; only their order of magnitude matters.) Labels are few and
imbalanced (about 4 % "dropped"), which a small step size averages well; the forest is no better
and 3,000 times larger.

Cold start is explicit: :meth:`PartitionModels.dropoff` is None until the model has seen
``min_labels`` labels, a tenth of them of each class (a new deployment, or a checkpoint that
could not be restored, start cold; a restored checkpoint is warm at once).

>>> models = PartitionModels(partition=3, min_labels=4)
>>> x = {"silence_ratio": 0.1, "dropoff": 0.0}
>>> models.dropoff(x) is None  # cold: no labels yet
True
>>> for i in range(6):
...     models.learn_dropoff({"silence_ratio": 4.0 * (i % 2), "dropoff": 1.0 * (i % 2)}, dropped=i % 2 == 1)
>>> models.labels, models.dropped, models.dropoff(x) < 0.5 < models.dropoff({"silence_ratio": 4.0, "dropoff": 1.0})
(6, 3, True)
>>> again = PartitionModels.restore(models.to_bytes(), partition=3, min_labels=4)
>>> again.origin, again.labels, again.dropoff(x) == models.dropoff(x)
('restored', 6, True)
>>> broken = PartitionModels.restore(b"FTPM\\x03 not a checkpoint", partition=3)
>>> broken.origin, broken.labels, broken.problem
('failed', 0, 'corrupt model checkpoint: truncated header')
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import river
from river import compose, linear_model, optim, preprocessing

from forethought.core import snapshots
from forethought.core.anomaly import Verdict, WindowedTrees
from forethought.core.bandit import Bandits
from forethought.core.btyd import OnlineFit
from forethought.core.checkpoint import CheckpointError, floats, integer, open_checkpoint, seal
from forethought.core.churn_learned import Correction
from forethought.core.config import EngineConfig
from forethought.core.detectors import behaviour
from forethought.core.dropoff_model import ScaledLogistic
from forethought.core.population import PopulationPrior
from forethought.core.sendtime import PopulationHours
from forethought.core.uplift import UpliftModels

__all__ = ["CheckpointError", "PartitionModels", "behaviour_trees", "dropoff_pipeline", "river_pipeline", "trees_spec"]


LEARNING_RATE = 0.002


def dropoff_pipeline() -> ScaledLogistic:
    """A fresh learned drop-off model (probability of no activity within the horizon): River's
    ``StandardScaler | LogisticRegression(SGD(0.002))``, computed without its per-dict pipeline
    (:mod:`forethought.core.dropoff_model`: the same floats, a checkpoint of the same parameters)."""
    return ScaledLogistic(LEARNING_RATE)


def river_pipeline() -> compose.Pipeline:
    """The River pipeline :func:`dropoff_pipeline` computes as (what the tests compare it with)."""
    return preprocessing.StandardScaler() | linear_model.LogisticRegression(optimizer=optim.SGD(LEARNING_RATE))


@dataclass(frozen=True, slots=True)
class Cut:
    """Which flush of the worker a checkpoint was taken with (docs/durability.md, "Models and clock
    travel with the flush"): the partition's flush number ``seq``, and a witness that the flush's
    states were stored: ``key``, the customer whose state the flush wrote last, and ``crc``, the
    CRC-32 of those bytes (-1: the flush deleted it). ``key`` None: the flush wrote no state.

    >>> Cut.from_data({"seq": 3, "key": "c1", "crc": 42})
    Cut(seq=3, key='c1', crc=42)
    >>> Cut.from_data({"seq": -1})
    Traceback (most recent call last):
    ...
    forethought.core.checkpoint.CheckpointError: corrupt model checkpoint: cut seq is not an integer >= 0
    """

    seq: int
    key: str | None = None
    crc: int = -1

    def to_data(self) -> dict[str, Any]:
        return {"seq": self.seq, "key": self.key, "crc": self.crc}

    @classmethod
    def from_data(cls, data: Any) -> Cut:
        """A cut from a checkpoint header (:class:`CheckpointError` when malformed)."""
        if not isinstance(data, dict):
            raise CheckpointError("corrupt model checkpoint: cut is not a map")
        key = data.get("key")
        if key is not None and (not isinstance(key, str) or len(key) > 1024):
            raise CheckpointError("corrupt model checkpoint: cut key is not a short string")
        return cls(integer(data.get("seq"), "cut seq"), key, integer(data.get("crc", -1), "cut crc", lowest=-1))


class PartitionModels:
    """The models of one partition plus the counters that make cold start and metrics explicit.

    ``origin`` says where the models came from: ``fresh`` (no checkpoint), ``restored`` or
    ``failed`` (a checkpoint existed but could not be used; ``problem`` says why).
    ``unsaved`` counts what was learned since the last checkpoint (labels, customer-minutes and
    population entries; not itself checkpointed): the worker writes only models where it is > 0.
    """

    def __init__(self, partition: int = 0, min_labels: int = 200, config: EngineConfig | None = None) -> None:
        self.partition, self.min_labels = partition, min_labels
        self.config = config or EngineConfig()
        self.dropoff_model: ScaledLogistic | compose.Pipeline = dropoff_pipeline()  # benchmarks may swap in River's
        self.behaviour = behaviour_trees(self.config)
        self.population = PopulationPrior(min_customers=self.config.prior_min_customers)
        self.churn = OnlineFit()  # the churn score's population prior (core.detectors.churn)
        self.hours = PopulationHours()  # active hours by local hour, the send-time fallback (core.sendtime)
        self.churn_learned = Correction()  # its learned correction (core.detectors.churn_learned)
        self.uplift = UpliftModels()  # per playbook: whom its message helps (core.uplift)
        self.bandits = Bandits()  # the playbooks' variant bandits (core.bandit)
        self._priors: tuple[EngineConfig, int, int, EngineConfig] | None = None
        self.labels = 0
        self.dropped = 0
        self._unsaved = 0
        # the partition's event clock (runtime ``now``/``fed``) when the checkpoint was taken: the models and
        # the states of one flush are one cut, and a restart resumes the clock there (docs/durability.md)
        self.clock: float | None = None
        self.fed: float | None = None
        self.cut: Cut | None = None  # the flush the checkpoint was taken with (set by the worker)
        self.origin = "fresh"
        self.behaviour_origin = "fresh"
        self.problem: str | None = None

    @property
    def unsaved(self) -> int:
        """What was learned since the last checkpoint (the bandits' pulls and settles included)."""
        return self._unsaved + self.bandits.changes

    @unsaved.setter
    def unsaved(self, value: int) -> None:
        self._unsaved, self.bandits.changes = value, 0

    @property
    def warm(self) -> bool:
        """Enough labels of both kinds to trust the model's scores."""
        each = max(1, self.min_labels // 10)
        return self.labels >= self.min_labels and min(self.dropped, self.labels - self.dropped) >= each

    def dropoff(self, x: dict[str, float]) -> float | None:
        """Probability that the customer described by ``x`` is not active again within the
        horizon; None while cold."""
        if not self.warm:
            return None
        model = self.dropoff_model
        if type(model) is ScaledLogistic:  # the common case, without River's answer dict
            return round(model.proba(x), 6)
        return round(float(model.predict_proba_one(x).get(True, 0.0)), 6)

    def learn_dropoff(self, x: dict[str, float], dropped: bool) -> None:
        """One resolved label: ``dropped`` is True when the horizon passed without activity."""
        self.dropoff_model.learn_one(x, dropped)
        self.labels += 1
        self.dropped += int(dropped)
        self._unsaved += 1

    def learn_uplift(self, playbook: str, group: str, x: bytes, reengaged: bool) -> None:
        """A re-engagement watch resolved: its playbook's uplift estimator learns it (core.uplift)."""
        if x:
            self.uplift.learn(playbook, group, x, reengaged)
            self._unsaved += 1

    def config_at(self, config: EngineConfig, at: float) -> EngineConfig:
        """``config`` with the partition's learned population prior for time ``at`` (unchanged while
        none is learned, or with ``prior_learned`` off). Cached per day and base config."""
        silence = config.sections.get("silence")  # the learned prior is the silence detector's
        if silence is None or not silence.prior_learned:
            return config
        day = math.floor(at / self.population.window)
        seen = self.population.windows.get(day - 2, [0])[0]
        if self._priors is not None and self._priors[0] is config and self._priors[1:3] == (day, seen):
            return self._priors[3]
        learned = self.population.prior(at)
        result = config if learned is None else config.replace(
            prior_gap_seconds=math.exp(learned[0]), prior_log_sd=max(learned[1], config.prior_log_sd))
        self._priors = (config, day, seen, result)
        return result

    def learn_population(self, mean: float, var: float, at: float) -> None:
        """One customer's own log-gap statistics at their daily check (:mod:`forethought.core.population`)."""
        self.population.learn(mean, var, at)
        self._unsaved += 1

    def learn_hour(self, hour: int) -> None:
        """One customer's new active hour at local ``hour`` (:mod:`forethought.core.sendtime`)."""
        self.hours.learn(hour)
        self._unsaved += 1

    def observe_behaviour(self, x: dict[str, float], at: float) -> Verdict:
        """Score one customer-bucket's window features (:mod:`forethought.core.detectors.behaviour`) and learn them."""
        self._unsaved += 1
        return self.behaviour.observe(x, at)

    def to_bytes(self, key: bytes | None = None) -> bytes:
        """The checkpoint: a versioned header and the models' parameters as data
        (:mod:`forethought.core.checkpoint`), signed with ``key`` when one is given."""
        header = {"partition": self.partition, "river": river.__version__, "features": list(snapshots.NAMES),
                  "behaviour": trees_spec(self.config), "labels": self.labels, "dropped": self.dropped}
        header.update({name: at for name, at in (("clock", self.clock), ("fed", self.fed)) if at is not None})
        if self.cut is not None:
            header["cut"] = self.cut.to_data()
        payload = {"dropoff": dropoff_params(self.dropoff_model), "behaviour": self.behaviour.to_data(),
                   "population": self.population.to_data(), "churn": self.churn.to_data(),
                   "hours": self.hours.to_data(),
                   "churn_learned": self.churn_learned.to_data(), "uplift": self.uplift.to_data(),
                   **({"bandits": self.bandits.to_data()} if self.bandits.by_playbook else {})}
        return seal(header, payload, key)

    @classmethod
    def from_bytes(cls, raw: bytes, partition: int = 0, min_labels: int = 200,
                   config: EngineConfig | None = None, key: bytes | None = None) -> PartitionModels:
        """The models a checkpoint holds; :class:`CheckpointError` says why it cannot be used.

        With ``key`` only a checkpoint signed with that key is used. Behaviour trees written for
        other hyperparameters are not used: the partition's trees start fresh
        (``behaviour_origin="fresh"``), its drop-off model is restored.
        """
        header, payload = open_checkpoint(raw, key)
        if header.get("features") != list(snapshots.NAMES):
            raise CheckpointError("incompatible model checkpoint: written for other snapshot features")
        if _minor(str(header.get("river"))) != _minor(river.__version__):
            raise CheckpointError(f"incompatible model checkpoint: written with River {header.get('river')},"
                                  f" this worker runs {river.__version__}")
        if not isinstance(payload, dict):
            raise CheckpointError("corrupt model checkpoint: the payload is not a map")
        models = cls(partition, min_labels, config)
        models.dropoff_model, models.origin = dropoff_from_params(payload.get("dropoff")), "restored"
        if header.get("behaviour") == trees_spec(models.config):
            models.behaviour.load_data(payload.get("behaviour"))
            models.behaviour_origin = "restored"
        models.population.load_data(payload.get("population", {}))
        if "churn" in payload:  # checkpoints written before the churn score have none
            models.churn.load_data(payload["churn"])
        if "hours" in payload:  # checkpoints written before send windows have none
            models.hours.load_data(payload["hours"])
        if "churn_learned" in payload:  # nor before its correction
            models.churn_learned.load_data(payload["churn_learned"])
        if "uplift" in payload:  # nor before the uplift estimators
            models.uplift = UpliftModels.from_data(payload["uplift"])
        if "bandits" in payload:  # only when a playbook has variants
            models.bandits.load_data(payload["bandits"])
        models.labels = integer(header.get("labels"), "labels")
        models.dropped = integer(header.get("dropped"), "dropped")
        models.clock, models.fed = (floats({n: header[n]}, n)[n] if header.get(n) is not None else None
                                    for n in ("clock", "fed"))
        models.cut = None if header.get("cut") is None else Cut.from_data(header["cut"])
        return models

    @classmethod
    def restore(cls, raw: bytes | None, partition: int = 0, min_labels: int = 200,
                config: EngineConfig | None = None, key: bytes | None = None) -> PartitionModels:
        """Restored models, or fresh ones when there is no checkpoint (``origin="fresh"``) or it
        cannot be used (``origin="failed"``, ``problem`` set): a worker never stops on a bad one."""
        if raw is None:
            return cls(partition, min_labels, config)
        try:
            return cls.from_bytes(raw, partition, min_labels, config, key)
        except CheckpointError as error:
            problem = str(error)
        except Exception as error:  # noqa: BLE001 - whatever a forged checkpoint trips on, the worker goes on
            problem = f"corrupt model checkpoint: {type(error).__name__}"
        models = cls(partition, min_labels, config)
        models.origin, models.problem = "failed", problem
        return models


def dropoff_params(model: ScaledLogistic | compose.Pipeline) -> dict[str, Any]:
    """The learned drop-off model's parameters: the scaler's running statistics, the weights, the
    intercept and the optimiser's step count (everything :func:`dropoff_pipeline` learns)."""
    if isinstance(model, ScaledLogistic):
        return {"counts": dict(model.counts), "means": dict(model.means), "vars": dict(model.vars),
                "weights": dict(model.weights), "intercept": model.intercept, "iterations": model.iterations}
    scaler, logistic = model.steps.values()
    return {"counts": dict(scaler.counts), "means": dict(scaler.means), "vars": dict(scaler.vars),
            "weights": dict(logistic._weights), "intercept": logistic.intercept,  # noqa: SLF001 - River keeps them private
            "iterations": logistic.optimizer.n_iterations}


def dropoff_from_params(params: Any) -> ScaledLogistic:
    """A :func:`dropoff_pipeline` holding ``params`` (as :func:`dropoff_params` wrote them)."""
    if not isinstance(params, dict):
        raise CheckpointError("corrupt model checkpoint: the drop-off model is not a map")
    model = dropoff_pipeline()
    counts = floats(params.get("counts"), "scaler counts")
    if any(c != int(c) or c < 0 for c in counts.values()):
        raise CheckpointError("corrupt model checkpoint: scaler counts are not counts")
    model.counts = {name: int(c) for name, c in counts.items()}
    model.means = dict(floats(params.get("means"), "scaler means"))
    model.vars = dict(floats(params.get("vars"), "scaler variances"))
    model.weights = dict(floats(params.get("weights"), "weights"))
    model.intercept = floats({"intercept": params.get("intercept")}, "intercept")["intercept"]
    model.iterations = integer(params.get("iterations"), "optimiser iterations")
    return model


def behaviour_trees(config: EngineConfig) -> WindowedTrees:
    """Fresh Half-Space Trees over :data:`forethought.core.detectors.behaviour.NAMES`, as ``config`` asks."""
    return WindowedTrees(behaviour.NAMES, n_trees=config.anomaly_trees, height=config.anomaly_tree_height,
                         window=config.anomaly_window_seconds, guard=config.allowed_lateness_seconds,
                         alert_rate=config.anomaly_alert_rate, min_reference=config.anomaly_min_reference,
                         seed=config.anomaly_seed, mass_floor=config.anomaly_mass_floor)


def trees_spec(config: EngineConfig) -> dict[str, Any]:
    """What a checkpoint's trees must match to be used: features, shape, seed, window and mass floor
    (everything that shapes the masses or the scale of the scores its histograms hold)."""
    return {"features": list(behaviour.NAMES), "trees": config.anomaly_trees, "height": config.anomaly_tree_height,
            "seed": config.anomaly_seed, "window": config.anomaly_window_seconds,
            "mass_floor": config.anomaly_mass_floor}


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])
