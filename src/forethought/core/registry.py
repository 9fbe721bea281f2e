"""The registry of detectors: which run, in which order. Adding a detector is one new module
(:mod:`forethought.core.plugin` says what it provides) and one line in :data:`BUILTIN`.

Order matters where detectors read each other's slices within one event: the error-burst slice
is read by the behaviour detector before it moves to the event's bucket, the learned drop-off
model reads the facts every other detector offers. A registry checks that names, slice keys,
signals and fact names are unique:

>>> registry = builtin_registry()
>>> [d.name for d in registry][:3], "silence" in registry.signals
(['decline', 'silence', 'behaviour'], True)
>>> registry.with_detector(registry["silence"])
Traceback (most recent call last):
...
ValueError: detector 'silence' is registered twice
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

from forethought.core.detectors.active_hours import ActiveHours
from forethought.core.detectors.behaviour import Behaviour
from forethought.core.detectors.churn import Churn
from forethought.core.detectors.churn_learned import ChurnLearned
from forethought.core.detectors.decline import Decline
from forethought.core.detectors.error_burst import ErrorBurst
from forethought.core.detectors.learned_dropoff import LearnedDropoff
from forethought.core.detectors.lifecycle import Lifecycle
from forethought.core.detectors.silence import Silence
from forethought.core.detectors.usage import UsageAnomaly
from forethought.core.plugin import Detector, Slice
from forethought.core.views import EngineView

# The built-in detectors, in the order their hooks run. One line per detector.
BUILTIN: tuple[type[Detector], ...] = (
    Decline,
    Silence,
    Behaviour,
    ErrorBurst,
    UsageAnomaly,
    Lifecycle,
    LearnedDropoff,  # its score reads the facts of all the others
    Churn,  # scores.churn: buy-till-you-die in closed form, its prior learned per partition
    ActiveHours,  # no signal: each customer's active hours of the day, for send windows (core.sendtime)
    ChurnLearned,  # scores.churn_learned: scores.churn corrected by a model learned online (after Churn)
)
ENGINE_FEATURES = ("events", "visits", "error_total", "late_events", "days_since_first_seen",
                   "days_since_last_seen", "sessions", "session_seconds", "events_last_hour",
                   "events_last_24_hours")


class Registry:
    """An ordered, checked set of detector instances."""

    __slots__ = ("_by_key", "_by_name", "detectors", "features", "open_features", "scores", "signals")

    def __init__(self, detectors: tuple[Detector, ...]) -> None:
        self.detectors = detectors
        self._by_name: dict[str, Detector] = {}
        self._by_key: dict[str, tuple[str, type[Slice]]] = {}
        signals: list[str] = []
        scores: list[str] = []
        features: list[str] = list(ENGINE_FEATURES)
        opened: list[str] = []
        for detector in detectors:
            _unique(detector.name, self._by_name, "detector")
            self._by_name[detector.name] = detector
            if detector.State is not None:
                _unique(detector.State.KEY, self._by_key, "slice key")
                self._by_key[detector.State.KEY] = (detector.name, detector.State)
            _extend(signals, detector.signals, "signal", detector.name)
            _extend(scores, detector.scores, "score", detector.name)
            _extend(features, detector.features, "feature", detector.name)
            _extend(opened, detector.open_features, "feature map", detector.name)
        for detector in detectors:
            missing = [need for need in detector.needs if need not in self._by_name]
            if missing:
                raise ValueError(f"detector {detector.name!r} needs {', '.join(map(repr, missing))}, not registered")
        self.signals, self.scores = tuple(signals), tuple(scores)
        self.features, self.open_features = tuple(features), tuple(opened)

    def __iter__(self) -> Iterator[Detector]:
        return iter(self.detectors)

    def __len__(self) -> int:
        return len(self.detectors)

    def __getitem__(self, name: str) -> Detector:
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def with_detector(self, detector: Detector, *, before: str | None = None) -> Registry:
        """This registry plus ``detector`` (at the end, or just before detector ``before``)."""
        if detector.name in self._by_name:
            raise ValueError(f"detector {detector.name!r} is registered twice")
        order = list(self.detectors)
        order.insert(order.index(self[before]) if before else len(order), detector)
        return Registry(tuple(order))

    def check(self, config: EngineView) -> None:
        """Checks across sections (each detector's :meth:`~forethought.core.plugin.Detector.check`)."""
        for detector in self.detectors:
            detector.check(config)

    def new_slices(self, config: EngineView) -> dict[str, Slice]:
        """Every detector's slice for a customer never seen before, by detector name."""
        return {name: state.new(config) for name, state in self._by_key.values()}

    def decode_slices(self, stored: dict[str, Any], anchor: int, config: EngineView) -> dict[str, Slice]:
        """The slices stored by key (:meth:`~forethought.core.plugin.Slice.encode`); a registered
        detector's missing slice is new, a stored slice of a detector no longer registered is dropped."""
        slices: dict[str, Slice] = {}
        for key, (name, state) in self._by_key.items():
            items = stored.get(key)
            if items is None:
                slices[name] = state.new(config)
            elif type(items) is list:
                slices[name] = state.decode(items, anchor, config)
            else:
                raise ValueError(f"a stored {key!r} slice is malformed")
        return slices

    def from_legacy(self, flat: dict[str, Any], config: EngineView) -> dict[str, Slice]:
        """The slices of a state written before slices existed (one flat set of fields)."""
        return {name: state.from_legacy(flat, config) for name, state in self._by_key.values()}


@cache
def builtin_registry() -> Registry:
    """The built-in detectors (one registry, shared)."""
    return Registry(tuple(detector() for detector in BUILTIN))


def _unique(name: str, seen: dict[str, Any], what: str) -> None:
    if name in seen:
        raise ValueError(f"{what} {name!r} is registered twice")


def _extend(names: list[str], more: tuple[str, ...], what: str, owner: str) -> None:
    for name in more:
        if name in names:
            raise ValueError(f"{what} {name!r} of detector {owner!r} is already offered")
        names.append(name)
