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

A customer idle past the TTL leaves the live states but not the base: a compact
:class:`~forethought.core.summary.Summary` takes their state's place (:meth:`~PartitionRuntime.summary`,
in the store too); their next record continues from it (:func:`~forethought.core.engine.resume`).

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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from forethought.contracts.events import Envelope, InboundEvent
from forethought.contracts.records import Outcome, Profile
from forethought.core.applied import advanced, seen
from forethought.core.config import EngineConfig
from forethought.core.deadlines import DeadlineIndex
from forethought.core.engine import Step, next_due, observe_outcome, observe_profile, process, resume, tick
from forethought.core.models import PartitionModels
from forethought.core.policy.profiles import ProfileState
from forethought.core.policy.rules import Rules, builtin_rules
from forethought.core.state import CustomerState
from forethought.core.summary import Summary, summarise

Record = InboundEvent | Profile | Outcome
Position = tuple[int, int, int]  # (lane, partition, offset) of a record: core.applied
NO_PROFILE = ProfileState()


@dataclass(frozen=True, slots=True)
class Emission:
    """What one record or one due tick of ``customer_id`` produced.

    ``step`` is None when the core raised (``error``): the customer keeps its prior state and
    nothing of that record or tick is published; or when the state had applied the record already
    (``replayed``): nothing changed. ``due`` is True for a tick (no record)."""

    customer_id: str
    step: Step | None
    due: bool = False
    error: Exception | None = None
    replayed: bool = False

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
    """States (a :class:`Summary`: the customer was evicted, store it in the state's place; None: delete
    it) and profiles changed since the last take."""

    states: dict[str, CustomerState | Summary | None] = field(default_factory=dict)
    profiles: dict[str, ProfileState] = field(default_factory=dict)


