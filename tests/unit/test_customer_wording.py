"""What a customer reads, for every shipped playbook on every channel it can use.

Every playbook of streams/playbooks.yaml (read by the worker's own loader) and of the built-in set
is given a realistic trigger for each of its signals, carrying the analyst sentence and the scores
the engine would write, and is sent through the real sender: e-mail over SMTP to a real local
server (aiosmtpd), in-app/SMS/push through the console stand-in. What arrives must read as written
for the customer: no reason sentence, no score or measurement, no analyst words, the customer's
name from the profile, hostile profile/context values escaped in HTML.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from forethought.contracts.records import Trigger
from forethought.ops.playbooks import load_rules
from forethought.ops.settings import DEFAULT_PLAYBOOKS_FILE
from forethought.senders.addresses import AddressBook
from forethought.senders.channels import ConsoleChannel, EmailChannel
from forethought.senders.retry import HostRateLimiter
from forethought.senders.samples import sample_trigger
from forethought.senders.settings import SenderSettings
from forethought.senders.templates import MESSAGE_CHANNELS
from forethought.testing_smtp import Mailbox, smtp_server

ADDRESS, NAME = "ana.lima@customers.example", "Ana"
HOSTILE = "<script>alert(1)</script>"
HOSTILE_NAME = "<img src=x onerror=alert(1)>"
ANALYST_WORDS = ("this customer", "usually returns", "usual level", "usually sees", "visits seen", "baseline",
                 "score", "anomal", "dropoff", "churn", "risk", "detector", "signal", "playbook", "trigger",
                 "holdout", "cooldown", "priority")
SOURCES = {"shipped": DEFAULT_PLAYBOOKS_FILE, "builtin": Path("builtin")}


def cases(channels: tuple[str, ...]) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """``(playbook, channel, signal, context keys)`` for every playbook, signal and one of ``channels``.

    A built-in playbook the shipped file also has (same name, same templates) is taken once.
    """
    found = []
    for path in SOURCES.values():
        for book in load_rules(path).playbooks:
            for channel in book.channels:
                if channel in channels and not any(f[:3] == (book.name, channel, s) for f in found
                                                   for s in book.signals):
                    found += [(book.name, channel, signal, tuple(k for k, _ in book.context))
                              for signal in sorted(book.signals)]
    return found


EMAIL = cases(("email",))
SHORT = cases(MESSAGE_CHANNELS)
TEAM = cases(("cs_outreach",))


def ids(case: tuple[str, str, str, tuple[str, ...]]) -> str:
    return f"{case[0]}-{case[1]}-{case[2]}"


def leaks(trigger: Trigger, shown: str) -> list[str]:
    """Everything analyst-facing that ``shown`` contains: reason text, numbers, scores, jargon."""
    lowered, found = shown.lower(), []
    for reason in trigger.reasons:
        found += [n for n in (reason.text, reason.text.split(";")[-1].strip(), reason.signal) if n.lower() in lowered]
        found += [n for value in (reason.observed, reason.baseline) for n in numbers(value) if n in shown]
    for score, value in trigger.scores.items():
        found += [n for n in (score, *numbers(value)) if n.lower() in lowered]
    found += [word for word in (*ANALYST_WORDS, trigger.playbook.lower()) if word in lowered]
    return found


def numbers(value: float) -> set[str]:
    """How a number could be printed (only forms of 3+ characters, to stay specific)."""
    forms = {f"{value:g}", f"{value:.1f}", f"{value:.2f}", f"{round(value * 100)}%"}
    return {form for form in forms if len(form) >= 3}


def trigger_for(case: tuple[str, str, str, tuple[str, ...]], hostile: bool = False) -> Trigger:
    playbook, channel, signal, keys = case
    context = dict.fromkeys(keys, HOSTILE) if hostile else None
    return sample_trigger(playbook, [signal], channel, keys, customer_id=f"c-{playbook}-{signal}", context=context)


@pytest.fixture(scope="module")
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    controller = smtp_server(box, "plain")
    try:
        yield box, controller.port
    finally:
        controller.stop()


async def send(mailbox: tuple[Mailbox, int], trigger: Trigger, name: str | None) -> tuple[list[str], str, str, str]:
    """Deliver over SMTP with the profile's address (and name); the envelope, subject, text and HTML received."""
    box, port = mailbox
    box.messages.clear()
    settings = SenderSettings(smtp_host="127.0.0.1", smtp_port=port, smtp_timeout_seconds=5, max_attempts=1)
    book = AddressBook.of({trigger.customer_id: ADDRESS}, {trigger.customer_id: name} if name else None)
    result = await EmailChannel(settings, HostRateLimiter(1000, 1000), book).deliver(trigger, b"")
    assert result.status == "delivered", result.detail
    ((envelope, message),) = box.messages
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None and html is not None
    return envelope, str(message["Subject"]), text.get_content(), html.get_content()


