"""``/customers/{id}`` of a customer evicted after idling: still answered, from their summary, scored as
likely gone with the reason (issue #13 point 2). The worker's own web app on a loopback port."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from forethought.core.summary import MAGIC
from forethought.ops.settings import Settings
from forethought.stream.processor import RawRecord
from forethought.stream.worker import Worker, build_worker

TOKEN = "tok-0123456789abcdef-secret"
DAY = 86_400.0
T0 = datetime(2026, 9, 1, tzinfo=UTC).timestamp()


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Worker, TestServer]]:
    worker = build_worker(Settings(topic_prefix="t.", data_dir=tmp_path, web_token=TOKEN,  # type: ignore[arg-type]
                                   engine={"idle_ttl_seconds": 30 * DAY, "prior_gap_seconds": 2 * DAY}))
    worker.app.web.blueprints.apply(worker.app.web)
    server = TestServer(worker.app.web.web_app)
    await server.start_server()
    yield worker, server
    await server.close()


def visits(worker: Worker, customer: str, days: range) -> None:
    partition = worker.processor.partition_for(customer.encode())
    records = [RawRecord("t.events.clickstream", partition, n, customer.encode(), json.dumps(
        {"event_id": f"{customer}-{d}", "customer_id": customer, "type": "page_view", "page": "/",
         "occurred_at": datetime.fromtimestamp(T0 + d * DAY, tz=UTC).isoformat()}).encode(), T0 + d * DAY)
               for n, d in enumerate(days)]
    worker.processor.handle(records, T0 + days[-1] * DAY)


async def test_an_evicted_customer_is_shown_from_their_summary(served: tuple[Worker, TestServer]) -> None:
    worker, server = served
    visits(worker, "c1", range(0, 12, 2))
    worker.processor.sweep(T0 + 80 * DAY)  # the input idles: event time follows the wall clock, c1 is evicted
    assert worker.processor.state(b"c1") is None
    async with aiohttp.ClientSession() as session:
        async with session.get(server.make_url("/customers/c1"), headers={"Authorization": f"Bearer {TOKEN}"}) as r:
            status, view = r.status, await r.json()
    assert status == 200, view
    assert view["summarised"] is True and view["evicted_at"].startswith("2026-")
    assert view["scores"]["dropoff"] > 0.999 and view["events"] == 6
    assert view["reason"]["signal"] == "idle_seconds" and "idle past the 30-day TTL" in view["reason"]["text"]
    assert view["first_seen"] == "2026-09-01T00:00:00Z" and view["state_bytes"] < 64
    assert worker.processor.dump(worker.processor.summary(b"c1"))[0] == MAGIC  # type: ignore[arg-type]
