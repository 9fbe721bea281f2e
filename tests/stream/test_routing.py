"""/customers/{id} on a worker that does not hold the customer: forwarded to the one that does (the
group's assignment as Faust's assignor holds it), once, with the token; a silent owner is a clear 502.

Two real worker apps serve on loopback ports; the assignment is what a rebalance would have left in
worker A's assignor. tests/integration/test_why_not_two_workers.py does the same with two worker processes in one
consumer group on the real broker.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from forethought.contracts.partitioning import partition_of
from forethought.ops.process import free_port
from forethought.ops.settings import Settings
from forethought.stream.routing import ROUTED_HEADER
from forethought.stream.worker import Worker, build_worker

TOKEN = "tok-0123456789abcdef-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def built(tmp_path: Path, port: int) -> Worker:
    worker = build_worker(Settings(topic_prefix="t.", data_dir=tmp_path / str(port), web_port=port, web_token=TOKEN))
    worker.app.web.blueprints.apply(worker.app.web)
    return worker


def assign(worker: Worker, holders: dict[str, list[int]]) -> None:
    """What a rebalance leaves in the worker's assignor: which advertised URL holds which partitions."""
    topic = worker.processor.table.changelog_topic.get_topic_name()
    worker.app.assignor.changelog_distribution = {url: {topic: parts} for url, parts in holders.items()}


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[Worker, Worker, TestServer, TestServer]]:
    a, b = built(tmp_path, free_port()), built(tmp_path, free_port())
    servers = [TestServer(w.app.web.web_app, port=w.settings.web_port) for w in (a, b)]
    for server in servers:
        await server.start_server()
    yield a, b, servers[0], servers[1]
    for server in servers:
        await server.close()
    for worker in (a, b):
        if worker.app._http_client is not None:
            await worker.app._http_client.close()


async def get(server: TestServer, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], dict]:
    async with aiohttp.ClientSession() as session, session.get(server.make_url(path), headers=headers) as response:
        return response.status, dict(response.headers), json.loads(await response.text())


async def test_a_customer_held_by_another_worker_is_answered_by_that_worker(pair: tuple) -> None:
    a, b, server_a, _ = pair
    partition = partition_of(b"cust-42", a.processor.table.partitions)
    assign(a, {a.settings.web_canonical_url: [], b.settings.web_canonical_url: [partition]})
    status, headers, body = await get(server_a, "/customers/cust-42", AUTH)
    assert status == 404 and body["served_by"] == b.settings.web_canonical_url  # B answered: it has no state yet
    assert headers[ROUTED_HEADER] == a.settings.web_canonical_url
    status, _, body = await get(server_a, "/customers/cust-42", {})
    assert status == 401  # the token is asked for before anything is forwarded


async def test_a_forwarded_request_is_never_forwarded_again(pair: tuple) -> None:
    a, b, server_a, _ = pair
    partition = partition_of(b"cust-42", a.processor.table.partitions)
    assign(a, {b.settings.web_canonical_url: [partition]})
    status, _, body = await get(server_a, "/customers/cust-42", {**AUTH, ROUTED_HEADER: "http://elsewhere:1"})
    assert status == 404 and body["served_by"] == a.settings.web_canonical_url


async def test_an_owner_that_does_not_answer_is_a_502_naming_it(pair: tuple) -> None:
    a, _, server_a, _ = pair
    gone = f"http://127.0.0.1:{free_port()}"
    assign(a, {gone: list(range(a.processor.table.partitions))})
    status, _, body = await get(server_a, "/customers/cust-42", AUTH)
    assert status == 502 and body["owner"] == gone and "did not answer" in body["error"]
