"""The worker's outbound topics: publish an outbox; Kafka has all of it before the records behind it
are acknowledged.

Dead letters, re-keyed records, triggers and shadow triggers of one batch (or sweep) are sent
together; the worker awaits their delivery with the batch's state writes, at the next flush, before
it acknowledges the batch (architecture rule 6), so sending does not hold up the next batch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import cast

import faust

from forethought.ops.logs import get_logger
from forethought.ops.metrics import Metrics
from forethought.ops.settings import Settings
from forethought.stream.outbox import Outbox

log = get_logger("worker")


class Outputs:
    """Publishes an outbox; waits until Kafka has every trigger before state may move on."""

    def __init__(self, app: faust.App, settings: Settings) -> None:
        def raw(name: str) -> faust.TopicT:
            return app.topic(settings.topic(name), key_serializer="raw", value_serializer="raw")

        self.triggers = raw("engagement.triggers")
        self.deadletter = raw("events.deadletter")
        self.rekeyed = raw("forethought.rekeyed")
        self.shadow = raw("engagement.triggers.shadow")

    async def publish(self, outbox: Outbox, metrics: Metrics,
                      in_flight: list[asyncio.Future[object]] | None = None) -> None:
        """Send everything in ``outbox``. Without ``in_flight``, wait until Kafka has all of it;
        with it, return once the records are handed to the producer and add one future to
        ``in_flight`` that completes (or fails) with their delivery: the worker awaits it before it
        acknowledges the records behind them, without holding up the next batch meanwhile."""
        pending: list[Awaitable[object]] = []
        for letter in outbox.deadletters:
            metrics.invalid.labels(reason=letter.reason).inc()
            pending.append(await self.deadletter.send(
                key=letter.source_topic.encode(), value=letter.model_dump_json().encode()))
        for hop in outbox.rekeyed:  # the original headers and timestamp go along (stream/rekey.py)
            metrics.rekeyed.inc()
            headers = cast("list[tuple[str, bytes]]", list(hop.headers))  # a null value stays null (aiokafka)
            pending.append(await self.rekeyed.send(key=hop.key, value=hop.value, headers=headers,
                                                   timestamp=hop.timestamp))
        for trigger, _origin in outbox.triggers:
            pending.append(await self.triggers.send(
                key=trigger.customer_id.encode(), value=trigger.model_dump_json().encode()))
        for trigger in outbox.shadow:
            pending.append(await self.shadow.send(
                key=trigger.customer_id.encode(), value=trigger.model_dump_json().encode()))
        if in_flight is None:
            await self._delivered(pending, outbox, metrics)
        elif pending:
            in_flight.append(asyncio.ensure_future(self._delivered(pending, outbox, metrics)))

    @staticmethod
    async def _delivered(pending: list[Awaitable[object]], outbox: Outbox, metrics: Metrics) -> None:
        """Await the sends; then count and log the triggers (a failed send raises instead)."""
        if pending:
            await asyncio.gather(*pending)
        now = time.time()
        for trigger, origin in outbox.triggers:
            metrics.triggers.labels(playbook=trigger.playbook).inc()
            metrics.event_to_trigger.labels(detector=trigger.detector).observe(max(0.0, now - origin))
            log.info("trigger", trigger_id=trigger.trigger_id, customer_id=trigger.customer_id,
                     playbook=trigger.playbook, reason=trigger.reasons[0].text)