class PartitionRuntime:
    """The core's driver for one partition (see the module docstring).

    ``load_state``/``load_profile`` read what the cache does not hold (the worker's tables after a
    restart or when the cache dropped a clean customer; a :class:`Summary` for an evicted one);
    ``capacity`` bounds the live states kept
    in memory (None: all). ``limit`` caps how far events may push the clock: a driver that knows
    some input is still behind (records on the broker not yet read) sets it, so no one is judged
    silent on the strength of one topic alone.
    """

    def __init__(self, partition: int, config: EngineConfig, rules: Rules | None = None,
                 models: PartitionModels | None = None, *,
                 load_state: Callable[[str], CustomerState | Summary | None] = lambda _c: None,
                 load_profile: Callable[[str], ProfileState | None] = lambda _c: None,
                 capacity: int | None = None) -> None:
        self.partition, self.config, self.models = partition, config, models
        self.rules = rules or builtin_rules()
        self.load_state, self.load_profile, self.capacity = load_state, load_profile, capacity
        self.now: float | None = None
        self.fed: float | None = None  # the newest event time records have moved the clock to (not restore)
        self.limit = math.inf
        self.deadlines: DeadlineIndex[str] = DeadlineIndex()
        self._states: dict[str, CustomerState] = {}
        self._summaries: dict[str, bytes] = {}  # evicted customers' summaries, encoded (tens of bytes each)
        self._profiles: dict[str, ProfileState] = {}
        self._dirty: set[str] = set()
        self._dirty_profiles: set[str] = set()

    def feed(self, record: Record, position: Position | None = None) -> list[Emission]:
        """Run one record; an event first advances the clock to its time (capped by ``limit``).

        Returns the due ticks that fired on the way, then the record's own emission. ``position``
        (``(lane, partition, offset)``, :mod:`forethought.core.applied`) is where the driver read the
        record: one the customer's state has applied already (re-delivered after a crash) changes
        nothing and comes back with ``replayed`` set."""
        emitted: list[Emission] = []
        event = isinstance(record, Envelope)
        if event:
            at = min(record.epoch, self.limit)  # type: ignore[union-attr]  # an Envelope
            if self.fed is None or at > self.fed:
                self.fed = at
            if self.now is None or at > self.now:
                emitted = self.advance(at)
        customer = record.customer_id
        try:  # the core mutates states in place: it runs on a draft, the held state stays as it was
            state = self._states.get(customer) or self.state(customer)  # an unreadable stored state raises here
            revived = self._comes_back(customer, state, record)
            if revived:  # back after idle eviction: continue from the summary (a garbled one raises here)
                state = self._revive(customer, state)
            if position is not None and state is not None and seen(state.applied, *position):
                self._rewrite(customer, record)
                emitted.append(Emission(customer, None, replayed=True))
                return emitted
            draft = None if state is None else state.draft()
            if event:  # the common case, without _run's dispatch
                profile = self._profiles.get(customer) or self.profile(customer)
                step = (resume if revived else process)(draft, record, self.config, self.rules, profile,  # type: ignore[arg-type]
                                                        self.models)
            else:
                step = self._run(draft, record)
        except Exception as error:  # noqa: BLE001 - one record never stops the engine (rule 6)
            emitted.append(Emission(customer, None, error=error))
            return emitted
        if revived:
            self._summaries.pop(customer, None)
        if position is not None and step.state is not None:
            step.state.applied = advanced(step.state.applied, *position)
        self._apply(customer, step)
        emitted.append(Emission(customer, step))
        return emitted

    def advance(self, now: float) -> list[Emission]:
        """Move the clock to ``now`` (never back) and tick every customer due by then.

        A customer whose tick raises keeps its state and leaves the deadline index (it is not tried
        again at every advance); its next record, or the next :meth:`restore`, tries again. A restored
        state may be due at or before the clock :meth:`restore` set (its ticks were missed before the
        restart): the next advance, to that very time too, fires them."""
        if self.now is not None and now < self.now:
            return []
        self.now = now
        emitted: list[Emission] = []
        if not self.deadlines.due_by(now):
            return emitted
        for customer in self.deadlines.pop_due(now):
            try:
                if (state := self.state(customer)) is None:
                    continue
                draft = state.draft(tick=True)  # a tick reads the windows, and copies the ledger to change it
                step = tick(draft, now, self.config, self.rules, self.profile(customer), self.models)
            except Exception as error:  # noqa: BLE001 - one customer never stops the others' time
                emitted.append(Emission(customer, None, due=True, error=error))
                continue
            self._apply(customer, step, state)
            emitted.append(Emission(customer, step, due=True))
        return emitted

    def state(self, customer_id: str) -> CustomerState | None:
        """The customer's live state (loaded through ``load_state`` on a miss), None when unknown."""
        state = self._states.get(customer_id)
        if state is None and (customer_id in self._summaries or customer_id in self._dirty):
            return None  # evicted: summarised (the store has the state until the driver takes the summary)
        if state is None and (stored := self.load_state(customer_id)) is not None:
            if type(stored) is Summary:
                self._summaries[customer_id] = stored.to_bytes()
                return None
            state = self._states[customer_id] = stored  # type: ignore[assignment]
        return state

    def summary(self, customer_id: str) -> Summary | None:
        """The summary of a customer evicted after idling past the TTL (None: live, or never seen)."""
        if customer_id not in self._summaries and self.state(customer_id) is not None:
            return None
        raw = self._summaries.get(customer_id)
        return None if raw is None else Summary.from_bytes(raw, self.config)

    def summaries(self) -> Iterable[Summary]:
        """The summaries held in memory (every evicted customer when there is no ``capacity``)."""
        return (Summary.from_bytes(raw, self.config) for raw in list(self._summaries.values()))

    def summary_bytes(self) -> int:
        """The encoded size of the summaries held in memory (what each costs: docs/churn-quality.md)."""
        return sum(map(len, self._summaries.values()))

    def profile(self, customer_id: str) -> ProfileState:
        """The customer's profile and unsubscribes (an empty profile when nothing is known)."""
        profile = self._profiles.get(customer_id)
        if profile is None:
            profile = self.load_profile(customer_id) or NO_PROFILE
            self._profiles[customer_id] = profile
        return profile

    def restore(self, states: Iterable[CustomerState | Summary]) -> int:
        """Hold restored states (after a restart or a rebalance): their deadlines, and the clock at
        the newest event among them; beyond ``capacity`` a state is not held (it stays in the
        driver's store and comes back through ``load_state``). Returns how many were taken."""
        count = 0
        for state in states:
            if isinstance(state, Summary):  # evicted: no deadline; kept in memory unless the cache is bounded
                if self.capacity is None:
                    self._summaries[state.customer_id] = state.to_bytes()
                count += 1
                continue
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

    def restore_dues(self, dues: Mapping[str, float], newest: float | None) -> None:
        """:meth:`restore_due` for many customers at once (the index built in one bulk operation):
        each due customer's deadline, and the newest event time among them all."""
        self.deadlines.update(dues)
        if newest is not None and (self.now is None or newest > self.now):
            self.now = newest

    def take_dirty(self) -> Dirty:
        """What changed since the last take; then, beyond ``capacity``, the oldest clean states leave
        memory (they are on the driver's store and come back through ``load_state``)."""
        dirty = Dirty({c: self._states.get(c) or self._stored_summary(c) for c in self._dirty},
                      {c: self._profiles[c] for c in self._dirty_profiles})
        self._dirty, self._dirty_profiles = set(), set()
        self._trim()
        if self.capacity is not None:  # taken: the driver's store has them (load_state brings one back)
            self._summaries.clear()
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
        if isinstance(record, Profile):  # the later of its own time and the event time records reached
            at = record.updated_at.timestamp()  # (not a clock restored from states flushed after this record)
            return observe_profile(state, profile, record, max(at, self.fed or at), self.config)
        if isinstance(record, Outcome):
            return observe_outcome(state, profile, record, self.config, self.rules, self.models)
        assert state is None or state.customer_id == customer
        return process(state, record, self.config, self.rules, profile, self.models)

    def _apply(self, customer: str, step: Step, before: CustomerState | None = None) -> None:
        if step.profile is not None:
            self._profiles[customer] = step.profile
            self._dirty_profiles.add(customer)
        self._dirty.add(customer)
        state = step.state
        if state is None:
            self._states.pop(customer, None)
            self.deadlines.set(customer, None)
            if before is not None:  # evicted after idling: a summary takes the state's place
                self._summaries[customer] = summarise(before, self.now or 0.0, self.config).to_bytes()
            return
        state.finish()  # a draft takes over the slices the step left untouched
        if self.capacity is not None:  # re-inserted last: dict order is least recently changed first (_trim)
            self._states.pop(customer, None)
        self._states[customer] = state
        self.deadlines.set(customer, next_due(state, self.config))

    def _comes_back(self, customer: str, state: CustomerState | None, record: Record) -> bool:
        """Whether ``record`` brings back a customer evicted after idling: one held as a summary, or
        (the clock held back by ``limit``, so no tick evicted them yet) an event after a held state's TTL."""
        if state is None:
            return customer in self._summaries
        return isinstance(record, Envelope) and min(record.epoch, self.limit) < record.epoch and \
            self._idle(state, record.epoch)

    def _rewrite(self, customer: str, record: Record) -> None:
        """A record the state had applied: mark what it changed dirty, so the driver writes it again.

        The driver's local store can be ahead of its changelog after a crash (written locally, the
        changelog write lost with the process, the offset not committed): writing the same state again
        is what brings the changelog, which a restore elsewhere reads, up to what the record did."""
        if customer in self._states:
            self._dirty.add(customer)
        if isinstance(record, Profile) and customer in self._profiles:
            self._dirty_profiles.add(customer)

    def _stored_summary(self, customer: str) -> Summary | None:
        raw = self._summaries.get(customer)
        return None if raw is None else Summary.from_bytes(raw, self.config)

    def _idle(self, state: CustomerState | None, at: float) -> bool:
        """Whether ``state`` is idle past the TTL at ``at`` (as the engine's tick judges it)."""
        since = None if state is None else state.last_seen if state.last_seen is not None else state.created
        return since is not None and at - since >= self.config.windows.idle_ttl_seconds

    def _revive(self, customer: str, state: CustomerState | None) -> CustomerState:
        """The state to continue from: the summary's (a held state idle past the TTL is summarised first)."""
        summary = Summary.from_bytes(self._summaries[customer], self.config) if state is None else \
            summarise(state, self.now or 0.0, self.config)
        return summary.revive(self.config)

    def _trim(self) -> None:
        if self.capacity is None or len(self._states) <= self.capacity:
            return
        for customer in list(self._states)[: len(self._states) - self.capacity]:
            del self._states[customer]
            self._profiles.pop(customer, None)
