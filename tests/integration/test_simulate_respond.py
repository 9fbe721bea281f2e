"""``forethought simulate --respond`` against a real broker: triggers in, outcomes and come-backs out."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from forethought.contracts.records import Outcome, Trigger
from forethought.ops.settings import Settings
from forethought.ops.topics import create_topics, load_catalogue
from forethought.simulate.plans import SimulationConfig
from forethought.simulate.respond_live import respond
from forethought.simulate.responder import Responder
from forethought.simulate.response import ResponseModel
from forethought.simulate.timeline import iso

CONFIG = SimulationConfig(customers=40, days=14, seed=5, churn_rate=0.5)
EAGER = {"email": (0.95, 0.9)}
INPUTS = ("events.clickstream", "events.errors", "events.usage")


def _trigger(customer: str, key: str, at_ms: int, **extra: Any) -> dict[str, Any]:
    when = iso(at_ms)
    return {"trigger_id": key, "customer_id": customer, "playbook": "nudge", "detector": "silence",
            "episode": key, "channel": "email", "priority": 50, "fired_at": when, "expires_at": when,
            "scores": {}, "reasons": [{"signal": "silence_seconds", "observed": 1, "baseline": 1, "text": "q"}],
            **extra}


def _persuaded(model: ResponseModel, at_ms: int) -> tuple[str, str]:
    """A persuadable customer and a trigger id whose message brings them back."""
    planner = Responder(CONFIG, model)
    for plan in planner.population:
        if model.traits(plan).kind != "persuadable":
            continue
        for k in range(50):
            if model.react(plan, "email", "short", at_ms, f"trig-{k}").returned is not None:
                return plan.customer_id, f"trig-{k}"
    raise AssertionError("no persuadable customer in the population")


async def _send(settings: Settings, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(settings.topic("engagement.triggers"), value, key=b"k")
    finally:
        await producer.stop()


async def _read(bootstrap: str, topics: list[str], until: Any, timeout: float = 60.0) -> list[Any]:
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    seen: list[Any] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while not until(seen) and asyncio.get_running_loop().time() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                seen.extend(batch)
    finally:
        await consumer.stop()
    return seen


async def test_the_responder_answers_triggers_with_outcomes_and_the_customers_return(
        kafka_bootstrap: str, topic_prefix: str) -> None:
    settings = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=topic_prefix)
    await create_topics(kafka_bootstrap, load_catalogue(settings.topics_file), topic_prefix)
    model = ResponseModel(CONFIG.seed, channels=EAGER)
    at_ms = CONFIG.start_ms + 3 * 86_400_000 + 15 * 3_600_000
    customer, key = _persuaded(model, at_ms)
    expected = Responder(CONFIG, model).answer(_model_trigger(customer, key, at_ms), 0, "short")
    assert expected is not None and expected.resumed is not None
    await _send(settings, [b"{not json", orjson.dumps(_trigger("cust-999999", "ghost", at_ms)),
                           orjson.dumps(_trigger(customer, "odd", at_ms, variant="no-such-variant")),
                           orjson.dumps(_trigger(customer, key, at_ms, variant="short"))])

    stop = asyncio.Event()
    group = f"{topic_prefix}sim"
    task = asyncio.create_task(respond(CONFIG, settings, stop=stop, model=model, group=group))
    wanted = {status for status, _ in expected.reaction.statuses}
    outcomes = await _read(kafka_bootstrap, [settings.topic("engagement.outcomes")],
                           lambda seen: {orjson.loads(m.value)["status"] for m in seen} >= wanted)
    events = await _read(kafka_bootstrap, [settings.topic(t) for t in INPUTS], lambda seen: len(seen) >= 2)
    stop.set()
    responder = await asyncio.wait_for(task, 30)

    got = [Outcome.model_validate_json(m.value) for m in outcomes]
    assert sorted(o.status for o in got) == sorted(wanted)
    assert {o.trigger_id for o in got} == {key} and all(m.key == customer.encode() for m in outcomes)
    assert [o.model_dump(mode="json") for o in got] == [Outcome.model_validate(r).model_dump(mode="json")
                                                        for _, r in expected.outcomes]
    bodies = [orjson.loads(m.value) for m in events]
    assert bodies and {b["customer_id"] for b in bodies} == {customer}
    assert min(b["occurred_at"] for b in bodies) >= iso(at_ms)
    assert dict(responder.skipped) == {"malformed": 1, "unknown_customer": 1, "unknown_variant": 1}
    await _send(settings, [orjson.dumps(_trigger(customer, "later", at_ms + 86_400_000))])
    answered = asyncio.Event()
    again = await respond(CONFIG, settings, seconds=60, stop=answered, model=model, group=group,
                          on_answer=lambda _a: answered.set())
    assert again.tally["nudge"]["delivered"] == 1 and dict(again.skipped) == {}  # the first ones were committed


def _model_trigger(customer: str, key: str, at_ms: int) -> Trigger:
    return Trigger.model_validate(_trigger(customer, key, at_ms))

