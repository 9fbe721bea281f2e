"""``forethought explain CUSTOMER --url``: against the worker's own web app (served on a loopback port)
after its processor handled a customer's records: the decisions, and one-line failures for a token the
worker refuses and a customer it does not know. The real broker, with two workers: tests/integration/
test_why_not.py."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from typer.testing import CliRunner

from forethought.cli import app
from forethought.ops.process import free_port
from forethought.ops.settings import Settings
from forethought.stream.processor import RawRecord
from forethought.stream.worker import Worker, build_worker

TOKEN = "tok-0123456789abcdef-secret"
T0 = datetime(2026, 11, 2, 3, 0, tzinfo=timezone.utc).timestamp()
PLAYBOOKS = """policy:
  arbitration_window: 1h
playbooks:
  - name: burst
    on: [error_burst]
    channels: [in_app]
    priority: 70
    cooldown: 1h
"""


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, tz=timezone.utc).isoformat().replace("+00:00", "Z")


@pytest.fixture
async def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Worker, str]]:
    for name in list(os.environ):
        if name.upper().startswith("FORETHOUGHT_"):
            monkeypatch.delenv(name)
    books = tmp_path / "playbooks.yaml"
    books.write_text(PLAYBOOKS)
    port = free_port()
    worker = build_worker(Settings(topic_prefix="t.", data_dir=tmp_path, web_port=port, web_token=TOKEN,
                                   playbooks_file=books,
                                   engine={"bucket_seconds": 10, "burst_min_errors": 3, "burst_quiet_buckets": 1}))
    worker.app.web.blueprints.apply(worker.app.web)
    server = TestServer(worker.app.web.web_app, port=port)
    await server.start_server()
    yield worker, f"http://127.0.0.1:{port}"
    await server.close()


def bursts(worker: Worker, customer: str) -> None:
    """Three error bursts handled by the worker's processor: sent, suppressed by the cooldown, sent."""
    partition = worker.processor.partition_for(customer.encode())
    records = []
    for n, start in enumerate((T0, T0 + 1800, T0 + 4000)):
        for i in range(3):
            body = {"event_id": f"e{n}-{i}", "customer_id": customer, "type": "error", "code": "E1",
                    "occurred_at": iso(start + i)}
            records.append(RawRecord("t.events.errors", partition, len(records), customer.encode(),
                                     json.dumps(body).encode(), start + i))
    worker.processor.handle(records, T0 + 5000)


async def explain(*args: str) -> tuple[int, str, str]:
    """The CLI in a thread: its blocking HTTP call must not stop this loop, which serves the worker."""
    result = await asyncio.to_thread(CliRunner().invoke, app, ["explain", *args], prog_name="forethought")
    return result.exit_code, result.stdout, result.stderr


async def test_explain_asks_the_worker_and_prints_its_decisions(served: tuple[Worker, str]) -> None:
    worker, url = served
    bursts(worker, "c1")
    code, out, err = await explain("c1", "--url", url, "--token", TOKEN)
    assert code == 0, err
    decisions = [line.split()[:3] for line in out.splitlines() if line.startswith("  2026")]
    assert decisions == [[iso(T0 + 2), "burst", "sent"], [iso(T0 + 1802), "burst", "suppressed"],
                         [iso(T0 + 4002), "burst", "sent"]]
    assert f"({url}, partition {worker.processor.partition_for(b'c1')})" in out
    code, out, _ = await explain("c1", "--url", url, "--token", TOKEN, "--at", iso(T0 + 3600))
    assert [line.split()[2] for line in out.splitlines() if line.startswith("  2026")] == ["sent", "suppressed"]


async def test_a_refused_token_and_an_unknown_customer_are_one_line_each(served: tuple[Worker, str]) -> None:
    _, url = served
    code, _, err = await explain("c1", "--url", url)
    assert code == 6 and err.strip().startswith("error: ") and "wants a bearer token" in err and TOKEN not in err
    code, _, err = await explain("c1", "--url", url, "--token", "wrong-token-wrong-token")
    assert code == 6 and "the token was refused" in err
    code, _, err = await explain("nobody", "--url", url, "--token", TOKEN)
    assert code == 1 and len(err.strip().splitlines()) == 1 and "no state for customer 'nobody'" in err
