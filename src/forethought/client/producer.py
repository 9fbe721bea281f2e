"""``ForethoughtProducer``: send contract models to their catalogue topics, keyed by customer_id.

Copy-paste example (asyncio)::

    import asyncio
    from forethought.client import ForethoughtProducer, events

    async def main() -> None:
        async with ForethoughtProducer("localhost:9092") as producer:
            delivery = await producer.send(events.page_view("cust-42", page="/pricing"))
            print(delivery)                      # Delivery(record_id=..., topic='events.clickstream', ...)
            report = await producer.send_many([
                events.error("cust-42", code="PAYMENT_DECLINED"),
                events.usage("cust-42", metric="api_calls", quantity=120),
            ])
            print(report.sent, report.failures)  # 2 []

    asyncio.run(main())

``await producer.send(record)`` returns a ``Delivery`` (topic, partition, offset, timestamp) once the
broker acknowledged the record (``acks="all"``, idempotent), or raises ``DeliveryError``. A record the
worker would reject as oversized raises ``RecordTooLarge`` at once and never reaches Kafka.
``send_many`` sends a batch and never raises for one bad record: it returns a ``SendReport``. To keep
many records in flight without a batch, ``await producer.enqueue(record)`` returns the future instead.

Records are keyed by ``customer_id`` and placed with aiokafka's ``DefaultPartitioner``: Kafka's murmur2,
as the Java client does, so the worker never has to re-key them. Their Kafka timestamp is the record's
own time (``occurred_at``) unless ``timestamp=`` says otherwise; headers carry
``content-type: application/json``, an optional ``traceparent`` and any of your own.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from functools import partial
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, UnknownTopicOrPartitionError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import RecordMetadata
from pydantic import BaseModel

from forethought.client.headers import HeaderValue, Timestamp
from forethought.client.settings import ClientSettings
from forethought.client.wire import Encoded, Router, record_id
from forethought.contracts.catalogue import Catalogue, load_catalogue
from forethought.ops.compression import Compression, compression_type
from forethought.ops.kafka_security import aiokafka_options


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where the broker stored one record."""

    record_id: str
    topic: str
    partition: int
    offset: int
    timestamp_ms: int = -1  # the record's Kafka timestamp as stored (-1: the broker did not say)


class DeliveryError(Exception):
    """Kafka did not take the record (unknown topic, timeout, broker error)."""

    def __init__(self, encoded: Encoded, cause: BaseException) -> None:
        self.record_id, self.topic, self.cause = encoded.record_id, encoded.topic, cause
        if isinstance(cause, UnknownTopicOrPartitionError):
            reason = "topic does not exist on the broker (run `forethought topics create`)"
        else:
            reason = f"{type(cause).__name__}: {cause}".rstrip(": ")
        super().__init__(f"{encoded.topic}: {reason}")


