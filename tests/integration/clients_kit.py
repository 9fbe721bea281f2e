"""Third-party clients as integrators run them: confluent-kafka (librdkafka) producer and consumer, and kcat.

Records come back whole (partition, offset, timestamp, headers), as the client reports them.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
from codec_kit import polled
from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    Producer,
    TopicPartition,
)

from forethought.ops.settings import REPO_ROOT

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True)
class Stored:
    """One record as the broker stores it (timestamp in epoch ms)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int
    headers: Headers

    @property
    def where(self) -> str:
        """``topic:partition:offset``, as the re-key hop's ``forethought-rekeyed-from`` header names it."""
        return f"{self.topic}:{self.partition}:{self.offset}"


def schema_validator(name: str) -> jsonschema.protocols.Validator:
    """A validator of a published schema (``schemas/<name>.schema.json``) that checks formats too."""
    schema = json.loads((REPO_ROOT / "schemas" / f"{name}.schema.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    assert cls.FORMAT_CHECKER.conforms("2026-01-01T00:00:00", "date-time") is False, "date-time is really checked"
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def _stored(message: Any) -> Stored:
    kind, timestamp = message.timestamp()
    assert kind != TIMESTAMP_NOT_AVAILABLE
    return Stored(message.topic(), message.partition(), message.offset(), message.key(), message.value(), timestamp,
                  list(message.headers() or []))


def _produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes, Headers, int | None]],
             settings: dict[str, Any]) -> list[Stored]:
    producer = Producer({"bootstrap.servers": bootstrap, **settings})
    delivered: list[Stored] = []
    failures: list[str] = []

    def report(err: Any, message: Any) -> None:
        if err is not None:
            failures.append(str(err))
        else:
            delivered.append(_stored(message))

    for key, value, headers, timestamp_ms in records:
        extra = {} if timestamp_ms is None else {"timestamp": timestamp_ms}
        producer.produce(topic, value=value, key=key, headers=headers, on_delivery=report, **extra)
    assert producer.flush(30) == 0, "confluent-kafka could not deliver everything"
    assert not failures, failures
    return delivered


async def confluent_produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes, Headers, int | None]],
                            settings: dict[str, Any] | None = None) -> list[Stored]:
    """Produce ``(key, value, headers, timestamp ms or None)`` with librdkafka (its defaults, plus the
    properties in ``settings``); the records as delivered."""
    return await asyncio.to_thread(_produce, bootstrap, topic, records, settings or {})


def _read_all(bootstrap: str, topic: str, partitions: int, timeout: float) -> list[Stored]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"third-party-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False})
    try:
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        found: list[Stored] = []
        position = dict.fromkeys(ends, 0)
        deadline = time.monotonic() + timeout
        def more() -> bool:
            behind = any(position[p] < end for p, end in ends.items())
            assert not behind or time.monotonic() < deadline, f"{topic}: read {position} of {ends}"
            return behind

        for message in polled(consumer, more):
            found.append(_stored(message))
            position[message.partition()] = message.offset() + 1
        return found
    finally:
        consumer.close()


async def confluent_read_all(bootstrap: str, topic: str, partitions: int = 4, timeout: float = 60) -> list[Stored]:
    """Every record of ``topic`` up to its current end, read with librdkafka's consumer."""
    return await asyncio.to_thread(_read_all, bootstrap, topic, partitions, timeout)


def kcat_produce(bootstrap: str, topic: str, lines: list[str], *options: str, log: Path) -> None:
    """Pipe ``key:value`` lines into ``kcat -P -b BOOTSTRAP -t TOPIC -K: OPTIONS``."""
    kcat = shutil.which("kcat")
    assert kcat is not None
    with log.open("ab") as out:
        done = subprocess.run([kcat, "-P", "-b", bootstrap, "-t", topic, "-K:", *options],
                              input="\n".join(lines).encode() + b"\n", stdout=out, stderr=out, timeout=60)
    assert done.returncode == 0, log.read_text()[-2000:]
