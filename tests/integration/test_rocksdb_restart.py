"""The worker's tables on RocksDB (the default store) against the real broker: a restart reads its
data directory and replays only the changelog records written since it stopped.

Worker A (its own data directory) processes a first backlog and stops. Worker B, same group, an
empty data directory, restores the whole changelog, processes a second backlog for some of the
customers and stops. A again: it restores only what B wrote (the changelog's tail), and serves
exactly the states B served. Each worker answers ``/ready`` only once its deadline index is rebuilt
(its log line is there by then): B decodes the states it restored from the changelog (B's own
writes since have hints, a second rebalance may find some), A believes its due hints only for the
states B left unchanged."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from worker_kit import Deployment, event, metric

from forethought.ops.process import log_tail, running_worker
from forethought.ops.topics import load_catalogue
from forethought.testing import free_port

CUSTOMERS = [f"rk-{i}" for i in range(30)]
RESTORED = "forethought_state_restored_records_total"
# what the records made of each state (the view's scores, silence and session length are as of the
# moment it is asked, and the worker's clock moves on between the two workers)
RECORDED = ("events", "by_type", "first_seen", "last_seen", "decisions", "profile", "partition")


@pytest.fixture
async def deployment(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Deployment:
    return await Deployment.create(kafka_bootstrap, topic_prefix, tmp_path)


async def changelog_records(deployment: Deployment) -> int:
    """How many records the customer-state changelog has (its end offsets, summed)."""
    name = f"{deployment.app_id}-customer_state-changelog"
    consumer = AIOKafkaConsumer(bootstrap_servers=deployment.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(name, p) for p in range(load_catalogue().partitions)]
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()


def restored(deployment: Deployment) -> float:
    _, text = deployment.get("/metrics")
    return metric(text, RESTORED, table="customer_state")


def rebuilt(log: Path) -> dict[str, Any]:
    """The worker's ``deadline_index_rebuilt`` log line (JSON); fails when there is none yet."""
    found = []
    for line in log.read_text(errors="replace").splitlines():
        if '"deadline_index_rebuilt"' in line:
            found.append(json.loads(line))
    assert found, f"no deadline_index_rebuilt in {log.name} once /ready answered"
    return found[-1]


async def states(deployment: Deployment, customers: list[str], views: int) -> dict[str, object]:
    """What the records made of every customer's state, once it has ``views`` page views."""
    found = {c: await deployment.wait_for(f"/customers/{c}", lambda body: body["by_type"].get("page_view") == views)
             for c in customers}
    return {c: {k: body[k] for k in RECORDED} for c, body in found.items()}


async def test_a_restart_on_rocksdb_replays_only_the_changelog_tail_and_keeps_identical_state(
        deployment: Deployment) -> None:
    now = time.time() - 600
    first = [event(c, i, "page_view", now + i) for i in range(3) for c in CUSTOMERS]
    later = CUSTOMERS[:10]
    second = [event(c, i, "page_view", now + i) for i in range(3, 6) for c in later]
    # The clocks follow the events only: once input idles they would otherwise run on with the wall clock and
    # fire silence looks for every customer while B lives (how many depends on the machine's load), and B's
    # changelog tail, which must be shorter than A's, then held every customer (a CI run: 30 and 30).
    env_a = deployment.env(FORETHOUGHT_STATE_STORE="rocksdb", FORETHOUGHT_IDLE_GRACE_SECONDS="100000000")
    other = Deployment(deployment.bootstrap, deployment.prefix, deployment.workdir / "b", free_port())
    env_b = {**env_a, "FORETHOUGHT_WEB_PORT": str(other.web_port),
             "FORETHOUGHT_DATA_DIR": str(other.workdir / "worker")}  # the same group, its own data directory

    with running_worker(env_a, deployment.workdir / "a.log", deployment.url):
        await deployment.produce("events.clickstream", first)
        await states(deployment, CUSTOMERS, 3)
        assert restored(deployment) == 0, "an empty changelog: nothing to restore"
    kept = await changelog_records(deployment)
    assert kept >= len(CUSTOMERS), f"the clean stop wrote {kept} states{log_tail(deployment.workdir / 'a.log')}"
    assert any((deployment.workdir / "worker").rglob("customer_state-*.db")), "the tables are on the data directory"

    with running_worker(env_b, other.workdir / "b.log", other.url):
        assert restored(other) == kept, "an empty data directory restores the whole changelog"
        index = rebuilt(other.workdir / "b.log")
        assert index["customers"] == index["hinted"] + index["decoded"] == len(CUSTOMERS)
        assert index["decoded"] > 0, "states restored from the changelog have no hint here: decoded"
        await other.produce("events.clickstream", second)
        served = {**await states(other, later, 6), **await states(other, CUSTOMERS[10:], 3)}
    total = await changelog_records(deployment)
    tail = total - kept
    assert 0 < tail < kept

    with running_worker(env_a, deployment.workdir / "a-again.log", deployment.url):
        index = rebuilt(deployment.workdir / "a-again.log")
        assert index["customers"] == index["hinted"] + index["decoded"] == len(CUSTOMERS)
        assert index["decoded"] >= len(later), "a state B changed is not believed from A's old hint"
        again = {**await states(deployment, later, 6), **await states(deployment, CUSTOMERS[10:], 3)}
        replayed = restored(deployment)
    assert replayed == tail, f"the restart read {replayed:.0f} changelog records, not only the {tail} past its own"
    assert again == served, "the restarted worker serves exactly the states the other one left"
