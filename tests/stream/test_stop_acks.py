"""At a clean stop no input record becomes committable unless a batch of the worker took it in.

Faust cancels the agent at a stop and its stream goes on draining what was fetched, acknowledging
each record it skips. The worker lets acknowledgements through during a stop (its last flush must
be acknowledged), so such a skipped record became committable and the final commit passed it: the
partition's next owner started after a record nobody processed (the join-leave chaos loss of
2026-12-07, docs/chaos.md). Driven on Faust's own consumer of a built worker.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from faust.types import TP
from faust.types.tuples import Message

from forethought.ops.settings import Settings
from forethought.stream.acks import hold
from forethought.stream.worker import build_worker


def message(app: Any, topic: str, offset: int) -> Message:
    tp = TP(topic, 1)
    return Message(topic, 1, offset, 0.0, 0, None, b"k", b"v", None, tp=tp, generation_id=app.consumer_generation_id)


def test_at_a_stop_a_record_faust_skipped_is_not_acknowledged_but_one_the_worker_took_in_is() -> None:
    worker = build_worker(Settings(topic_prefix="t."))
    app: Any = worker.app
    consumer: Any = app.consumer
    app.topics._acking_topics.add("t.events.usage")  # as Faust's conductor does when the agent starts
    app._stopped.set()  # a clean stop has begun (mode's should_stop): the last flush's acks go through
    processed, skipped = message(app, "t.events.usage", 287), message(app, "t.events.usage", 288)
    hold([SimpleNamespace(message=processed)])

    assert consumer.ack(processed) is True, "a record a batch took in is acknowledged at the stop"
    assert consumer.ack(skipped) is False, "a record no batch took in never becomes committable"
    assert list(consumer._acked[TP("t.events.usage", 1)]) == [287]
