"""Sender settings: the worker's :class:`~forethought.ops.settings.Settings` plus a nested ``sender`` model.

Every field reads from ``FORETHOUGHT_SENDER__<FIELD>``, e.g. ``FORETHOUGHT_SENDER__WEBHOOK_URL``;
Kafka, prefix, app id and logging come from the worker's own variables (``FORETHOUGHT_KAFKA_BOOTSTRAP``...),
and so do Kafka TLS/SASL (``FORETHOUGHT_KAFKA_SECURITY_PROTOCOL``, ``FORETHOUGHT_KAFKA_SASL_PASSWORD``...):
one spelling for worker and senders (docs/security/kafka.md).

>>> s = SenderAppSettings(sender={"webhook_url": "http://127.0.0.1:9000/hook", "webhook_secret": "s3"})
>>> s.sender.webhook_secret
SecretStr('**********')
>>> s.sender.serves(["webhook", "console"])
{'webhook': 'webhook', 'in_app': 'console', 'cs_outreach': 'console', 'sms': 'console', 'push': 'console'}
>>> SenderAppSettings().sender.missing_for(["webhook"])
['FORETHOUGHT_SENDER__WEBHOOK_URL', 'FORETHOUGHT_SENDER__WEBHOOK_SECRET']
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from forethought.contracts.records import Channel
from forethought.ops.settings import Settings

CONSOLE_CHANNELS: tuple[Channel, ...] = ("in_app", "cs_outreach", "sms", "push")  # no real sender yet

SenderName = Literal["webhook", "email", "console"]
SENDER_NAMES: tuple[SenderName, ...] = ("webhook", "email", "console")
ENV = "FORETHOUGHT_SENDER__"


class SenderSettings(BaseModel):
    """What the channel senders need: endpoints, secrets, retry and rate policy, ports."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    # Webhook
    webhook_url: str | None = Field(None, pattern=r"^https?://\S+$")
    webhook_secret: SecretStr = SecretStr("")
    webhook_timeout_seconds: float = Field(5.0, gt=0, le=120)
    # Retries (webhook and email): full-jitter exponential backoff.
    max_attempts: int = Field(5, ge=1, le=20)
    backoff_base_seconds: float = Field(0.5, ge=0, le=60)
    backoff_max_seconds: float = Field(30.0, ge=0, le=600)
    # Per-host token bucket.
    rate_per_second: float = Field(10.0, gt=0, le=10_000)
    rate_burst: int = Field(10, ge=1, le=10_000)
    # Email: the recipient is the ``email`` of the customer's profile, nothing else (senders/recipients.py).
    email_from: str = Field("Forethought <noreply@forethought.example>", min_length=3)
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_starttls: bool = Field(False, description="STARTTLS after EHLO (port 587); required for a login.")
    smtp_tls: bool = Field(False, description="Implicit TLS from the first byte (SMTPS, port 465).")
    smtp_ca_file: Path | None = Field(None, description="CA bundle for the SMTP server's certificate (default: "
                                                        "the system's).")
    smtp_username: str | None = None
    smtp_password: SecretStr = SecretStr("")
    recipient_hash_key: SecretStr = Field(SecretStr(""), description="Key of the HMAC that names recipients in "
                                                                      "outcomes and logs (default: plain sha256).")
    smtp_timeout_seconds: float = Field(10.0, gt=0, le=120)
    templates_dir: Path | None = None
    # Console: trigger channels without a real sender yet are printed instead.
    console_channels: list[Channel] = Field(default_factory=lambda: list(CONSOLE_CHANNELS))
    # Service
    web_host: str = "127.0.0.1"
    web_port: int = Field(6067, ge=1, le=65535)
    batch_size: int = Field(50, ge=1, le=1000)
    commit_interval_seconds: float = Field(1.0, ge=0, le=3600)
    ledger_days: float = Field(14.0, gt=0, le=3650)

    @model_validator(mode="before")
    @classmethod
    def _no_recipient_template(cls, data: object) -> object:
        if isinstance(data, dict) and "email_to" in data:
            raise ValueError(f"{ENV}EMAIL_TO was removed: an e-mail goes only to the address in the customer's "
                             "profile (its `email` field), never to one built from the customer id")
        return data

    @model_validator(mode="after")
    def _login_needs_tls(self) -> SenderSettings:
        if self.smtp_starttls and self.smtp_tls:
            raise ValueError(f"choose one of {ENV}SMTP_STARTTLS and {ENV}SMTP_TLS")
        credentials = bool(self.smtp_username) or bool(self.smtp_password.get_secret_value())
        if credentials and not (self.smtp_starttls or self.smtp_tls):
            raise ValueError(f"an SMTP login needs TLS: set {ENV}SMTP_STARTTLS=true (usually port 587) or "
                             f"{ENV}SMTP_TLS=true (port 465); the password is never sent in clear")
        return self

    @model_validator(mode="after")
    def _backoff_bounds(self) -> SenderSettings:
        if self.backoff_max_seconds < self.backoff_base_seconds:
            raise ValueError("backoff_max_seconds must be >= backoff_base_seconds")
        return self

    def worst_case_seconds(self) -> float:
        """The longest one trigger can take: every attempt timing out, every backoff at its ceiling.

        >>> SenderSettings().worst_case_seconds()
        57.5
        """
        timeout = max(self.webhook_timeout_seconds, self.smtp_timeout_seconds)
        backoff = sum(min(self.backoff_max_seconds, self.backoff_base_seconds * 2.0 ** (n - 1))
                      for n in range(1, self.max_attempts))
        return self.max_attempts * timeout + backoff

    def serves(self, senders: Iterable[SenderName]) -> dict[Channel, SenderName]:
        """Trigger channel → the sender (of ``senders``) that delivers it."""
        routes: dict[Channel, SenderName] = {}
        for sender in senders:
            channels: list[Channel] = list(self.console_channels) if sender == "console" else [sender]
            for channel in channels:
                if channel in routes and routes[channel] != sender:
                    raise ValueError(f"trigger channel {channel!r} is served by both {routes[channel]} and {sender}")
                routes[channel] = sender
        return routes

    def missing_for(self, senders: Iterable[SenderName]) -> list[str]:
        """Environment variables the chosen senders need but that are unset."""
        missing = []
        if "webhook" in senders:
            if not self.webhook_url:
                missing.append(f"{ENV}WEBHOOK_URL")
            if not self.webhook_secret.get_secret_value():
                missing.append(f"{ENV}WEBHOOK_SECRET")
        return missing


class SenderAppSettings(Settings):
    """The worker's settings (Kafka, prefix, app id, logging) with the ``sender`` section."""

    sender: SenderSettings = SenderSettings()

    def consumer_group(self, senders: Iterable[SenderName]) -> str:
        """One consumer group per set of senders, e.g. ``forethought-senders-console-webhook``."""
        return f"{self.app_id}-senders-{'-'.join(sorted(set(senders)))}"
