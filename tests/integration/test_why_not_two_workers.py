""""Why (not)?" on the real broker with TWO worker processes in one consumer group (different web ports,
the partitions split between them): every customer's decisions answer on either worker, the one that
does not hold the customer forwarding to the one that does (as Faust's table_route), and
``forethought explain`` prints them from either (docs/why-not.md)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from worker_kit import Deployment, event

from forethought.contracts.partitioning import partition_of
from forethought.ops.process import free_port, running_worker, wait_ready
from forethought.ops.topics import load_catalogue
from forethought.stream.routing import ROUTED_HEADER

PLAYBOOKS = Path(__file__).parent / "playbooks" / "caps.yaml"  # capped_burst: at most 2 triggers a day
SPACING = 14 * 60  # bursts 14 minutes apart: each a new episode (test_policy.py's caps test says why)


@pytest.fixture
async def deployment(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Deployment:
    return await Deployment.create(kafka_bootstrap, topic_prefix, tmp_path)


def fetch(url: str) -> tuple[int, dict[str, str], Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read() or b"{}")


def customers_on_every_partition(per_partition: int = 2) -> list[str]:
    partitions = load_catalogue().partitions
    found: dict[int, list[str]] = {p: [] for p in range(partitions)}
    n = 0
    while any(len(ids) < per_partition for ids in found.values()):
        customer = f"why-{n}"
        ids = found[partition_of(customer.encode(), partitions)]
        if len(ids) < per_partition:
            ids.append(customer)
        n += 1
    return sorted(c for ids in found.values() for c in ids)


def three_bursts(customer: str, start: float) -> list[tuple[bytes, bytes]]:
    """Six critical errors in each of three minutes, 14 minutes apart: sent, sent, then the daily cap."""
    return [event(customer, b * 6 + i, "error", start + b * SPACING + i * 0.5, code="E500", severity="critical")
            for b in range(3) for i in range(6)]


async def decided(url: str, customer: str, count: int, timeout: float = 90) -> dict[str, Any]:
    deadline, body = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        status, _, body = fetch(f"{url}/customers/{customer}")
        if status == 200 and len(body.get("decisions", [])) >= count:
            return body
        await asyncio.sleep(0.5)
    raise AssertionError(f"{customer} never had {count} decisions on {url}: {body!r}")


async def test_any_worker_answers_for_every_customer_and_explain_prints_the_owners_decisions(
    deployment: Deployment,
) -> None:
    other = Deployment(deployment.bootstrap, deployment.prefix, deployment.workdir / "second", free_port())
    env = deployment.env(FORETHOUGHT_PLAYBOOKS_FILE=str(PLAYBOOKS))
    second_env = {**env, "FORETHOUGHT_WEB_PORT": str(other.web_port),
                  "FORETHOUGHT_DATA_DIR": str(other.workdir / "worker")}  # the same group (app id), its own port
    customers = customers_on_every_partition()
    start = (time.time() - 3 * 3600) // 60 * 60
    with running_worker(env, deployment.workdir / "worker-1.log", deployment.url) as first, \
            running_worker(second_env, other.workdir / "worker-2.log", other.url):
        wait_ready(deployment.url, first)  # again: the second worker's arrival rebalanced the group
        await deployment.produce("events.errors", [e for c in customers for e in three_bursts(c, start)])
        views = {c: await decided(other.url, c, 3) for c in customers}
        answers = {c: (fetch(f"{deployment.url}/customers/{c}"), fetch(f"{other.url}/customers/{c}"))
                   for c in customers}
        owned_by_first = next(c for c in customers if views[c]["served_by"] == deployment.url)
        explained = subprocess.run(
            [sys.executable, "-m", "forethought.cli", "explain", owned_by_first, "--url", other.url],
            capture_output=True, text=True, timeout=60,
            env={k: v for k, v in os.environ.items() if not k.startswith("FORETHOUGHT_")})
    owners = {c: view["served_by"] for c, view in views.items()}
    assert set(owners.values()) == {deployment.url, other.url}, "the two workers split the partitions"
    for c, ((status_1, headers_1, body_1), (status_2, headers_2, body_2)) in answers.items():
        assert status_1 == status_2 == 200, c
        assert body_1["served_by"] == body_2["served_by"] == owners[c], "answered by the owner, whoever was asked"
        assert body_1["decisions"] == body_2["decisions"], c
        asked = {deployment.url: headers_1, other.url: headers_2}
        for url, headers in asked.items():  # the worker that forwarded says so; the owner answered itself
            assert headers.get(ROUTED_HEADER) == (None if url == owners[c] else url), (c, url)
        assert [(d["playbook"], d["verdict"], d["reason"]) for d in body_1["decisions"]] == [
            ("capped_burst", "sent", None), ("capped_burst", "sent", None),
            ("capped_burst", "suppressed", "frequency_cap")], c
        assert body_1["decisions"][2]["at"].endswith("Z") and body_1["last_seen"].endswith("Z")
    assert explained.returncode == 0, explained.stderr
    lines = [line.split()[1:3] for line in explained.stdout.splitlines() if line.startswith("  20")]
    assert lines == [["capped_burst", "sent"], ["capped_burst", "sent"], ["capped_burst", "suppressed"]]
    assert f"({deployment.url}, partition " in explained.stdout and "(frequency_cap)" in explained.stdout
