"""One partition's engine: the single driver of the core, as Kafka Streams' processor is.

A :class:`PartitionRuntime` owns what the core needs between records of one partition: the live
customer states (a cache in front of the driver's store), their profiles, the deadline index, the
partition's event clock and its River models. Every driver — the worker, ``replay``, the tests and
the benchmark — uses the same few calls:

- :meth:`~PartitionRuntime.feed` one decoded record (an event, a profile or an outcome); an event
  first advances the clock to its own time (``process``), so whatever came due before it fires first;
- :meth:`~PartitionRuntime.advance` the clock when no record does (``punctuate``: the worker's timer
  when input idles, replay's end);
- read what each call returns (:class:`Emission`: the customer and the core's :class:`Step`);
- :meth:`~PartitionRuntime.take_dirty` the states and profiles that changed since the last take, to
  persist them (the worker writes them to its changelogged tables once per commit interval).

Parity between the worker and replay is structural: both see the same emissions for the same
records in the same order. A record or a due tick the core raises on leaves the customer's state as
it was (the core runs on a copy) and comes back as an :class:`Emission` with its ``error``.

>>> from datetime import datetime, timezone
>>> from forethought.contracts.events import ErrorEvent
>>> from forethought.core.config import EngineConfig
>>> runtime = PartitionRuntime(0, EngineConfig(bucket_seconds=10, burst_min_errors=3))
>>> fired = []
>>> for i in range(3):
...     event = ErrorEvent(event_id=f"e{i}", customer_id="c1", code="E42",
...         occurred_at=datetime(2026, 11, 22, 12, 0, i, tzinfo=timezone.utc))
...     fired += [t.playbook for e in runtime.feed(event) for t in e.step.triggers]
>>> fired, runtime.state("c1").events, sorted(runtime.take_dirty().states)
(['error_burst'], 3, ['c1'])
>>> runtime.take_dirty().states   # nothing changed since
{}
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from forethought.contracts.events import Envelope, InboundEvent
from forethought.contracts.records import Outcome, Profile
from forethought.core.config import EngineConfig
from forethought.core.deadlines import DeadlineIndex
from forethought.core.engine import Step, next_due, observe_outcome, observe_profile, process, tick
from forethought.core.models import PartitionModels
from forethought.core.policy.profiles import ProfileState
from forethought.core.policy.rules import Rules, builtin_rules
from forethought.core.state import CustomerState

Record = InboundEvent | Profile | Outcome
NO_PROFILE = ProfileState()


@dataclass(frozen=True, slots=True)
class Emission:
    """What one record or one due tick of ``customer_id`` produced.

    ``step`` is None exactly when the core raised (``error``): the customer keeps its prior state
    and nothing of that record or tick is published. ``due`` is True for a tick (no record)."""

    customer_id: str
    step: Step | None
    due: bool = False
    error: Exception | None = None

    @property
    def failure(self) -> Exception:
        """The exception of a failed emission (``step`` is None).

        >>> Emission("c1", None, error=ValueError("bad")).failure
        ValueError('bad')
        """
        if self.error is None:
            raise ValueError(f"the emission of {self.customer_id!r} did not fail")
        return self.error


@dataclass(slots=True)
class Dirty:
    """States (None: the customer was evicted, delete it) and profiles changed since the last take."""

    states: dict[str, CustomerState | None] = field(default_factory=dict)
    profiles: dict[str, ProfileState] = field(default_factory=dict)


class PartitionRuntime:
    """The core's driver for one partition (see the module docstring).

    ``load_state``/``load_profile`` read what the cache does not hold (the worker's tables after a
    restart or when the cache dropped a clean customer); ``capacity`` bounds the live states kept
    in memory (None: all). ``limit`` caps how far events may push the clock: a driver that knows
    some input is still behind (records on the broker not yet read) sets it, so no one is judged
    silent on the strength of one topic alone.
    """

    def __init__(self, partition: int, config: EngineConfig, rules: Rules | None = None,
                 models: PartitionModels | None = None, *,
                 load_state: Callable[[str], CustomerState | None] = lambda _c: None,
                 load_profile: Callable[[str], ProfileState | None] = lambda _c: None,
                 capacity: int | None = None) -> None:
        self.partition, self.config, self.models = partition, config, models
        self.rules = rules or builtin_rules()
        self.load_state, self.load_profile, self.capacity = load_state, load_profile, capacity
        self.now: float | None = None
        self.limit = math.inf
        self.deadlines: DeadlineIndex[str] = DeadlineIndex()
        self._states: dict[str, CustomerState] = {}
        self._profiles: dict[str, ProfileState] = {}
        self._dirty: set[str] = set()
        self._dirty_profiles: set[str] = set()

    def feed(self, record: Record) -> list[Emission]:
        """Run one record; an event first advances the clock to its time (capped by ``limit``).

        Returns the due ticks that fired on the way, then the record's own emission."""
        emitted: list[Emission] = []
        event = isinstance(record, Envelope)
        if event:
            at = min(record.epoch, self.limit)  # type: ignore[union-attr]  # an Envelope
            if self.now is None or at > self.now:
                emitted = self.advance(at)
        customer = record.customer_id
        try:  # the core mutates states in place: it runs on a draft, the held state stays as it was
            state = self._states.get(customer) or self.state(customer)  # an unreadable stored state raises here
            draft = None if state is None else state.draft()
            if event:  # the common case, without _run's dispatch
                profile = self._profiles.get(customer) or self.profile(customer)
                step = process(draft, record, self.config, self.rules, profile, self.models)  # type: ignore[arg-type]
            else:
                step = self._run(draft, record)
        except Exception as error:  # noqa: BLE001 - one record never stops the engine (rule 6)
            emitted.append(Emission(customer, None, error=error))
            return emitted
        self._apply(customer, step)
        emitted.append(Emission(customer, step))
        return emitted

    def advance(self, now: float) -> list[Emission]:
        """Move the clock to ``now`` (never back) and tick every customer due by then.

        A customer whose tick raises keeps its state and leaves the deadline index (it is not tried
        again at every advance); its next record, or the next :meth:`restore`, tries again."""
        if self.now is not None and now <= self.now:
            return []
        self.now = now
        emitted: list[Emission] = []
        if not self.deadlines.due_by(now):
            return emitted
        for customer in self.deadlines.pop_due(now):
            try:
                if (state := self.state(customer)) is None:
                    continue
                step = tick(state.draft(), now, self.config, self.rules, self.profile(customer), self.models)
            except Exception as error:  # noqa: BLE001 - one customer never stops the others' time
                emitted.append(Emission(customer, None, due=True, error=error))
                continue
            self._apply(customer, step)
            emitted.append(Emission(customer, step, due=True))
        return emitted

    def state(self, customer_id: str) -> CustomerState | None:
        """The customer's live state (loaded through ``load_state`` on a miss), None when unknown."""
        state = self._states.get(customer_id)
        if state is None and customer_id in self._dirty:
            return None  # evicted: the store still has it until the driver takes the deletion
        if state is None and (state := self.load_state(customer_id)) is not None:
            self._states[customer_id] = state
        return state

    def profile(self, customer_id: str) -> ProfileState:
        """The customer's profile and unsubscribes (an empty profile when nothing is known)."""
        profile = self._profiles.get(customer_id)
        if profile is None:
            profile = self.load_profile(customer_id) or NO_PROFILE
            self._profiles[customer_id] = profile
        return profile

    def restore(self, states: Iterable[CustomerState]) -> int:
        """Hold restored states (after a restart or a rebalance): their deadlines, and the clock at
        the newest event among them; beyond ``capacity`` a state is not held (it stays in the
        driver's store and comes back through ``load_state``). Returns how many were taken."""
        count = 0
        for state in states:
            if self.capacity is None or len(self._states) < self.capacity:
                self._states[state.customer_id] = state
            self.deadlines.set(state.customer_id, next_due(state, self.config))
            if state.last_seen is not None and (self.now is None or state.last_seen > self.now):
                self.now = state.last_seen
            count += 1
        return count

    def restore_due(self, customer_id: str, due: float | None, last_seen: float | None) -> None:
        """What :meth:`restore` keeps of a state it does not hold, known without reading it: its
        deadline and its newest event time (the state stays in the driver's store)."""
        self.deadlines.set(customer_id, due)
        if last_seen is not None and (self.now is None or last_seen > self.now):
            self.now = last_seen

    def take_dirty(self) -> Dirty:
        """What changed since the last take; then, beyond ``capacity``, the oldest clean states leave
        memory (they are on the driver's store and come back through ``load_state``)."""
        dirty = Dirty({c: self._states.get(c) for c in self._dirty},
                      {c: self._profiles[c] for c in self._dirty_profiles})
        self._dirty, self._dirty_profiles = set(), set()
        self._trim()
        return dirty

    def has_dirty(self) -> bool:
        """Whether a state or profile changed since the last :meth:`take_dirty`."""
        return bool(self._dirty or self._dirty_profiles)

    def customers(self) -> list[CustomerState]:
        """The live states held in memory (every customer when there is no ``capacity``)."""
        return list(self._states.values())

    def __len__(self) -> int:
        return len(self._states)

    def _run(self, state: CustomerState | None, record: Record) -> Step:
        customer, profile = record.customer_id, self.profile(record.customer_id)
        if isinstance(record, Profile):  # the later of its own time and the partition's event time
            at = record.updated_at.timestamp()
            return observe_profile(state, profile, record, max(at, self.now or at), self.config)
        if isinstance(record, Outcome):
            return observe_outcome(state, profile, record, self.config, self.rules, self.models)
        assert state is None or state.customer_id == customer
        return process(state, record, self.config, self.rules, profile, self.models)

    def _apply(self, customer: str, step: Step) -> None:
        if step.profile is not None:
            self._profiles[customer] = step.profile
            self._dirty_profiles.add(customer)
        self._dirty.add(customer)
        state = step.state
        if state is None:
            self._states.pop(customer, None)
            self.deadlines.set(customer, None)
            return
        state.finish()  # a draft takes over the slices the step left untouched
        if self.capacity is not None:  # re-inserted last: dict order is least recently changed first (_trim)
            self._states.pop(customer, None)
        self._states[customer] = state
        self.deadlines.set(customer, next_due(state, self.config))

    def _trim(self) -> None:
        if self.capacity is None or len(self._states) <= self.capacity:
            return
        for customer in list(self._states)[: len(self._states) - self.capacity]:
            del self._states[customer]
            self._profiles.pop(customer, None)
