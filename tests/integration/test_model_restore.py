"""Partition models through the real broker: checkpointed into the changelog, restored after a restart."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from worker_kit import Deployment, event, metric

from forethought.ops.process import running_worker

DAY = 86_400.0


@pytest.fixture
async def deployment(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Deployment:
    return await Deployment.create(kafka_bootstrap, topic_prefix, tmp_path)


def visits(customer: str, days: int, end: float) -> list[tuple[bytes, bytes]]:
    """Three visits a day for ``days`` days up to ``end``: a daily snapshot, answered each day."""
    start = end - days * DAY
    return [event(customer, n, "page_view", start + n * DAY / 3) for n in range(days * 3)]


async def test_a_restarted_worker_restores_the_partition_model_from_the_changelog(deployment: Deployment) -> None:
    customer, log = "learner-1", deployment.workdir / "worker.log"
    env = deployment.env(FORETHOUGHT_MODEL_CHECKPOINT_SECONDS="1")
    with running_worker(env, log, deployment.url):
        await deployment.produce("events.clickstream", visits(customer, 6, time.time() - 60))
        saved = await deployment.wait_for(f"/customers/{customer}", lambda body: body["events"] == 18
                                          and body["learned"]["model"]["unsaved_labels"] == 0)
        _, before = deployment.get("/metrics")
    learned = saved["learned"]["model"]
    assert learned["labels_seen"] >= 4 and learned["origin"] == "fresh"
    assert saved["behaviour"]["origin"] == "fresh" and saved["behaviour"]["reference_size"] >= 1
    assert metric(before, "forethought_model_checkpoints_total", result="written") >= 1

    with running_worker(env, log, deployment.url):
        await deployment.produce("events.clickstream", [event(customer, 999, "click", time.time())])
        view = await deployment.wait_for(f"/customers/{customer}", lambda body: body["events"] == 19)
        _, after = deployment.get("/metrics")
    model = view["learned"]["model"]
    assert model["origin"] == "restored"
    assert model["labels_seen"] >= learned["labels_seen"], "every label learned before the restart is kept"
    assert view["behaviour"]["origin"] == "restored", "the behaviour trees come back with the checkpoint"
    assert view["behaviour"]["reference_size"] >= saved["behaviour"]["reference_size"]
    assert metric(after, "forethought_model_restores_total", result="restored") >= 1
    assert metric(after, "forethought_model_restores_total", result="failed") == 0
