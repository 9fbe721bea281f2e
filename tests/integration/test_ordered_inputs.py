"""Ordered inputs (issue #11, point 3): a backlog produced topic by topic (all clickstream, then all
usage, then all errors) reaches the engine in event-time order per partition, so the worker fires
what replay of the same events fires; and a worker killed mid-backlog loses none of the records it
held in its ordering buffer."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from worker_kit import ENGINE, Deployment, metric

from forethought.contracts.records import Trigger
from forethought.ops.playbooks import load_rules
from forethought.ops.process import running_worker, spawn_worker, stop_process, wait_ready
from forethought.ops.settings import Settings
from forethought.ops.topics import load_catalogue
from forethought.replay.reader import sorted_lines
from forethought.replay.runner import Replayer

TOPIC_OF = {"page_view": "events.clickstream", "usage": "events.usage", "error": "events.errors"}
ORDERED = {**ENGINE, "FORETHOUGHT_MAX_TASK_IDLE_SECONDS": "2"}
# Faust's own setting (read from the environment): the broker drops a killed worker from the consumer
# group after 10 s instead of 60, so the restarted worker gets its partitions sooner
CRASHING = {**ORDERED, "BROKER_SESSION_TIMEOUT": "10"}


def backlog(path: Path, customers: int = 36, hours: float = 30, seed: int = 3) -> list[dict]:
    """A day of activity: varied cadences, hours-long silences, stops, hourly usage, error bursts."""
    rng = random.Random(seed)
    start = time.time() - (hours + 2) * 3600
    records: list[dict] = []
    for c in range(customers):
        customer, cadence = f"o{c}", rng.choice([300.0, 600.0, 1200.0])
        stop = start + hours * 3600 * (0.6 if c % 5 == 0 else 1.0)
        gap = (start + hours * 3600 * rng.uniform(0.3, 0.5), rng.uniform(3, 6) * 3600) if c % 3 == 0 else (0.0, 0.0)
        t, n = start + rng.uniform(0, cadence), 0
        while t < stop:
            if not gap[0] <= t < gap[0] + gap[1]:
                records.append(_event(customer, n, "page_view", t))
            t, n = t + cadence * rng.lognormvariate(0, 0.3), n + 1
        for h in range(int(hours)):
            records.append(_event(customer, 50_000 + h, "usage", start + h * 3600 + rng.uniform(0, 3000),
                                  metric="api_calls", quantity=float(rng.randint(1, 500))))
        if c % 4 == 1:
            burst = start + rng.uniform(0.2, 0.8) * hours * 3600
            records += [_event(customer, 90_000 + i, "error", burst + i * 7.3, code="E7") for i in range(9)]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return records


def _event(customer: str, n: int, kind: str, at: float, **extra: object) -> dict:
    when = datetime.fromtimestamp(at, tz=timezone.utc).isoformat()
    return {"event_id": f"{customer}-{n}", "customer_id": customer, "type": kind, "occurred_at": when, **extra}


def replayed(path: Path) -> tuple[dict[str, Trigger], Replayer]:
    """Replay's triggers over the file in event-time order, up to its last event."""
    settings = Settings()
    triggers: list[Trigger] = []
    replayer = Replayer(settings.engine, on_trigger=triggers.append, rules=load_rules(settings.playbooks_file),
                        partitions=load_catalogue(settings.topics_file).partitions)
    lines = list(sorted_lines([path]))
    for line in lines:
        replayer.feed(line)
    replayer.finish()
    last = max(line.ts for line in lines)
    return {t.trigger_id: t for t in triggers if _sent_at(t) <= last}, replayer


async def produce_topic_by_topic(deployment: Deployment, records: list[dict]) -> None:
    """The backlog as upstream systems that caught up one after the other would leave it."""
    for kind in ("page_view", "usage", "error"):
        run = sorted((r for r in records if r["type"] == kind), key=lambda r: r["occurred_at"])
        await deployment.produce(TOPIC_OF[kind], [(r["customer_id"].encode(), json.dumps(r).encode()) for r in run])


async def published(deployment: Deployment, expected: dict[str, Trigger], last: float) -> dict[str, Trigger]:
    """The worker's triggers up to the last event (once every expected id is there, or the timeout);
    a trigger published twice (after a crash) must be the same trigger."""
    found = await _until(deployment, expected)
    triggers: dict[str, Trigger] = {}
    for record in found:
        trigger = Trigger.model_validate_json(record.value)
        if _sent_at(trigger) <= last:
            assert triggers.setdefault(trigger.trigger_id, trigger) == trigger, "a re-published trigger changed"
    return triggers


