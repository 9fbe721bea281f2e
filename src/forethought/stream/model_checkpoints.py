"""Each held partition's River models: restored from the checkpoint table on first use, written
back by :meth:`ModelCheckpoints.checkpoint_models` (a timer, and when partitions leave).

Labels learned after the last checkpoint are lost in a crash; a batch retried without a crash may
teach its labels (and its customer-minutes, to the behaviour trees) twice. Both only nudge a model.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Collection, Iterable, MutableMapping
from typing import TYPE_CHECKING

from forethought.core.config import EngineConfig
from forethought.core.models import PartitionModels
from forethought.ops.logs import get_logger
from forethought.ops.metrics import Metrics

if TYPE_CHECKING:
    from forethought.core.runtime import PartitionRuntime

model_log = get_logger("models")


class ModelCheckpoints:
    """The model side of :class:`~forethought.stream.processor.BatchProcessor` (a mixin)."""

    config: EngineConfig
    metrics: Metrics
    checkpoints: MutableMapping[bytes, bytes]
    models: dict[int, PartitionModels]
    runtimes: dict[int, PartitionRuntime]
    partition_for: Callable[[bytes], int]
    signing_key: bytes | None
    _checkpoint_keys: dict[int, bytes]

    def stream_time(self, partition: int, wall: float) -> float | None:
        raise NotImplementedError

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
                model_log.error("model_checkpoint_failed", partition=partition,
                                error=f"{type(error).__name__}: {error}")
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
        """Drop the models and live customers of partitions this worker no longer holds (commit first)."""
        for partition in partitions:
            self.models.pop(partition, None)
            self.runtimes.pop(partition, None)

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
