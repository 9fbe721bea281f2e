"""Webhook and email delivery against real loopback servers (aiohttp, aiosmtpd): no Kafka, no mocks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiosmtpd.controller import Controller

from forethought.contracts.records import Trigger
from forethought.contracts.schemas import EXAMPLES
from forethought.ops.process import free_port
from forethought.senders.addresses import AddressBook
from forethought.senders.channels import EmailChannel, WebhookChannel
from forethought.senders.recipients import recipient_ref
from forethought.senders.retry import HostRateLimiter
from forethought.senders.settings import SenderSettings
from forethought.senders.signing import verify

TRIGGER = Trigger.model_validate(EXAMPLES["trigger"])
BODY = TRIGGER.model_dump_json().encode()
ADDRESSES = AddressBook.of({TRIGGER.customer_id: "ana@customers.example"})
FAST = {"backoff_base_seconds": 0.01, "backoff_max_seconds": 0.05, "max_attempts": 3}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Waits:
    """A sleep that records what it was asked and returns at once (rate limiter and backoff)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> str:
        app = web.Application()
        app.router.add_post("/hook", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        return f"http://127.0.0.1:{port}/hook"

    yield start
    for runner in runners:
        await runner.cleanup()


async def deliver(url: str, **settings: Any) -> Any:
    config = SenderSettings(webhook_url=url, webhook_secret="k", **{**FAST, **settings})
    async with aiohttp.ClientSession() as session:
        channel = WebhookChannel(session, config, HostRateLimiter(1000, 1000), sleep=Waits())
        return await channel.deliver(TRIGGER, BODY)


def scripted(*answers: int | str, seen: list[web.Request] | None = None) -> Handler:
    """Answers in order (an int is a status, "slow" sleeps past the timeout); 200 afterwards."""
    queue = list(answers)

    async def handler(request: web.Request) -> web.StreamResponse:
        await request.read()
        if seen is not None:
            seen.append(request)
        answer = queue.pop(0) if queue else 200
        if answer == "slow":
            await asyncio.sleep(1.0)
            return web.Response(status=200)
        if answer == 302:
            return web.Response(status=302, headers={"Location": "http://127.0.0.1:9/elsewhere"})
        return web.Response(status=int(answer), headers={"Retry-After": "0"} if answer == 429 else {})

    return handler


async def test_each_attempt_is_signed_afresh_and_carries_the_idempotency_key(serve: Any) -> None:
    seen: list[web.Request] = []
    result = await deliver(await serve(scripted(503, seen=seen)))
    assert (result.status, result.attempts) == ("delivered", 2)
    assert [r.headers["Idempotency-Key"] for r in seen] == [TRIGGER.trigger_id] * 2
    for request in seen:
        assert verify(b"k", request.headers["X-Forethought-Timestamp"], BODY, request.headers["X-Forethought-Signature"])


async def test_timeouts_are_retried(serve: Any) -> None:
    result = await deliver(await serve(scripted("slow")), webhook_timeout_seconds=0.2)
    assert (result.status, result.attempts) == ("delivered", 2)


async def test_429_is_retried_and_gives_up_after_max_attempts(serve: Any) -> None:
    result = await deliver(await serve(scripted(429, 429, 429, 429)))
    assert (result.status, result.attempts) == ("failed", 3)
    assert "HTTP 429" in result.detail and "after 3 attempts" in result.detail


async def test_an_unreachable_endpoint_fails_after_retrying() -> None:
    result = await deliver(f"http://127.0.0.1:{free_port()}/hook")
    assert (result.status, result.attempts) == ("failed", 3)
    assert "connection error" in result.detail


@pytest.mark.parametrize("status", [302, 401, 404, 422])
async def test_redirects_and_other_4xx_are_permanent(serve: Any, status: int) -> None:
    seen: list[web.Request] = []
    result = await deliver(await serve(scripted(status, seen=seen)))
    assert (result.status, result.attempts, len(seen)) == ("failed", 1, 1)
    assert f"HTTP {status}" in result.detail


async def test_the_rate_limiter_paces_requests_to_one_host(serve: Any) -> None:
    url, waits = await serve(scripted()), Waits()
    config = SenderSettings(webhook_url=url, webhook_secret="k", **FAST)
    limiter = HostRateLimiter(rate=2.0, burst=1, clock=lambda: 0.0, sleep=waits)  # frozen clock
    async with aiohttp.ClientSession() as session:
        channel = WebhookChannel(session, config, limiter)
        results = [await channel.deliver(TRIGGER, BODY) for _ in range(3)]
    assert [r.status for r in results] == ["delivered"] * 3
    assert waits.seconds == [pytest.approx(0.5), pytest.approx(1.0)]


class FlakySMTP:
    """Says 451 (try later) to the first DATA, then accepts; 550 for unknown.example recipients."""

    def __init__(self) -> None:
        self.data_calls, self.accepted = 0, 0

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address.endswith("@unknown.example"):
            return "550 5.1.1 unknown user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.data_calls += 1
        if self.data_calls == 1:
            return "451 4.3.0 try again later"
        self.accepted += 1
        return "250 OK"


async def test_smtp_4xx_is_retried_and_5xx_is_a_bounce() -> None:
    handler, port = FlakySMTP(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        limiter = HostRateLimiter(1000, 1000)
        ok = EmailChannel(SenderSettings(smtp_port=port, **FAST), limiter, ADDRESSES, sleep=Waits())
        result = await ok.deliver(TRIGGER, BODY)
        bounce = EmailChannel(SenderSettings(smtp_port=port, **FAST), limiter,
                              AddressBook.of({TRIGGER.customer_id: "ghost@unknown.example"}), sleep=Waits())
        bounced = await bounce.deliver(TRIGGER, BODY)
    finally:
        controller.stop()
    assert (result.status, result.attempts, handler.accepted) == ("delivered", 2, 1)
    assert recipient_ref("ana@customers.example") in result.detail and "silence_dropoff template" in result.detail
    assert "customers.example" not in result.detail
    assert (bounced.status, bounced.attempts) == ("bounced", 1) and "550" in bounced.detail


async def test_an_unreachable_smtp_server_fails_after_retrying() -> None:
    channel = EmailChannel(SenderSettings(smtp_port=free_port(), smtp_timeout_seconds=1, **FAST),
                           HostRateLimiter(1000, 1000), ADDRESSES, sleep=Waits())
    result = await channel.deliver(TRIGGER, BODY)
    assert (result.status, result.attempts) == ("failed", 3) and "unreachable" in result.detail
