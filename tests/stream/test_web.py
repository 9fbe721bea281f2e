"""The worker's web server (Faust's real aiohttp app, served on a loopback port): who may see what."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from structlog.testing import capture_logs

from forethought.ops.settings import Settings
from forethought.stream.web import OPEN_PATHS
from forethought.stream.worker import Worker, build_worker

TOKEN = "tok-0123456789abcdef-secret"


def built(tmp_path: Path, **settings: object) -> Worker:
    worker = build_worker(Settings(topic_prefix="t.", data_dir=tmp_path, **settings))  # type: ignore[arg-type]
    worker.app.web.blueprints.apply(worker.app.web)  # what the web service does when it starts
    return worker


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Worker, TestServer]]:
    worker = built(tmp_path, web_token=TOKEN)
    server = TestServer(worker.app.web.web_app)
    await server.start_server()
    yield worker, server
    await server.close()


async def get(server: TestServer, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    async with aiohttp.ClientSession() as session, session.get(server.make_url(path), headers=headers) as response:
        return response.status, dict(response.headers), await response.text()


async def test_customers_needs_the_bearer_token(served: tuple[Worker, TestServer]) -> None:
    _, server = served
    for headers in (None, {"Authorization": "Bearer wrong-token-wrong-token"}, {"Authorization": TOKEN},
                    {"Authorization": f"Basic {TOKEN}"}, {"Authorization": f"Bearer {TOKEN}x"}):
        status, answer_headers, body = await get(server, "/customers/cust-42", headers)
        assert status == 401, headers
        assert answer_headers["WWW-Authenticate"].startswith("Bearer")
        assert TOKEN not in body
    status, _, body = await get(server, "/customers/cust-42", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 404 and "no state for customer" in json.loads(body)["error"]  # past the guard
    async with aiohttp.ClientSession() as session:
        async with session.head(server.make_url("/customers/cust-42")) as response:
            assert response.status == 401
        async with session.post(server.make_url("/customers/cust-42")) as response:
            assert response.status in (401, 405)


async def test_every_route_but_the_open_ones_refuses_without_the_token(served: tuple[Worker, TestServer]) -> None:
    """A view added later that forgets the guard fails here: only OPEN_PATHS may answer without a token."""
    worker, server = served
    paths = {route.resource.canonical for route in worker.app.web.web_app.router.routes()}
    assert OPEN_PATHS <= paths
    for path in sorted(paths - OPEN_PATHS):
        status, _, _ = await get(server, path.replace("{customer_id}", "cust-42"))
        assert status == 401, path


async def test_faust_router_and_table_pages_are_off_and_metrics_health_stay_open(
    served: tuple[Worker, TestServer],
) -> None:
    _, server = served
    for path in ("/router/", "/table/", "/table/customer_profile/", "/graph/", "/stats/", "/performance/"):
        assert (await get(server, path))[0] == 404, path
    for path in ("/metrics", "/health"):
        status, _, body = await get(server, path)
        assert status == 200 and "cust-" not in body, path


async def test_faust_environment_variables_cannot_switch_the_table_pages_back_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APP_WEB_TABLES_ENABLED", "true")
    monkeypatch.setenv("APP_WEB_ROUTER_ENABLED", "true")
    worker = built(tmp_path)
    paths = {route.resource.canonical for route in worker.app.web.web_app.router.routes()}
    assert not [p for p in paths if p.startswith(("/table", "/router"))]


async def test_open_views_name_a_failure_by_its_type_only(served: tuple[Worker, TestServer]) -> None:
    worker, server = served
    worker.failure = "ValueError: profile of cust-42 <someone@example.org> is bad"
    for path in ("/health", "/ready"):
        status, _, body = await get(server, path)
        assert status == 503 and "ValueError" in body and "someone@example.org" not in body, path


def test_no_token_is_allowed_but_said_loudly_at_start_up(tmp_path: Path) -> None:
    with capture_logs() as logs:
        built(tmp_path)
    warnings = [e for e in logs if e["log_level"] == "warning" and e["event"] == "web_token_missing"]
    assert len(warnings) == 1 and warnings[0]["setting"] == "FORETHOUGHT_WEB_TOKEN"
    with capture_logs() as logs:
        built(tmp_path, web_token=TOKEN)
    assert not [e for e in logs if e["event"] == "web_token_missing"]
    assert TOKEN not in repr(logs)


async def test_without_a_token_customers_is_served_as_before(tmp_path: Path) -> None:
    worker = built(tmp_path)
    server = TestServer(worker.app.web.web_app)
    await server.start_server()
    try:
        assert (await get(server, "/customers/cust-42"))[0] == 404  # no state, but no 401 either
    finally:
        await server.close()


def test_a_short_token_is_refused_at_start_up_without_echoing_it() -> None:
    with pytest.raises(ValueError, match="FORETHOUGHT_WEB_TOKEN must be at least 16") as caught:
        Settings(web_token="short-secret")
    assert "short-secret" not in str(caught.value)
