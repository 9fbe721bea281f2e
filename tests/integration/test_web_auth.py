"""The worker process against the real broker: /customers behind the bearer token, Faust's pages off."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from worker_kit import Deployment, event

from forethought.ops.process import running_worker

TOKEN = "integration-token-5f1c9e7a2b"


@pytest.fixture
async def deployment(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Deployment:
    return await Deployment.create(kafka_bootstrap, topic_prefix, tmp_path)


def fetch(url: str, token: str | None = None) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            status, headers, body = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        status, headers, body = exc.code, dict(exc.headers), exc.read()
    try:
        return status, headers, json.loads(body)
    except ValueError:
        return status, headers, body.decode()


async def test_customers_answers_only_the_right_token_and_faust_pages_are_gone(deployment: Deployment) -> None:
    now, log = time.time(), deployment.workdir / "worker.log"
    profile = {"type": "profile", "customer_id": "web-1", "updated_at": "2026-11-22T00:00:00Z",
               "email": "web.one@example.org"}
    with running_worker(deployment.env(FORETHOUGHT_WEB_TOKEN=TOKEN), log, deployment.url):
        await deployment.produce("customers.profile", [(b"web-1", json.dumps(profile).encode())])
        await deployment.produce("events.clickstream", [event("web-1", i, "click", now - 10 + i) for i in range(3)])
        url = f"{deployment.url}/customers/web-1"
        deadline, state = time.monotonic() + 60, None
        while time.monotonic() < deadline:
            status, _, state = fetch(url, TOKEN)
            if status == 200 and state["events"] == 3 and state["profile"]["p"]:
                break
            time.sleep(0.3)
        assert status == 200 and state["events"] == 3
        assert state["profile"]["p"]["email"] == "web.one@example.org"
        for token in (None, "wrong-token-wrong-token"):
            status, headers, body = fetch(url, token)
            assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
            assert "example.org" not in json.dumps(body)
        for path in ("/router/", "/table/", "/table/customer_profile/"):
            assert fetch(f"{deployment.url}{path}", TOKEN)[0] == 404, path
        for path in ("/metrics", "/health"):
            status, _, body = fetch(f"{deployment.url}{path}")
            assert status == 200 and "web-1" not in str(body) and "example.org" not in str(body), path
    text = log.read_text()
    assert TOKEN not in text, "the token is never logged"
    assert "web_token_missing" not in text
