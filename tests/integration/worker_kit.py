"""Helpers for integration tests that run the real worker against the real broker."""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.error
import urllib.request
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord, TopicPartition

from forethought.ops.topics import load_catalogue
from forethought.testing import FAST_ENGINE_ENV, WorkerDeployment

ENGINE = FAST_ENGINE_ENV


class Deployment(WorkerDeployment):
    """A worker deployment with the produce/consume/poll helpers the integration tests use."""

    async def produce(self, topic: str, records: list[tuple[bytes | None, bytes]]) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
        await producer.start()
        try:
            for key, value in records:
                await producer.send(self.topic(topic), value=value, key=key)
            await producer.flush()
        finally:
            await producer.stop()

    async def consume(self, topic: str, until: int, timeout: float = 60, match: Any = None) -> list[ConsumerRecord]:
        """Records of ``topic`` from the start, until ``until`` of them match (or the timeout)."""
        consumer = AIOKafkaConsumer(self.topic(topic), bootstrap_servers=self.bootstrap,
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        found: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout
        try:
            while len(found) < until and time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    found.extend(r for r in records if match is None or match(r))
        finally:
            await consumer.stop()
        return found

    async def read_all(self, topic: str) -> list[ConsumerRecord]:
        """Every record of ``topic`` up to its current end (no waiting for records that may never come)."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            name = self.topic(topic)
            partitions = [TopicPartition(name, p) for p in range(load_catalogue().by_name[topic].partitions)]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            found: list[ConsumerRecord] = []
            while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
                for records in (await consumer.getmany(*partitions, timeout_ms=500)).values():
                    found.extend(records)
            return found
        finally:
            await consumer.stop()

    def get(self, path: str) -> tuple[int, Any]:
        """GET a worker URL; JSON bodies are decoded."""
        try:
            with urllib.request.urlopen(f"{self.url}{path}", timeout=5) as response:
                body = response.read()
                status = response.status
        except urllib.error.HTTPError as exc:
            body, status = exc.read(), exc.code
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body.decode()

    async def wait_for(self, path: str, check: Any, timeout: float = 60) -> Any:
        """Poll ``path`` until ``check(body)`` is true; returns the body."""
        deadline = time.monotonic() + timeout
        body: Any = None
        while time.monotonic() < deadline:
            status, body = self.get(path)
            if status == 200 and check(body):
                return body
            await asyncio.sleep(0.3)
        raise AssertionError(f"{path} never satisfied the check; last body: {body!r}")


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus exposition (0 when absent)."""
    for line in text.splitlines():
        match = re.match(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(3))
    return 0.0


def epoch(text: str) -> float:
    """POSIX seconds of an ISO-8601 time as the worker's views write them (``2026-11-22T12:00:00Z``)."""
    from datetime import datetime

    return datetime.fromisoformat(text).timestamp()


def event(customer: str, n: int, kind: str, at: float, **fields: Any) -> tuple[bytes, bytes]:
    """A keyed, valid inbound event at POSIX time ``at``."""
    from datetime import datetime, timezone

    body = {"event_id": f"{customer}-{kind}-{n}", "customer_id": customer, "type": kind,
            "occurred_at": datetime.fromtimestamp(at, tz=timezone.utc).isoformat(), **fields}
    return customer.encode(), json.dumps(body).encode()