@dataclass(slots=True)
class SendReport:
    """What ``send_many`` did: how many were acknowledged, and which failed and why."""

    sent: int = 0
    per_topic: Counter[str] = field(default_factory=Counter)
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every record was acknowledged."""
        return not self.failures


class ForethoughtProducer:
    """Async producer of Forethought records (events, profiles, outcomes) over aiokafka.

    Every argument left out comes from ``settings`` (a ``ClientSettings``, read from the environment
    when not given): ``bootstrap`` (``FORETHOUGHT_KAFKA_BOOTSTRAP``), ``prefix``
    (``FORETHOUGHT_TOPIC_PREFIX``), ``compression``, ``client_id``, ``linger_ms``, ``request_timeout_ms``,
    ``max_event_bytes``, the catalogue (``FORETHOUGHT_TOPICS_FILE``) and TLS/SASL. ``max_batch_size``
    tunes batching; ``kafka_options`` go to ``AIOKafkaProducer`` last, as they are.
    """

    def __init__(self, bootstrap: str | None = None, prefix: str | None = None, *,
                 settings: ClientSettings | None = None, linger_ms: int | None = None,
                 max_batch_size: int = 64 * 1024, request_timeout_ms: int | None = None,
                 max_event_bytes: int | None = None, catalogue: Catalogue | None = None,
                 client_id: str | None = None, compression: Compression | None = None,
                 **kafka_options: Any) -> None:
        s = ClientSettings() if settings is None else settings
        self.settings = s
        self.router = Router(
            s.topic_prefix if prefix is None else prefix,
            load_catalogue(s.topics_file) if catalogue is None else catalogue,
            s.max_event_bytes if max_event_bytes is None else max_event_bytes)
        self._options: dict[str, Any] = {
            "bootstrap_servers": s.kafka_bootstrap if bootstrap is None else bootstrap,
            "client_id": s.client.id if client_id is None else client_id,
            "acks": "all", "enable_idempotence": True,
            "partitioner": DefaultPartitioner(),  # murmur2 of the key: the partition the worker expects
            "linger_ms": s.client.linger_ms if linger_ms is None else linger_ms,
            "max_batch_size": max_batch_size,
            "request_timeout_ms": s.client.request_timeout_ms if request_timeout_ms is None else request_timeout_ms,
            "compression_type": compression_type(s.kafka_compression if compression is None else compression),
            **aiokafka_options(s), **kafka_options,
        }
        self._kafka: AIOKafkaProducer | None = None
        self._lock: asyncio.Lock | None = None
        self._pending: set[asyncio.Future[Delivery]] = set()

    async def start(self) -> None:
        """Connect to the broker (done by ``async with``)."""
        if self._kafka is not None:
            return
        kafka = AIOKafkaProducer(**self._options)
        try:
            await kafka.start()
        except BaseException:
            with suppress(Exception):
                await kafka.stop()
            raise
        self._kafka, self._lock = kafka, asyncio.Lock()

    async def __aenter__(self) -> ForethoughtProducer:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def send(self, record: BaseModel, *, timestamp: Timestamp | None = None,
                   headers: Mapping[str, HeaderValue] | None = None, traceparent: str | None = None) -> Delivery:
        """Send ``record`` and return its ``Delivery`` once acknowledged; ``DeliveryError`` when Kafka
        did not take it.

        ``timestamp`` (aware datetime or epoch ms) defaults to the record's ``occurred_at``; ``headers``
        add to ``content-type``; ``traceparent`` is a W3C trace context. Raises ``RecordTooLarge``,
        ``UnroutableRecord`` or ``InvalidHeader`` at once for a record that cannot be sent.
        """
        return await self.send_encoded(self.router.encode(record, timestamp=timestamp, headers=headers,
                                                          traceparent=traceparent))

    async def enqueue(self, record: BaseModel, *, timestamp: Timestamp | None = None,
                      headers: Mapping[str, HeaderValue] | None = None,
                      traceparent: str | None = None) -> asyncio.Future[Delivery]:
        """Queue ``record`` without waiting for the broker: the future resolves to its ``Delivery`` or
        fails with ``DeliveryError``. For many records in flight at once, in call order."""
        return await self.enqueue_encoded(self.router.encode(record, timestamp=timestamp, headers=headers,
                                                             traceparent=traceparent))

    async def send_encoded(self, encoded: Encoded) -> Delivery:
        """Like ``send`` for an already encoded record (see ``Router.encode``)."""
        return await (await self._submit(encoded))

    async def enqueue_encoded(self, encoded: Encoded) -> asyncio.Future[Delivery]:
        """Like ``enqueue`` for an already encoded record (see ``Router.encode``)."""
        try:
            return await self._submit(encoded)
        except DeliveryError as exc:
            failed: asyncio.Future[Delivery] = asyncio.get_running_loop().create_future()
            failed.set_exception(exc)
            return failed

    async def send_many(self, records: Iterable[BaseModel], *, headers: Mapping[str, HeaderValue] | None = None,
                        traceparent: str | None = None) -> SendReport:
        """Send every record and wait for all acknowledgements; failures are reported, not raised.

        Each record's timestamp is its own time; ``headers`` and ``traceparent`` go on every record.
        """
        report = SendReport()

        def encoded() -> Iterator[Encoded]:
            for record in records:
                try:
                    yield self.router.encode(record, headers=headers, traceparent=traceparent)
                except ValueError as exc:
                    report.failures.append((record_id(record), str(exc)))

        return await self.send_encoded_many(encoded(), report)

    async def send_encoded_many(self, records: Iterable[Encoded], report: SendReport | None = None) -> SendReport:
        """``send_many`` for encoded records, adding to ``report`` (a new one by default)."""
        report = SendReport() if report is None else report
        queued: list[tuple[Encoded, asyncio.Future[Delivery]]] = []
        unavailable: dict[str, DeliveryError] = {}  # a topic that failed once fails its other records fast
        for encoded in records:
            if encoded.topic in unavailable:
                report.failures.append((encoded.record_id, str(unavailable[encoded.topic])))
                continue
            try:
                queued.append((encoded, await self._submit(encoded)))
            except DeliveryError as exc:
                unavailable[encoded.topic] = exc
                report.failures.append((encoded.record_id, str(exc)))
        for encoded, delivery in queued:
            try:
                await delivery
            except DeliveryError as exc:
                report.failures.append((encoded.record_id, str(exc)))
            else:
                report.sent += 1
                report.per_topic[encoded.topic] += 1
        return report

    async def flush(self) -> None:
        """Wait until every record sent so far is acknowledged or has failed."""
        kafka = self._started()
        await kafka.flush()
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def close(self) -> None:
        """Flush, then disconnect. Safe to call twice."""
        if self._kafka is None:
            return
        try:
            await self.flush()
        finally:
            kafka, self._kafka = self._kafka, None
            await kafka.stop()

    def _started(self) -> AIOKafkaProducer:
        if self._kafka is None:
            raise RuntimeError("the producer is not started: use `async with` or `await producer.start()`")
        return self._kafka

    async def _submit(self, encoded: Encoded) -> asyncio.Future[Delivery]:
        """Hand the record to aiokafka, in call order; raises ``DeliveryError`` when it cannot be queued."""
        kafka = self._started()
        assert self._lock is not None
        async with self._lock:  # FIFO: records keep the order in which send was called
            try:
                acked = await kafka.send(encoded.topic, encoded.value, key=encoded.key,
                                         timestamp_ms=encoded.timestamp_ms, headers=list(encoded.headers))
            except KafkaError as exc:
                raise DeliveryError(encoded, exc) from exc
        delivery: asyncio.Future[Delivery] = asyncio.get_running_loop().create_future()
        self._pending.add(delivery)
        delivery.add_done_callback(self._pending.discard)
        acked.add_done_callback(partial(_settle, delivery, encoded))
        return delivery


def _settle(delivery: asyncio.Future[Delivery], encoded: Encoded, acked: asyncio.Future[RecordMetadata]) -> None:
    if delivery.done():
        return
    if acked.cancelled():
        delivery.set_exception(DeliveryError(encoded, asyncio.CancelledError("the producer was stopped")))
    elif (exc := acked.exception()) is not None:
        delivery.set_exception(DeliveryError(encoded, exc))
    else:
        meta = acked.result()
        delivery.set_result(Delivery(encoded.record_id, meta.topic, meta.partition, meta.offset, meta.timestamp))
