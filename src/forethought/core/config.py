"""Engine configuration: the shared window settings plus one settings section per detector.

Every setting has one flat name (``FORETHOUGHT_ENGINE__<NAME>`` in the environment); each name
belongs to exactly one section: :class:`WindowSettings` (what every detector shares) or the
``Settings`` of the detector that owns it (:mod:`forethought.core.plugin`). The detectors that run,
and so the sections that exist, come from the registry (:mod:`forethought.core.registry`).

>>> config = EngineConfig(burst_z=5.0)
>>> config.silence_z, config.burst_z, config.section("error_burst").burst_z
(2.33, 5.0, 5.0)
>>> EngineConfig(burst_z=-1)
Traceback (most recent call last):
...
ValueError: burst_z must be > 0, got -1
>>> EngineConfig(silence_zz=3)
Traceback (most recent call last):
...
ValueError: unknown engine setting 'silence_zz' (did you mean 'silence_z'?)
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any

from forethought.contracts.events import EVENT_KINDS
from forethought.core.plugin import Detector, check_positive
from forethought.core.registry import Registry, builtin_registry


@dataclass(frozen=True, slots=True)
class WindowSettings:
    """What every detector shares: buckets, lateness, duplicate ids, eviction, visits and looks.
    Times are in seconds of event time."""

    bucket_seconds: int = 60
    ring_buckets: int = 60
    allowed_lateness_seconds: float = 300.0
    max_future_seconds: float = 300.0
    recent_ids: int = 32
    idle_ttl_seconds: float = 180 * 86_400.0
    # a gap longer than this between events starts a new visit (a session)
    visit_gap_seconds: float = 1800.0
    # how many observations a customer-level prior is worth (silence gaps and error baselines)
    prior_weight: float = 3.0
    # look at every customer every day (as before core.due): results are the same, only slower; an
    # evaluation aid for scores "at every daily check" (benchmarks/dropoff_auc.py)
    look_every_day: bool = False

    def __post_init__(self) -> None:
        check_positive(self, {"allowed_lateness_seconds", "max_future_seconds", "visit_gap_seconds",
                              "look_every_day"})


class EngineConfig(Mapping[str, Any]):
    """Frozen engine settings: a read-only mapping of setting name to value, each setting also an
    attribute (``config.silence_z``); :meth:`section` gives one detector's settings object.

    ``detectors`` is the registry of detectors to run (default: the built-in ones)."""

    __slots__ = ("_flat", "before_hooks", "detectors", "due_hooks", "event_hooks", "event_hooks_by_type",
                 "look_actions", "look_hooks", "plan", "sections", "windows")

    def __init__(self, detectors: Registry | None = None, **settings: Any) -> None:
        registry = detectors or builtin_registry()
        owners = setting_owners(registry)
        for name in settings:
            if name not in owners:
                close = difflib.get_close_matches(name, owners, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise ValueError(f"unknown engine setting '{name}'{hint}")
        windows = WindowSettings(**{k: v for k, v in settings.items() if owners[k] == ""})
        sections: dict[str, Any] = {}
        for detector in registry:
            if detector.Settings is not None:
                own = {k: v for k, v in settings.items() if owners[k] == detector.name}
                sections[detector.name] = detector.Settings(**own)
        flat: dict[str, Any] = {f.name: getattr(windows, f.name) for f in fields(windows)}
        for section in sections.values():
            flat.update({f.name: getattr(section, f.name) for f in fields(section)})
        object.__setattr__(self, "windows", windows)
        object.__setattr__(self, "detectors", registry)
        object.__setattr__(self, "sections", sections)
        object.__setattr__(self, "_flat", flat)
        # (detector, its settings) in registry order: what the engine loops over
        plan = tuple((d, sections.get(d.name)) for d in registry)
        object.__setattr__(self, "plan", plan)
        # only the detectors that override a per-event hook are called for it
        object.__setattr__(self, "before_hooks", _overriding(plan, "before_event"))
        object.__setattr__(self, "event_hooks", _overriding(plan, "on_event"))
        # per event type, the on_event hooks that can act on it (Detector.event_types)
        object.__setattr__(self, "event_hooks_by_type", {
            kind: tuple((d, s) for d, s in self.event_hooks if d.event_types is None or kind in d.event_types)
            for kind in EVENT_KINDS})
        object.__setattr__(self, "look_actions", _overriding(plan, "on_look"))
        object.__setattr__(self, "due_hooks", _overriding(plan, "due"))
        looks = sorted(_overriding(plan, "look_due"), key=lambda pair: pair[0].look_cost)
        object.__setattr__(self, "look_hooks", tuple(looks))
        registry.check(self)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._flat[name]
        except (KeyError, AttributeError):  # (AttributeError: while not yet initialised)
            raise AttributeError(f"no engine setting {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("EngineConfig is frozen: use replace()")

    def __getitem__(self, name: str) -> Any:
        return self._flat[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._flat)

    def __len__(self) -> int:
        return len(self._flat)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EngineConfig):
            return NotImplemented
        return bool(self._flat == other._flat and self.detectors is other.detectors)

    def __hash__(self) -> int:
        return hash(tuple(self._flat.items()))

    def __repr__(self) -> str:
        default = _defaults(self.detectors)
        changed = ", ".join(f"{k}={v!r}" for k, v in self._flat.items() if default.get(k) != v)
        return f"EngineConfig({changed})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.detectors, dict(self._flat)))

    def section(self, name: str) -> Any:
        """The settings of detector ``name`` (KeyError when it has none or is not registered)."""
        return self.sections[name]

    def replace(self, **changes: Any) -> EngineConfig:
        """A copy with ``changes`` (flat setting names).

        >>> EngineConfig().replace(silence_z=3.0).silence_z
        3.0
        """
        return EngineConfig(self.detectors, **{**self.changed(), **changes})

    def changed(self) -> dict[str, Any]:
        """The settings that differ from their defaults."""
        default = _defaults(self.detectors)
        return {k: v for k, v in self._flat.items() if default.get(k) != v}


def setting_owners(registry: Registry) -> dict[str, str]:
    """Every engine setting name and its owner: a detector's name, or "" for the shared windows.

    >>> owners = setting_owners(builtin_registry())
    >>> owners["bucket_seconds"], owners["silence_z"], owners["burst_z"]
    ('', 'silence', 'error_burst')
    """
    owners = {f.name: "" for f in fields(WindowSettings)}
    for detector in registry:
        for spec in fields(detector.Settings) if detector.Settings is not None else ():
            if spec.name in owners:
                owner = "a shared window setting" if not owners[spec.name] else "of " + owners[spec.name]
                raise ValueError(f"engine setting {spec.name!r} of detector {detector.name!r} is already {owner}")
            owners[spec.name] = detector.name
    return owners


def setting_types(registry: Registry | None = None) -> dict[str, Any]:
    """Every engine setting name and its declared type, resolved (the settings layer coerces text to it).

    >>> setting_types()["silence_z"], setting_types()["look_every_day"]
    (<class 'float'>, <class 'bool'>)
    """
    registry = registry or builtin_registry()
    sections: list[Any] = [WindowSettings, *(d.Settings for d in registry if d.Settings is not None)]
    return {name: kind for section in sections for name, kind in typing.get_type_hints(section).items()
            if not name.startswith("_")}


def _overriding(plan: tuple[tuple[Detector, Any], ...], hook: str) -> tuple[tuple[Detector, Any], ...]:
    return tuple((d, s) for d, s in plan if getattr(type(d), hook) is not getattr(Detector, hook))


_DEFAULTS: dict[int, tuple[Registry, dict[str, Any]]] = {}


def _defaults(registry: Registry) -> dict[str, Any]:
    cached = _DEFAULTS.get(id(registry))
    if cached is None or cached[0] is not registry:
        cached = (registry, dict(EngineConfig(registry)._flat))
        _DEFAULTS[id(registry)] = cached
    return cached[1]


def _rebuild(registry: Registry, flat: dict[str, Any]) -> EngineConfig:
    return EngineConfig(registry, **flat)


__all__ = ["EngineConfig", "WindowSettings", "setting_owners", "setting_types"]
