"""What senders write: outcomes (the shared contract), ledger entries and sender dead letters.

``outcome_id`` is deterministic, so publishing the same outcome twice (a retried publish, a
redelivered trigger) yields the same id and consumers can deduplicate:

>>> outcome_id("7d27f11e-aa02-58fc-8089-7530db84014f", "delivered")
'a848fc90-48d0-5394-a29a-69e7e0491fef'
>>> ledger_key("email", "t-1")
b'email:t-1'
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from pydantic import AwareDatetime, Field

from forethought.contracts.bounded import DEFAULT_DEADLETTER_MAX_BYTES, b64, bound_letter, clean_text
from forethought.contracts.records import Channel, Outcome, TolerantRecord, Trigger

OUTCOME_NAMESPACE = uuid.UUID("3b8e5a4c-0f7d-4f3e-9a3c-5d1e2b7f6a90")
DeliveryStatus = Literal["delivered", "failed", "bounced", "expired"]
ERROR_CHARS = 4096


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """How one delivery ended: a terminal status, why, and how many tries it took."""

    status: DeliveryStatus
    detail: str
    attempts: int = 1

    @property
    def retries(self) -> int:
        return max(0, self.attempts - 1)

    @property
    def dead_letter(self) -> bool:
        """Whether the trigger goes to the sender dead-letter topic: only what ``failed``.

        A bounce is the recipient's final answer (the outcome says so); a failure is ours or the
        endpoint's, worth an operator's look and perhaps a replay.
        """
        return self.status == "failed"


def decode_trigger(value: bytes) -> Trigger:
    """A Trigger from JSON; fields a newer schema version adds are ignored by the contract itself.

    Raises ``ValueError`` (pydantic's ``ValidationError`` included) for anything else.
    """
    raw = orjson.loads(value)
    if not isinstance(raw, dict):
        raise ValueError(f"expected a JSON object, got {type(raw).__name__}")
    return Trigger.model_validate(raw)


def outcome_id(trigger_id: str, status: str) -> str:
    """A UUIDv5 of trigger and status: the same outcome always gets the same id."""
    return str(uuid.uuid5(OUTCOME_NAMESPACE, f"{trigger_id}\x1f{status}"))


def outcome_for(trigger: Trigger, result: DeliveryResult, now: datetime) -> Outcome:
    """The ``Outcome`` contract record of ``result``."""
    return Outcome(
        outcome_id=outcome_id(trigger.trigger_id, result.status), trigger_id=trigger.trigger_id,
        customer_id=trigger.customer_id, channel=trigger.channel, status=result.status,
        occurred_at=now, detail=result.detail[:2048],
    )


def ledger_key(channel: str, trigger_id: str) -> bytes:
    """The compacted ledger's key: ``<channel>:<trigger_id>``."""
    return f"{channel}:{trigger_id}".encode()


class LedgerEntry(TolerantRecord):
    """A terminal outcome was published for this trigger on this channel: never send it again."""

    type: Literal["sender_ledger"] = "sender_ledger"
    trigger_id: str
    channel: Channel
    status: DeliveryStatus
    outcome_id: str
    recorded_at: AwareDatetime

    @property
    def key(self) -> bytes:
        return ledger_key(self.channel, self.trigger_id)


class SenderDeadLetter(TolerantRecord):
    """A trigger a sender finally could not deliver, with the last error and where it came from.

    Bounded like the worker's dead letters (``deadletter_max_bytes``): when the letter would be
    larger, ``trigger`` is dropped, ``value_b64`` holds a prefix of the original record and
    ``truncated``, ``original_value_bytes`` and ``original_value_sha256`` describe the whole one,
    which stays at ``source_topic``/``source_partition``/``source_offset``.
    """

    type: Literal["sender_deadletter"] = "sender_deadletter"
    sender: str
    status: DeliveryStatus
    error: str = Field(max_length=ERROR_CHARS)
    attempts: int
    trigger: Trigger | None = Field(None, description="None when the record was not a valid trigger, or truncated.")
    value_b64: str | None = Field(None, description="The original bytes, base64, when not a valid trigger "
                                                    "(a prefix when truncated).")
    source_topic: str
    source_partition: int
    source_offset: int
    failed_at: AwareDatetime
    truncated: bool = Field(False, description="True when value_b64 holds only a prefix of the original record.")
    original_value_bytes: int | None = Field(None, ge=0, description="Size of the original record (when truncated).")
    original_value_sha256: str | None = Field(
        None, pattern=r"^[0-9a-f]{64}$", description="sha256 (hex) of the whole original record (when truncated).")


def sender_dead_letter(*, error: str, original: bytes | None, max_bytes: int = DEFAULT_DEADLETTER_MAX_BYTES,
                       **fields: Any) -> SenderDeadLetter:
    """A :class:`SenderDeadLetter` whose JSON is at most ``max_bytes`` UTF-8 bytes.

    ``original`` is the trigger record's bytes (None when they could not be read): kept whole in
    ``value_b64`` when there is no parsed ``trigger``; beyond the bound, a prefix of it with its
    size and sha256 replaces both.

    >>> from datetime import datetime, timezone
    >>> at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> letter = sender_dead_letter(error="not a valid trigger", original=b"x" * 900_000, max_bytes=20_000,
    ...     sender="webhook", status="failed", attempts=0, source_topic="engagement.triggers",
    ...     source_partition=0, source_offset=9, failed_at=at)
    >>> letter.truncated, letter.original_value_bytes, len(letter.model_dump_json().encode()) <= 20_000
    (True, 900000, True)
    """
    whole = SenderDeadLetter(error=clean_text(error, ERROR_CHARS),
                             value_b64=b64(original) if fields.get("trigger") is None else None, **fields)
    return bound_letter(whole, max_bytes, text_field="error", text_chars=ERROR_CHARS, value=original or b"",
                        drop={"trigger": None})


def utcnow() -> datetime:
    return datetime.now(UTC)
