"""One input file through replay and through the Faust worker gives identical triggers (rule 2),
with the shipped playbooks and policy (holdouts, caps, cooldowns, arbitration, consent, quiet hours)."""

from __future__ import annotations

import json
import random
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from worker_kit import ENGINE, Deployment, epoch, metric

from forethought.contracts.records import Trigger
from forethought.core.snapshots import taken_at
from forethought.ops.playbooks import load_rules
from forethought.ops.process import running_worker
from forethought.ops.settings import Settings
from forethought.ops.topics import load_catalogue
from forethought.replay.reader import sorted_lines
from forethought.replay.runner import Replayer


# The behaviour trees warm up within the test's 4 days (hour-long windows, small references),
PARITY_ENGINE = {**ENGINE, "FORETHOUGHT_ENGINE__ANOMALY_WINDOW_SECONDS": "3600",
                 "FORETHOUGHT_ENGINE__ANOMALY_MIN_REFERENCE": "20", "FORETHOUGHT_ENGINE__ANOMALY_ALERT_RATE": "0.02",
                 "FORETHOUGHT_ENGINE__PRIOR_LEARNED": "true", "FORETHOUGHT_ENGINE__PRIOR_MIN_CUSTOMERS": "4"}
# and the population prior is learned


def history(path: Path, customers: int = 16, days: int = 4, seed: int = 11) -> list[dict]:
    """Past activity with varied cadences, some customers stopping, some error bursts; written unsorted."""
    rng = random.Random(seed)
    start = time.time() - days * 86_400
    records: list[dict] = []
    for c in range(customers):
        cadence = rng.choice([120.0, 900.0, 3600.0])
        stop = start + days * 86_400 * (0.4 if c % 3 == 0 else 1.0)
        t, n = start + rng.uniform(0, cadence), 0
        while t < stop:
            records.append(_event(f"p{c}", n, "page_view", t))
            t, n = t + cadence * rng.lognormvariate(0, 0.3), n + 1
        if c % 4 == 1:
            burst = start + rng.uniform(0.1, 0.3) * days * 86_400
            records += [_event(f"p{c}", 10_000 + i, "error", burst + i, code="E7") for i in range(9)]
    zones = ["Asia/Tokyo", "America/New_York", "Europe/Berlin"]
    records += [{"type": "profile", "customer_id": f"p{c}", "timezone": zones[c % 3], "plan": "pro",
                 "consent": {"email": c % 4 != 0}, "updated_at": _iso(start - 3600)} for c in range(0, customers, 2)]
    rng.shuffle(records)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return records


def _event(customer: str, n: int, kind: str, at: float, **extra: str) -> dict:
    return {"event_id": f"{customer}-{n}", "customer_id": customer, "type": kind, "occurred_at": _iso(at), **extra}


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, tz=timezone.utc).isoformat()


