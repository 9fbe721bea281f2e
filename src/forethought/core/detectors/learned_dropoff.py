"""Delayed labels for the learned drop-off model: snapshot daily, label when the answer is known.

At a customer's daily check the engine takes a snapshot of their features (one pending snapshot
per customer, so the state stays small). The snapshot's label becomes known

* as soon as the customer is active again within the horizon: label 0, "came back";
* when the horizon passes without activity (seen at a daily check, or by a later event): label 1,
  "dropped";

and the partition's model learns it once, at that moment; the snapshot is then cleared and the
next daily check takes a new one. A customer who stays silent keeps one snapshot until the
horizon passes, so every horizon of silence gives one "dropped" label.

With ``snapshot_backoff`` = f > 1 the snapshots of one silence space out geometrically: the
first is taken at the first slot after the customer's last activity, and the gap from the j-th
snapshot (j = 0, 1, ...) to the next is ``label_horizon_seconds`` · f**j, capped at
``snapshot_backoff_max_seconds`` (never below the horizon). With a 14-day horizon and f = 2 a
customer silent for 545 days gives 6 "dropped" labels instead of 38. The schedule depends only on
``last_seen`` (:func:`snapshot_slot`), so activity resets it and no state is added.

>>> from forethought.core.config import EngineConfig
>>> from forethought.core.models import PartitionModels
>>> from forethought.core.state import CustomerState
>>> config, models = EngineConfig(label_horizon_seconds=14 * 86_400), PartitionModels()
>>> s = config.section("learned_dropoff")
>>> state = CustomerState.new("c1", config)
>>> state.last_seen = 1_790_000_000.0
>>> x = bytes(len(snapshots.FEATURES))  # quantised features (core.snapshots.codes)
>>> take_snapshot(state, 1_790_050_000.0, x) and of(state).snapshot is not None
True
>>> take_snapshot(state, 1_790_136_400.0, x)  # one pending at a time
False
>>> on_activity(state, 1_790_060_000.0, s, models), of(state).snapshot, models.labels
(Label(label=0, taken_at=1790050000.0, predicted=None, prior=0.0), None, 1)
>>> on_activity(state, 1_790_070_000.0, s, models) is None  # nothing pending: no label
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from forethought.core import snapshots
from forethought.core.codec_kinds import SNAPSHOT
from forethought.core.due import look_by, slot_after, slot_at_or_after
from forethought.core.plugin import NEVER, Detector, Look, Moment, Slice, check_positive
from forethought.core.state_codec import Field

if TYPE_CHECKING:
    from forethought.contracts.events import InboundEvent
    from forethought.core.state import CustomerState

NAME = "learned_dropoff"


@dataclass(frozen=True, slots=True)
class LearnedSettings:
    """The learned drop-off model (per partition, River): a daily snapshot is labelled "dropped" when no
    activity follows within the horizon; no score until the model has seen this many labels."""

    label_horizon_seconds: float = 14 * 86_400.0
    model_min_labels: int = 200
    # snapshots of one silence: the gap after the j-th is horizon * backoff**j (1: every horizon); 2 was
    # chosen on CDNOW's odd customer ids (docs/runtime/due-time.md)
    snapshot_backoff: float = 2.0
    # the longest gap between two snapshots of one silence (never below the horizon); 0: no cap
    snapshot_backoff_max_seconds: float = 0.0
    # report every look's scores (a ``daily_scores`` observation: what ``replay --truth`` grades); an
    # evaluation aid: off, a look that takes no snapshot builds no facts (docs/runtime/due-time.md)
    look_scores: bool = False

    def __post_init__(self) -> None:
        check_positive(self, {"snapshot_backoff_max_seconds", "look_scores"})
        if not self.snapshot_backoff >= 1.0:
            raise ValueError(f"snapshot_backoff must be >= 1, got {self.snapshot_backoff}")


@dataclass(slots=True)
class LearnedState(Slice):
    """The pending snapshot: its time and quantised features, base64 (:mod:`forethought.core.snapshots`)."""

    KEY: ClassVar[str] = "l"
    FIELDS: ClassVar[tuple[Field, ...]] = (Field("snapshot", SNAPSHOT),)  # append only

    snapshot: str | None = None

    def copy(self) -> LearnedState:
        return LearnedState(self.snapshot)


def of(state: CustomerState) -> LearnedState:
    """The customer's learned drop-off slice."""
    return state.slices[NAME]  # type: ignore[no-any-return]


