"""The policy as a user of the real worker sees it: quiet hours, restarts, unsubscribes, caps.

Each test runs a real worker (a child process) against the session's real broker, with a playbook
file from ``tests/integration/playbooks/``. Timers (deferred-trigger release) fire at the event
time of the customer's input partition, so tests move that time forward by producing an event of
another customer placed on the same partition (murmur2 of the key, as Kafka places it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from contextlib import suppress
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema
import pytest
from worker_kit import Deployment, epoch, event, metric

from forethought.contracts.records import Trigger
from forethought.ops.process import running_worker, spawn_worker, wait_ready
from forethought.ops.settings import REPO_ROOT
from forethought.ops.topics import load_catalogue
from forethought.stream.worker import partition_of

PLAYBOOKS = Path(__file__).parent / "playbooks"
TRIGGER_SCHEMA = json.loads((REPO_ROOT / "schemas" / "trigger.schema.json").read_text())
CATALOGUE = load_catalogue()
TOKYO = ZoneInfo("Asia/Tokyo")
BUCKET = 60  # FAST_ENGINE_ENV: one-minute error buckets, a burst is >= 5 errors in one


# -- helpers -----------------------------------------------------------------------------------------

@pytest.fixture
async def deployment(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Deployment:
    return await Deployment.create(kafka_bootstrap, topic_prefix, tmp_path)


def worker_env(deployment: Deployment, playbooks: str) -> dict[str, str]:
    return deployment.env(FORETHOUGHT_PLAYBOOKS_FILE=str(PLAYBOOKS / playbooks))


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, tz=timezone.utc).isoformat()


def utc(at: float) -> datetime:
    return datetime.fromtimestamp(at, tz=timezone.utc)


def profile(customer: str, updated_at: float, **fields: Any) -> tuple[bytes, bytes]:
    body = {"type": "profile", "customer_id": customer, "updated_at": iso(updated_at), **fields}
    return customer.encode(), json.dumps(body).encode()


def outcome(customer: str, trigger_id: str, channel: str, status: str, at: float) -> tuple[bytes, bytes]:
    body = {"type": "outcome", "outcome_id": f"{trigger_id}-{status}", "trigger_id": trigger_id,
            "customer_id": customer, "channel": channel, "status": status, "occurred_at": iso(at)}
    return customer.encode(), json.dumps(body).encode()


def errors(customer: str, count: int, at: float, first: int = 0) -> list[tuple[bytes, bytes]]:
    """``count`` critical errors half a second apart from ``at`` (ids ``first``, ``first + 1``...)."""
    return [event(customer, first + i, "error", at + i * 0.5, code="E500", severity="critical")
            for i in range(count)]


def neighbour(customer: str, stem: str) -> str:
    """Another customer id whose records land on ``customer``'s partition."""
    partitions = CATALOGUE.partitions
    home = partition_of(customer.encode(), partitions)
    return next(f"{stem}-{i}" for i in range(1000) if partition_of(f"{stem}-{i}".encode(), partitions) == home)


