"""The behaviour agent through Faust's test_context: memory store, outbound topics recorded."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from faust.types import Message
from faust.types.tuples import ConsumerMessage

from forethought.contracts.records import DeadLetter, Trigger
from forethought.core.config import EngineConfig
from forethought.core.state import CustomerState
from forethought.ops.playbooks import PlaybookFileError
from forethought.ops.settings import Settings
from forethought.stream.web import readiness
from forethought.stream.acks import track_changelog
from forethought.stream.worker import Worker, build_worker, partition_of

ENGINE = EngineConfig(bucket_seconds=10, burst_min_errors=3, visit_gap_seconds=0, prior_gap_seconds=1,
                      silence_min_seconds=5, prior_log_sd=0.3)



def stored(built: Worker, key: bytes) -> dict[str, Any]:
    """The state the worker's table holds for ``key``, as its dict."""
    return CustomerState.from_bytes(built.processor.table[key], built.settings.engine).to_dict()


class Recorder:
    """Stands in for a topic's ``send``: keeps what was sent, reports it delivered."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, bytes]] = []

    async def send(self, key: bytes, value: bytes, **_: Any) -> asyncio.Future[None]:
        self.sent.append((key, value))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


@pytest.fixture
async def worker() -> AsyncIterator[tuple[Worker, dict[str, Recorder]]]:
    yield recorded(Settings(topic_prefix="t.", engine=ENGINE, batch_within_seconds=0.01,
                           commit_interval_seconds=0.001))  # timers do not run here: flush at every batch


def recorded(settings: Settings) -> tuple[Worker, dict[str, Recorder]]:
    """A worker whose outbound topics and changelogs are recorded instead of sent."""
    built = build_worker(settings)
    built.app.finalize()
    built.app.flow_control.resume()
    recorders = {"triggers": Recorder(), "deadletter": Recorder(), "rekeyed": Recorder()}
    assert built.outputs is not None
    for name, recorder in recorders.items():
        getattr(built.outputs, name).send = recorder.send
    changelog = recorders["changelog"] = Recorder()
    for table in (built.processor.table, built.processor.profiles):
        table.send_changelog = lambda partition, key, value, *a, **k: (  # type: ignore[attr-defined]
            changelog.sent.append((key, value)) or SimpleNamespace(message=SimpleNamespace(partition=0)))
    return built, recorders


async def put(agent: Any, topic: str, key: bytes | None, value: bytes, offset: int,
              kind: type[Message] = Message) -> None:
    """Deliver one record as if read from ``topic`` (test_context alone cannot name a topic);
    ``kind=ConsumerMessage`` acknowledges through the consumer, as a Kafka consumer's messages do."""
    channel = agent.stream().channel
    partition = partition_of(key or b"", 4)  # where Kafka's default (murmur2) partitioner puts it
    message = kind(topic=topic, partition=partition, offset=offset, timestamp=time.time(), timestamp_type=0,
                      headers=None, key=key, value=value, checksum=b"", serialized_key_size=0,
                      serialized_value_size=0, generation_id=agent.app.consumer_generation_id)
    await channel.put(await channel.decode(message))


def error(customer: str, n: int, at: float) -> bytes:
    return json.dumps({"event_id": f"{customer}-{n}", "customer_id": customer, "type": "error",
                       "occurred_at": f"2026-11-22T12:00:{at:06.3f}+00:00", "code": "E1"}).encode()


