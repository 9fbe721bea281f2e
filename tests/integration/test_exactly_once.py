"""Exactly-once effects on state and fast recovery, against the real broker (docs/durability.md).

- A worker SIGKILLed several times mid-stream, its state flushed often and its offsets committed
  rarely (the window where a crash used to double-count: states on the changelog, offsets not
  committed), ends with every customer counting each event once.
- ``/ready`` turns false while the broker is away and true again when it is back; the recovery is
  exported as ``forethought_recovery_seconds{cause="broker"}``. That test runs its own broker (the
  session's broker is shared by every other test).
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest
from test_engine_safety import committed
from worker_kit import Deployment, event, metric

from forethought.devkafka import LocalBroker
from forethought.ops.process import free_port, running_worker, spawn_worker, stop_process, wait_ready

CUSTOMERS = [f"xo-{i}" for i in range(12)]
WAVES, VIEWS, CLICKS = 4, 40, 10  # per customer and wave


def wave(k: int, start: float) -> list[tuple[bytes, bytes]]:
    """Wave ``k`` of clickstream events: VIEWS page views and CLICKS clicks per customer, in time order."""
    out = []
    for i in range(VIEWS + CLICKS):
        kind = "click" if i % 5 == 4 else "page_view"
        for c in CUSTOMERS:
            out.append(event(c, k * 1000 + i, kind, start + (k * (VIEWS + CLICKS) + i) * 2.0))
    return out


@pytest.fixture
async def deployment(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Deployment:
    return await Deployment.create(kafka_bootstrap, topic_prefix, tmp_path)


async def test_sigkills_mid_stream_leave_every_customer_counting_each_event_once(deployment: Deployment) -> None:
    rng = random.Random(12)
    start = time.time() - 3 * 3600
    env = deployment.env(FORETHOUGHT_STATE_FLUSH_SECONDS="0.3", FORETHOUGHT_COMMIT_INTERVAL_SECONDS="6",
                         FORETHOUGHT_KAFKA_GROUP_INSTANCE_ID="xo-worker-0")
    log = deployment.workdir / "worker.log"
    skipped = 0.0
    for k in range(WAVES):
        proc = spawn_worker(env, log)
        try:
            wait_ready(deployment.url, proc, log_path=log)
            await deployment.produce("events.clickstream", wave(k, start))
            time.sleep(rng.uniform(1.0, 3.0))  # mid-stream: flushed states, offsets mostly not committed
            _, text = deployment.get("/metrics")
            skipped += metric(text, "forethought_replayed_records_total")
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            stop_process(proc)
    total = WAVES * (VIEWS + CLICKS) * len(CUSTOMERS)
    with running_worker(env, log, deployment.url):
        deadline = time.monotonic() + 120
        while await committed(deployment, "events.clickstream") < total and time.monotonic() < deadline:
            time.sleep(0.5)
        states = {c: deployment.get(f"/customers/{c}")[1] for c in CUSTOMERS}
        _, text = deployment.get("/metrics")
        skipped += metric(text, "forethought_replayed_records_total")
    assert await committed(deployment, "events.clickstream") == total
    expected = {"page_view": WAVES * VIEWS, "click": WAVES * CLICKS}
    wrong = {c: (s.get("events"), s.get("by_type")) for c, s in states.items()
             if s.get("events") != WAVES * (VIEWS + CLICKS) or s.get("by_type") != expected}
    assert wrong == {}, "after the crashes each event counts once"
    assert skipped > 0, "records were read again after a crash and skipped by their offsets"


async def test_ready_is_false_while_the_broker_is_away_and_true_again_when_it_returns(
        local_broker_prerequisites: None, topic_prefix: str, tmp_path: Path) -> None:
    broker = LocalBroker(data_dir=tmp_path / "kafka", port=free_port(), keep_data=True)
    bootstrap = broker.start()
    try:
        deployment = await Deployment.create(bootstrap, topic_prefix, tmp_path)
        log = tmp_path / "worker.log"
        with running_worker(deployment.env(FORETHOUGHT_BROKER_CHECK_SECONDS="1"), log, deployment.url):
            broker.stop()
            away = await deployment.wait_for("/metrics", lambda text: metric(text, "forethought_broker_reachable") == 0)
            assert metric(away, "forethought_broker_reachable") == 0
            status, body = deployment.get("/ready")
            assert (status, body["ready"], body["broker_reachable"]) == (503, False, False)
            assert deployment.get("/health")[0] == 200, "alive: nothing to restart, only not ready"
            broker.start()
            await deployment.wait_for("/ready", lambda body: body["ready"], timeout=120)
            text = await deployment.wait_for(  # the timer that follows readiness runs every half second
                "/metrics", lambda text: metric(text, "forethought_recovery_seconds", cause="broker") > 0, timeout=10)
            assert metric(text, "forethought_broker_reachable") == 1
            now = time.time()
            await deployment.produce("events.errors", [event("back-1", 0, "error", now - 5, code="E1")])
            body = await deployment.wait_for("/customers/back-1", lambda b: b["events"] == 1, timeout=60)
            assert body["by_type"] == {"error": 1}, "records flow again after the outage"
    finally:
        broker.stop()
