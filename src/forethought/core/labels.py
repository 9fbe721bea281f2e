"""Delayed labels for the learned drop-off model: snapshot daily, label when the answer is known.

At a customer's daily check the engine takes a snapshot of their features (one pending snapshot
per customer, so the state stays small). The snapshot's label becomes known

* as soon as the customer is active again within the horizon: label 0, "came back";
* when the horizon passes without activity (seen at a daily check, or by a later event): label 1,
  "dropped";

and the partition's model learns it once, at that moment; the snapshot is then cleared and the
next daily check takes a new one. A customer who stays silent keeps one snapshot until the
horizon passes, so every silence of at least the horizon gives exactly one "dropped" label.

>>> from forethought.core import snapshots
>>> from forethought.core.config import EngineConfig
>>> from forethought.core.models import PartitionModels
>>> from forethought.core.state import CustomerState
>>> config, models = EngineConfig(label_horizon_seconds=14 * 86_400), PartitionModels()
>>> state = CustomerState.new("c1", config)
>>> state.last_seen = 1_790_000_000.0
>>> x = bytes(len(snapshots.FEATURES))  # quantised features (core.snapshots.codes)
>>> take_snapshot(state, 1_790_050_000.0, x) and state.snapshot is not None
True
>>> take_snapshot(state, 1_790_136_400.0, x)  # one pending at a time
False
>>> on_activity(state, 1_790_060_000.0, config, models), state.snapshot, models.labels
(Label(label=0, taken_at=1790050000.0), None, 1)
>>> on_activity(state, 1_790_070_000.0, config, models) is None  # nothing pending: no label
True
"""

from __future__ import annotations

from typing import NamedTuple

from forethought.core import snapshots
from forethought.core.config import EngineConfig
from forethought.core.models import PartitionModels
from forethought.core.state import CustomerState


class Label(NamedTuple):
    """A resolved label: 1 when the customer dropped (no activity within the horizon), else 0."""

    label: int
    taken_at: float


def take_snapshot(state: CustomerState, at: float, data: bytes) -> bool:
    """Keep ``data`` (quantised features as of ``at``, :func:`~forethought.core.snapshots.codes`)
    unless a snapshot is already pending."""
    if state.snapshot is not None or state.last_seen is None:
        return False
    state.snapshot = snapshots.encode(at, data)
    return True


def on_activity(state: CustomerState, ts: float, config: EngineConfig, models: PartitionModels) -> Label | None:
    """The customer was active at ``ts``: resolve a pending snapshot taken before ``ts``."""
    pending = _pending(state)
    if pending is None or ts <= pending[0]:
        return None
    return _learn(state, pending, ts - pending[0] > config.label_horizon_seconds, models)


def on_check(state: CustomerState, now: float, config: EngineConfig, models: PartitionModels) -> Label | None:
    """A daily check at ``now``: resolve a pending snapshot whose horizon has passed (label 1)."""
    pending = _pending(state)
    if pending is None or now - pending[0] < config.label_horizon_seconds:
        return None
    return _learn(state, pending, True, models)


def _pending(state: CustomerState) -> tuple[float, dict[str, float]] | None:
    if state.snapshot is None:
        return None
    try:
        return snapshots.decode(state.snapshot)
    except ValueError:  # written by another feature set: it cannot be learned from
        state.snapshot = None
        return None


def _learn(state: CustomerState, pending: tuple[float, dict[str, float]], dropped: bool,
           models: PartitionModels) -> Label:
    state.snapshot = None
    models.learn_dropoff(pending[1], dropped)
    return Label(int(dropped), pending[0])
