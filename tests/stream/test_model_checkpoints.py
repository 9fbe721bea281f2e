"""Partition models in the worker: learned from the agent's batches, checkpointed into the
changelogged table on the partition they belong to, restored by another worker."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from faust.types import TP
from test_agent import Recorder, put, recorded, settle, stored

from forethought.core import snapshots
from forethought.core.checkpoint import MAGIC
from forethought.core.config import EngineConfig
from forethought.ops.settings import Settings
from forethought.stream.worker import Worker, partition_of

ENGINE = EngineConfig(model_min_labels=2)
HOUR, DAY = 3600.0, 86_400.0
T0 = (time.time() // DAY - 20) * DAY + 9 * HOUR  # 09:00 UTC 20 days ago: events may not lie in the future
KEY = b"m1"
PARTITION = partition_of(KEY, 4)


def view(customer: str, n: int, at: float) -> bytes:
    return json.dumps({"event_id": f"{customer}-{n}", "customer_id": customer, "type": "page_view",
                       "occurred_at": datetime.fromtimestamp(at, tz=UTC).isoformat()}).encode()


def worker() -> tuple[Worker, Recorder]:
    """A recorded worker whose model-checkpoint changelog writes are recorded too."""
    built, _ = recorded(Settings(topic_prefix="t.", engine=ENGINE, batch_within_seconds=0.01,
                                 commit_interval_seconds=0.001))  # timers do not run here: flush at every batch
    sent = Recorder()
    # use_partitioner=True: Faust leaves the partition to the producer's partitioner (murmur2)
    built.processor.checkpoints.send_changelog = lambda partition, key, value, *a, **k: (  # type: ignore[attr-defined]
        sent.sent.append((key, value)) or SimpleNamespace(message=SimpleNamespace(partition=partition_of(key, 4))))
    return built, sent


def recover(built: Worker, records: list[tuple[bytes, bytes]], partition: int = PARTITION, table: Any = None) -> None:
    """What Faust's recovery does with the changelog records of the model table's partition (or ``table``'s)."""
    events = [SimpleNamespace(key=k, value=v, message=SimpleNamespace(partition=partition, value=v)) for k, v in records]
    (built.processor.checkpoints if table is None else table).apply_changelog_batch(events)


async def visits(agent: Any, built: Worker, first: int, count: int) -> None:
    """Twice-daily visits of customer m1 (each daily snapshot is answered by the next visit)."""
    for n in range(first, first + count):
        await put(agent, "t.events.clickstream", KEY, view("m1", n, T0 + n * 12 * HOUR), offset=n)
    await settle(lambda: built.processor.processed.get(("t.events.clickstream", PARTITION)) == first + count)


def metric(built: Worker, line: str) -> bool:
    return line.encode() in built.metrics.exposition()


async def test_the_worker_checkpoints_its_models_and_a_new_worker_restores_them() -> None:
    first, sent = worker()
    async with first.agent.test_context() as agent:
        await visits(agent, first, 0, 8)
    learned = first.processor.models[PARTITION]
    trees = learned.behaviour
    minutes = sum(window.count for window in trees.windows.values())
    assert learned.labels >= 3 and minutes >= 1, "labels, and customer-minutes for the behaviour trees"
    assert learned.unsaved == 0, "checkpointed with the states at each flush (a cut: models, states, clock)"
    assert first.processor.checkpoint_models() == 0, "only models that learned since their last checkpoint"
    key, value = sent.sent[-1]
    assert {k for k, _ in sent.sent} <= set(first.processor.checkpoint_keys(PARTITION)), "its two slots"
    assert partition_of(key, 4) == PARTITION
    assert value.startswith(MAGIC) and value == learned.to_bytes(), "the last flush's checkpoint is the models now"
    assert learned.clock == first.processor.runtimes[PARTITION].now, "with the partition's clock at that flush"
    assert metric(first, f'forethought_model_checkpoints_total{{result="written"}} {len(sent.sent):.1f}')
    assert metric(first, f'forethought_behaviour_threshold{{partition="{PARTITION}"}} NaN'), "cold: no threshold yet"
    assert metric(first, f'forethought_behaviour_reference_minutes{{partition="{PARTITION}"}} ')
    assert metric(first, f'forethought_model_labels_total{{label="returned",model="dropoff"}} {learned.labels:.1f}')

    second, _ = worker()
    recover(second, sent.sent)
    recover(second, list(first.processor.table.items()), table=second.processor.table)  # and the states
    restored = second.processor.model(PARTITION)  # as a runtime asks for it (the first record, the rebuild)
    assert (restored.origin, restored.labels) == ("restored", learned.labels)
    x = dict.fromkeys(snapshots.NAMES, 0.4)
    assert restored.dropoff_model.predict_proba_one(x) == learned.dropoff_model.predict_proba_one(x)
    assert restored.behaviour_origin == "restored"
    assert {w: (v.count, v.mass) for w, v in restored.behaviour.windows.items() if w in trees.windows} == \
        {w: (v.count, v.mass) for w, v in trees.windows.items()}, "the trees' windows came back"
    assert metric(second, 'forethought_model_restores_total{result="restored"} 1.0')
    assert metric(second, f'forethought_model_labels_seen{{partition="{PARTITION}"}} {learned.labels:.1f}')
    async with second.agent.test_context() as agent:
        await visits(agent, second, 20, 1)
    assert second.processor.models[PARTITION] is restored and restored.labels > learned.labels, "it learns on"


async def test_a_corrupt_checkpoint_is_counted_and_the_worker_carries_on_with_a_fresh_model() -> None:
    built, _ = worker()
    recover(built, [(built.processor.checkpoint_key(PARTITION), MAGIC + b"\x03garbage")])
    async with built.agent.test_context() as agent:
        await visits(agent, built, 0, 4)
    models = built.processor.models[PARTITION]
    assert models.origin == "failed" and "corrupt model checkpoint" in (models.problem or "")
    assert models.labels >= 1, "the fresh model learns from here on"
    assert stored(built, KEY)["n"] == 4
    assert metric(built, 'forethought_model_restores_total{result="failed"} 1.0')


async def test_revoked_partitions_are_checkpointed_and_restored_when_assigned_again() -> None:
    built, sent = worker()
    async with built.agent.test_context() as agent:
        await visits(agent, built, 0, 6)
        before = built.processor.models[PARTITION].labels
        built.release_models({TP("t.events.clickstream", PARTITION), TP("t.events.errors", PARTITION)})
        assert PARTITION not in built.processor.models and len(sent.sent) >= 1
        await visits(agent, built, 6, 2)
    again = built.processor.models[PARTITION]
    assert again.origin == "restored" and again.labels > before


async def test_a_failed_checkpoint_write_is_counted_and_retried_at_the_next_checkpoint() -> None:
    built, sent = worker()
    async with built.agent.test_context() as agent:
        await visits(agent, built, 0, 4)
    table = built.processor.checkpoints
    recording = table.send_changelog  # type: ignore[attr-defined]

    def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("changelog topic unknown to the producer")

    table.send_changelog = broken  # type: ignore[attr-defined]
    built.processor.models[PARTITION].unsaved += 1  # learned since the last flush's checkpoint
    written = len(sent.sent)
    assert built.processor.checkpoint_models() == 0
    assert metric(built, 'forethought_model_checkpoints_total{result="failed"} 1.0')
    table.send_changelog = recording  # type: ignore[attr-defined]
    assert built.processor.checkpoint_models() == 1 and len(sent.sent) == written + 1
