"""The simulated customers answering a live worker: triggers in from Kafka, outcomes and reactions out.

``forethought simulate --respond`` (with the same ``--customers/--days/--seed/--start`` as the run
that produced the population) reads ``engagement.triggers``, answers each trigger with the
:class:`~forethought.simulate.responder.Responder`, and produces the outcome records to
``engagement.outcomes`` and a returning customer's resumed activity to the input topics, keyed by
customer id and stamped with their event times. A trigger's offset is committed only after its
answer is acknowledged by the broker (``acks=all``): a stopped responder answers it again on its
next start, and the outcome ids (a digest of trigger and status) let the worker see the repeat as
the same outcome. A trigger that cannot be answered is counted and skipped, never raised.

Live, the responder only *adds* records: a sleeping dog's own later events, already produced by
``simulate --to-kafka``, cannot be taken back (the in-process closed loop does cut them).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import orjson

from forethought.ops.settings import Settings
from forethought.ops.topics import load_catalogue
from forethought.simulate.plans import SimulationConfig
from forethought.simulate.responder import Answer, Responder, resumed_items
from forethought.simulate.response import ResponseModel
from forethought.simulate.sinks import routes

GROUP = "forethought-simulator"


def answer_records(answer: Answer, table: dict[str, str]) -> list[tuple[str, bytes, bytes]]:
    """``(topic, key, value)`` of an answer's outcomes and, for a returning customer, their activity."""
    timed = list(answer.outcomes)
    if answer.resumed is not None:
        timed += [(ms, record) for ms, _, _, record in resumed_items(answer.resumed)]
    timed.sort(key=lambda item: item[0])
    return [(table[record["type"]], record["customer_id"].encode(), orjson.dumps(record)) for _, record in timed]


async def respond(config: SimulationConfig, settings: Settings, *, seconds: float | None = None,
                  stop: asyncio.Event | None = None, model: ResponseModel | None = None, group: str = GROUP,
                  on_answer: Callable[[Answer], None] = lambda _a: None) -> Responder:
    """Answer triggers until ``stop`` is set or ``seconds`` have passed (None: until cancelled)."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    from forethought.ops import batch_guard
    from forethought.ops.compression import producer_options
    from forethought.ops.kafka_security import aiokafka_options

    batch_guard.install()
    responder = Responder(config, model)
    table = routes(load_catalogue(settings.topics_file), settings.topic)
    consumer = AIOKafkaConsumer(settings.topic("engagement.triggers"), bootstrap_servers=settings.kafka_bootstrap,
                                group_id=group, auto_offset_reset="earliest", enable_auto_commit=False,
                                **aiokafka_options(settings))
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=5,
                                **aiokafka_options(settings), **producer_options(settings.kafka_compression))
    await consumer.start()
    await producer.start()
    deadline = None if seconds is None else time.monotonic() + seconds
    try:
        while not (stop is not None and stop.is_set()) and (deadline is None or time.monotonic() < deadline):
            batches = await consumer.getmany(timeout_ms=200, max_records=500)
            messages = [m for batch in batches.values() for m in batch]
            if not messages:
                continue
            pending: list[asyncio.Future[Any]] = []
            for message in messages:
                for topic, key, value in _answer(responder, message.value, table, on_answer):
                    pending.append(await producer.send(topic, value=value, key=key))
            await asyncio.gather(*pending)  # every answer acknowledged before the triggers are committed
            await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()
    return responder


def _answer(responder: Responder, raw: bytes | None, table: dict[str, str],
            on_answer: Callable[[Answer], None]) -> list[tuple[str, bytes, bytes]]:
    decoded = responder.decode(raw or b"")
    if decoded is None:
        return []
    trigger, variant = decoded
    if trigger.mode != "live":
        responder.skipped["shadow"] += 1
        return []
    answer = responder.answer(trigger, 0, variant)
    if answer is None:
        return []
    on_answer(answer)
    return answer_records(answer, table)