def minute(at: float) -> float:
    """The start of the error bucket holding ``at``."""
    return float(int(at) // BUCKET * BUCKET)


async def triggers_of(deployment: Deployment, customer: str, topic: str = "engagement.triggers") -> list[Trigger]:
    """Every trigger published so far for ``customer``, in order, each checked against the schema."""
    found = []
    for record in await deployment.read_all(topic):
        if record.key == customer.encode():
            jsonschema.validate(json.loads(record.value), TRIGGER_SCHEMA)
            found.append(Trigger.model_validate_json(record.value))
    return found


async def first_triggers(deployment: Deployment, customer: str, count: int, timeout: float = 30) -> list[Trigger]:
    """Wait until ``count`` triggers for ``customer`` are on the topic."""
    records = await deployment.consume("engagement.triggers", until=count, timeout=timeout,
                                       match=lambda r: r.key == customer.encode())
    assert len(records) >= count, f"expected {count} trigger(s) for {customer}, got {len(records)}"
    return [Trigger.model_validate_json(r.value) for r in records]


async def wait_metric(deployment: Deployment, name: str, value: float, timeout: float = 30, **labels: str) -> str:
    """Poll /metrics until sample ``name{labels}`` reaches ``value``; returns the exposition."""
    return await deployment.wait_for("/metrics", lambda text: metric(text, name, **labels) >= value, timeout)


def kill_hard(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the worker's process group: no shutdown, no final commit, no flush."""
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def tokyo_night() -> tuple[float, float, str]:
    """23:00 in Tokyo two local days ago, 08:00 the next morning (POSIX seconds), and that morning's date."""
    day = (datetime.now(TOKYO) - timedelta(days=2)).date()
    night = datetime(day.year, day.month, day.day, 23, 0, tzinfo=TOKYO)
    morning = datetime(day.year, day.month, day.day, 8, 0, tzinfo=TOKYO) + timedelta(days=1)
    return night.timestamp(), morning.timestamp(), morning.date().isoformat()


async def defer_overnight(deployment: Deployment, customer: str, night: float, morning: float) -> dict[str, Any]:
    """A Tokyo customer's profile, then an error burst at 23:00 local: the trigger is deferred to 08:00."""
    await deployment.produce("customers.profile", [profile(customer, night - 86_400, timezone="Asia/Tokyo")])
    await deployment.wait_for(f"/customers/{customer}", lambda body: True)  # the profile is in before the errors
    await deployment.produce("events.errors", errors(customer, 6, night))
    body = await deployment.wait_for(f"/customers/{customer}", lambda body: body["policy"]["deferred"])
    (deferred,) = body["policy"]["deferred"]
    assert deferred["playbook"] == "night_burst"
    assert epoch(deferred["release_at"]) == morning, "held until 08:00 the next morning in Tokyo"
    assert body["policy"]["sent"] == []
    assert epoch(body["as_of"]) < morning
    return body


def assert_released_at_eight(trigger: Trigger, night: float, morning: float, morning_date: str) -> None:
    assert (trigger.playbook, trigger.channel, trigger.mode) == ("night_burst", "in_app", "live")
    assert trigger.released_at == utc(morning), "released exactly when quiet hours end"
    assert night <= trigger.fired_at.timestamp() < night + BUCKET, "fired at the burst, 23:00 local"
    assert trigger.fired_at.astimezone(TOKYO).hour == 23
    assert trigger.expires_at == utc(morning) + timedelta(days=1), "the ttl runs from the release"
    assert trigger.why is not None
    quiet = [check for check in trigger.why.checks if check.startswith("quiet hours")]
    assert any(f"to {morning_date} 08:00 Asia/Tokyo" in check for check in quiet), trigger.why.checks


# -- 1. quiet hours ------------------------------------------------------------------------------------

async def test_quiet_hours_in_tokyo_hold_a_burst_trigger_until_eight_in_the_morning(deployment: Deployment) -> None:
    customer = "tokyo-night"
    clock = neighbour(customer, "tokyo-clock")  # moves the event time of the customer's partition
    night, morning, morning_date = tokyo_night()
    with running_worker(worker_env(deployment, "quiet_hours_tokyo.yaml"), deployment.workdir / "worker.log",
                        deployment.url):
        deferral = await defer_overnight(deployment, customer, night, morning)

        # 07:55 in Tokyo on the partition: still quiet, still held, nothing sent
        await deployment.produce("events.clickstream", [event(clock, 0, "page_view", morning - 300)])
        dawn = await deployment.wait_for(f"/customers/{customer}", lambda body: epoch(body["as_of"]) >= morning - 300)
        assert epoch(dawn["as_of"]) < morning
        assert dawn["policy"]["deferred"] == deferral["policy"]["deferred"]
        assert await triggers_of(deployment, customer) == []

        # 08:00:01 in Tokyo: the trigger goes out, once
        await deployment.produce("events.clickstream", [event(clock, 1, "page_view", morning + 1)])
        (first,) = await first_triggers(deployment, customer, 1)
        after = await deployment.wait_for(f"/customers/{customer}", lambda body: not body["policy"]["deferred"])
        published = await triggers_of(deployment, customer)
        _, metrics = deployment.get("/metrics")
    assert [t.trigger_id for t in published] == [first.trigger_id] == [deferral["policy"]["deferred"][0]["trigger_id"]]
    assert_released_at_eight(first, night, morning, morning_date)
    assert [{**s, "at": epoch(s["at"])} for s in after["policy"]["sent"]] == [
        {"at": morning, "playbook": "night_burst", "channel": "in_app"}]
    assert metric(metrics, "forethought_decisions_total", playbook="night_burst", verdict="deferred") == 1
    assert metric(metrics, "forethought_decisions_total", playbook="night_burst", verdict="released") == 1


# -- 2. restart ----------------------------------------------------------------------------------------

async def test_a_deferred_trigger_survives_a_hard_kill_of_the_worker_and_is_released_once(
    deployment: Deployment,
) -> None:
    customer = "tokyo-restart"
    clock = neighbour(customer, "tokyo-clock")
    night, morning, morning_date = tokyo_night()
    # Faust's own setting (read from the environment): the broker drops the killed worker from the
    # consumer group after 10 s of silence instead of 60, so the new worker gets its partitions sooner
    env = {**worker_env(deployment, "quiet_hours_tokyo.yaml"), "BROKER_SESSION_TIMEOUT": "10"}
    log = deployment.workdir / "worker.log"

    proc = spawn_worker(env, log)
    try:
        wait_ready(deployment.url, proc)
        deferral = await defer_overnight(deployment, customer, night, morning)
    finally:
        kill_hard(proc)
    assert await triggers_of(deployment, customer) == []

    with running_worker(env, log, deployment.url):
        # from the changelog, or (had the kill beaten the changelog write) by re-reading the uncommitted errors
        restored = await deployment.wait_for(f"/customers/{customer}", lambda body: body["policy"]["deferred"])
        assert restored["policy"]["deferred"] == deferral["policy"]["deferred"], "the deferral was restored"
        await deployment.produce("events.clickstream", [event(clock, 0, "page_view", morning + 1)])
        await first_triggers(deployment, customer, 1)
        # let the worker sweep on past the release before counting
        await deployment.produce("events.clickstream", [event(clock, 1, "page_view", morning + 120)])
        await deployment.wait_for(f"/customers/{clock}", lambda body: body["events"] == 2)
        await deployment.wait_for(f"/customers/{customer}",
                                  lambda body: not body["policy"]["deferred"] and epoch(body["as_of"]) >= morning + 120)
        published = await triggers_of(deployment, customer)
    assert len(published) == 1, f"released exactly once, got {[t.trigger_id for t in published]}"
    assert {t.trigger_id for t in published} == {deferral["policy"]["deferred"][0]["trigger_id"]}
    assert_released_at_eight(published[0], night, morning, morning_date)


# -- 3. unsubscribe ------------------------------------------------------------------------------------

async def test_an_unsubscribe_outcome_stops_that_channel_for_later_triggers(deployment: Deployment) -> None:
    # one playbook falls back to in_app, the other has only email (cohorts pick the playbook)
    fallback, email_only = "unsub-fallback", "unsub-email-only"
    now = time.time()
    # 15 minutes apart: more than 3 quiet minutes re-arm the burst detector, so the second is a new episode
    first_burst, second_burst = minute(now - 1800), minute(now - 900)
    with running_worker(worker_env(deployment, "unsubscribe.yaml"), deployment.workdir / "worker.log",
                        deployment.url):
        await deployment.produce("customers.profile", [
            profile(customer, now - 86_400, consent={"email": True}, attributes={"cohort": cohort})
            for customer, cohort in ((fallback, "fallback"), (email_only, "email_only"))])
        for customer in (fallback, email_only):
            await deployment.wait_for(f"/customers/{customer}", lambda body: True)
        await deployment.produce("events.errors", errors(fallback, 6, first_burst) + errors(email_only, 6, first_burst))
        (to_fallback,) = await first_triggers(deployment, fallback, 1)
        (to_email_only,) = await first_triggers(deployment, email_only, 1)
        assert (to_fallback.playbook, to_fallback.channel) == ("burst_email_then_in_app", "email")
        assert (to_email_only.playbook, to_email_only.channel) == ("burst_email_only", "email")

        # both customers click "unsubscribe" in the email
        await deployment.produce("engagement.outcomes", [
            outcome(t.customer_id, t.trigger_id, "email", "unsubscribed", first_burst + 300)
            for t in (to_fallback, to_email_only)])
        await wait_metric(deployment, "forethought_outcomes_total", 2, status="unsubscribed", channel="email")

        second = errors(fallback, 6, second_burst, first=100) + errors(email_only, 6, second_burst, first=100)
        await deployment.produce("events.errors", second)
        await first_triggers(deployment, fallback, 2)
        metrics = await wait_metric(deployment, "forethought_decisions_total", 1, playbook="burst_email_only",
                                    verdict="suppressed", reason="consent")
        for customer in (fallback, email_only):
            await deployment.wait_for(f"/customers/{customer}", lambda body: body["events"] == 12)
        to_fallback_all = await triggers_of(deployment, fallback)
        to_email_only_all = await triggers_of(deployment, email_only)

    assert [t.channel for t in to_fallback_all] == ["email", "in_app"], "after the unsubscribe: in_app, never email"
    later = to_fallback_all[1]
    assert later.episode != to_fallback.episode and later.fired_at.timestamp() >= second_burst
    assert later.why is not None and "consent: in_app" in later.why.checks
    assert [t.trigger_id for t in to_email_only_all] == [to_email_only.trigger_id], "email only: nothing more"
    assert metric(metrics, "forethought_decisions_total", playbook="burst_email_only", verdict="suppressed",
                  reason="consent") == 1
    assert metric(metrics, "forethought_decisions_total", playbook="burst_email_only", verdict="sent") == 1
    assert metric(metrics, "forethought_decisions_total", playbook="burst_email_then_in_app", verdict="sent") == 2


# -- 4. caps -------------------------------------------------------------------------------------------

async def test_caps_hold_under_a_burst_of_1000_qualifying_events(deployment: Deployment) -> None:
    customer = "capped"
    bursts, per_burst, spacing = 100, 10, 14 * 60
    # 100 bursts of 10 errors, each in its own minute, 14 minutes apart: 23.1 h in all, so every
    # send stays inside the one-day cap window. The burst detector learns a customer's usual error
    # rate (exponentially weighted, bursts winsorised at the threshold): 13 empty minutes between
    # bursts keep its threshold near the 5-error floor, so each burst is a new episode. (At 5 minutes
    # apart the bursts become this customer's normal: only 3 of the 100 would be detected.)
    start = minute(time.time() - 23.5 * 3600)
    events = [e for b in range(bursts)
              for e in errors(customer, per_burst, start + b * spacing, first=b * per_burst)]
    assert len(events) == 1000
    with running_worker(worker_env(deployment, "caps.yaml"), deployment.workdir / "worker.log", deployment.url):
        await deployment.produce("events.errors", events)
        state = await deployment.wait_for(f"/customers/{customer}", lambda body: body["events"] == 1000, timeout=60)
        published = await triggers_of(deployment, customer)
        _, metrics = deployment.get("/metrics")
    # 100 episodes: the first two are sent, the 98 others meet "at most 2 a day"
    assert len(published) == 2, [t.fired_at for t in published]
    for b, trigger in enumerate(published):  # the first two bursts
        assert start + b * spacing <= trigger.fired_at.timestamp() < start + b * spacing + BUCKET
    assert len(state["policy"]["sent"]) == 2
    decisions = {(verdict, reason): metric(metrics, "forethought_decisions_total", playbook="capped_burst",
                                           verdict=verdict, reason=reason)
                 for verdict, reason in (("sent", ""), ("suppressed", "frequency_cap"), ("suppressed", "episode"))}
    assert decisions == {("sent", ""): 2, ("suppressed", "frequency_cap"): 98, ("suppressed", "episode"): 0}
    assert metric(metrics, "forethought_triggers_total", playbook="capped_burst") == 2
