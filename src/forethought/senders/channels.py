"""Delivery per channel: webhook (aiohttp), email (SMTP) and console (rich). Each returns a DeliveryResult.

What a customer reads comes from the playbook's templates (:mod:`forethought.senders.templates`),
never from the trigger's reasons: the email channel renders subject, text and HTML; the console
stand-in prints, for the customer-facing ``in_app``/``sms``/``push``, the message the customer would
see, and for ``cs_outreach`` (read by the customer success team) the reasons.

A channel never raises for a delivery problem: it classifies it (``delivered``, ``failed``,
``bounced``) with a readable ``detail``, after retrying what is worth retrying.

>>> classify_http(200), classify_http(429), classify_http(503), classify_http(404)
('ok', 'transient', 'transient', 'permanent')
>>> from datetime import datetime, timezone
>>> from forethought.contracts.schemas import EXAMPLES
>>> trigger = Trigger.model_validate(EXAMPLES["trigger"])
>>> expiry(trigger, datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)) is None
True
>>> expiry(trigger, datetime(2026, 11, 24, tzinfo=timezone.utc)).status
'expired'
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from email.message import EmailMessage
from typing import Literal, Protocol
from urllib.parse import urlsplit

import aiohttp
from rich.console import Console
from rich.text import Text

from forethought.contracts.records import Trigger
from forethought.senders import signing
from forethought.senders.addresses import AddressBook
from forethought.senders.recipients import RecipientError, check_address, recipient_ref, scrub
from forethought.senders.records import DeliveryResult
from forethought.senders.retry import Attempt, AttemptKind, HostRateLimiter, RetryPolicy, with_retries
from forethought.senders.settings import SenderSettings
from forethought.senders.templates import MESSAGE_CHANNELS, Customer, Renderer, build_message

Sleep = Callable[[float], Awaitable[object]]


class Sender(Protocol):
    """Delivers one trigger; ``body`` is the trigger's JSON as it was read from Kafka."""

    name: str

    async def deliver(self, trigger: Trigger, body: bytes) -> DeliveryResult: ...


def expiry(trigger: Trigger, now: datetime) -> DeliveryResult | None:
    """An ``expired`` result when ``trigger.expires_at`` has passed at ``now``, else None."""
    if now < trigger.expires_at:
        return None
    late = (now - trigger.expires_at).total_seconds()
    return DeliveryResult("expired", f"expired at {trigger.expires_at.isoformat()}, {late:.0f}s before "
                                     "the sender got to it; not sent", attempts=0)


def classify_http(status: int) -> AttemptKind:
    """2xx ok; 408, 429 and 5xx are worth retrying; every other status is a permanent failure."""
    if 200 <= status < 300:
        return "ok"
    return "transient" if status in (408, 429) or status >= 500 else "permanent"


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: fall back on our own backoff


