"""An attacker who can write to the model checkpoint changelog, through the real broker.

The worker restores each partition's models from the ``model_checkpoint`` table's changelog. A
record produced there by anyone else must never run code (the old pickle format did) and, with a
signing key configured, must never be used at all.
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from worker_kit import Deployment, event, metric

from forethought.ops.process import running_worker
from forethought.ops.topics import load_catalogue, partition_of

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_checkpoint_safety import pickled_checkpoint  # noqa: E402 - the unit tests' forger
from test_learned_dropoff import trained  # noqa: E402

SIGNING_KEY = "the deployment's own 32+ character signing key"


@pytest.fixture
async def deployment(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Deployment:
    return await Deployment.create(kafka_bootstrap, topic_prefix, tmp_path)


def checkpoint_key(partition: int, partitions: int) -> bytes:
    """The table key the worker keeps ``partition``'s models under (what an attacker works out too)."""
    return next(key for i in itertools.count() if partition_of(key := f"models-{partition}~{i}".encode(), partitions)
                == partition)


def customers_on_two_partitions(partitions: int) -> tuple[tuple[str, int], tuple[str, int]]:
    found: dict[int, str] = {}
    for i in itertools.count():
        customer = f"victim-{i}"
        found.setdefault(partition_of(customer.encode(), partitions), customer)
        if len(found) == 2:
            (pa, a), (pb, b) = sorted(found.items())
            return (a, pa), (b, pb)
    raise AssertionError("unreachable")


async def forge(deployment: Deployment, records: list[tuple[int, bytes, bytes]]) -> None:
    """Write ``(partition, key, value)`` records straight into the checkpoint changelog."""
    producer = AIOKafkaProducer(bootstrap_servers=deployment.bootstrap, acks="all")
    await producer.start()
    try:
        for partition, key, value in records:
            await producer.send_and_wait(f"{deployment.app_id}-model_checkpoint-changelog", value, key=key,
                                         partition=partition)
    finally:
        await producer.stop()


async def test_forged_checkpoints_in_the_changelog_are_refused_and_never_run(deployment: Deployment) -> None:
    partitions = load_catalogue().by_name["events.clickstream"].partitions
    (pickled_customer, pa), (unsigned_customer, pb) = customers_on_two_partitions(partitions)
    marker, log = deployment.workdir / "pwned", deployment.workdir / "worker.log"
    env = deployment.env(FORETHOUGHT_MODEL_SIGNING_KEY=SIGNING_KEY)
    with running_worker(env, log, deployment.url):  # creates the changelog topics
        await deployment.produce("events.clickstream", [event(c, 0, "page_view", time.time() - 30)
                                                        for c in (pickled_customer, unsigned_customer)])
        await deployment.wait_for(f"/customers/{unsigned_customer}", lambda body: body["events"] == 1)

    warm_looking = trained().to_bytes()  # a well-formed data checkpoint, but not signed with the key
    await forge(deployment, [(pa, checkpoint_key(pa, partitions), pickled_checkpoint(marker, version=2)),
                             (pb, checkpoint_key(pb, partitions), warm_looking)])

    with running_worker(env, log, deployment.url):
        await deployment.produce("events.clickstream", [event(c, 1, "page_view", time.time() - 20)
                                                        for c in (pickled_customer, unsigned_customer)])
        views = [await deployment.wait_for(f"/customers/{c}", lambda body: body["events"] == 2)
                 for c in (pickled_customer, unsigned_customer)]
        _, metrics = deployment.get("/metrics")

    assert not marker.exists(), "the forged pickle never ran"
    assert [v["learned"]["model"]["origin"] for v in views] == ["failed", "failed"]
    assert all(v["learned"]["model"]["labels_seen"] < 500 for v in views), "the forged counters were not taken"
    assert metric(metrics, "forethought_model_restores_total", result="failed") == 2
    problems = [json.loads(line).get("error", "") for line in log.read_text().splitlines()
                if line.startswith("{") and "model_restore_failed" in line]
    assert any("is a pickle, which this worker never loads" in p for p in problems)
    assert any("unsigned or forged model checkpoint" in p for p in problems)
