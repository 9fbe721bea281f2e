"""The email sender against the real broker and a real SMTP server with STARTTLS and a login.

The recipient comes only from the customer's profile (read by the sender from customers.profile),
hostile profile addresses are refused, and no address appears in logs, outcomes or dead letters.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path

import pytest
from structlog.testing import capture_logs
from test_senders import eventually, make_trigger, metric_is, outcomes_of, produce, running, settings_for
from worker_kit import Deployment

from forethought.senders.recipients import recipient_ref
from forethought.testing_smtp import Mailbox, self_signed_cert, smtp_server

HOSTILE_ID = "attacker@evil.example, cust-42"
REAL = "Real.Person@example.org"
INJECTED = "victim@example.net\r\nBcc: attacker@evil.example"
LISTED = "victim@example.net, attacker@evil.example"
PRIVATE = ("real.person@example.org", "victim@example.net")


@pytest.fixture
async def deployment(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Deployment:
    return await Deployment.create(kafka_bootstrap, topic_prefix, tmp_path)


def profile(customer: str, email: str | None) -> tuple[bytes, bytes]:
    body = {"type": "profile", "customer_id": customer, "updated_at": datetime.now(timezone.utc).isoformat(),
            **({"email": email} if email is not None else {})}
    return customer.encode(), json.dumps(body).encode()


async def test_the_profile_address_is_the_only_recipient_and_no_address_is_logged_or_published(
    deployment: Deployment, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    mailbox, cert = Mailbox(), self_signed_cert(tmp_path)
    controller = smtp_server(mailbox, "starttls", cert, login=True)
    hostile, injected, listed, silent = (make_trigger(c, channel="email")
                                         for c in (HOSTILE_ID, "inj-1", "list-1", "none-1"))
    await deployment.produce("customers.profile", [profile("inj-1", INJECTED), profile("list-1", LISTED),
                                                   profile("none-1", None)])
    settings = settings_for(deployment, smtp_host="127.0.0.1", smtp_port=controller.port, smtp_starttls=True,
                            smtp_ca_file=str(cert[0]), smtp_username=mailbox.username,
                            smtp_password=mailbox.password, max_attempts=1)
    # INFO, the production floor (configure_logging caps aiokafka at WARNING): aiokafka's own DEBUG
    # lines dump record bytes, profiles included; see docs/security/data.md.
    caplog.set_level(logging.INFO)
    try:
        with capture_logs() as logs:
            async with running(settings, "email"):
                # Sent after the sender loaded the topic: it must catch up before sending.
                await deployment.produce("customers.profile", [profile(HOSTILE_ID, REAL)])
                await produce(deployment, hostile, injected, listed, silent)
                await eventually(lambda: metric_is(settings.sender.web_port, "forethought_sender_sends_total", 3,
                                                   channel="email", status="failed"), 60, "three refusals")
                await eventually(lambda: mailbox.messages, what="the mail")
    finally:
        controller.stop()

    ((envelope, message),) = mailbox.messages
    assert envelope == [REAL] and message["To"] == REAL, "the profile's address, nothing from the customer id"
    assert [over_tls for _, over_tls in mailbox.logins] == [True]

    (delivered,) = await outcomes_of(deployment, hostile)
    assert delivered.status == "delivered" and recipient_ref(REAL) in delivered.detail
    for trigger, why in ((injected, "line break"), (listed, "','"), (silent, "no e-mail address")):
        (refused,) = await outcomes_of(deployment, trigger)
        assert refused.status == "failed" and why in refused.detail and "not sent" in refused.detail

    published = [r.value.decode() for topic in ("engagement.outcomes", "senders.deadletter", "senders.ledger")
                 for r in await deployment.read_all(topic)]
    logged = [repr(entry) for entry in logs] + [  # "mail.log" is the test's SMTP server, not ours
        record.getMessage() for record in caplog.records if not record.name.startswith("mail.")]
    assert len(published) >= 8 and any("trigger concluded" in line for line in logged)
    for text in published + logged:
        lowered = text.lower()
        assert not [address for address in PRIVATE if address in lowered], text
