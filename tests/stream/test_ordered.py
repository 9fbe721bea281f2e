"""The agent's ordering buffer (stream/ordered.py) through Faust's test_context, and its arithmetic of
"records on the broker not received yet"."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

from faust.types import TP
from faust.types.tuples import ConsumerMessage, Message
from test_agent import ENGINE, put, recorded, recorded_acks, settle, stored

from forethought.ops.settings import Settings
from forethought.stream.ordered import OrderedBatches

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc).timestamp()


def click(customer: str, n: int, at: float) -> bytes:
    return json.dumps({"event_id": f"{customer}-c{n}", "customer_id": customer, "type": "page_view",
                       "occurred_at": datetime.fromtimestamp(at, tz=timezone.utc).isoformat()}).encode()


def error(customer: str, n: int, at: float) -> bytes:
    return json.dumps({"event_id": f"{customer}-e{n}", "customer_id": customer, "type": "error", "code": "E1",
                       "occurred_at": datetime.fromtimestamp(at, tz=timezone.utc).isoformat()}).encode()


async def test_a_batch_reaches_the_engine_in_event_time_order_across_topics() -> None:
    """Ten minutes of clicks, then the errors of those minutes from another topic in the same batch:
    in arrival order the errors would be older than the allowed lateness (300 s) and ignored."""
    built, _ = recorded(Settings(topic_prefix="t.", engine=ENGINE, batch_within_seconds=0.2,
                                 commit_interval_seconds=0.001))  # timers do not run here: flush at every batch
    acked = recorded_acks(built)
    async with built.agent.test_context() as agent:
        for i in range(10):
            await put(agent, "t.events.clickstream", b"c1", click("c1", i, T0 + 60 * i), offset=i, kind=ConsumerMessage)
        for i in range(3):
            await put(agent, "t.events.errors", b"c1", error("c1", i, T0 + 1 + i), offset=i, kind=ConsumerMessage)
        await settle(lambda: built.processor.table.get(b"c1") is not None and len(acked) == 13)
    state = stored(built, b"c1")
    assert state["errn"] == 3 and state.get("late", 0) == 0
    per_topic = {topic: [m.offset for m in acked if m.topic == topic] for topic in ("t.events.clickstream", "t.events.errors")}
    assert per_topic == {"t.events.clickstream": list(range(10)), "t.events.errors": [0, 1, 2]}
    assert len(built.ordered or []) == 0


class Consumer:
    """What OrderedBatches asks of Faust's consumer: high watermarks of assigned partitions and the
    committed offsets Faust keeps."""

    def __init__(self, highwaters: dict[TP, int | None], committed: dict[TP, int] | None = None) -> None:
        self.highwaters, self._committed_offset = highwaters, committed or {}

    def highwater(self, tp: TP) -> int | None:
        if tp not in self.highwaters:
            raise AssertionError("Partition is not assigned")  # as aiokafka answers
        return self.highwaters[tp]


def batches(consumer: Consumer, processed: dict[tuple[str, int], int] | None = None) -> OrderedBatches:
    return OrderedBatches(lambda: consumer, ["clicks", "errors"], max_idle=1.0, max_buffered=100,
                          max_event_bytes=1024, processed=processed or {}, clock=lambda: 0.0)


def event(topic: str, offset: int, value: bytes | None) -> Any:
    message = Message(topic, 0, offset, 0.0, 0, None, None, value, None, tp=TP(topic, 0))  # Faust's own
    return SimpleNamespace(message=message)


def test_unfetched_means_the_broker_has_offsets_past_what_was_received_processed_or_committed() -> None:
    errors = TP("errors", 0)
    consumer = Consumer({errors: 10}, committed={errors: 4})
    ordered = batches(consumer)
    assert ordered.unfetched("errors", 0)  # committed at 4, the broker ends at 10
    ordered.add([event("errors", 9, None)])
    assert not ordered.unfetched("errors", 0)  # received up to 9
    consumer.highwaters[errors] = None  # no fetch answered yet
    assert ordered.unfetched("errors", 0)
    assert not ordered.unfetched("errors", 3)  # not assigned here
    assert not batches(Consumer({errors: 10}), processed={("errors", 0): 10}).unfetched("errors", 0)


def test_hostile_values_have_no_event_time_and_go_first() -> None:
    ordered = batches(Consumer({}))
    late_click = click("c1", 0, T0)
    hostile = [None, b"", b"\xff\xfe", b"[]", b'{"occurred_at": 5}', b'{"occurred_at": "yesterday"}',
               b'{"occurred_at": "2026-11-22T12:00:00"}', b"{" + b" " * 2000 + b"}"]
    assert [ordered.event_time(v) for v in hostile] == [None] * len(hostile)
    ordered.add([event("clicks", 0, late_click)])
    ordered.add([event("errors", n, value) for n, value in enumerate(hostile)])
    released = ordered.release()
    assert [e.message.topic for e in released] == ["errors"] * len(hostile) + ["clicks"]


def test_events_read_before_a_rebalance_are_not_buffered() -> None:
    generation = [1]
    ordered = OrderedBatches(lambda: Consumer({}), ["clicks"], 1.0, 100, 1024, {}, generation=lambda: generation[0])
    old = event("clicks", 0, click("c1", 0, T0))
    old.message.generation_id = 1
    generation[0] = 2
    ordered.add([old])
    assert len(ordered) == 0


class PollingConsumer(Consumer):
    """Also answers, as Faust's aiokafka consumer does through its thread, when each partition's high
    watermark was last fetched (wall ms)."""

    def __init__(self, highwaters: dict[TP, int | None], polled: dict[TP, int]) -> None:
        super().__init__(highwaters)
        self.polled = polled
        self._thread = SimpleNamespace(_ensure_consumer=lambda: SimpleNamespace(last_poll_timestamp=self.polled.get))


def test_a_high_watermark_older_than_the_records_held_is_an_unknown_lag() -> None:
    """After a stall the first topic fetched again must wait for the others' next fetch."""
    clicks, errors = TP("clicks", 0), TP("errors", 0)
    consumer = PollingConsumer({clicks: 1, errors: 1}, polled={clicks: 1_000, errors: 1_000})
    ordered = batches(consumer)
    ordered.add([event("errors", 0, error("c1", 0, T0))])
    ordered.add([event("clicks", 0, click("c1", 0, T0 + 1))])
    assert len(ordered.release()) == 2 and not ordered.unfetched("errors", 0)  # caught up as of the same fetch
    consumer.polled[clicks], consumer.highwaters[clicks] = 31_000, 2  # resumed: clicks fetched again, errors not yet
    ordered.add([event("clicks", 1, click("c1", 1, T0 + 60))])
    assert ordered.unfetched("errors", 0) and ordered.release() == []  # held for errors' next fetch
    consumer.polled[errors] = 31_200  # errors answered: nothing new
    assert not ordered.unfetched("errors", 0) and len(ordered.release()) == 1