async def settle(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "the agent did not get there in time"
        await asyncio.sleep(0.02)


async def test_agent_fires_one_burst_trigger_and_keeps_state_in_the_table(worker: tuple[Worker, dict[str, Recorder]]) -> None:
    built, rec = worker
    async with built.agent.test_context() as agent:
        for i in range(5):
            await put(agent, "t.events.errors", b"c1", error("c1", i, float(i)), offset=i)
        await settle(lambda: built.processor.table.get(b"c1") is not None
                     and stored(built, b"c1")["errn"] == 5)
    triggers = [Trigger.model_validate_json(value) for _, value in rec["triggers"].sent]
    assert [(t.playbook, t.customer_id) for t in triggers] == [("error_burst", "c1")]
    assert rec["triggers"].sent[0][0] == b"c1"
    assert rec["changelog"].sent[-1] == (b"c1", built.processor.table[b"c1"]), "state reaches the changelog"


async def test_agent_dead_letters_bad_records_and_carries_on(worker: tuple[Worker, dict[str, Recorder]]) -> None:
    built, rec = worker
    async with built.agent.test_context() as agent:
        await put(agent, "t.events.errors", b"c2", b"\xff\xfe not json", offset=0)
        await put(agent, "t.events.clickstream", b"c2", error("c2", 1, 1.0), offset=1)  # wrong topic
        await put(agent, "t.events.errors", b"c2", error("c2", 2, 2.0), offset=2)
        await settle(lambda: built.processor.table.get(b"c2") is not None)
    letters = [DeadLetter.model_validate_json(value) for _, value in rec["deadletter"].sent]
    assert [(d.reason, d.source_topic, d.source_offset) for d in letters] == [  # in arrival order
        ("not_json", "t.events.errors", 0), ("wrong_topic", "t.events.clickstream", 1)]
    assert stored(built, b"c2")["n"] == 1


async def test_agent_rekeys_events_whose_key_is_not_the_customer(worker: tuple[Worker, dict[str, Recorder]]) -> None:
    built, rec = worker
    async with built.agent.test_context() as agent:
        await put(agent, "t.events.errors", b"session-9", error("c3", 1, 1.0), offset=0)
        await settle(lambda: rec["rekeyed"].sent)
    assert rec["rekeyed"].sent == [(b"c3", error("c3", 1, 1.0))]
    assert built.processor.table.get(b"c3") is None, "state is only written on the customer's own partition"


async def test_agent_rekeys_events_on_a_partition_their_key_does_not_hash_to(worker: tuple[Worker, dict[str, Recorder]]) -> None:
    built, rec = worker
    wrong = (partition_of(b"c4", 4) + 1) % 4  # e.g. a librdkafka producer's CRC32 partitioner
    async with built.agent.test_context() as agent:
        channel = agent.stream().channel
        message = Message(topic="t.events.errors", partition=wrong, offset=0, timestamp=time.time(), timestamp_type=0,
                          headers=None, key=b"c4", value=error("c4", 1, 1.0), checksum=b"", serialized_key_size=0,
                          serialized_value_size=0, generation_id=agent.app.consumer_generation_id)
        await channel.put(await channel.decode(message))
        await settle(lambda: rec["rekeyed"].sent)
    assert rec["rekeyed"].sent == [(b"c4", error("c4", 1, 1.0))]


def profile(customer: str, **fields: Any) -> bytes:
    return json.dumps({"type": "profile", "customer_id": customer, "updated_at": "2026-11-01T00:00:00Z",
                       **fields}).encode()


async def test_a_profile_feeds_the_profile_table_and_quiet_hours_defer_the_trigger(tmp_path: Path) -> None:
    path = tmp_path / "playbooks.yaml"
    path.write_text("playbooks:\n  - {name: burst, on: [error_burst], channels: [in_app], priority: 70}\n")
    built, rec = recorded(Settings(topic_prefix="t.", engine=ENGINE, batch_within_seconds=0.01, playbooks_file=path,
                                   commit_interval_seconds=0.001))
    treated, key = "c5", b"c5"  # errors at 12:00 UTC are 21:00 in Tokyo, inside this customer's 20:00-23:00
    async with built.agent.test_context() as agent:
        await put(agent, "t.customers.profile", key, profile(treated, timezone="Asia/Tokyo", quiet_hours="20:00-23:00"), 0)
        for i in range(5):
            await put(agent, "t.events.errors", key, error(treated, i, float(i)), offset=i)
        await settle(lambda: built.processor.table.get(key) is not None
                     and stored(built, key)["errn"] == 5)
    assert rec["triggers"].sent == []
    held = stored(built, key)["pol"]["p"]
    assert len(held) == 1 and held[0][0] == datetime(2026, 11, 22, 23, 0, tzinfo=ZoneInfo("Asia/Tokyo")).timestamp()
    assert built.processor.profile(key).timezone == "Asia/Tokyo"
    assert b'forethought_decisions_total{mode="live",playbook="burst",reason="",verdict="deferred"} 1.0' in (
        built.metrics.exposition())


async def test_an_unsubscribe_outcome_updates_the_profile_table(worker: tuple[Worker, dict[str, Recorder]]) -> None:
    built, _ = worker
    outcome = {"type": "outcome", "outcome_id": "o1", "trigger_id": "t1", "customer_id": "c6", "channel": "email",
               "status": "unsubscribed", "occurred_at": "2026-11-22T12:00:00Z"}
    async with built.agent.test_context() as agent:
        await put(agent, "t.customers.profile", b"c6", profile("c6", consent={"email": True}), 0)
        await put(agent, "t.engagement.outcomes", b"c6", json.dumps(outcome).encode(), 0)
        await settle(lambda: built.processor.profile(b"c6").unsubscribed)
    assert not built.processor.profile(b"c6").allows("email", frozenset())
    assert b'forethought_outcomes_total{channel="email",status="unsubscribed"} 1.0' in built.metrics.exposition()


def test_playbooks_reload_on_change_and_a_bad_file_keeps_the_running_ones(tmp_path: Path) -> None:
    path = tmp_path / "playbooks.yaml"
    good = "playbooks:\n  - {name: burst, on: [error_burst], channels: [in_app], priority: 70}\n"
    path.write_text(good)
    built = build_worker(Settings(topic_prefix="t.", engine=ENGINE, playbooks_file=path))
    path.write_text(good.replace("70", "75"))
    os.utime(path, (1, 1))
    assert built.reload_playbooks() is True and built.processor.rules.playbooks[0].priority == 75
    path.write_text(good.replace("in_app", "carrier_pigeon"))
    os.utime(path, (2, 2))
    assert built.reload_playbooks() is False and built.processor.rules.playbooks[0].priority == 75
    text = built.metrics.exposition()
    assert b'forethought_playbook_reloads_total{result="loaded"} 1.0' in text
    assert b'forethought_playbook_reloads_total{result="rejected"} 1.0' in text


def test_an_invalid_playbook_file_stops_the_worker_at_start_up(tmp_path: Path) -> None:
    path = tmp_path / "playbooks.yaml"
    path.write_text("playbooks:\n  - {name: burst, on: [error_burst], channels: [in_app], priority: 700}\n")
    with pytest.raises(PlaybookFileError, match="line 2, playbooks.0.priority"):
        build_worker(Settings(topic_prefix="t.", engine=ENGINE, playbooks_file=path))


async def test_a_failed_agent_makes_the_worker_unhealthy_and_not_ready(worker: tuple[Worker, dict[str, Recorder]]) -> None:
    built, _ = worker
    assert readiness(built)["failure"] is None
    built.failure = "TypeError: boom"
    status = readiness(built)
    assert status["ready"] is False and status["failure"] == "TypeError: boom"


def recorded_acks(built: Worker) -> list[Any]:
    """The messages the agent acknowledges to the consumer (what becomes committable), as they come."""
    acked: list[Any] = []
    consumer_ack = built.app.consumer.ack
    built.app.consumer.ack = lambda message: acked.append(message) or consumer_ack(message)  # type: ignore[method-assign]
    return acked


async def five_errors(agent: Any) -> None:
    """One batch: five errors of customer c9, each acknowledged through the consumer."""
    for i in range(5):
        await put(agent, "t.events.errors", b"c9", error("c9", i, float(i)), offset=i, kind=ConsumerMessage)


async def test_a_failed_send_stops_the_worker_without_acknowledging_the_batch(
    worker: tuple[Worker, dict[str, Recorder]],
) -> None:
    """Faust's take_events acks a batch in a finally; the failed batch must stay unacknowledged."""
    built, rec = worker

    async def rejected(key: bytes, value: bytes, **_: Any) -> asyncio.Future[None]:
        raise RuntimeError("broker said no")

    built.outputs.triggers.send = rejected  # type: ignore[union-attr,method-assign]
    acked = recorded_acks(built)
    async with built.agent.test_context() as agent:
        await five_errors(agent)
        await settle(lambda: built.failure is not None)
        await asyncio.sleep(0.2)  # time for the batch generator's finally (its acks) to run
        status = readiness(built)
    assert built.failure == "RuntimeError: broker said no"
    assert status["ready"] is False and status["failure"] == built.failure  # /health and /ready answer 503
    assert acked == [], "no message of the failed batch reached the consumer's committable offsets"
    assert built.processor.table.get(b"c9") is None, "no state was written for the failed batch"


async def test_a_batch_in_hand_finishes_before_a_stop_lets_it_be_acknowledged(
    worker: tuple[Worker, dict[str, Recorder]],
) -> None:
    """Faust stops an agent by cancelling it, and take_events acknowledges the batch as the cancel
    passes: the batch's triggers and state must be on their way to the broker first."""
    built, rec = worker
    sending = asyncio.Event()
    send = built.outputs.triggers.send  # type: ignore[union-attr]

    async def slow(*args: Any, **kwargs: Any) -> Any:
        sending.set()
        await asyncio.sleep(0.3)  # the stop arrives while the trigger is being sent
        return await send(*args, **kwargs)

    built.outputs.triggers.send = slow  # type: ignore[union-attr,method-assign]
    acked = recorded_acks(built)
    async with built.agent.test_context() as agent:
        await five_errors(agent)
        await asyncio.wait_for(sending.wait(), 10)
        for actor in agent._actors:  # noqa: SLF001 - the actor's task, as a stopping Service cancels it
            actor.actor_task.cancel()
        await asyncio.sleep(0.6)
    assert built.processor.table.get(b"c9") is not None, "the batch's state was written before the stop"
    assert len(acked) == 5, "and only then was the batch acknowledged"
    assert built.failure is None


async def test_every_flush_awaits_its_own_state_writes() -> None:
    """A state write the broker rejects fails the flush it belongs to, not only the first flush's
    (settle once swapped the list that track_changelog appends to, and later writes went unawaited)."""
    built = build_worker(Settings(topic_prefix="t.", engine=ENGINE))
    loop = asyncio.get_running_loop()

    class Changelogged:
        def __init__(self) -> None:
            self.fail: Exception | None = None

        def send_changelog(self, *_: Any) -> asyncio.Future[None]:
            sent: asyncio.Future[None] = loop.create_future()
            sent.set_exception(self.fail) if self.fail else sent.set_result(None)
            return sent

    table = Changelogged()
    track_changelog(table, built.changelog_pending)
    table.send_changelog(0, b"c1", b"{}")
    await built.settle()
    table.fail = RuntimeError("MessageSizeTooLargeError")
    table.send_changelog(0, b"c1", b"{}")
    with pytest.raises(RuntimeError, match="MessageSizeTooLarge"):
        await built.settle()


async def test_a_flush_under_way_when_the_stop_begins_still_acknowledges_its_records(
    worker: tuple[Worker, dict[str, Recorder]],
) -> None:
    """A clean stop suspends the flow before it stops the agent; a write-behind flush that was under
    way then must still acknowledge its records, or the final commit misses them and the restarted
    worker reads them all again (seen in CI: 8 records re-read after a clean stop)."""
    built, rec = worker
    writing, release = asyncio.Event(), asyncio.Event()
    send = built.outputs.triggers.send  # type: ignore[union-attr]

    async def held(*args: Any, **kwargs: Any) -> Any:
        writing.set()
        await release.wait()  # the flush waits for its trigger while the stop begins
        return await send(*args, **kwargs)

    built.outputs.triggers.send = held  # type: ignore[union-attr,method-assign]
    messages: list[Any] = []
    async with built.agent.test_context() as agent:
        channel = agent.stream().channel
        decode = channel.decode
        channel.decode = lambda message, **kw: messages.append(message) or decode(message, **kw)
        await five_errors(agent)
        await asyncio.wait_for(writing.wait(), 10)
        built.app.flow_control.suspend()  # what App.stop does first (App._stop_consumer) ...
        built.app._stopped.set()  # noqa: SLF001 - ... once it has marked the app stopping
        release.set()
        await settle(lambda: built.flushing is not None and built.flushing.done())
    assert len(messages) == 5 and all(m.acked for m in messages), \
        "the flushed records reach the final commit"
    assert built.failure is None
