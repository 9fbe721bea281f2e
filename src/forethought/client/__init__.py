"""Producer SDK: typed builders for every inbound record, and producers that route them to Kafka.

    import asyncio
    from forethought.client import ForethoughtProducer, SyncProducer, events

    async def main() -> None:
        async with ForethoughtProducer("localhost:9092") as producer:
            await producer.send(events.page_view("cust-42", page="/pricing"))

    asyncio.run(main())

    with SyncProducer("localhost:9092") as producer:           # for non-async apps
        producer.send(events.error("cust-42", code="E503")).result(timeout=10)

Names are imported on first use, so ``forethought send`` and ``import forethought.client.events``
stay quick.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from forethought.client import events
    from forethought.client.events import outcome, profile
    from forethought.client.headers import InvalidHeader
    from forethought.client.producer import Delivery, DeliveryError, ForethoughtProducer, SendReport
    from forethought.client.settings import ClientSettings
    from forethought.client.sync import SyncProducer
    from forethought.client.wire import InvalidRecord, RecordTooLarge, UnroutableRecord, decode_record

_WHERE = {
    "events": "forethought.client.events", "profile": "forethought.client.events",
    "outcome": "forethought.client.events", "Delivery": "forethought.client.producer",
    "DeliveryError": "forethought.client.producer", "ForethoughtProducer": "forethought.client.producer",
    "SendReport": "forethought.client.producer", "SyncProducer": "forethought.client.sync",
    "ClientSettings": "forethought.client.settings", "InvalidHeader": "forethought.client.headers",
    "InvalidRecord": "forethought.client.wire", "RecordTooLarge": "forethought.client.wire",
    "UnroutableRecord": "forethought.client.wire", "decode_record": "forethought.client.wire",
}
__all__ = [
    "ClientSettings", "Delivery", "DeliveryError", "ForethoughtProducer", "InvalidHeader", "InvalidRecord",
    "RecordTooLarge", "SendReport", "SyncProducer", "UnroutableRecord", "decode_record", "events", "outcome", "profile",
]
assert sorted(__all__) == sorted(_WHERE)  # one list for the type checker, one for the lazy import


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = import_module(_WHERE[name])
    value = module if name == "events" else getattr(module, name)
    globals()[name] = value
    return value
