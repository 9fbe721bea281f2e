"""Each held partition's River models: restored from the checkpoint table on first use, written
back with the states of a flush (:meth:`ModelCheckpoints.capture_models`, then
:meth:`ModelCheckpoints.write_models` before the states) and when partitions leave.

The models are partition-wide: every customer's records teach them, and what they learned is read
at every customer's next look. So after a crash they must be where the stored states are: a model
checkpoint is taken at the moment a flush captures the states (never at another point of the stream),
carries the partition's event clock of that moment, and is written before those states. A restart
then finds models, states and clock of one cut, and reads again from the committed offset records
whose customers' states have applied them already (docs/durability.md, "Models and clock travel with
the flush"). ``checkpoint_every`` (``FORETHOUGHT_MODEL_CHECKPOINT_SECONDS``) > 0 checkpoints less
often, at flushes still: the models may then be behind the states after a crash (labels lost).

Written before the states, a checkpoint can be stored when the states of its flush are not (a SIGKILL
between the two writes). So each partition has two checkpoint slots, written in turn, and every flush
that writes states of a partition writes its checkpoint (its :class:`~forethought.core.models.Cut`:
the flush's number, and a witness, the state the flush writes last for that partition). A restart
takes the newest checkpoint whose witness is stored as written; if it is not, that flush never
finished, and the other slot holds the checkpoint of the flush before, whose states are all stored
(one flush at a time: the next begins once the last one's states are on the broker).
"""

from __future__ import annotations

import itertools
import math
import time
import zlib
from collections.abc import Callable, Collection, Iterable, Mapping, MutableMapping
from typing import TYPE_CHECKING

from forethought.core.clock import EventClock
from forethought.core.config import EngineConfig
from forethought.core.models import Cut, PartitionModels
from forethought.ops.logs import get_logger
from forethought.ops.metrics import Metrics

if TYPE_CHECKING:
    from forethought.core.runtime import PartitionRuntime

model_log = get_logger("models")
_Found = tuple[int, bytes, PartitionModels]  # a stored checkpoint: its slot, its bytes, its models