def seen(state: CustomerState) -> LearnedState:
    """The slice to read only (:meth:`~forethought.core.state.CustomerState.peek`: no draft copy)."""
    return state.peek(NAME)  # type: ignore[no-any-return]


class LearnedDropoff(Detector):
    """Offers ``scores.dropoff_learned`` (None while the partition's model is cold); learns from labels."""

    name: ClassVar[str] = NAME
    Settings = LearnedSettings
    State = LearnedState
    scores = ("dropoff_learned",)

    def before_event(self, state: CustomerState, event: InboundEvent, ts: float, s: LearnedSettings,
                     m: Moment) -> None:
        if m.models is not None and (label := on_activity(state, ts, s, m.models)) is not None:
            m.observe(*observation(label, m.models))

    def on_engaged(self, state: CustomerState, s: LearnedSettings, m: Moment) -> None:
        """An engaged outcome is a label: the customer came back, even before an event shows it."""
        if m.models is not None and (label := on_activity(state, m.at, s, m.models)) is not None:
            m.observe(*observation(label, m.models))
            look_by(state, slot_after(state.customer_id, m.at))  # the next snapshot

    def look_due(self, state: CustomerState, soon: float, s: LearnedSettings, m: Moment) -> float:
        if m.models is None:
            return NEVER
        snapshot = seen(state).snapshot
        if snapshot is None:
            return NEVER if state.last_seen is None else snapshot_slot(state, soon, s)
        try:
            taken = snapshots.taken_at(snapshot)
        except ValueError:  # unreadable: the next look clears it
            return soon
        return max(soon, slot_at_or_after(state.customer_id, taken + s.label_horizon_seconds))

    def on_look(self, state: CustomerState, s: LearnedSettings, m: Moment, look: Look) -> None:
        """A horizon passed (label 1), then a new snapshot when one is due. The facts are built only
        when a snapshot is taken, playbooks read them at this look, or ``look_scores`` asks for them;
        the learned score in them is the model's on the snapshot's quantised features."""
        if m.models is None:
            return
        if (label := on_check(state, m.at, s, m.models)) is not None:
            m.observe(*observation(label, m.models))
        if state.last_seen is None:
            return
        due = seen(state).snapshot is None and snapshot_slot(state, m.at, s) == m.at
        report = look.full or s.look_scores  # the learned score in the facts, and the look's scores
        if not (due or report):
            return
        found = look.facts(brief=True)
        data = snapshots.codes(found)
        taken = due and take_snapshot(state, m.at, data)
        if not report:
            return
        scores = found["scores"]
        scores["dropoff_learned"] = m.models.dropoff(snapshots.from_codes(data)) if m.models.warm else None
        m.observe("daily_scores", {"at": m.at, "silence_seconds": found["features"]["silence_seconds"],
                                   "dropoff": scores["dropoff"], "dropoff_learned": scores["dropoff_learned"],
                                   "snapshot": taken})

    def facts(self, state: CustomerState, now: float, s: LearnedSettings, m: Moment, found: dict[str, Any],
              brief: bool) -> None:
        if brief:
            return
        learned = None
        if m.models is not None and m.models.warm and state.last_seen is not None:
            learned = m.models.dropoff(snapshots.vector(found))
        found["scores"]["dropoff_learned"] = learned

    def explain(self, state: CustomerState, now: float, s: LearnedSettings, m: Moment) -> dict[str, Any]:
        pending: dict[str, Any] | None = None
        snapshot = seen(state).snapshot
        if snapshot is not None:
            at, x = snapshots.decode(snapshot)
            pending = {"taken_at": at, "encoded": snapshot, "features": {k: round(v, 4) for k, v in x.items()}}
        models = m.models
        if models is None:
            return {"learned": {"model": None, "pending_snapshot": pending}}
        return {"learned": {"model": {"partition": models.partition, "labels_seen": models.labels,
                                      "dropped": models.dropped, "warm": models.warm, "origin": models.origin,
                                      "unsaved_labels": models.unsaved},
                            "pending_snapshot": pending}}


