"""Channel senders against the real broker, a real HTTP receiver and a real SMTP server (no mocks).

The sender runs in-process as an asyncio task, or as a subprocess for the crash-and-restart test.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest
from aiohttp import web
from aiokafka.admin import AIOKafkaAdminClient
from aiosmtpd.controller import Controller
from rich.console import Console
from worker_kit import Deployment, metric

from forethought.contracts.records import Outcome, Reason, Trigger
from forethought.core.signals import trigger_id
from forethought.ops.process import free_port, stop_process, wait_ready
from forethought.ops.settings import REPO_ROOT
from forethought.senders.records import LedgerEntry, SenderDeadLetter
from forethought.senders.service import SenderService
from forethought.senders.settings import SenderAppSettings, SenderName, SenderSettings
from forethought.senders.signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify

SECRET = "whsec-integration"
OUTCOME_SCHEMA = json.loads((REPO_ROOT / "schemas" / "outcome.schema.json").read_text())
FAST_RETRIES = {"backoff_base_seconds": 0.05, "backoff_max_seconds": 0.2, "max_attempts": 4}


# -- helpers -----------------------------------------------------------------------------------------

def make_trigger(customer: str, channel: str = "webhook", playbook: str = "silence_dropoff",
                 expires_in: float = 3600, text: str | None = None) -> Trigger:
    now = datetime.now(timezone.utc)
    episode = f"silence-{time.time_ns()}"
    reason = Reason(signal="silence_seconds", observed=259200.0, baseline=43200.0, unit="seconds",
                    text=text or f"No activity for 3.0 d; {customer} usually returns within 12.0 h.")
    return Trigger(trigger_id=trigger_id(customer, playbook, episode), customer_id=customer, playbook=playbook,
                   detector="silence", episode=episode, channel=channel, priority=50,  # type: ignore[arg-type]
                   fired_at=now - timedelta(seconds=5), expires_at=now + timedelta(seconds=expires_in),
                   scores={"dropoff": 0.99}, reasons=[reason], context={"last_seen_at": "2026-11-19T09:30:00+00:00"})


async def produce(deployment: Deployment, *triggers: Trigger) -> None:
    await deployment.produce("engagement.triggers",
                             [(t.customer_id.encode(), t.model_dump_json().encode()) for t in triggers])


async def outcomes_of(deployment: Deployment, trigger: Trigger) -> list[Outcome]:
    records = await deployment.read_all("engagement.outcomes")
    found = [Outcome.model_validate_json(r.value) for r in records]
    for record in records:
        jsonschema.validate(json.loads(record.value), OUTCOME_SCHEMA)
        assert record.key == Outcome.model_validate_json(record.value).customer_id.encode()
    return [o for o in found if o.trigger_id == trigger.trigger_id]


async def eventually(check: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what} not met within {timeout:g}s")


async def metrics_text(port: int) -> str:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as response:
        assert response.status == 200
        return await response.text()


async def committed(deployment: Deployment, group: str) -> int:
    """The sum of the group's committed offsets on the triggers topic."""
    admin = AIOKafkaAdminClient(bootstrap_servers=deployment.bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return sum(meta.offset for tp, meta in offsets.items()
               if tp.topic == deployment.topic("engagement.triggers") and meta.offset > 0)


class Receiver:
    """A webhook endpoint on 127.0.0.1 that records every request and answers from a per-trigger script."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.script: dict[str, list[int]] = {}
        self.port = free_port()
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/forethought"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append((dict(request.headers), body))
        statuses = self.script.get(request.headers.get(IDEMPOTENCY_HEADER, ""), [])
        status = statuses.pop(0) if statuses else 200
        return web.Response(status=status, text="ok" if status < 300 else f"no: {status}")

    def posts(self, trigger: Trigger) -> list[tuple[dict[str, str], bytes]]:
        return [(h, b) for h, b in self.requests if h.get(IDEMPOTENCY_HEADER) == trigger.trigger_id]

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hooks/forethought", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


def settings_for(deployment: Deployment, **sender: Any) -> SenderAppSettings:
    return SenderAppSettings(
        kafka_bootstrap=deployment.bootstrap, topic_prefix=deployment.prefix,
        app_id=f"ft-{deployment.prefix.strip('.')}",
        sender=SenderSettings(**{"web_port": free_port(), "commit_interval_seconds": 0, **FAST_RETRIES, **sender}),
    )


@contextlib.asynccontextmanager
async def running(settings: SenderAppSettings, *senders: SenderName, **kwargs: Any) -> AsyncIterator[SenderService]:
    """The service as a task, ready (ledger loaded, partitions assigned); stopped gracefully after."""
    service = SenderService(settings, senders, **kwargs)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        await eventually(lambda: task.done() or service.health()["ready"], 60, "sender ready")
        if task.done():
            task.result()
        yield service
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


@pytest.fixture
async def deployment(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Deployment:
    return await Deployment.create(kafka_bootstrap, topic_prefix, tmp_path)


# -- webhook ------------------------------------------------------------------------------------------

async def test_a_trigger_is_posted_once_signed_and_yields_a_delivered_outcome(deployment: Deployment) -> None:
    trigger, not_ours = make_trigger("wh-1"), make_trigger("wh-mail", channel="email")
    async with Receiver() as receiver:
        settings = settings_for(deployment, webhook_url=receiver.url, webhook_secret=SECRET)
        async with running(settings, "webhook") as service:
            await produce(deployment, trigger, not_ours, trigger)  # the repeat must not be sent again
            port = settings.sender.web_port
            await eventually(lambda: metric_is(port, "forethought_sender_duplicates_total", 1, channel="webhook"),
                             what="the repeated trigger was skipped")
            text = await metrics_text(port)
        assert len(receiver.requests) == 1, "one POST: the repeat and the email trigger are not sent"
        (headers, body), = receiver.posts(trigger)
        assert headers[SIGNATURE_HEADER].startswith("sha256=")
        assert verify(SECRET.encode(), headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])
        assert Trigger.model_validate_json(body) == trigger
        assert headers["Content-Type"] == "application/json"
    (outcome,) = await outcomes_of(deployment, trigger)
    assert (outcome.status, outcome.channel, outcome.customer_id) == ("delivered", "webhook", "wh-1")
    assert "HTTP 200" in outcome.detail
    assert await outcomes_of(deployment, not_ours) == []
    assert metric(text, "forethought_sender_sends_total", channel="webhook", status="delivered") == 1
    assert metric(text, "forethought_sender_delivery_seconds_count", channel="webhook") == 1
    assert await committed(deployment, service.group) == 3, "the graceful stop committed every record"


async def metric_is(port: int, name: str, value: float, **labels: str) -> bool:
    return metric(await metrics_text(port), name, **labels) == value


async def test_a_5xx_is_retried_and_delivered_once(deployment: Deployment) -> None:
    trigger = make_trigger("wh-retry")
    async with Receiver() as receiver:
        receiver.script[trigger.trigger_id] = [500]
        settings = settings_for(deployment, webhook_url=receiver.url, webhook_secret=SECRET)
        async with running(settings, "webhook"):
            await produce(deployment, trigger)
            port = settings.sender.web_port
            await eventually(lambda: metric_is(port, "forethought_sender_sends_total", 1,
                                               channel="webhook", status="delivered"), what="delivered")
            text = await metrics_text(port)
        statuses_seen = len(receiver.posts(trigger))
    assert statuses_seen == 2, "500 then 200"
    assert metric(text, "forethought_sender_retries_total", channel="webhook") == 1
    (outcome,) = await outcomes_of(deployment, trigger)
    assert outcome.status == "delivered" and "after 2 attempts" in outcome.detail
    assert await deployment.read_all("senders.deadletter") == []


async def test_a_4xx_fails_at_once_into_the_dead_letter_topic(deployment: Deployment) -> None:
    trigger = make_trigger("wh-400")
    async with Receiver() as receiver:
        receiver.script[trigger.trigger_id] = [400, 400, 400]
        settings = settings_for(deployment, webhook_url=receiver.url, webhook_secret=SECRET)
        async with running(settings, "webhook"):
            await produce(deployment, trigger)
            port = settings.sender.web_port
            await eventually(lambda: metric_is(port, "forethought_sender_deadletters_total", 1, channel="webhook"),
                             what="dead-lettered")
            text = await metrics_text(port)
        assert len(receiver.posts(trigger)) == 1, "a 4xx is not retried"
    assert metric(text, "forethought_sender_retries_total", channel="webhook") == 0
    (outcome,) = await outcomes_of(deployment, trigger)
    assert outcome.status == "failed" and "HTTP 400" in outcome.detail
    (record,) = await deployment.read_all("senders.deadletter")
    letter = SenderDeadLetter.model_validate_json(record.value)
    assert (letter.trigger, letter.status, letter.attempts, letter.sender) == (trigger, "failed", 1, "webhook")
    assert "HTTP 400" in letter.error and letter.source_topic == deployment.topic("engagement.triggers")


async def test_an_expired_trigger_is_not_sent_and_garbage_is_dead_lettered(deployment: Deployment) -> None:
    stale = make_trigger("wh-stale", expires_in=-60)
    async with Receiver() as receiver:
        settings = settings_for(deployment, webhook_url=receiver.url, webhook_secret=SECRET)
        async with running(settings, "webhook"):
            await deployment.produce("engagement.triggers", [(b"wh-stale", b"{not a trigger")])
            await produce(deployment, stale)
            port = settings.sender.web_port
            await eventually(lambda: metric_is(port, "forethought_sender_sends_total", 1,
                                               channel="webhook", status="expired"), what="expired")
            text = await metrics_text(port)
        assert receiver.requests == []
    (outcome,) = await outcomes_of(deployment, stale)
    assert outcome.status == "expired" and "not sent" in outcome.detail
    assert metric(text, "forethought_sender_invalid_triggers_total") == 1
    (record,) = await deployment.read_all("senders.deadletter")
    letter = SenderDeadLetter.model_validate_json(record.value)
    assert letter.trigger is None and base64.b64decode(letter.value_b64 or "") == b"{not a trigger"
    assert "not a valid trigger" in letter.error and record.key == b"wh-stale"


async def test_a_sender_killed_before_its_commit_does_not_send_twice_after_a_restart(
    deployment: Deployment, tmp_path: Path,
) -> None:
    trigger = make_trigger("wh-crash")
    group = f"ft-{deployment.prefix.strip('.')}-senders-webhook"
    async with Receiver() as receiver:
        env = {"FORETHOUGHT_KAFKA_BOOTSTRAP": deployment.bootstrap, "FORETHOUGHT_TOPIC_PREFIX": deployment.prefix,
               "FORETHOUGHT_APP_ID": f"ft-{deployment.prefix.strip('.')}", "FORETHOUGHT_LOG_LEVEL": "INFO",
               "FORETHOUGHT_SENDER__WEBHOOK_URL": receiver.url, "FORETHOUGHT_SENDER__WEBHOOK_SECRET": SECRET,
               # Commits are rare here, so the kill below lands after delivery + ledger, before any commit.
               "FORETHOUGHT_SENDER__COMMIT_INTERVAL_SECONDS": "3600"}
        first_port = free_port()
        first = await spawn_sender(env, first_port, tmp_path / "first.log")
        try:
            await produce(deployment, trigger)
            await eventually(lambda: receiver.posts(trigger), what="the POST")
            await eventually(lambda: ledger_has(deployment, trigger), what="the ledger entry")
        finally:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(10)
        assert await committed(deployment, group) == 0, "killed before any offset commit"
        second_port = free_port()
        second = await spawn_sender(env, second_port, tmp_path / "second.log")
        try:
            await eventually(lambda: metric_is(second_port, "forethought_sender_duplicates_total", 1,
                                               channel="webhook"), timeout=60, what="the redelivery was skipped")
            text = await metrics_text(second_port)
        finally:
            assert await asyncio.to_thread(stop_process, second) == 0, "SIGTERM: a clean exit"
        assert len(receiver.posts(trigger)) == 1, "redelivered from Kafka, but not sent again"
    assert metric(text, "forethought_sender_sends_total", channel="webhook", status="delivered") == 0
    (outcome,) = await outcomes_of(deployment, trigger)
    assert outcome.status == "delivered"
    assert await committed(deployment, group) == 1, "the graceful stop committed the redelivered record"


async def test_the_ledger_read_on_start_dedupes_and_its_old_entries_are_tombstoned(deployment: Deployment) -> None:
    done, now = make_trigger("wh-done"), datetime.now(timezone.utc)
    fresh = LedgerEntry(trigger_id=done.trigger_id, channel="webhook", status="delivered", outcome_id="o-1",
                        recorded_at=now - timedelta(hours=1))  # as another instance wrote it an hour ago
    old = LedgerEntry(trigger_id="ancient", channel="webhook", status="delivered", outcome_id="o-0",
                      recorded_at=now - timedelta(days=30))
    await deployment.produce("senders.ledger", [(e.key, e.model_dump_json().encode()) for e in (fresh, old)])
    async with Receiver() as receiver:
        settings = settings_for(deployment, webhook_url=receiver.url, webhook_secret=SECRET, ledger_days=14)
        async with running(settings, "webhook") as service:
            assert service.health()["ledger_entries"] == 1, "the 30-day-old entry is not kept"
            await produce(deployment, done)
            await eventually(lambda: metric_is(settings.sender.web_port, "forethought_sender_duplicates_total", 1,
                                               channel="webhook"), what="skipped as already done")
        assert receiver.requests == []
    latest = {r.key: r.value for r in await deployment.read_all("senders.ledger")}
    assert latest[old.key] is None, "a tombstone lets compaction drop the old entry"
    assert latest[fresh.key] is not None
    assert await outcomes_of(deployment, done) == [], "its outcome was published by whoever delivered it"


async def spawn_sender(env: dict[str, str], port: int, log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "forethought.cli", "senders", "run", "--channel", "webhook",
             "--web-port", str(port)],
            env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        await asyncio.to_thread(wait_ready, f"http://127.0.0.1:{port}", proc, 60)
    except (RuntimeError, TimeoutError) as exc:
        stop_process(proc)
        raise AssertionError(f"{exc}\n{log_path.read_text(errors='replace')[-3000:]}") from exc
    return proc


async def ledger_has(deployment: Deployment, trigger: Trigger) -> bool:
    records = await deployment.read_all("senders.ledger")
    key = f"webhook:{trigger.trigger_id}".encode()
    entries = [LedgerEntry.model_validate_json(r.value) for r in records if r.key == key]
    return any(e.status == "delivered" for e in entries)


# -- email and console ---------------------------------------------------------------------------------

class Mailbox:
    """An aiosmtpd handler: keeps every message; refuses recipients at nobody.example with a 550."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address.endswith("@nobody.example"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(BytesParser(policy=policy.default).parsebytes(envelope.content))  # type: ignore[arg-type]
        return "250 Message accepted"


def profile(customer: str, email: str | None, first_name: str | None = None) -> tuple[bytes, bytes]:
    """A keyed profile record with ``email`` (the email sender's only source of recipients)."""
    body = {"type": "profile", "customer_id": customer, "updated_at": datetime.now(timezone.utc).isoformat(),
            "email": email, "attributes": {"first_name": first_name} if first_name else {}}
    return customer.encode(), json.dumps(body).encode()


async def test_email_is_written_for_the_customer_sent_over_smtp_and_a_550_is_a_bounce(deployment: Deployment) -> None:
    reason = "No activity for 3.0 d; this customer usually returns within 12.0 h (41 visits seen)."
    trigger = make_trigger("mail-1", channel="email", playbook="long_inactivity", text=reason)
    rejected = make_trigger("ghost", channel="email", playbook="long_inactivity")
    mailbox, port = Mailbox(), free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    await deployment.produce("customers.profile", [profile("mail-1", "mail-1@customers.example", "Mia"),
                                                   profile("ghost", "ghost@nobody.example")])
    try:
        settings = settings_for(deployment, smtp_host="127.0.0.1", smtp_port=port)
        async with running(settings, "email"):
            await produce(deployment, trigger, rejected)
            await eventually(lambda: metric_is(settings.sender.web_port, "forethought_sender_sends_total", 1,
                                               channel="email", status="bounced"), what="the bounce")
            await eventually(lambda: mailbox.messages, what="the mail")
    finally:
        controller.stop()
    (mail,) = mailbox.messages
    assert mail["To"] == "mail-1@customers.example"
    assert mail["Subject"] == "Mia, we have missed you"  # the shipped long_inactivity template, the profile's name
    assert mail["Message-ID"] == f"<{trigger.trigger_id}@forethought.local>"
    text, html = mail.get_body(("plain",)), mail.get_body(("html",))
    assert text is not None and html is not None
    for body in (text.get_content(), html.get_content()):
        assert "Hi Mia," in body and "since your last visit" in body
        assert "this customer" not in body and "12.0 h" not in body and "0.99" not in body, "no analyst wording"
    (outcome,) = await outcomes_of(deployment, trigger)
    assert (outcome.status, outcome.channel) == ("delivered", "email")
    (bounce,) = await outcomes_of(deployment, rejected)
    assert bounce.status == "bounced" and "550" in bounce.detail
    assert await deployment.read_all("senders.deadletter") == [], "a bounce is the recipient's answer, not ours"


async def test_the_console_sender_prints_one_line_per_trigger(deployment: Deployment) -> None:
    trigger = make_trigger("con-1", channel="in_app", playbook="error_burst", text="12 errors in the last hour.")
    team = make_trigger("con-2", channel="cs_outreach", playbook="usage_anomaly", text="5123 calls; usually 812.")
    out = io.StringIO()
    settings = settings_for(deployment)
    async with running(settings, "console", console=Console(file=out, width=300, color_system=None)):
        await produce(deployment, trigger, team)
        await eventually(lambda: metric_is(settings.sender.web_port, "forethought_sender_sends_total", 2,
                                           channel="console", status="delivered"), what="printed")
    customer, outreach = sorted(out.getvalue().splitlines(), key=lambda line: "con-2" in line)
    assert "in_app" in customer and "con-1" in customer and "error_burst" in customer
    assert "Something not working as expected?" in customer, "in-app: what the customer would see"
    assert "12 errors in the last hour." not in customer
    assert "cs_outreach" in outreach and "5123 calls; usually 812." in outreach, "the team sees the reasons"
    (outcome,) = await outcomes_of(deployment, trigger)
    assert (outcome.status, outcome.channel) == ("delivered", "in_app")
