"""Drives the core over batches of raw Kafka records; knows nothing of Faust.

The durability protocol (write-behind, as Kafka Streams' record cache): **an input offset is
committed only after every state change and every trigger that depends on it is on the broker.**
1. ``handle`` (sync): decode, route, and feed each record to its partition's
   :class:`~forethought.core.runtime.PartitionRuntime`, which keeps the live customer states;
2. the caller publishes the batch's dead letters, re-keyed events and triggers, and awaits delivery;
3. ``commit`` (sync, once per commit interval, not per batch): every customer changed since the
   last commit is written once to the state table (its changelog); the caller awaits those
   writes, and only then acknowledges the records handled since the last commit.
A crash before 3 has completed reads those records again from the last committed offset and
re-publishes the same trigger ids (consumers deduplicate by ``trigger_id``); a crash after the
states are written but before the offsets are committed reads records again whose effects the
states already hold: each state remembers how far it applied each input topic-partition
(:mod:`forethought.core.applied`), so those records change nothing and publish nothing
(docs/durability.md).

Each partition's River models are kept by :class:`~forethought.stream.model_checkpoints.ModelCheckpoints`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from forethought.contracts.decode import DEFAULT_DEADLETTER_MAX_BYTES, Record, Rejection, decode_event, describe
from forethought.contracts.events import Envelope
from forethought.contracts.records import DeadLetter, Outcome, Profile, Trigger
from forethought.core.clock import EventClock
from forethought.core.config import EngineConfig
from forethought.core.deadlines import DeadlineIndex
from forethought.core.engine import Step
from forethought.core.models import PartitionModels
from forethought.core.policy.profiles import ProfileState
from forethought.core.policy.rules import Rules, builtin_rules
from forethought.core.runtime import Emission, PartitionRuntime
from forethought.core.state import CustomerState
from forethought.core.summary import Summary
from forethought.ops.logs import get_logger
from forethought.ops.metrics import Metrics
from forethought.stream.index_rebuild import IndexRebuild
from forethought.stream.model_checkpoints import ModelCheckpoints
from forethought.stream.model_quality import ModelQuality
from forethought.stream.outbox import Outbox
from forethought.stream.rekey import Header, rekeyed
from forethought.stream.state_store import StateStore

log = get_logger("policy")
engine_log = get_logger("engine")  # records and ticks the engine raised on


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One Kafka record as any driver reads it; ``timestamp`` in POSIX seconds, ``headers`` as read."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float | None = None
    headers: Sequence[Header] = ()


class BatchProcessor(ModelCheckpoints, StateStore, IndexRebuild):
    """The worker's logic between Kafka and the core; ``table`` maps key bytes → state bytes and
    ``profiles`` key bytes → profile bytes (both changelogged by the caller).

    Each partition's customers live in a :class:`~forethought.core.runtime.PartitionRuntime` (the
    same driver replay uses); the tables are read when a customer is not in memory and written by
    :meth:`commit`, once per call for every customer changed since the last one (write-behind)."""

    def __init__(
        self,
        config: EngineConfig,
        table: MutableMapping[bytes, bytes],
        topic_kinds: dict[str, frozenset[str]],
        metrics: Metrics,
        max_event_bytes: int = 64 * 1024,
        idle_grace: float = 10.0,
        partition_for: Callable[[bytes], int] = lambda _key: 0,
        pending: Callable[[str, int], bool] = lambda _topic, _partition: False,
        profiles: MutableMapping[bytes, bytes] | None = None,
        rules: Rules | None = None,
        checkpoints: MutableMapping[bytes, bytes] | None = None,
        deadletter_max_bytes: int = DEFAULT_DEADLETTER_MAX_BYTES,
        cache_customers: int | None = None,
    ) -> None:
        self.config, self.table, self.topic_kinds, self.metrics = config, table, topic_kinds, metrics
        # each input's lane in the states' applied offsets (core.applied): its place in topic_kinds,
        # which the worker builds in BEHAVIOUR_INPUTS order (append only)
        self.lanes = {topic: lane for lane, topic in enumerate(topic_kinds)}
        self.profiles: MutableMapping[bytes, bytes] = {} if profiles is None else profiles
        self._rules = rules or builtin_rules()
        self.max_event_bytes, self.idle_grace = max_event_bytes, idle_grace
        self.partition_for = lru_cache(maxsize=1 << 17)(partition_for)  # murmur2 in Python: ~8 µs a key
        self._events_in: dict[tuple[str, str], Any] = {}  # metric children, looked up once per label set
        self.pending, self.deadletter_max_bytes = pending, deadletter_max_bytes
        self.cache_customers = cache_customers
        self.clocks: dict[tuple[str, int], EventClock] = {}
        self._partition_clocks: dict[int, list[tuple[str, EventClock]]] = {}
        self.runtimes: dict[int, PartitionRuntime] = {}
        self._unwritten: dict[str, CustomerState | Summary | None] = {}  # captured, not yet in the table (write-behind)
        self._unwritten_profiles: dict[str, ProfileState] = {}
        self.processed: dict[tuple[str, int], int] = {}
        self.checkpoints: MutableMapping[bytes, bytes] = {} if checkpoints is None else checkpoints
        self.models: dict[int, PartitionModels] = {}
        self._checkpoint_keys: dict[int, tuple[bytes, bytes]] = {}
        self._checkpoint_slot: dict[int, int] = {}
        self._checkpoint_seq: dict[int, int] = {}
        self._models_captured: dict[int, bytes] = {}
        self._models_checkpointed_at: dict[int, float] = {}
        self.strict_topics: frozenset[str] = frozenset()  # topics where an unknown field dead-letters the record
        self.table_on_disk = False  # RocksDB: read as it goes (a dict: copied first, it may change meanwhile)
        self.due_hints: MutableMapping[bytes, bytes] | None = None  # see StateStore.write
        self.signing_key: bytes | None = None  # when set, checkpoints are signed and only signed ones restored
        self.model_quality = ModelQuality()  # prequential AUC of the learned models (gauges)

    @property
    def rules(self) -> Rules:
        """The running playbooks; setting them (a reload) reaches every partition's runtime."""
        return self._rules

    @rules.setter
    def rules(self, rules: Rules) -> None:
        self._rules = rules
        for runtime in self.runtimes.values():
            runtime.rules = rules

    @property
    def deadlines(self) -> dict[int, DeadlineIndex[str]]:
        """Each held partition's deadline index."""
        return {p: r.deadlines for p, r in self.runtimes.items()}

    def runtime(self, partition: int) -> PartitionRuntime:
        """The runtime of ``partition`` (created on first use, with the partition's models)."""
        runtime = self.runtimes.get(partition)
        if runtime is None:
            runtime = self.runtimes[partition] = PartitionRuntime(
                partition, self.config, self._rules, self.model(partition), load_state=self._stored_state,
                load_profile=self._stored_profile, capacity=self.cache_customers)
        return runtime

    def clock(self, topic: str, partition: int) -> EventClock:
        """The event clock of one input topic-partition (``""``: times restored from state)."""
        clock = self.clocks.get((topic, partition))
        if clock is None:
            clock = self.clocks[(topic, partition)] = EventClock(idle_grace=self.idle_grace)
            self._partition_clocks.setdefault(partition, []).append((topic, clock))
        return clock

    def stream_time(self, partition: int, wall: float) -> float | None:
        """Event time up to which partition ``partition`` is complete (as in Kafka Streams).

        While any of its input topic-partitions still has records waiting, the slowest of those
        sets the time, so a customer whose next event is queued on a lagging topic is not seen as
        silent. When all are caught up, the freshest clock rules and advances once input idles. A
        clock that has seen no event yet takes no part (alone, :meth:`EventClock.now` reads the wall
        clock, which would fire every deadline of the partition up to today).
        """
        clocks = self._partition_clocks.get(partition, ())
        behind = self._behind(partition)
        if behind < math.inf:
            return behind
        return max((clock.now(wall) for _, clock in clocks if clock.event_max is not None), default=None)

    def _behind(self, partition: int) -> float:
        """The earliest newest-event-time among ``partition``'s topics that still have records
        waiting on the broker (infinity when none): how far records may move the clock."""
        behind = math.inf
        for topic, clock in self._partition_clocks.get(partition, ()):
            if topic and clock.event_max is not None and clock.event_max < behind and self.pending(topic, partition):
                behind = clock.event_max
        return behind

    def index(self, key: bytes) -> DeadlineIndex[str]:
        """The deadline index of ``key``'s partition."""
        return self.runtime(self.partition_for(key)).deadlines

    def handle(self, records: Iterable[RawRecord], wall: float) -> Outbox:
        """Phase 1 for a batch of inbound records, in the order given (ordered by event time when
        the worker's input ordering is on).

        Each record goes to its partition's runtime, which first advances the partition's clock to
        the record's time (no further than :meth:`_behind`) and then runs it. A record the engine
        raises on is dead-lettered (``processing_error``) and the batch goes on: the runtime runs
        each record on a copy, so the customer keeps the state it had before that record, and
        nothing the record produced is published.
        """
        outbox = Outbox()
        for record in records:
            self.processed[(record.topic, record.partition)] = record.offset + 1
            try:
                self._handle_one(record, wall, outbox)
            except Exception as error:  # noqa: BLE001 - one record never stops the engine (rule 6)
                self._record_failed(record, error, wall, outbox)
        return outbox

    def _handle_one(self, record: RawRecord, wall: float, outbox: Outbox) -> None:
        decoded = self._accept(record, wall, outbox)
        if decoded is None:
            return
        runtime = self.runtime(record.partition)  # _accept re-keys records whose partition is not the key's
        runtime.limit = self._behind(record.partition)
        started = time.perf_counter()
        emitted = runtime.feed(decoded, (self.lanes[record.topic], record.partition, record.offset))
        if isinstance(decoded, Envelope):
            self.metrics.processing.observe(time.perf_counter() - started)
        elif isinstance(decoded, Outcome):
            self.metrics.outcomes.labels(status=decoded.status, channel=decoded.channel).inc()
        self._collect_all(emitted, outbox, origin=lambda _t: record.timestamp or time.time())
        if (last := emitted[-1]).error is not None:
            self._record_failed(record, last.error, wall, outbox)
        elif last.replayed:
            self.metrics.replayed.inc()

    def _collect_all(self, emitted: list[Emission], outbox: Outbox, origin: Callable[[Trigger], float]) -> None:
        for emission in emitted:
            key = emission.customer_id.encode()
            if emission.step is not None:
                self._collect(key, emission.step, outbox, origin if not emission.due else _fired_at)
                outbox.states[key] = emission.step.state
            elif emission.due:
                self.metrics.processing_errors.labels(stage="tick").inc()
                engine_log.error("tick_error", customer_id=emission.customer_id, error=describe(emission.failure),
                                 exc_info=emission.error)

    def _record_failed(self, record: RawRecord, error: Exception, wall: float, outbox: Outbox) -> None:
        detail = describe(error)
        self.metrics.processing_errors.labels(stage="record").inc()
        engine_log.error("processing_error", topic=record.topic, partition=record.partition, offset=record.offset,
                  error=detail, exc_info=error)
        outbox.deadletters.append(dead_letter(record, Rejection("processing_error", detail), wall,
                                              self.deadletter_max_bytes))

    def sweep(self, wall: float, owns: Callable[[bytes], bool] = lambda _k: True) -> Outbox:
        """Phase 1 for the timer: advance every held partition to its stream time.

        A customer whose tick raises keeps its state and leaves the deadline index (it is not
        retried at every sweep); its next record, or the next rebuild of the index, tries again.
        ``owns`` is kept for callers; runtimes exist only for partitions the worker holds.
        """
        outbox = Outbox()
        lag = 0.0
        for partition, runtime in list(self.runtimes.items()):
            now = self.stream_time(partition, wall)
            if now is None:
                continue
            lag = max(lag, wall - now)
            runtime.limit = math.inf
            self._collect_all(runtime.advance(now), outbox, origin=_fired_at)
        self.metrics.event_time_lag.set(lag)
        return outbox

    def profile(self, key: bytes) -> ProfileState:
        """What is known of ``key``'s profile (an empty profile when nothing)."""
        return self.runtime(self.partition_for(key)).profile(key.decode())

    def state(self, key: bytes) -> CustomerState | None:
        """``key``'s live state (from memory, else the table), None when there is none."""
        return self.runtime(self.partition_for(key)).state(key.decode())

    def summary(self, key: bytes) -> Summary | None:
        """``key``'s summary when it was evicted after idling (None: live, or never seen)."""
        return self.runtime(self.partition_for(key)).summary(key.decode())

    def _accept(self, record: RawRecord, wall: float, outbox: Outbox) -> Record | None:
        kinds = self.topic_kinds[record.topic]
        ignored: list[str] = []  # fields the contract does not know (tolerant reader), counted once accepted
        decoded = decode_event(record.value, kinds, self.max_event_bytes, strict=record.topic in self.strict_topics,
                               ignored=ignored)
        if isinstance(decoded, Rejection):
            outbox.deadletters.append(dead_letter(record, decoded, wall, self.deadletter_max_bytes))
            return None
        if not isinstance(decoded, Envelope):
            return self._accept_control(record, decoded, outbox, ignored, wall)
        if decoded.epoch > wall + self.config.max_future_seconds:
            rejection = Rejection("future_event", f"occurred_at is {decoded.epoch - wall:.0f}s ahead of now")
            outbox.deadletters.append(dead_letter(record, rejection, wall, self.deadletter_max_bytes))
            return None
        key = decoded.customer_id.encode()
        if record.key != key or record.partition != self.partition_for(key):
            # keyed by something else, or placed by a non-murmur2 partitioner (librdkafka's
            # default): route through the re-key topic so state stays co-partitioned
            outbox.rekeyed.append(rekeyed(record, key, wall))  # headers and timestamp go along
            return None
        counted = self._events_in.get((record.topic, decoded.type))
        if counted is None:
            counted = self._events_in[(record.topic, decoded.type)] = self.metrics.events_in.labels(
                topic=record.topic, type=decoded.type)
        counted.inc()
        if ignored:
            self.metrics.count_unknown_fields(decoded.type, ignored)
        self.clock(record.topic, record.partition).observe(decoded.epoch, wall)
        return decoded

    def _accept_control(self, record: RawRecord, decoded: Profile | Outcome, outbox: Outbox,
                        ignored: list[str], wall: float) -> Record | None:
        key = decoded.customer_id.encode()
        if record.key != key or record.partition != self.partition_for(key):
            outbox.rekeyed.append(rekeyed(record, key, wall))  # co-partition with the customer's state
            return None
        self.metrics.control_in.labels(type=decoded.type).inc()
        self.metrics.count_unknown_fields(decoded.type, ignored)
        return decoded

    def _collect(self, key: bytes, step: Step, outbox: Outbox, origin: Callable[[Trigger], float]) -> None:
        outbox.triggers.extend((trigger, origin(trigger)) for trigger in step.triggers)
        outbox.shadow.extend(step.shadow)
        if step.profile is not None:
            outbox.profiles[key] = step.profile
        for decision in step.decisions:
            self.metrics.decisions.labels(playbook=decision.playbook, verdict=decision.verdict,
                                          reason=decision.reason or "", mode=decision.mode).inc()
            if decision.variant is not None and decision.verdict in ("sent", "released"):
                self.metrics.variant_pulls.labels(playbook=decision.playbook, variant=decision.variant).inc()
            if decision.verdict not in ("sent", "released", "fallback"):  # those are logged as triggers
                emit = log.debug if decision.verdict == "suppressed" else log.info  # suppressions are counted
                emit("decision", customer_id=key.decode(), playbook=decision.playbook, verdict=decision.verdict,
                         reason=decision.reason, trigger_id=decision.trigger_id, mode=decision.mode)
        for observation in step.observations:
            self._count(observation.kind, observation.detail)

    def _count(self, kind: str, detail: dict[str, object]) -> None:
        if kind == "label":
            self.metrics.model_labels.labels(model=str(detail["model"]),
                                             label="dropped" if detail["label"] else "returned").inc()
            self.metrics.model_labels_seen.labels(partition=str(detail["partition"])).set(float(detail["labels_seen"]))  # type: ignore[arg-type]
            self.model_quality.observe(detail, self.metrics)
            return
        if kind in ("reengaged", "not_reengaged"):
            self.metrics.reengagement.labels(playbook=str(detail["playbook"]), group=str(detail["group"]),
                                             result=kind).inc()
            return
        if kind == "variant_reward":
            self.metrics.variant_rewards.labels(playbook=str(detail["playbook"]), variant=str(detail["variant"]),
                                                result=str(detail["result"])).inc()
            return
        counter = {"duplicate": self.metrics.duplicates, "late": self.metrics.late,
                   "evicted": self.metrics.evicted}.get(kind)
        if counter is not None:
            counter.inc()


def _fired_at(trigger: Trigger) -> float:
    """A timer's trigger: its origin is the moment it fired (or was released), in event time."""
    return (trigger.released_at or trigger.fired_at).timestamp()


def dead_letter(record: RawRecord, rejection: Rejection, wall: float,
                max_bytes: int = DEFAULT_DEADLETTER_MAX_BYTES) -> DeadLetter:
    """The dead letter of a Kafka record: its bytes (bounded), topic, partition and offset."""
    return rejection.dead_letter(source=record.topic, partition=record.partition, offset=record.offset,
                                 key=record.key, value=record.value, at=wall, max_bytes=max_bytes)