def observation(label: Label, models: Any) -> tuple[str, dict[str, Any]]:
    """The ``label`` observation (kind and detail) a driver counts."""
    return "label", {"model": "dropoff", "label": label.label, "taken_at": label.taken_at,
                     "partition": models.partition, "labels_seen": models.labels,
                     "predicted": label.predicted, "prior": label.prior}


class Label(NamedTuple):
    """A resolved label: 1 when the customer dropped (no activity within the horizon), else 0;
    ``predicted``: the model's score of the snapshot just before learning it (None while cold), and
    ``prior``: the silence score in the snapshot (prequential quality, docs/churn-quality.md)."""

    label: int
    taken_at: float
    predicted: float | None = None
    prior: float | None = None


def take_snapshot(state: CustomerState, at: float, data: bytes) -> bool:
    """Keep ``data`` (quantised features as of ``at``, :func:`~forethought.core.snapshots.codes`)
    unless a snapshot is already pending."""
    sl = of(state)
    if sl.snapshot is not None or state.last_seen is None:
        return False
    sl.snapshot = snapshots.encode(at, data)
    return True


def snapshot_slot(state: CustomerState, soon: float, s: LearnedSettings) -> float:
    """The first slot at or after ``soon`` (a slot) at which a snapshot may be taken: ``soon`` itself
    without backoff, else ``soon`` when it falls inside the horizon that follows one of the
    silence's snapshot times (the snapshot there has not been taken yet), or the next such time.

    >>> from forethought.core.config import EngineConfig
    >>> from forethought.core.state import CustomerState
    >>> config = EngineConfig(snapshot_backoff=2.0)
    >>> state = CustomerState.new("c1", config)
    >>> state.last_seen = 1_790_000_000.0
    >>> first = slot_after("c1", state.last_seen)
    >>> s, days = config.section(NAME), []
    >>> at = first
    >>> for _ in range(5):
    ...     at = snapshot_slot(state, at, s)
    ...     days.append(round((at - first) / 86_400))
    ...     at += s.label_horizon_seconds  # the look that labels it "dropped"
    >>> days  # the gaps are 14, 28, 56, 112 days
    [0, 14, 42, 98, 210]
    """
    factor = s.snapshot_backoff
    if factor <= 1.0 or state.last_seen is None:
        return soon
    horizon, cap = s.label_horizon_seconds, s.snapshot_backoff_max_seconds or math.inf
    at, gap = slot_after(state.customer_id, state.last_seen), horizon
    while at + horizon <= soon:  # that snapshot's horizon is over: the next one
        at = slot_at_or_after(state.customer_id, at + max(horizon, min(gap, cap)))
        gap *= factor
    return max(at, soon)


def on_activity(state: CustomerState, ts: float, s: LearnedSettings, models: Any) -> Label | None:
    """The customer was active at ``ts``: resolve a pending snapshot taken before ``ts``."""
    pending = _pending(state)
    if pending is None or ts <= pending[0]:
        return None
    return _learn(state, pending, ts - pending[0] > s.label_horizon_seconds, models)


def on_check(state: CustomerState, now: float, s: LearnedSettings, models: Any) -> Label | None:
    """A daily check at ``now``: resolve a pending snapshot whose horizon has passed (label 1). Most
    looks find none due: they read the snapshot's time alone (no copy of the slice, no decoding)."""
    snapshot = seen(state).snapshot
    if snapshot is None:
        return None
    try:
        if now - snapshots.taken_at(snapshot) < s.label_horizon_seconds:
            return None
    except ValueError:
        pass  # unreadable: _pending clears it
    pending = _pending(state)
    return None if pending is None else _learn(state, pending, True, models)


def _pending(state: CustomerState) -> tuple[float, dict[str, float]] | None:
    sl = of(state)
    if sl.snapshot is None:
        return None
    try:
        return snapshots.decode(sl.snapshot)
    except ValueError:  # written by another feature set: it cannot be learned from
        sl.snapshot = None
        return None


def _learn(state: CustomerState, pending: tuple[float, dict[str, float]], dropped: bool,
           models: Any) -> Label:
    of(state).snapshot = None
    predicted = models.dropoff(pending[1])  # test, then train
    models.learn_dropoff(pending[1], dropped)
    return Label(int(dropped), pending[0], predicted, pending[1].get("dropoff"))