@pytest.mark.parametrize("case", EMAIL, ids=ids)
async def test_every_email_playbook_writes_to_the_customer_not_about_them(
        case: tuple[str, str, str, tuple[str, ...]], mailbox: tuple[Mailbox, int]) -> None:
    trigger = trigger_for(case)
    envelope, subject, text, html = await send(mailbox, trigger, NAME)
    assert envelope == [ADDRESS]
    assert subject.strip() and "\n" not in subject and len(subject) <= 78, subject
    assert text.startswith(f"Hi {NAME},") and f"Hi {NAME}," in html, "the name from the customer's profile"
    assert trigger.customer_id not in subject + text + html, "the customer is greeted by name, not by id"
    for part, shown in (("subject", subject), ("text", text), ("html", html)):
        assert leaks(trigger, shown) == [], f"{part} of {case[0]} shows analyst material"
    assert re.search(r"reply to this e-mail", text, re.I), "the customer is told how to answer"


@pytest.mark.parametrize("case", EMAIL, ids=ids)
async def test_without_a_name_the_email_still_greets_the_customer(
        case: tuple[str, str, str, tuple[str, ...]], mailbox: tuple[Mailbox, int]) -> None:
    _, subject, text, html = await send(mailbox, trigger_for(case), None)
    assert text.startswith("Hi there,") and "Hi there," in html
    assert "None" not in subject + text + html and not subject.startswith((",", " "))


@pytest.mark.parametrize("case", EMAIL, ids=ids)
async def test_hostile_profile_and_context_values_are_escaped_in_html(
        case: tuple[str, str, str, tuple[str, ...]], mailbox: tuple[Mailbox, int]) -> None:
    trigger = trigger_for(case, hostile=True)
    _, subject, text, html = await send(mailbox, trigger, HOSTILE_NAME)
    assert "<script" not in html.lower() and "<img" not in html.lower()
    assert "&lt;img src=x onerror=alert(1)&gt;" in html  # the greeting, escaped
    assert "\n" not in subject and len(subject) <= 120
    if "script" in (subject + text).lower():  # the wording used a context value: escaped in HTML
        assert "&lt;script&gt;" in html.lower()


@pytest.mark.parametrize("case", SHORT, ids=ids)
async def test_every_in_app_playbook_shows_the_customer_a_message_not_the_reasons(
        case: tuple[str, str, str, tuple[str, ...]]) -> None:
    trigger = trigger_for(case)
    out = io.StringIO()
    result = await ConsoleChannel(Console(file=out, width=1000, color_system=None)).deliver(trigger, b"")
    assert result.status == "delivered" and f"({case[0]} template)" in result.detail, "its own message.txt"
    (line,) = out.getvalue().splitlines()
    prefix = f"{trigger.customer_id} {trigger.playbook} p{trigger.priority}: "
    assert prefix in line
    message = line.split(prefix, 1)[1]
    assert message.startswith('"') and message.endswith('"') and 10 <= len(message) <= 200, message
    assert leaks(trigger, message) == [], f"the {case[1]} message of {case[0]} shows analyst material"


@pytest.mark.parametrize("case", TEAM, ids=ids)
async def test_cs_outreach_goes_to_the_team_with_the_reasons(case: tuple[str, str, str, tuple[str, ...]]) -> None:
    trigger = trigger_for(case)
    out = io.StringIO()
    await ConsoleChannel(Console(file=out, width=1000, color_system=None)).deliver(trigger, b"")
    assert trigger.reasons[0].text in out.getvalue(), "customer success needs the evidence, not a customer message"


def test_the_cases_cover_every_shipped_channel_a_customer_sees() -> None:
    assert {c[0] for c in EMAIL} == {"error_burst", "dropoff_risk_high", "long_inactivity", "onboarding_stalled",
                                     "key_feature_unused", "renewal_at_risk", "silence_dropoff", "activity_decline",
                                     "long_inactivity_learning"}
    assert {c[0] for c in SHORT} >= {"error_burst", "long_inactivity", "onboarding_stalled", "key_feature_unused",
                                     "feature_welcome"}
    assert {(c[0], c[2]) for c in EMAIL} >= {("dropoff_risk_high", "silence"), ("dropoff_risk_high", "decline")}
