"""Write-behind customer state against the real broker: a record's offset is committed only after
the state it changed is on the changelog, so a crash between the two loses and double-counts nothing.

The worker is killed (SIGKILL: no clean shutdown, no last flush) after it has processed a backlog
whose state it holds only in memory (a state flush interval far longer than the test, while Faust
itself commits offsets every half second). Nothing of that backlog may have been committed; the
restarted worker reads it again and ends with exactly the state (and the same trigger ids) that one
uninterrupted run gives.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from test_engine_safety import committed
from worker_kit import Deployment, event, metric

from forethought.contracts.records import Trigger
from forethought.ops.process import running_worker, spawn_worker, stop_process, wait_ready

CUSTOMERS = [f"wb-{i}" for i in range(6)]


def rebuilt(log: Path, timeout: float = 60) -> None:
    """Wait until the worker has rebuilt its deadline index after its first assignment."""
    deadline = time.monotonic() + timeout
    while "deadline_index_rebuilt" not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, "the worker never rebuilt its deadline index"
        time.sleep(0.2)


@pytest.fixture
async def deployment(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Deployment:
    return await Deployment.create(kafka_bootstrap, topic_prefix, tmp_path)


async def test_a_crash_before_the_state_flush_commits_nothing_and_a_restart_counts_each_event_once(
        deployment: Deployment) -> None:
    now = time.time() - 60
    errors = [event(c, i, "error", now + i * 0.01, code="E500") for i in range(6) for c in CUSTOMERS]
    log = deployment.workdir / "worker.log"
    proc = spawn_worker(deployment.env(FORETHOUGHT_STATE_FLUSH_SECONDS="600"), log)
    try:
        wait_ready(deployment.url, proc, log_path=log)
        rebuilt(log)  # the rebuild after an assignment flushes too: let it pass before the backlog
        await deployment.produce("events.errors", errors)
        for customer in CUSTOMERS:  # processed: the live state (served from memory) has every event
            await deployment.wait_for(f"/customers/{customer}", lambda body: body["events"] == 6)
        fired = await deployment.consume("engagement.triggers", until=len(CUSTOMERS), timeout=30)
        time.sleep(2)  # several of Faust's offset commits (every 0.5 s) pass while the state is unflushed
        held = await committed(deployment, "events.errors")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        stop_process(proc)
    assert held == 0, "records whose state was only in memory must not be committed"
    first_ids = {Trigger.model_validate_json(r.value).trigger_id for r in fired}

    with running_worker(deployment.env(), log, deployment.url):
        states = [await deployment.wait_for(f"/customers/{c}", lambda body: body["events"] == 6) for c in CUSTOMERS]
        deadline = time.monotonic() + 30
        while await committed(deployment, "events.errors") < len(errors) and time.monotonic() < deadline:
            time.sleep(0.5)
        done = await committed(deployment, "events.errors")
        again = await deployment.read_all("engagement.triggers")
    assert [s["events"] for s in states] == [6] * len(CUSTOMERS), "each event counted once after the crash"
    assert [s["by_type"] for s in states] == [{"error": 6}] * len(CUSTOMERS)
    assert done == len(errors), "after the flush the records are committed"
    ids = [Trigger.model_validate_json(r.value).trigger_id for r in again]
    assert set(ids) == first_ids and len(first_ids) == len(CUSTOMERS), \
        "the re-read backlog re-publishes the same trigger ids (senders deduplicate), and nothing new"


async def test_a_clean_stop_flushes_what_was_handled_and_a_restart_reads_nothing_again(deployment: Deployment) -> None:
    """SIGTERM with a state flush far away: the worker writes the live states and acknowledges
    the records behind them before Faust's last commit, so the restarted worker has every state
    and reads none of those records again."""
    now = time.time() - 60
    clicks = [event(c, i, "click", now + i) for i in range(4) for c in CUSTOMERS]
    log = deployment.workdir / "worker.log"
    with running_worker(deployment.env(FORETHOUGHT_STATE_FLUSH_SECONDS="600"), log, deployment.url):
        rebuilt(log)
        await deployment.produce("events.clickstream", clicks)
        for customer in CUSTOMERS:
            await deployment.wait_for(f"/customers/{customer}", lambda body: body["events"] == 4)
    assert "state_flushed_at_stop" in log.read_text(errors="replace")
    assert await committed(deployment, "events.clickstream") == len(clicks)

    with running_worker(deployment.env(), log, deployment.url):
        states = [await deployment.wait_for(f"/customers/{c}", lambda body: True) for c in CUSTOMERS]
        _, metrics = deployment.get("/metrics")
    assert [s["events"] for s in states] == [4] * len(CUSTOMERS)
    read_again = metric(metrics, "forethought_events_in_total", topic=deployment.topic("events.clickstream"),
                        type="click")
    assert read_again == 0, "the restarted worker resumed after the flushed, committed records"