def test_offsets_processed_before_a_rebalance_are_expected_again() -> None:
    """Records processed but not committed are read again after a rebalance: they are awaited."""
    errors = TP("errors", 0)
    processed = {("errors", 0): 10}
    ordered = batches(Consumer({errors: 10}, committed={errors: 6}), processed=processed)
    assert not ordered.unfetched("errors", 0)
    ordered.forget()
    assert ordered.unfetched("errors", 0)  # committed at 6: offsets 6..9 come again
    ordered.add([event("errors", 9, None)])
    processed[("errors", 0)] = 10
    assert not ordered.unfetched("errors", 0)


def test_a_wait_under_way_when_the_process_stalls_does_not_end_at_once_when_it_resumes() -> None:
    now = [0.0]
    errors = TP("errors", 0)
    consumer = Consumer({errors: 5})
    ordered = OrderedBatches(lambda: consumer, ["clicks", "errors"], 1.0, 100, 1024, {}, clock=lambda: now[0])
    ordered.add([event("clicks", 0, click("c1", 0, T0))])
    assert ordered.release() == []  # errors has records on the broker: the click waits
    now[0] = 30.0  # SIGSTOP for 30 s
    assert ordered.release() == []
    ordered.add([event("errors", n, error("c1", n, T0 - 10 + n)) for n in range(5)])
    assert [e.message.topic for e in ordered.release()] == ["errors"] * 5 + ["clicks"]