class WebhookChannel:
    """POST the trigger JSON, signed, with the trigger id as the idempotency key."""

    name = "webhook"

    def __init__(self, session: aiohttp.ClientSession, settings: SenderSettings, limiter: HostRateLimiter,
                 sleep: Sleep = asyncio.sleep) -> None:
        if not settings.webhook_url:
            raise ValueError("FORETHOUGHT_SENDER__WEBHOOK_URL is not set")
        self.session, self.url, self.limiter, self.sleep = session, settings.webhook_url, limiter, sleep
        self.host = urlsplit(self.url).netloc
        self.secret = settings.webhook_secret.get_secret_value().encode()
        self.timeout = aiohttp.ClientTimeout(total=settings.webhook_timeout_seconds)
        self.policy = RetryPolicy(settings.max_attempts, settings.backoff_base_seconds, settings.backoff_max_seconds)

    async def deliver(self, trigger: Trigger, body: bytes) -> DeliveryResult:
        retried = await with_retries(lambda: self._attempt(trigger.trigger_id, body), self.policy, self.sleep)
        tries = f"after {retried.attempts} attempt{'s' if retried.attempts > 1 else ''}"
        if retried.last.kind == "ok":
            return DeliveryResult("delivered", f"{retried.last.detail} {tries}", retried.attempts)
        return DeliveryResult("failed", f"{retried.last.detail} {tries}", retried.attempts)

    async def _attempt(self, trigger_id: str, body: bytes) -> Attempt:
        await self.limiter.acquire(self.host)
        try:
            async with self.session.post(self.url, data=body, headers=signing.headers(self.secret, trigger_id, body),
                                         timeout=self.timeout, allow_redirects=False) as response:
                answer = (await response.text(errors="replace"))[:200]
                kind = classify_http(response.status)
                detail = f"HTTP {response.status} from {self.host}" + (f": {answer}" if answer and kind != "ok" else "")
                return Attempt(kind, detail, response.status, _retry_after(response.headers.get("Retry-After")))
        except TimeoutError:
            return Attempt("transient", f"timeout after {self.timeout.total:g}s posting to {self.host}")
        except aiohttp.ClientError as exc:
            return Attempt("transient", f"connection error posting to {self.host}: {exc!r}"[:500])


class EmailChannel:
    """Render the playbook's templates and send over SMTP (stdlib ``smtplib`` in a worker thread).

    The one recipient is the ``email`` of the customer's profile, looked up in ``addresses`` and
    checked by :func:`~forethought.senders.recipients.check_address`; a missing or refused address
    is a ``failed`` outcome and nothing is sent. Outcome details name the recipient by
    :func:`~forethought.senders.recipients.recipient_ref` only. A login happens only over TLS.
    """

    name = "email"

    def __init__(self, settings: SenderSettings, limiter: HostRateLimiter, addresses: AddressBook,
                 renderer: Renderer | None = None, sleep: Sleep = asyncio.sleep) -> None:
        self.settings, self.limiter, self.addresses, self.sleep = settings, limiter, addresses, sleep
        self.renderer = renderer or Renderer(settings.templates_dir)
        self.policy = RetryPolicy(settings.max_attempts, settings.backoff_base_seconds, settings.backoff_max_seconds)
        self.host = f"{settings.smtp_host}:{settings.smtp_port}"
        self.hash_key = settings.recipient_hash_key.get_secret_value().encode()

    async def deliver(self, trigger: Trigger, body: bytes) -> DeliveryResult:
        address = self.addresses.address_of(trigger.customer_id)
        if address is None:
            return DeliveryResult("failed", "no e-mail address in the customer's profile; not sent", attempts=0)
        try:
            to = check_address(address)
        except RecipientError as refused:
            return DeliveryResult("failed", f"the e-mail address in the customer's profile was refused: it {refused}; "
                                            "not sent", attempts=0)
        ref = recipient_ref(to, self.hash_key)
        customer = Customer(trigger.customer_id, to, self.addresses.name_of(trigger.customer_id))
        mail = self.renderer.render(trigger, customer)
        message = build_message(mail, self.settings.email_from, to, trigger)
        retried = await with_retries(lambda: self._attempt(message, to), self.policy, self.sleep)
        last, tries = retried.last, f"after {retried.attempts} attempt{'s' if retried.attempts > 1 else ''}"
        detail = scrub(last.detail, to, ref)  # a server may quote the address back
        if last.kind == "ok":
            return DeliveryResult("delivered", f"{detail} for recipient {ref} ({mail.template} template) {tries}",
                                  retried.attempts)
        bounced = last.kind == "permanent" and (last.code or 0) >= 500
        status: Literal["bounced", "failed"] = "bounced" if bounced else "failed"
        return DeliveryResult(status, f"{detail} for recipient {ref} {tries}", retried.attempts)

    async def _attempt(self, message: EmailMessage, to: str) -> Attempt:
        await self.limiter.acquire(self.host)
        return await asyncio.to_thread(self._send_once, message, to)

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        context = ssl.create_default_context(cafile=str(s.smtp_ca_file) if s.smtp_ca_file else None)
        if s.smtp_tls:
            return smtplib.SMTP_SSL(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_seconds, context=context)
        smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_seconds)
        try:
            smtp.ehlo()
            if s.smtp_starttls:
                smtp.starttls(context=context)  # SMTPNotSupportedError when the server does not offer it
                smtp.ehlo()
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _send_once(self, message: EmailMessage, to: str) -> Attempt:
        s = self.settings
        try:
            with self._connect() as smtp:
                if s.smtp_username:
                    if not isinstance(smtp.sock, ssl.SSLSocket):  # settings forbid it; never send a password in clear
                        return Attempt("permanent", f"SMTP {self.host}: refusing to log in without TLS")
                    smtp.login(s.smtp_username, s.smtp_password.get_secret_value())
                smtp.send_message(message, to_addrs=[to])  # the envelope: exactly this one recipient
            return Attempt("ok", f"accepted by SMTP {self.host}")
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            return _smtp_rejection(code, text, "recipient refused")
        except smtplib.SMTPAuthenticationError as exc:  # our configuration, not the recipient: no bounce
            return Attempt("permanent", f"SMTP authentication failed at {self.host}: "
                                        f"{exc.smtp_code} {_text(exc.smtp_error)}")
        except smtplib.SMTPNotSupportedError as exc:
            return Attempt("permanent", f"SMTP {self.host} does not support what we asked: {exc}")
        except smtplib.SMTPResponseException as exc:
            return _smtp_rejection(exc.smtp_code, exc.smtp_error, "rejected")
        except ssl.SSLError as exc:  # a certificate we do not trust, a protocol mismatch: ours to fix
            return Attempt("permanent", f"TLS with SMTP {self.host} failed: {exc!r}"[:500])
        except (smtplib.SMTPException, OSError) as exc:
            return Attempt("transient", f"SMTP {self.host} unreachable or dropped: {exc!r}"[:500])


