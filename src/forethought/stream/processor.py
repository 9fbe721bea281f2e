"""Drives the core over batches of raw Kafka records; knows nothing of Faust.

A batch is handled in three phases so that a crash never loses a trigger:
1. ``handle`` (sync): decode, route, run the core record by record in Kafka order on *copies* of
   state (each customer's loaded once per batch);
2. the caller publishes dead letters, re-keyed events and triggers, and awaits delivery;
3. ``commit`` (sync): writes the new states to the table (its changelog), updates deadlines.
A crash before 3 replays the batch from the last committed offset and re-publishes the same
trigger ids; a crash after 3 sees the events again as duplicates and publishes nothing new.

Each partition's River models (:class:`~forethought.core.models.PartitionModels`) are loaded from
the checkpoint table on first use after an assignment and written back by
:meth:`BatchProcessor.checkpoint_models` (a timer, and on revocation). Labels learned after the
last checkpoint are lost in a crash; a batch retried without a crash may teach its labels (and its
customer-minutes, to the behaviour trees) twice. Both only nudge a model.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Collection, Iterable, MutableMapping
from dataclasses import dataclass
from functools import lru_cache

import orjson

from forethought.contracts.decode import DEFAULT_DEADLETTER_MAX_BYTES, Record, Rejection, decode_event, describe
from forethought.contracts.events import Envelope
from forethought.contracts.records import DeadLetter, Outcome, Profile, Trigger
from forethought.core.clock import EventClock
from forethought.core.config import EngineConfig
from forethought.core.deadlines import DeadlineIndex
from forethought.core.engine import Step, next_due, observe_outcome, observe_profile, process, tick
from forethought.core.models import PartitionModels
from forethought.core.policy.profiles import ProfileState
from forethought.core.policy.rules import Rules, builtin_rules
from forethought.core.state import CustomerState
from forethought.ops.logs import get_logger
from forethought.ops.metrics import Metrics
from forethought.stream.outbox import Outbox

log = get_logger("policy")
model_log = get_logger("models")
engine_log = get_logger("engine")  # records and ticks the engine raised on


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One Kafka record as any driver reads it; ``timestamp`` in POSIX seconds."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float | None = None


class BatchProcessor:
    """The worker's logic between Kafka and the core; ``table`` maps key bytes → state bytes and
    ``profiles`` key bytes → profile bytes (both changelogged by the caller)."""

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
    ) -> None:
        self.config, self.table, self.topic_kinds, self.metrics = config, table, topic_kinds, metrics
        self.profiles: MutableMapping[bytes, bytes] = {} if profiles is None else profiles
        self.rules = rules or builtin_rules()
        self.max_event_bytes, self.idle_grace, self.partition_for = max_event_bytes, idle_grace, partition_for
        self.pending, self.deadletter_max_bytes = pending, deadletter_max_bytes
        self.clocks: dict[tuple[str, int], EventClock] = {}
        self.deadlines: dict[int, DeadlineIndex[bytes]] = {}
        self.processed: dict[tuple[str, int], int] = {}
        self.checkpoints: MutableMapping[bytes, bytes] = {} if checkpoints is None else checkpoints
        self.models: dict[int, PartitionModels] = {}
        self._checkpoint_keys: dict[int, bytes] = {}
        self.signing_key: bytes | None = None  # when set, checkpoints are signed and only signed ones restored

    def clock(self, topic: str, partition: int) -> EventClock:
        """The event clock of one input topic-partition (``""``: times restored from state)."""
        return self.clocks.setdefault((topic, partition), EventClock(idle_grace=self.idle_grace))

    def stream_time(self, partition: int, wall: float) -> float | None:
        """Event time up to which partition ``partition`` is complete (as in Kafka Streams).

        While any of its input topic-partitions still has records waiting, the slowest of those
        sets the time, so a customer whose next event is queued on a lagging topic is not seen as
        silent. When all are caught up, the freshest clock rules and advances once input idles.
        """
        clocks = [(topic, clock) for (topic, p), clock in self.clocks.items() if p == partition]
        behind = [clock.event_max for topic, clock in clocks
                  if topic and clock.event_max is not None and self.pending(topic, partition)]
        if behind:
            return min(behind)
        return max((clock.now(wall) for _, clock in clocks), default=None)

    def index(self, key: bytes) -> DeadlineIndex[bytes]:
        """The deadline index of ``key``'s partition."""
        return self.deadlines.setdefault(self.partition_for(key), DeadlineIndex())

    def handle(self, records: Iterable[RawRecord], wall: float) -> Outbox:
        """Phase 1 for a batch of inbound records, in the order Kafka gave them.

        Each customer's state is loaded once and written once per batch (rule 8); records are
        still run in input order, not customer by customer, so a partition's models learn in the
        same order as replay's (which reads in event-time order) whenever the input is in order.

        A record the engine raises on is dead-lettered (``processing_error``) and the batch goes on:
        the core runs each record on a copy of the held state, so the customer keeps the state it
        had before that record, and nothing the record produced is published.
        """
        outbox = Outbox()
        held: dict[bytes, tuple[CustomerState | None, ProfileState]] = {}
        for record in records:
            self.processed[(record.topic, record.partition)] = record.offset + 1
            try:
                self._handle_one(record, wall, outbox, held)
            except Exception as error:  # noqa: BLE001 - one record never stops the engine (rule 6)
                self._record_failed(record, error, wall, outbox)
        outbox.states.update((key, state) for key, (state, _) in held.items())
        return outbox

    def _handle_one(self, record: RawRecord, wall: float, outbox: Outbox,
                    held: dict[bytes, tuple[CustomerState | None, ProfileState]]) -> None:
        decoded = self._accept(record, wall, outbox)
        if decoded is None:
            return
        key = decoded.customer_id.encode()
        if key not in held:  # read state and profile once per customer per batch
            raw = self.table.get(key)
            held[key] = (self.load(raw) if raw is not None else None, self.profile(key))
        state, profile = held[key]
        mark = outbox.mark(key)
        try:  # the core mutates states in place: it runs on a copy, held[key] stays as it was
            step = self._run(key, None if state is None else state.copy(), profile, decoded, record, outbox)
        except BaseException:
            outbox.rollback(mark, key)
            raise
        held[key] = (step.state, step.profile or profile)

    def _record_failed(self, record: RawRecord, error: Exception, wall: float, outbox: Outbox) -> None:
        detail = describe(error)
        self.metrics.processing_errors.labels(stage="record").inc()
        engine_log.error("processing_error", topic=record.topic, partition=record.partition, offset=record.offset,
                  error=detail, exc_info=error)
        outbox.deadletters.append(dead_letter(record, Rejection("processing_error", detail), wall,
                                              self.deadletter_max_bytes))

    def sweep(self, wall: float, owns: Callable[[bytes], bool]) -> Outbox:
        """Phase 1 for the timer: tick every owned customer whose deadline has come.

        A customer whose tick raises keeps its state and leaves the deadline index (it is not
        retried at every sweep); its next record, or the next rebuild of the index, tries again.
        """
        outbox = Outbox()
        lag = 0.0
        for partition, index in self.deadlines.items():
            now = self.stream_time(partition, wall)
            if now is None:
                continue
            lag = max(lag, wall - now)
            for key in index.pop_due(now):
                raw = self.table.get(key)
                if raw is None or not owns(key):
                    continue
                mark = outbox.mark(key)
                try:
                    step = tick(self.load(raw), now, self.config, self.rules, self.profile(key), self.model(partition))
                    self._collect(key, step, outbox, origin=lambda t: (t.released_at or t.fired_at).timestamp())
                except Exception as error:  # noqa: BLE001 - one customer never stops the sweep
                    outbox.rollback(mark, key)
                    self.metrics.processing_errors.labels(stage="tick").inc()
                    engine_log.error("tick_error", customer_id=key.decode(errors="replace"), partition=partition, at=now,
                              error=describe(error), exc_info=error)
                    continue
                outbox.states[key] = step.state
        self.metrics.event_time_lag.set(lag)
        return outbox

    def load(self, raw: bytes) -> CustomerState:
        """A state from its changelog bytes (orjson, as :meth:`commit` writes them)."""
        return CustomerState.from_dict(orjson.loads(raw), self.config)

    def profile(self, key: bytes) -> ProfileState:
        """What the profile table holds for ``key`` (an empty profile when nothing)."""
        raw = self.profiles.get(key)
        return ProfileState() if raw is None else _parse_profile(raw)

    def commit(self, outbox: Outbox) -> None:
        """Phase 3: persist states and profiles (after the caller published the outbox)."""
        for key, profile in outbox.profiles.items():
            self.profiles[key] = orjson.dumps(profile.to_dict())
        for key, state in outbox.states.items():
            if state is None:
                self.table.pop(key, None)
                self.index(key).set(key, None)
                continue
            self.table[key] = orjson.dumps(state.to_dict())
            self.index(key).set(key, next_due(state, self.config))

    def model(self, partition: int) -> PartitionModels:
        """The models of ``partition``: in memory, else restored from its checkpoint (or fresh)."""
        models = self.models.get(partition)
        if models is None:
            models = self.models[partition] = self._restore(partition)
        return models

    def checkpoint_key(self, partition: int) -> bytes:
        """The checkpoint table key of ``partition``'s models: the first ``models-<p>~<i>`` that
        Kafka's default partitioner places on ``partition`` itself, so the checkpoint lives in
        the changelog partition that moves (and is recovered) with the input partition."""
        if partition not in self._checkpoint_keys:
            for i in itertools.count():
                key = f"models-{partition}~{i}".encode()
                if self.partition_for(key) == partition:
                    self._checkpoint_keys[partition] = key
                    break
                if i > 100_000:
                    raise ValueError(f"no checkpoint key hashes to partition {partition}")
        return self._checkpoint_keys[partition]

    def checkpoint_models(self, partitions: Collection[int] | None = None) -> int:
        """Write the models that learned something since their last checkpoint (of ``partitions``,
        default all held); returns how many were written."""
        written = 0
        self._gauge_behaviour(time.time())
        for partition, models in sorted(self.models.items()):
            if not models.unsaved or (partitions is not None and partition not in partitions):
                continue
            raw = models.to_bytes(self.signing_key)
            try:
                self.checkpoints[self.checkpoint_key(partition)] = raw
            except Exception as error:  # noqa: BLE001 - a checkpoint must never stop the worker; retried next time
                self.metrics.model_checkpoints.labels(result="failed").inc()
                model_log.error("model_checkpoint_failed", partition=partition, error=f"{type(error).__name__}: {error}")
                continue
            models.unsaved = 0
            self.metrics.model_checkpoints.labels(result="written").inc()
            self.metrics.model_checkpoint_bytes.labels(partition=str(partition)).set(len(raw))
            written += 1
        return written

    def _gauge_behaviour(self, wall: float) -> None:
        """The behaviour trees' reference size and threshold per held partition, at its stream time."""
        for partition, models in self.models.items():
            now = self.stream_time(partition, wall)
            if now is None:
                continue
            threshold = models.behaviour.threshold(now)
            self.metrics.behaviour_reference.labels(partition=str(partition)).set(models.behaviour.reference_size(now))
            self.metrics.behaviour_threshold.labels(partition=str(partition)).set(
                float("nan") if threshold is None else threshold)

    def forget_models(self, partitions: Iterable[int]) -> None:
        """Drop the in-memory models of partitions this worker no longer holds."""
        for partition in partitions:
            self.models.pop(partition, None)

    def _restore(self, partition: int) -> PartitionModels:
        raw = self.checkpoints.get(self.checkpoint_key(partition))
        models = PartitionModels.restore(raw, partition, self.config.model_min_labels, self.config, self.signing_key)
        self.metrics.model_restores.labels(result=models.origin).inc()
        self.metrics.model_labels_seen.labels(partition=str(partition)).set(models.labels)
        if models.problem is not None:
            model_log.error("model_restore_failed", partition=partition, error=models.problem, bytes=len(raw or b""))
        else:
            model_log.info("model_loaded", partition=partition, origin=models.origin, labels=models.labels,
                           warm=models.warm)
        return models

    def rebuild_index(self, owns: Callable[[bytes], bool]) -> int:
        """After a restart or rebalance: deadlines and the clock from restored state.

        A stored state that cannot be loaded (forged or corrupted in the changelog, or written by
        an incompatible version) is skipped, logged and counted (``stage="restore"``): it gets no
        deadline, and each record of its customer is dead-lettered until the state is replaced.
        """
        self.deadlines = {}
        count = 0
        for key, raw in list(self.table.items()):
            if not owns(key):
                continue
            try:
                state = self.load(raw)
                due = next_due(state, self.config)
            except Exception as error:  # noqa: BLE001 - one unreadable state never stops a restart
                self.metrics.processing_errors.labels(stage="restore").inc()
                engine_log.error("state_unreadable", customer_id=key.decode(errors="replace"),
                                 error_type=type(error).__name__, error=describe(error), bytes=len(raw))
                continue
            self.index(key).set(key, due)
            if state.last_seen is not None:
                self.clock("", self.partition_for(key)).observe(state.last_seen, time.time())
            count += 1
        return count

    def _accept(self, record: RawRecord, wall: float, outbox: Outbox) -> Record | None:
        kinds = self.topic_kinds[record.topic]
        decoded = decode_event(record.value, kinds, self.max_event_bytes)
        if isinstance(decoded, Rejection):
            outbox.deadletters.append(dead_letter(record, decoded, wall, self.deadletter_max_bytes))
            return None
        if not isinstance(decoded, Envelope):
            return self._accept_control(record, decoded, outbox)
        if decoded.epoch > wall + self.config.max_future_seconds:
            rejection = Rejection("future_event", f"occurred_at is {decoded.epoch - wall:.0f}s ahead of now")
            outbox.deadletters.append(dead_letter(record, rejection, wall, self.deadletter_max_bytes))
            return None
        key = decoded.customer_id.encode()
        if record.key != key or record.partition != self.partition_for(key):
            # keyed by something else, or placed by a non-murmur2 partitioner (librdkafka's
            # default): route through the re-key topic so state stays co-partitioned
            outbox.rekeyed.append((key, record.value or b""))
            return None
        self.metrics.events_in.labels(topic=record.topic, type=decoded.type).inc()
        self.clock(record.topic, record.partition).observe(decoded.epoch, wall)
        return decoded

    def _accept_control(self, record: RawRecord, decoded: Profile | Outcome, outbox: Outbox) -> Record | None:
        key = decoded.customer_id.encode()
        if record.key != key or record.partition != self.partition_for(key):
            outbox.rekeyed.append((key, record.value or b""))  # co-partition with the customer's state
            return None
        self.metrics.control_in.labels(type=decoded.type).inc()
        return decoded

    def _run(self, key: bytes, state: CustomerState | None, held: ProfileState, decoded: Record,
             record: RawRecord, outbox: Outbox) -> Step:
        models = self.model(record.partition)  # _accept re-keys records whose partition is not the key's
        started = time.perf_counter()
        if isinstance(decoded, Profile):  # the later of its own time and the partition's event time
            seen = [c.event_max for (t, p), c in self.clocks.items() if p == record.partition and c.event_max]
            now = max([decoded.updated_at.timestamp(), *seen])
            step = observe_profile(state, held, decoded, now, self.config)
        elif isinstance(decoded, Outcome):
            self.metrics.outcomes.labels(status=decoded.status, channel=decoded.channel).inc()
            step = observe_outcome(state, held, decoded, self.config, self.rules, models)
        else:
            step = process(state, decoded, self.config, self.rules, held, models)
            self.metrics.processing.observe(time.perf_counter() - started)
        self._collect(key, step, outbox, origin=lambda _t: record.timestamp or time.time())
        return step

    def _collect(self, key: bytes, step: Step, outbox: Outbox, origin: Callable[[Trigger], float]) -> None:
        outbox.triggers.extend((trigger, origin(trigger)) for trigger in step.triggers)
        outbox.shadow.extend(step.shadow)
        if step.profile is not None:
            outbox.profiles[key] = step.profile
        for decision in step.decisions:
            self.metrics.decisions.labels(playbook=decision.playbook, verdict=decision.verdict,
                                          reason=decision.reason or "", mode=decision.mode).inc()
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
            return
        if kind in ("reengaged", "not_reengaged"):
            self.metrics.reengagement.labels(playbook=str(detail["playbook"]), group=str(detail["group"]),
                                             result=kind).inc()
            return
        counter = {"duplicate": self.metrics.duplicates, "late": self.metrics.late,
                   "evicted": self.metrics.evicted}.get(kind)
        if counter is not None:
            counter.inc()


@lru_cache(maxsize=4096)
def _parse_profile(raw: bytes) -> ProfileState:
    """Profiles change rarely and are read for every batch a customer is in: validate each version once."""
    return ProfileState.from_dict(orjson.loads(raw))


def dead_letter(record: RawRecord, rejection: Rejection, wall: float,
                max_bytes: int = DEFAULT_DEADLETTER_MAX_BYTES) -> DeadLetter:
    """The dead letter of a Kafka record: its bytes (bounded), topic, partition and offset."""
    return rejection.dead_letter(source=record.topic, partition=record.partition, offset=record.offset,
                                 key=record.key, value=record.value, at=wall, max_bytes=max_bytes)