async def _until(deployment: Deployment, expected: dict[str, Trigger]) -> list:
    deadline = time.monotonic() + 90
    while True:
        found = await deployment.read_all("engagement.triggers")
        if expected.keys() <= {Trigger.model_validate_json(r.value).trigger_id for r in found}:
            return found
        if time.monotonic() > deadline:
            return found
        await asyncio.sleep(1)


def views_match_replay(deployment: Deployment, replayer: Replayer, crashed: bool = False) -> None:
    """Every customer's events were applied once each, none judged late (they came in order).

    After a crash the worker reads again what it processed after its last commit: a copy among the
    customer's recent event ids is a duplicate, an older one is late (counted apart, changes nothing).
    """
    for customer, state in replayer.states.items():
        status, view = deployment.get(f"/customers/{customer}")
        assert status == 200, (customer, view)
        assert (view["events"], view["by_type"]) == (state.events, dict(state.by_type)), customer
        assert view["late_events"] == 0 or crashed, (customer, view["late_events"])


def events_in(text: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("forethought_events_in_total{"))


async def caught_up(deployment: Deployment, replayer: Replayer, timeout: float = 180) -> None:
    """Wait until every customer's state holds as many events as replay's."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        views = {c: deployment.get(f"/customers/{c}") for c in replayer.states}
        if all(status == 200 and view["events"] >= replayer.states[c].events for c, (status, view) in views.items()):
            return
        await asyncio.sleep(1)
    behind = {c: (status, view if status != 200 else (view["events"], view["late_events"], view["by_type"]),
                  replayer.states[c].events, dict(replayer.states[c].by_type))
              for c, (status, view) in views.items()
              if status != 200 or view["events"] < replayer.states[c].events}
    raise AssertionError(f"the restarted worker did not catch up: {behind}")


def prepared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **options: Any) -> tuple[Path, Any, Any, Replayer]:
    """The ordered-inputs environment, a backlog file (``options`` go to :func:`backlog`) and what
    replay makes of it."""
    for name, value in ORDERED.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "backlog.jsonl"
    records = backlog(path, **options)
    expected, replayer = replayed(path)
    return path, records, expected, replayer


def _sent_at(trigger: Trigger) -> float:
    return (trigger.released_at or trigger.fired_at).timestamp()


async def test_a_backlog_produced_topic_by_topic_fires_what_replay_fires(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, records, expected, replayer = prepared(tmp_path, monkeypatch)
    assert {"long_inactivity", "error_burst"} <= {t.playbook for t in expected.values()}
    assert not any(state.late for state in replayer.states.values())

    deployment = await Deployment.create(kafka_bootstrap, topic_prefix, tmp_path)
    await produce_topic_by_topic(deployment, records)
    with running_worker(deployment.env(ORDERED), deployment.workdir / "worker.log", deployment.url):
        await deployment.wait_for("/metrics", lambda text: events_in(text) >= len(records), timeout=180)
        last = max(r.ts for r in sorted_lines([path]))
        found = await published(deployment, expected, last)
        views_match_replay(deployment, replayer)
        _, exposition = deployment.get("/metrics")
    for tid in sorted(set(found) ^ set(expected)):
        t = found.get(tid) or expected[tid]
        print("ONLY", "worker" if tid in found else "replay", t.playbook, t.customer_id, t.fired_at)
    assert found == expected
    assert metric(exposition, "forethought_ordering_buffered") == 0


async def test_a_worker_killed_mid_backlog_loses_none_of_the_records_it_buffered(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, records, expected, replayer = prepared(tmp_path, monkeypatch, seed=5)

    deployment = await Deployment.create(kafka_bootstrap, topic_prefix, tmp_path)
    await produce_topic_by_topic(deployment, records)
    log = deployment.workdir / "worker.log"
    proc = spawn_worker(deployment.env(CRASHING), log)
    try:
        wait_ready(deployment.url, proc)
        text = await deployment.wait_for(
            "/metrics", lambda text: metric(text, "forethought_ordering_buffered") > 0 and events_in(text) > 0,
            timeout=120)
        assert events_in(text) < len(records), "killed mid-backlog"
        os.killpg(proc.pid, signal.SIGKILL)  # a crash: nothing is flushed, acknowledged or committed on the way out
        proc.wait()
    finally:
        stop_process(proc)
    with running_worker(deployment.env(CRASHING), log, deployment.url):
        await caught_up(deployment, replayer)
        last = max(r.ts for r in sorted_lines([path]))
        found = await published(deployment, expected, last)
        views_match_replay(deployment, replayer, crashed=True)
    assert found == expected