def _text(raw: bytes | str) -> str:
    return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)


def _smtp_rejection(code: int, text: bytes | str, what: str) -> Attempt:
    kind: AttemptKind = "permanent" if code >= 500 else "transient"
    return Attempt(kind, f"SMTP {what}: {code} {_text(text)}"[:500], code)


class ConsoleChannel:
    """One readable line per trigger on stdout; always ``delivered``.

    A customer-facing channel (``in_app``, ``sms``, ``push``) shows the playbook's ``message.txt``,
    what a real sender would show the customer; ``cs_outreach`` shows the reasons, for the team.
    """

    name = "console"

    def __init__(self, console: Console | None = None, renderer: Renderer | None = None) -> None:
        self.console = console or Console(file=sys.stdout, highlight=False, soft_wrap=True)
        self.renderer = renderer or Renderer()

    async def deliver(self, trigger: Trigger, body: bytes) -> DeliveryResult:
        if trigger.channel in MESSAGE_CHANNELS:
            message = self.renderer.render_message(trigger)
            self.console.print(line(trigger, f'"{message.text}"'))
            return DeliveryResult("delivered", f"printed to the console ({message.template} template)")
        self.console.print(line(trigger))
        return DeliveryResult("delivered", "printed to the console")


def line(trigger: Trigger, message: str | None = None) -> Text:
    """``<fired_at> <channel> <customer> <playbook> p<priority>: <message>``, styled, unescaped.

    Without ``message``: the trigger's reasons, ``<reason>; <reason>`` (for the team, not the customer).
    """
    text = Text()
    text.append(trigger.fired_at.strftime("%Y-%m-%dT%H:%M:%S%z"), style="dim")
    text.append(f" {trigger.channel:<11} ", style="cyan")
    text.append(trigger.customer_id, style="bold")
    text.append(f" {trigger.playbook} p{trigger.priority}: ", style="magenta")
    text.append(message if message is not None else "; ".join(" ".join(r.text.split()) for r in trigger.reasons))
    return text
