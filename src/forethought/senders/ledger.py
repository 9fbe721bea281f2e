"""The durable dedupe ledger: a compacted topic keyed ``<channel>:<trigger_id>``, mirrored in memory.

A sender writes an entry after a trigger's terminal outcome is published and before its offset is
committed; it reads the topic to the end on start (and again on every partition assignment, so a
trigger redelivered after another instance crashed is still recognised). Memory stays bounded:
entries older than ``max_age`` are neither loaded nor kept, and :meth:`KafkaLedger.expire` writes
tombstones for them so compaction keeps the topic bounded too. ``max_age`` must exceed the longest
trigger lifetime (``expires_at - fired_at``): a trigger redelivered after its entry is gone is
then ``expired``, never resent.

>>> from datetime import datetime, timedelta, timezone
>>> view = LedgerView(max_age=timedelta(days=1))
>>> now = datetime(2026, 11, 22, tzinfo=timezone.utc)
>>> view.add(b"email:t-1", "delivered", now.timestamp(), now=now.timestamp())
>>> b"email:t-1" in view, view.status(b"email:t-1")
(True, 'delivered')
>>> view.add(b"email:t-0", "failed", (now - timedelta(days=2)).timestamp(), now=now.timestamp())  # too old
>>> b"email:t-0" in view
False
>>> view.prune((now + timedelta(days=2)).timestamp())
[b'email:t-1']
>>> len(view)
0
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from forethought.ops.logs import get_logger
from forethought.senders.mirror import TopicMirror
from forethought.senders.records import LedgerEntry

log = get_logger("senders.ledger")


class LedgerView:
    """In-memory ``key → (status, recorded_at)``; the bound is the age of an entry."""

    def __init__(self, max_age: timedelta) -> None:
        self.max_age = max_age.total_seconds()
        self.entries: dict[bytes, tuple[str, float]] = {}

    def __contains__(self, key: object) -> bool:
        return key in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def status(self, key: bytes) -> str | None:
        found = self.entries.get(key)
        return found[0] if found else None

    def add(self, key: bytes, status: str, recorded_at: float, now: float | None = None) -> None:
        """Remember ``key`` unless the entry is already older than ``max_age``."""
        if recorded_at >= (time.time() if now is None else now) - self.max_age:
            self.entries[key] = (status, recorded_at)

    def discard(self, key: bytes) -> None:
        self.entries.pop(key, None)

    def prune(self, now: float) -> list[bytes]:
        """Forget entries older than ``max_age``; returns their keys."""
        cutoff = now - self.max_age
        old = [k for k, (_, at) in self.entries.items() if at < cutoff]
        for key in old:
            del self.entries[key]
        return old


class KafkaLedger:
    """The ledger topic behind a :class:`LedgerView`: ``load``/``catch_up`` read it, ``record`` appends."""

    def __init__(self, bootstrap: str, topic: str, producer: AIOKafkaProducer, max_age: timedelta,
                 **kafka_options: Any) -> None:
        self.topic, self.producer = topic, producer
        self.mirror = TopicMirror(bootstrap, topic, self._apply, **kafka_options)  # TLS/SASL options
        self.view = LedgerView(max_age)
        self.loaded = False
        self.stale: set[bytes] = set()  # entries read but too old to keep: to be tombstoned

    async def load(self) -> int:
        """Read the whole topic into memory; returns the number of live entries."""
        read = await self.mirror.open("ledger")
        self.loaded = True
        log.info("ledger loaded", topic=self.topic, records=read, entries=len(self.view))
        return len(self.view)

    async def catch_up(self) -> int:
        """Read from where we are to the topic's current end; returns the records read."""
        return await self.mirror.catch_up()

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        if value is None:  # a tombstone: an operator asked for this trigger to be sendable again
            self.view.discard(key)
            return
        try:
            entry = LedgerEntry.model_validate_json(value)
        except ValidationError:
            log.warning("unreadable ledger entry ignored", key=key.decode(errors="replace"))
            return
        self.view.add(key, entry.status, entry.recorded_at.timestamp())
        if key not in self.view:
            self.stale.add(key)

    def __contains__(self, key: object) -> bool:
        return key in self.view

    async def record(self, entry: LedgerEntry) -> None:
        """Append ``entry`` durably (acks=all awaited) and remember it."""
        await (await self.producer.send(self.topic, key=entry.key, value=entry.model_dump_json().encode()))
        self.view.add(entry.key, entry.status, entry.recorded_at.timestamp())

    async def expire(self, now: float | None = None) -> int:
        """Forget old entries and tombstone them (and those too old to load); returns how many."""
        keys = set(self.view.prune(time.time() if now is None else now)) | self.stale
        self.stale = set()
        sent = [await self.producer.send(self.topic, key=key, value=None) for key in sorted(keys)]
        await asyncio.gather(*sent)
        if keys:
            log.info("old ledger entries expired", topic=self.topic, entries=len(keys))
        return len(keys)

    async def close(self) -> None:
        await self.mirror.close()
