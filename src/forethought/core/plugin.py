"""The detector plug-in contract: what one detector module provides and what the engine hands it.

A detector is one module (the built-in ones live in :mod:`forethought.core.detectors`) with one
:class:`Detector` subclass. It owns

- its **settings section**: a frozen dataclass (``Settings``) whose field names are engine setting
  names (``FORETHOUGHT_ENGINE__<NAME>``), checked in its ``__post_init__``;
- its **slice of the customer state**: a :class:`Slice` subclass with its own codec table
  (``FIELDS``, append-only) and ``VERSION``, stored under its short ``KEY``;
- its **hooks**: :meth:`~Detector.before_event` (the event's time has come: close what ended
  before it), :meth:`~Detector.on_event` (fold the event in), :meth:`~Detector.due` and
  :meth:`~Detector.on_due` (a time of its own, such as a silence deadline),
  :meth:`~Detector.look_due` and :meth:`~Detector.on_look` (the customer's daily looks);
- the **facts** it offers playbooks (``scores.*`` and ``features.*``) and the **signals** it emits:
  :class:`~forethought.core.signals.Detection` objects with their reasons.

The engine (:mod:`forethought.core.engine`) calls the hooks of every detector in the registry
(:mod:`forethought.core.registry`) in registry order; a hook reports through the :class:`Moment`.

>>> moment = Moment(at=60.0, config=None, models=None)
>>> moment.observe("label", {"label": 1})
>>> [(o.kind, o.detail) for o in moment.observations], moment.detections
([('label', {'label': 1})], [])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar

from forethought.core.signals import Detection, Observation
from forethought.core.state_codec import Field, decode_table, encode_table
from forethought.core.views import EngineView

if TYPE_CHECKING:
    from forethought.contracts.events import InboundEvent
    from forethought.core.state import CustomerState

NEVER = math.inf


@dataclass(slots=True)
class Moment:
    """One engine call's surroundings, handed to every hook: the event time ``at``, the engine
    config, the partition's models (None: no learned scores), the playbooks and the customer's
    profile; hooks report by :meth:`detect` and :meth:`observe`."""

    at: float
    config: EngineView
    models: Any  # the partition's models (forethought.core.models.PartitionModels) or None
    rules: Any = None  # the compiled playbooks (forethought.core.policy.rules.Rules)
    profile: Any = None  # the customer's profile (forethought.core.policy.profiles.ProfileState)
    detections: list[Detection] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)

    def detect(self, detection: Detection | None) -> None:
        """Report a detection (None: nothing seen)."""
        if detection is not None:
            self.detections.append(detection)

    def observe(self, kind: str, detail: dict[str, Any]) -> None:
        """Report something a driver may count or log."""
        self.observations.append(Observation(kind, detail))


@dataclass(slots=True)
class Look:
    """One daily look at a customer (:mod:`forethought.core.due`): ``daily`` when a lifecycle
    playbook may hold now; ``full`` when playbooks run at this look (they read every fact).
    ``facts`` are built once per look by whoever needs them first (``build(brief)``)."""

    daily: bool
    build: Any  # Callable[[bool], dict[str, Any]]: the facts as of the look, brief or full
    found: dict[str, Any] | None = None
    full: bool = False

    def facts(self, brief: bool = False) -> dict[str, Any]:
        """The facts as of the look; brief ones (what a snapshot reads) unless ``full``."""
        if self.found is None:
            self.found = self.build(brief and not self.full)
        return self.found


def check_positive(section: Any, may_be_zero: set[str] | frozenset[str] = frozenset()) -> None:
    """Every field of a settings ``section`` must be > 0 (>= 0 for those in ``may_be_zero``); NaN fails.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Example:
    ...     alpha: float = 0.5
    ...     floor: float = 0.0
    >>> check_positive(Example(), {"floor"}), check_positive(Example(alpha=float("nan")), {"floor"})
    Traceback (most recent call last):
    ...
    ValueError: alpha must be > 0, got nan
    """
    for spec in fields(section):
        value = getattr(section, spec.name)
        if spec.name in may_be_zero:
            if not value >= 0:  # written so that NaN fails too
                raise ValueError(f"{spec.name} must be >= 0, got {value}")
        elif not value > 0:
            raise ValueError(f"{spec.name} must be > 0, got {value}")


class Slice:
    """A detector's part of the customer state: a mutable dataclass whose ``FIELDS`` table
    (:class:`~forethought.core.state_codec.Field`, append-only, in the dataclass's field order)
    is its codec. ``VERSION`` is the slice's own: raise it when the meaning of a stored field or
    how it is written changes, keep the older tables in ``FIELDS_BEFORE`` (by version) and turn
    their values into the new ones in :meth:`upgrade` when they mean something else."""

    __slots__ = ()

    KEY: ClassVar[str]
    VERSION: ClassVar[int] = 1
    FIELDS: ClassVar[tuple[Field, ...]] = ()
    FIELDS_BEFORE: ClassVar[dict[int, tuple[Field, ...]]] = {}  # the tables older versions were written by

    def copy(self) -> Slice:
        """An independent copy: mutable fields (lists, dicts, rings) not shared. The engine copies each
        customer's state before every record, so a slice with many fields writes this out by hand."""
        return type(self)(**{f.name: _copied(getattr(self, f.name)) for f in fields(self)})  # type: ignore[arg-type]

    def encode(self, anchor: int) -> list[Any] | None:
        """``[version, presence bits, values...]``, or None when every field has its default."""
        items = encode_table(self, self.FIELDS, anchor)
        return None if items[0] == 0 else [self.VERSION, *items]

    @classmethod
    def decode(cls, items: list[Any], anchor: int, config: EngineView) -> Slice:
        """Inverse of :meth:`encode`; ValueError on anything else (a newer version included)."""
        if len(items) < 2 or type(items[0]) is not int:
            raise ValueError(f"a stored {cls.KEY!r} slice is malformed")
        version = items[0]
        if version > cls.VERSION or version < 1:
            raise ValueError(f"slice {cls.KEY!r} version {version} is not readable by this version")
        values = decode_table(items[1:], anchor, config, cls.FIELDS_BEFORE.get(version, cls.FIELDS))
        return cls.upgrade(version, values, config)

    @classmethod
    def upgrade(cls, version: int, values: dict[str, Any], config: EngineView) -> Slice:
        """A slice from the decoded ``values`` of an older ``version`` (the same one by default)."""
        return cls(**values)

    @classmethod
    def new(cls, config: EngineView) -> Slice:
        """The slice of a customer never seen before."""
        return cls(**{f.name: f.fill(config, {}) for f in cls.FIELDS if f.fill is not None})

    @classmethod
    def from_legacy(cls, flat: dict[str, Any], config: EngineView) -> Slice:
        """The slice from a state written before slices (fields kept the same names)."""
        fresh = cls.new(config)
        for f in cls.FIELDS:
            if f.name in flat:
                setattr(fresh, f.name, flat[f.name])
        return fresh


def _copied(value: Any) -> Any:
    if isinstance(value, list):
        return [_copied(v) for v in value]
    if isinstance(value, dict):
        return {k: _copied(v) for k, v in value.items()}
    return value.copy() if hasattr(value, "copy") and not isinstance(value, (str, bytes)) else value


class Detector:
    """Base of every detector: hooks that do nothing, so a detector overrides only what it uses.

    Class attributes: ``name`` (the registry's and the settings section's name), ``Settings`` (a
    frozen dataclass of its settings, or None), ``State`` (its :class:`Slice`, or None),
    ``signals`` (what its detections are called: the ``on:`` of playbooks), ``scores`` and
    ``features`` (the fact names it offers: ``scores.<name>``, ``features.<name>``) and
    ``open_features`` (``features.<name>.<anything>`` maps)."""

    name: ClassVar[str]
    Settings: ClassVar[type | None] = None
    State: ClassVar[type[Slice] | None] = None
    signals: ClassVar[tuple[str, ...]] = ()
    scores: ClassVar[tuple[str, ...]] = ()
    features: ClassVar[tuple[str, ...]] = ()
    open_features: ClassVar[tuple[str, ...]] = ()
    needs: ClassVar[tuple[str, ...]] = ()  # detectors whose slices or settings this one reads
    look_cost: ClassVar[int] = 0  # the engine asks cheaper look_due hooks first (any may end the search)
    event_types: ClassVar[frozenset[str] | None] = None  # the event types on_event acts on (None: every type)

    def check(self, config: EngineView) -> None:
        """Check settings across sections (``config`` has them all); raise ValueError."""

    def on_engaged(self, state: CustomerState, s: Any, m: Moment) -> None:
        """The customer engaged with a message at ``m.at`` (opened, clicked or converted)."""

    def on_profile(self, state: CustomerState, s: Any, m: Moment) -> None:
        """A profile record new to this customer's state arrived (``m.profile``: the table's entry with
        it). The only moment a detector may copy from it into the state: at events and looks the profile
        table can be ahead of the records being run again after a crash, so what they copy would differ
        from the undisturbed run."""

    def before_event(self, state: CustomerState, event: InboundEvent, ts: float, s: Any, m: Moment) -> None:
        """The customer is active at ``ts`` (not late, not a duplicate): close what ended before it.
        Runs before the shared windows (visits, ``last_seen``, the activity ring) move to ``ts``."""

    def on_event(self, state: CustomerState, event: InboundEvent, ts: float, s: Any, m: Moment) -> None:
        """Fold the event in, after the shared windows moved to ``ts``."""

    def due(self, state: CustomerState, s: Any) -> float | None:
        """The event time at which :meth:`on_due` has something to do (None: nothing)."""
        return None

    def on_due(self, state: CustomerState, due: float, s: Any, m: Moment) -> None:
        """Event time reached ``due`` (at or after :meth:`due`)."""

    def look_due(self, state: CustomerState, soon: float, s: Any, m: Moment) -> float:
        """The first daily slot, from ``soon`` on, at which a look can change something for this
        detector (:data:`NEVER`: none; ``soon`` or earlier: the next slot)."""
        return NEVER

    def on_look(self, state: CustomerState, s: Any, m: Moment, look: Look) -> None:
        """A daily look at ``m.at``."""

    def facts(self, state: CustomerState, now: float, s: Any, m: Moment, found: dict[str, Any], brief: bool) -> None:
        """Add this detector's ``scores`` and ``features`` as of ``now`` to ``found``; ``brief``: only
        what a learned-model snapshot reads (:mod:`forethought.core.snapshots`)."""

    def explain(self, state: CustomerState, now: float, s: Any, m: Moment) -> dict[str, Any]:
        """This detector's part of :func:`forethought.core.engine.explain` (for people and web views)."""
        return {}

    def summarise(self, state: CustomerState, s: Any) -> list[float | int] | None:
        """The few numbers of this detector's slice that outlive idle eviction (kept in the customer's
        summary, :mod:`forethought.core.summary`: every idle customer carries them, so a handful of
        small ints); None: nothing."""
        return None

    def revive(self, state: CustomerState, part: list[float | int], s: Any) -> None:
        """Put ``part`` (from :meth:`summarise`) back into this detector's slice of ``state``, rebuilt
        from a summary to score an idle customer or to carry on when they come back; ValueError when
        ``part`` is malformed."""
