"""The sender loop: consume → decode → route → dedupe → expire or deliver → outcome → ledger → commit.

At-least-once with a durable dedupe: for each trigger the outcome is published, then the ledger
entry, and only then may its offset be committed. A crash before the ledger write can resend (the
receiver dedupes on ``Idempotency-Key`` / ``Message-ID``); a crash after it cannot.

Partitions of one batch are processed concurrently, the records of one partition in order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.structs import ConsumerRecord
from rich.console import Console

from forethought.contracts.bounded import KEY_PREFIX_BYTES
from forethought.contracts.records import Trigger
from forethought.ops import batch_guard
from forethought.ops.compression import producer_options
from forethought.ops.kafka_security import aiokafka_options
from forethought.ops.logs import get_logger
from forethought.senders.addresses import KafkaAddressBook
from forethought.senders.channels import ConsoleChannel, EmailChannel, Sender, WebhookChannel, expiry
from forethought.senders.ledger import KafkaLedger
from forethought.senders.metrics import SenderMetrics, serve, web_app
from forethought.senders.records import (
    DeliveryResult,
    LedgerEntry,
    decode_trigger,
    ledger_key,
    outcome_for,
    sender_dead_letter,
    utcnow,
)
from forethought.senders.retry import HostRateLimiter
from forethought.senders.settings import SenderAppSettings, SenderName
from forethought.senders.templates import Renderer, playbooks_using

log = get_logger("senders")
PRUNE_EVERY_SECONDS = 600.0
REBALANCE_TIMEOUT_MS = 60_000


class SenderService:
    """Serves the trigger channels of ``senders`` until ``run``'s stop event is set."""

    def __init__(self, settings: SenderAppSettings, senders: Sequence[SenderName], *,
                 metrics: SenderMetrics | None = None, console: Console | None = None,
                 channels: Mapping[SenderName, Sender] | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        if missing := settings.sender.missing_for(senders):
            raise ValueError(f"the chosen senders need {', '.join(missing)}")
        self.settings, self.config = settings, settings.sender
        self.names: tuple[SenderName, ...] = tuple(sorted(set(senders)))
        self.routes = self.config.serves(self.names)
        self.renderer = Renderer(self.config.templates_dir)
        if "email" in self.names and "email" not in (channels or {}):
            # every playbook that can e-mail needs its own templates: a start-up error, not a generic mail
            self.renderer.check(playbooks_using(settings.playbooks_file, ["email"]))
        elif "console" in self.names:
            self.renderer.check()
        self.group = settings.consumer_group(self.names)
        self.metrics = metrics or SenderMetrics()
        self.metrics.prime(self.names)
        self.clock, self.console, self.injected = clock, console, dict(channels or {})
        self.topic_triggers = settings.topic("engagement.triggers")
        self.topic_outcomes = settings.topic("engagement.outcomes")
        self.topic_deadletter = settings.topic("senders.deadletter")
        self.pending: dict[TopicPartition, int] = {}
        self.fresh_for: frozenset[TopicPartition] = frozenset()
        self.in_flight: set[bytes] = set()
        self.lock = asyncio.Lock()
        self.channels: dict[SenderName, Sender] = {}
        self.session: aiohttp.ClientSession | None = None
        self.producer: AIOKafkaProducer | None = None
        self.consumer: AIOKafkaConsumer | None = None
        self.ledger: KafkaLedger | None = None
        self.addresses: KafkaAddressBook | None = None  # the email sender's profile mirror
        self.runner: Any = None
        self.skipped: batch_guard.Inbox | None = None
        self.last_commit = self.last_prune = time.monotonic()

    # -- lifecycle -------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Start, loop until ``stop`` is set (finishing the batch in hand), commit and close."""
        try:
            await self.start()
            while not stop.is_set():
                await self.poll_once()
        finally:
            await self.close()

    async def start(self) -> None:
        # Undecodable batches are skipped, not raised (the ledger's too: logged); the triggers' are dead-lettered.
        self.skipped = batch_guard.watch([self.topic_triggers])
        self.runner = await serve(web_app(self.metrics, self.health), self.config.web_host, self.config.web_port)
        kafka = aiokafka_options(self.settings)  # TLS/SASL
        self.producer = AIOKafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap, acks="all",
                                         enable_idempotence=True, **kafka,
                                         **producer_options(self.settings.kafka_compression))
        await self.producer.start()
        self.ledger = KafkaLedger(self.settings.kafka_bootstrap, self.settings.topic("senders.ledger"),
                                  self.producer, timedelta(days=self.config.ledger_days), **kafka)
        await self.ledger.load()
        await self.ledger.expire()
        self.metrics.ledger_entries.set(len(self.ledger.view))
        self.channels = self._build_channels()
        if self.addresses is not None:
            await self.addresses.load()
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap, group_id=self.group, enable_auto_commit=False,
            auto_offset_reset="earliest", max_poll_records=self.config.batch_size,
            # A batch may legitimately take this long (retries); beyond it we would be presumed stuck.
            max_poll_interval_ms=int(max(300.0, 2 * self.config.batch_size * self.config.worst_case_seconds()) * 1e3),
            rebalance_timeout_ms=REBALANCE_TIMEOUT_MS,  # time to finish the batch in hand when partitions move
            **kafka,
        )
        await self.consumer.start()
        self.consumer.subscribe([self.topic_triggers], listener=_Rebalance(self))
        log.info("sender started", senders=self.names, group=self.group, topic=self.topic_triggers,
                 routes=self.routes, web=f"http://{self.config.web_host}:{self.config.web_port}")

    def _build_channels(self) -> dict[SenderName, Sender]:
        limiter = HostRateLimiter(self.config.rate_per_second, self.config.rate_burst)
        built: dict[SenderName, Sender] = {}
        for name in self.names:
            if name in self.injected:
                built[name] = self.injected[name]
            elif name == "webhook":
                self.session = aiohttp.ClientSession()
                built[name] = WebhookChannel(self.session, self.config, limiter)
            elif name == "email":
                self.addresses = KafkaAddressBook(self.settings.kafka_bootstrap,
                                                  self.settings.topic("customers.profile"),
                                                  **aiokafka_options(self.settings))
                built[name] = EmailChannel(self.config, limiter, self.addresses, self.renderer)
                if not self.config.recipient_hash_key.get_secret_value():
                    log.warning("recipient_hash_key_missing", setting="FORETHOUGHT_SENDER__RECIPIENT_HASH_KEY",
                                effect="outcomes name recipients by plain sha256, which anyone who guesses an"
                                       " address can confirm")
            else:
                built[name] = ConsoleChannel(self.console, self.renderer)
        return built

    async def close(self) -> None:
        if self.skipped is not None:
            batch_guard.unwatch(self.skipped)
        if self.consumer is not None:
            await _quietly(self._final_commit())
            await _quietly(self.consumer.stop())
        if self.ledger is not None:
            await _quietly(self.ledger.close())
        if self.addresses is not None:
            await _quietly(self.addresses.close())
        if self.producer is not None:
            await _quietly(self.producer.stop())
        if self.session is not None:
            await _quietly(self.session.close())
        if self.runner is not None:
            await _quietly(self.runner.cleanup())
        log.info("sender stopped", senders=self.names)

    async def _final_commit(self) -> None:
        async with self.lock:
            await self._commit()

    def health(self) -> dict[str, Any]:
        assigned = len(self.consumer.assignment()) if self.consumer is not None else 0
        loaded = bool(self.ledger and self.ledger.loaded)
        return {"ready": loaded and assigned > 0, "senders": list(self.names), "group": self.group,
                "ledger_loaded": loaded, "ledger_entries": len(self.ledger.view) if self.ledger else 0,
                "assigned_partitions": assigned}

    # -- the loop --------------------------------------------------------------------------------

    async def poll_once(self) -> None:
        """One batch: every partition's records in order, partitions concurrently; then maybe commit."""
        assert self.consumer is not None
        batches = await self.consumer.getmany(timeout_ms=500, max_records=self.config.batch_size)
        await self._undecodable()  # before any later offset of that partition can be committed
        if batches:
            await self._ledger_fresh()
            if self.addresses is not None:  # every profile the worker acted on is in the topic by now
                await self.addresses.catch_up()
            async with self.lock, asyncio.TaskGroup() as group:
                for tp, records in batches.items():
                    group.create_task(self._partition(tp, records))
        await self._housekeeping()

    async def _ledger_fresh(self) -> None:
        """Re-read the ledger after every assignment change, before the first record of it is handled.

        A partition that moved here may redeliver triggers whose ledger entries another instance
        wrote after we loaded; catching up here (not in the rebalance callback, which aiokafka runs
        concurrently with fetching) guarantees we see them.
        """
        assert self.consumer is not None and self.ledger is not None
        assignment = frozenset(self.consumer.assignment())
        if assignment != self.fresh_for:
            read = await self.ledger.catch_up()
            self.fresh_for = assignment
            log.info("ledger caught up for new assignment", partitions=sorted(tp.partition for tp in assignment),
                     ledger_read=read)

    async def _partition(self, tp: TopicPartition, records: list[ConsumerRecord]) -> None:
        for record in records:
            await self.handle(record)
            self.pending[tp] = record.offset + 1

    async def handle(self, record: ConsumerRecord) -> None:
        """Everything for one trigger record, up to and including its ledger entry."""
        try:
            trigger = decode_trigger(record.value or b"")
        except ValueError as exc:
            await self._invalid(record, exc)
            return
        sender = self.routes.get(trigger.channel)
        if sender is None:
            return  # another sender's channel
        key = ledger_key(trigger.channel, trigger.trigger_id)
        assert self.ledger is not None
        if key in self.ledger or key in self.in_flight:
            self.metrics.duplicates.labels(channel=sender).inc()
            log.info("duplicate trigger skipped", trigger_id=trigger.trigger_id, sender=sender,
                     status=self.ledger.view.status(key) or "in flight")
            return
        self.in_flight.add(key)
        try:
            result = expiry(trigger, self.clock()) or await self._deliver(sender, trigger, record.value or b"")
            await self._conclude(sender, trigger, record, result)
        finally:
            self.in_flight.discard(key)

    async def _deliver(self, sender: SenderName, trigger: Trigger, body: bytes) -> DeliveryResult:
        try:
            return await self.channels[sender].deliver(trigger, body)
        except Exception as exc:  # noqa: BLE001 - a sender bug must not stop the loop: fail this trigger
            log.exception("sender error", trigger_id=trigger.trigger_id, sender=sender)
            return DeliveryResult("failed", f"sender error: {exc!r}"[:2048])

    async def _conclude(self, sender: SenderName, trigger: Trigger, record: ConsumerRecord,
                        result: DeliveryResult) -> None:
        """Outcome first, dead letter if failed, ledger last: the ledger entry means 'all published'."""
        assert self.producer is not None and self.ledger is not None
        now = self.clock()
        outcome = outcome_for(trigger, result, now)
        await self._publish(self.topic_outcomes, trigger.customer_id.encode(), outcome.model_dump_json().encode())
        if result.dead_letter:
            letter = sender_dead_letter(
                error=result.detail, original=record.value, max_bytes=self.settings.deadletter_max_bytes,
                sender=sender, status=result.status, attempts=result.attempts, trigger=trigger,
                source_topic=record.topic, source_partition=record.partition, source_offset=record.offset,
                failed_at=now)
            await self._publish(self.topic_deadletter, trigger.trigger_id.encode(), letter.model_dump_json().encode())
            self.metrics.deadletters.labels(channel=sender).inc()
        await self.ledger.record(LedgerEntry(trigger_id=trigger.trigger_id, channel=trigger.channel,
                                             status=result.status, outcome_id=outcome.outcome_id, recorded_at=now))
        self._count(sender, record, result)
        log.info("trigger concluded", trigger_id=trigger.trigger_id, customer_id=trigger.customer_id,
                 sender=sender, status=result.status, attempts=result.attempts, detail=result.detail)

    def _count(self, sender: SenderName, record: ConsumerRecord, result: DeliveryResult) -> None:
        self.metrics.sends.labels(channel=sender, status=result.status).inc()
        if result.retries:
            self.metrics.retries.labels(channel=sender).inc(result.retries)
        if result.status == "delivered" and record.timestamp and record.timestamp > 0:
            self.metrics.delivery.labels(channel=sender).observe(max(0.0, time.time() - record.timestamp / 1000))
        self.metrics.ledger_entries.set(len(self.ledger.view) if self.ledger else 0)

    async def _invalid(self, record: ConsumerRecord, exc: ValueError) -> None:
        self.metrics.invalid.inc()
        log.warning("invalid trigger record", topic=record.topic, partition=record.partition,
                    offset=record.offset, error=str(exc)[:500])
        letter = sender_dead_letter(
            error=f"not a valid trigger: {exc}", original=record.value or b"",
            max_bytes=self.settings.deadletter_max_bytes, sender="+".join(self.names), status="failed", attempts=0,
            source_topic=record.topic, source_partition=record.partition, source_offset=record.offset,
            failed_at=self.clock(),
        )
        key = None if record.key is None else record.key[:KEY_PREFIX_BYTES]  # the Kafka key counts towards 1 MB too
        await self._publish(self.topic_deadletter, key, letter.model_dump_json().encode())

    async def _undecodable(self) -> None:
        """Dead-letter, by offset, every trigger batch the fetcher could not decode and skipped."""
        for batch in self.skipped.drain() if self.skipped is not None else []:
            self.metrics.invalid.inc()
            letter = sender_dead_letter(
                error=f"undecodable_batch: {batch.describe()}", original=None,
                max_bytes=self.settings.deadletter_max_bytes, sender="+".join(self.names), status="failed",
                attempts=0, source_topic=batch.topic, source_partition=batch.partition,
                source_offset=batch.first_offset, failed_at=self.clock(),
            )
            await self._publish(self.topic_deadletter, None, letter.model_dump_json().encode())

    async def _publish(self, topic: str, key: bytes | None, value: bytes) -> None:
        assert self.producer is not None
        await (await self.producer.send(topic, key=key, value=value))

    # -- offsets and housekeeping ------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        now = time.monotonic()
        if self.pending and now - self.last_commit >= self.config.commit_interval_seconds:
            async with self.lock:
                await self._commit()
        if self.ledger is not None and now - self.last_prune >= PRUNE_EVERY_SECONDS:
            self.last_prune = now
            await self.ledger.expire()
            self.metrics.ledger_entries.set(len(self.ledger.view))

    async def _commit(self, only: set[TopicPartition] | None = None) -> None:
        """Commit what is fully handled (call with the lock held)."""
        assert self.consumer is not None
        self.last_commit = time.monotonic()
        assigned = self.consumer.assignment()
        offsets = {tp: o for tp, o in self.pending.items() if tp in assigned and (only is None or tp in only)}
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:  # a rebalance took them: the ledger covers the redelivery
            log.warning("offset commit failed", error=repr(exc), partitions=len(offsets))
        for tp in offsets:
            self.pending.pop(tp, None)


class _Rebalance(ConsumerRebalanceListener):
    """Commit what is done before partitions go (the ledger is re-read in ``poll_once``)."""

    def __init__(self, service: SenderService) -> None:
        self.service = service

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        async with self.service.lock:  # waits for the batch in hand to finish
            await self.service._commit(set(revoked))
            for tp in revoked:
                self.service.pending.pop(tp, None)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("partitions assigned", partitions=sorted(tp.partition for tp in assigned))


async def _quietly(step: Any) -> None:
    try:
        await step
    except Exception as exc:  # noqa: BLE001 - closing: report and go on closing the rest
        log.warning("error while closing", error=repr(exc))