async def test_replay_and_worker_publish_identical_triggers(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "history.jsonl"
    history(path)
    for name, value in PARITY_ENGINE.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    config = settings.engine

    replayed: list[Trigger] = []
    shadowed: list[Trigger] = []
    partitions = load_catalogue(settings.topics_file).partitions  # one model per partition, as in the worker
    replayer = Replayer(config, on_trigger=replayed.append, rules=load_rules(settings.playbooks_file),
                        partitions=partitions, on_shadow=shadowed.append)
    ordered = list(sorted_lines([path]))
    for line in ordered:
        replayer.feed(line)
    replayer.finish()
    last_event = max(line.ts for line in ordered)
    replayed = [t for t in replayed if _sent_at(t) <= last_event]
    shadowed = [t for t in shadowed if _sent_at(t) <= last_event]
    assert {"long_inactivity", "dropoff_risk_high", "error_burst"} <= {t.playbook for t in replayed}
    assert any(t.playbook == "unusual_behaviour" for t in shadowed), "the Half-Space Trees must be warm and fire"
    assert replayer.counts.suppressed, "the file must exercise suppression too"

    deployment = await Deployment.create(kafka_bootstrap, topic_prefix, tmp_path)
    topic_of = {"page_view": "events.clickstream", "error": "events.errors", "profile": "customers.profile"}
    with running_worker(deployment.env(PARITY_ENGINE), deployment.workdir / "worker.log", deployment.url):
        # Kafka orders records within a partition, not across topics: produce in event-time order,
        # one run of same-topic records at a time, and let the worker catch up between runs.
        sent = 0
        for topic, run in _runs(ordered, topic_of):
            await deployment.produce(topic, run)
            sent += len(run)
            await deployment.wait_for("/metrics", lambda text, n=sent: _events_in(text) >= n, timeout=120)
        _, exposition = deployment.get("/metrics")
        # The learned model's daily snapshots and their labels follow the same path in both drivers,
        # also for customers first known from a profile (placed at the later of its updated_at and
        # the event time seen so far, in both).
        views = {c: deployment.get(f"/customers/{c}")[1] for c in _customers(ordered)}
        pending = {c: _pending_snapshot(view, last_event) for c, view in views.items()}
        # The same holds for due-time triggers (a silence, a behaviour bucket closing with no event after
        # it): compare the triggers each customer's clock in the worker had reached when its view was read.
        clock_of = {c: min(epoch(view["as_of"]) - 1.0, last_event) for c, view in views.items()}  # replay's ends there
        expected, published = await _reached_triggers(deployment, "engagement.triggers", replayed, clock_of)
        expected_shadow, in_shadow = await _reached_triggers(
            deployment, "engagement.triggers.shadow", shadowed, clock_of)
    assert any(view["population_prior"]["learned"] for view in views.values()), "the prior was learned"
    # Replay's clock ends at the history's last event; a partition's clock in the worker ends at its own newest
    # event and runs on (at the wall clock's pace) only once input idles. A customer's daily look (a fixed
    # time of the UTC day, core/due.py) between the two is taken by replay alone: compare the customers whose
    # replayed snapshot the worker's clock has reached (else the test failed at some times of day only).
    replayed_snapshots = {c: replayer.states[c].slice("learned_dropoff").snapshot for c in pending}
    reached = {c for c, snapshot in replayed_snapshots.items()
               if snapshot is None or taken_at(snapshot) <= epoch(views[c]["as_of"]) - 1.0}
    assert len(reached) >= len(pending) - 2, "the worker's clock reached nearly every customer's look"
    assert {c: pending[c] for c in reached} == {c: replayed_snapshots[c] for c in reached}
    assert any(pending.values())
    assert sum(metric(exposition, "forethought_model_labels_seen", partition=str(p)) for p in range(partitions)) > 0
    assert len(expected) >= 0.8 * len(replayed), "the worker's clock reached nearly every trigger"
    for tid in sorted(set(published) ^ set(expected)):
        t = published.get(tid) or expected[tid]
        print("ONLY", "worker" if tid in published else "replay", t.playbook, t.customer_id, t.fired_at, t.episode, t.reasons[0].text)
    assert set(published) == set(expected)
    assert published == expected
    assert len(expected_shadow) >= 0.8 * len(shadowed), "the worker's clock reached nearly every shadow trigger"
    assert in_shadow == expected_shadow, "the behaviour trees scored alike in both drivers"


async def _reached_triggers(deployment: Deployment, topic: str, replayed: list[Trigger], clock_of: dict[str, float],
                            ) -> tuple[dict[str, Trigger], dict[str, Trigger]]:
    """The triggers replay sent that each customer's worker clock has reached, and the worker's on
    ``topic`` (waiting for the first, then reading every one, so that extras show too)."""
    expected = {t.trigger_id: t for t in replayed if _reached(t, clock_of)}
    await deployment.consume(topic, until=len(expected), timeout=60,
                             match=lambda r: _reached(Trigger.model_validate_json(r.value), clock_of))
    found = (Trigger.model_validate_json(r.value) for r in await deployment.read_all(topic))
    return expected, {t.trigger_id: t for t in found if _reached(t, clock_of)}


def _reached(trigger: Trigger, clock_of: dict[str, float]) -> bool:
    """Whether the worker's clock for the trigger's customer had passed its send time."""
    return _sent_at(trigger) <= clock_of.get(trigger.customer_id, float("-inf"))


def _customers(lines: list) -> list[str]:
    return sorted({json.loads(line.raw)["customer_id"] for line in lines})


def _pending_snapshot(view: dict, last_event: float) -> str | None:
    """The worker's pending snapshot; one taken by a daily check after the last event (the worker's
    clock runs on once input idles) is one replay never reached."""
    pending = view["learned"]["pending_snapshot"]
    return None if pending is None or epoch(pending["taken_at"]) > last_event else pending["encoded"]


def _runs(lines: list, topic_of: dict[str, str]) -> list[tuple[str, list[tuple[bytes, bytes]]]]:
    runs: list[tuple[str, list[tuple[bytes, bytes]]]] = []
    for line in lines:
        data = json.loads(line.raw)
        topic = topic_of[data["type"]]
        if not runs or runs[-1][0] != topic:
            runs.append((topic, []))
        runs[-1][1].append((data["customer_id"].encode(), line.raw))
    return runs


def _events_in(text: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(("forethought_events_in_total{", "forethought_control_records_in_total{")))


def _sent_at(trigger: Trigger) -> float:
    """When a trigger went out in event time: its release for a deferred one."""
    return (trigger.released_at or trigger.fired_at).timestamp()