class ModelCheckpoints:
    """The model side of :class:`~forethought.stream.processor.BatchProcessor` (a mixin)."""

    config: EngineConfig
    metrics: Metrics
    checkpoints: MutableMapping[bytes, bytes]
    table: MutableMapping[bytes, bytes]
    models: dict[int, PartitionModels]
    runtimes: dict[int, PartitionRuntime]
    partition_for: Callable[[bytes], int]
    signing_key: bytes | None
    _checkpoint_keys: dict[int, tuple[bytes, bytes]]
    _checkpoint_slot: dict[int, int]  # the slot each partition's next checkpoint goes to
    _checkpoint_seq: dict[int, int]  # the number of each partition's last checkpoint (its flush)
    clocks: dict[tuple[str, int], EventClock]
    checkpoint_every: float = 0.0  # seconds between two checkpoints of one partition (0: at every flush)
    _models_captured: dict[int, bytes]  # fixed by a flush's capture, written before its states
    _models_checkpointed_at: dict[int, float]  # monotonic time of each partition's last checkpoint

    def stream_time(self, partition: int, wall: float) -> float | None:
        raise NotImplementedError

    def model(self, partition: int) -> PartitionModels:
        """The models of ``partition``: in memory, else restored from its checkpoint (or fresh)."""
        models = self.models.get(partition)
        if models is None:
            models = self.models[partition] = self._restore(partition)
        return models

    def checkpoint_key(self, partition: int) -> bytes:
        """The first checkpoint slot's key of ``partition`` (see :meth:`checkpoint_keys`)."""
        return self.checkpoint_keys(partition)[0]

    def checkpoint_keys(self, partition: int) -> tuple[bytes, bytes]:
        """The checkpoint table keys of ``partition``'s two slots: the first two ``models-<p>~<i>``
        that Kafka's default partitioner places on ``partition`` itself, so the checkpoints live in
        the changelog partition that moves (and is recovered) with the input partition."""
        if partition not in self._checkpoint_keys:
            found: list[bytes] = []
            for i in itertools.count():
                key = f"models-{partition}~{i}".encode()
                if self.partition_for(key) == partition:
                    found.append(key)
                    if len(found) == 2:
                        self._checkpoint_keys[partition] = (found[0], found[1])
                        break
                if i > 100_000:
                    raise ValueError(f"no checkpoint key hashes to partition {partition}")
        return self._checkpoint_keys[partition]

    def checkpoint_models(self, partitions: Collection[int] | None = None) -> int:
        """Write the models that learned something since their last checkpoint (of ``partitions``,
        default all held) as they are now: call it where the states are flushed (a flush, a
        revocation after its flush); returns how many were written."""
        self.capture_models(partitions, every=0.0)
        return self.write_models()

    def capture_models(self, partitions: Collection[int] | None = None, every: float | None = None,
                       witnesses: Mapping[int, tuple[str, int]] | None = None) -> int:
        """Fix the checkpoint of every partition's models that learned since the last one, or whose
        states this flush writes (``witnesses``: per partition, the customer whose state the flush
        writes last and the CRC-32 of its bytes, -1 for a deletion), with the partition's clock, as
        of now (a flush capturing its states); :meth:`write_models` stores them. ``every``: at most
        one per partition per that many seconds (default ``checkpoint_every``; then no witness is
        kept: a flush between two checkpoints writes states without one)."""
        captured, wall = self._models_captured, time.monotonic()
        every = self.checkpoint_every if every is None else every
        witnesses = {} if every else (witnesses or {})
        for partition, models in sorted(self.models.items()):
            if partitions is not None and partition not in partitions:
                continue
            if not models.unsaved and partition not in witnesses:
                continue
            if every and wall - self._models_checkpointed_at.get(partition, -math.inf) < every:
                continue
            runtime = self.runtimes.get(partition)
            if runtime is not None:
                models.clock, models.fed = runtime.now, runtime.fed
            key, crc = witnesses.get(partition, (None, -1))
            seq = self._checkpoint_seq[partition] = self._checkpoint_seq.get(partition, -1) + 1
            models.cut = Cut(seq, key, crc)
            captured[partition] = models.to_bytes(self.signing_key)
            models.unsaved = 0
            self._models_checkpointed_at[partition] = wall
        return len(captured)

    def write_models(self) -> int:
        """Store the checkpoints :meth:`capture_models` fixed (before the states of the same flush);
        returns how many were written. A failed write is logged and counted, never raised: the
        models go on, and the next checkpoint carries what they learned."""
        captured, written = self._models_captured, 0
        if captured:
            self._gauge_behaviour(time.time())
        while captured:
            partition, raw = captured.popitem()
            slot = self._checkpoint_slot.get(partition, 0)
            try:
                self.checkpoints[self.checkpoint_keys(partition)[slot]] = raw
            except Exception as error:  # noqa: BLE001 - a checkpoint must never stop the worker; retried next time
                self.metrics.model_checkpoints.labels(result="failed").inc()
                model_log.error("model_checkpoint_failed", partition=partition,
                                error=f"{type(error).__name__}: {error}")
                if (models := self.models.get(partition)) is not None:
                    models.unsaved += 1  # captured again at the next flush
                continue
            self._checkpoint_slot[partition] = 1 - slot  # the next one keeps this one
            self.metrics.model_checkpoints.labels(result="written").inc()
            self.metrics.model_checkpoint_bytes.labels(partition=str(partition)).set(len(raw))
            written += 1
        return written

    def restore_clocks(self) -> None:
        """After the stored states are restored: each runtime's clock back to where its models'
        checkpoint was taken, not at the newest event among the states (which a crash can leave ahead
        of that cut and of the committed offset): records read again move it on as they did before."""
        for partition, runtime in self.runtimes.items():
            models = self.models.get(partition)
            if models is None or models.clock is None:
                continue  # no checkpoint with a clock (fresh models, or written by an older version)
            runtime.now, runtime.fed = models.clock, models.fed
            restored = self.clock("", partition)  # the stream time of an idle partition starts there too
            restored.event_max, restored.arrived_wall = runtime.now, time.time()

    def clock(self, topic: str, partition: int) -> EventClock:
        raise NotImplementedError

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
        """Drop the models and live customers of partitions this worker no longer holds (commit first)."""
        for partition in partitions:
            self.models.pop(partition, None)
            self.runtimes.pop(partition, None)
            self._checkpoint_slot.pop(partition, None)  # found again from the slots when assigned again
            self._checkpoint_seq.pop(partition, None)

    def _newest_landed(self, usable: list[_Found]) -> _Found | None:
        """Of the usable checkpoints, newest first: the newest if its flush landed (its witness is
        stored), else the one before it (the newest's flush was cut short), else none."""
        if not usable:
            return None
        if self._landed(usable[0][2]):
            return usable[0]
        return usable[1] if len(usable) > 1 else None

    def _restore(self, partition: int) -> PartitionModels:
        """The models of the newest checkpoint whose flush's states are stored (see the module
        docstring): fresh when there is none, failed when no checkpoint can be used."""
        found: list[_Found] = []  # (slot, raw, models) of each stored checkpoint
        for slot, key in enumerate(self.checkpoint_keys(partition)):
            raw = self.checkpoints.get(key)
            if raw is not None:
                found.append((slot, raw, PartitionModels.restore(
                    raw, partition, self.config.model_min_labels, self.config, self.signing_key)))
        usable = sorted((f for f in found if f[2].origin == "restored"), key=lambda f: _seq(f[2]), reverse=True)
        chosen = self._newest_landed(usable)
        if usable and chosen is not usable[0]:  # its flush was cut short: its states are not all stored
            model_log.warning("model_checkpoint_ahead_of_states", partition=partition, seq=_seq(usable[0][2]),
                              restored=None if chosen is None else _seq(chosen[2]))
        self._checkpoint_seq[partition] = max((_seq(f[2]) for f in found), default=-1)
        self._checkpoint_slot[partition] = 0 if chosen is None else 1 - chosen[0]  # keep the one restored
        if chosen is not None:
            raw, models = chosen[1], chosen[2]
        elif found and not usable:
            raw, models = found[-1][1], found[-1][2]  # failed: say why
        else:
            raw, models = None, PartitionModels(partition, self.config.model_min_labels, self.config)
        self.metrics.model_restores.labels(result=models.origin).inc()
        self.metrics.model_labels_seen.labels(partition=str(partition)).set(models.labels)
        if models.problem is not None:
            model_log.error("model_restore_failed", partition=partition, error=models.problem, bytes=len(raw or b""))
        else:
            model_log.info("model_loaded", partition=partition, origin=models.origin, labels=models.labels,
                           warm=models.warm)
        return models

    def _landed(self, models: PartitionModels) -> bool:
        """Whether the states of the flush ``models`` were checkpointed with are stored: its witness
        holds the bytes that flush wrote (a checkpoint without a witness needs none)."""
        cut = models.cut
        if cut is None or cut.key is None:
            return True
        raw = self.table.get(cut.key.encode())
        return raw is None if cut.crc < 0 else raw is not None and zlib.crc32(raw) == cut.crc


def _seq(models: PartitionModels) -> int:
    """A checkpoint's flush number (-1: written before checkpoints had one)."""
    return -1 if models.cut is None else models.cut.seq
