"""Ordered inputs across a stall (issue #12 chaos finding 2): a worker stopped with SIGSTOP while a
backlog lands topic by topic must, once it resumes, still merge the topics in event-time order.

Before the fix the topic-partitions' high watermarks were those of the last fetch before the stop:
they said "caught up", so the first topic fetched after the stop was not held back for the others,
and its records overtook older records of the other topics (customers ended with ``late`` events).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from test_ordered_inputs import (
    ORDERED, caught_up, events_in, prepared, produce_topic_by_topic, published, views_match_replay,
)
from worker_kit import Deployment

from forethought.ops.process import running_worker
from forethought.replay.reader import sorted_lines


async def test_a_backlog_landing_while_the_worker_is_stopped_is_merged_in_event_time_order(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, records, expected, replayer = prepared(tmp_path, monkeypatch, seed=11)
    records.sort(key=lambda r: r["occurred_at"])
    before, during = records[: len(records) // 5], records[len(records) // 5:]

    deployment = await Deployment.create(kafka_bootstrap, topic_prefix, tmp_path)
    await produce_topic_by_topic(deployment, before)
    with running_worker(deployment.env(ORDERED), deployment.workdir / "worker.log", deployment.url) as proc:
        await deployment.wait_for("/metrics", lambda text: events_in(text) >= len(before), timeout=180)
        time.sleep(3)  # caught up: every high watermark it knows says "nothing more"
        os.killpg(proc.pid, signal.SIGSTOP)  # a stall shorter than the session timeout: no rebalance
        try:
            await produce_topic_by_topic(deployment, during)
            time.sleep(2)
        finally:
            os.killpg(proc.pid, signal.SIGCONT)
        await caught_up(deployment, replayer)
        last = max(r.ts for r in sorted_lines([path]))
        found = await published(deployment, expected, last)
        views_match_replay(deployment, replayer)
    assert found == expected
