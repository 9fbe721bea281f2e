"""The senders' Prometheus metrics (own registry) and their small web server: /metrics, /health, /ready.

The ``channel`` label is the sender (``webhook``, ``email``, ``console``), not the trigger's channel.

>>> m = SenderMetrics()
>>> m.sends.labels(channel="webhook", status="delivered").inc()
>>> b'forethought_sender_sends_total{channel="webhook",status="delivered"} 1.0' in m.exposition()
True
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from forethought.ops.metrics import LATENCY_BUCKETS, register_runtime

STATUSES = ("delivered", "failed", "bounced", "expired")
DELIVERY_BUCKETS = (*LATENCY_BUCKETS, 120, 300, 900, 3600)


class SenderMetrics:
    """Every metric a sender exports. Names are the contract with alerts and dashboards."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        register_runtime(r)
        self.sends = Counter(
            "forethought_sender_sends", "Triggers that reached a terminal outcome, by sender and status.",
            ["channel", "status"], registry=r,
        )
        self.delivery = Histogram(
            "forethought_sender_delivery_seconds",
            "From the trigger record's Kafka timestamp to its delivery (delivered outcomes only).",
            ["channel"], buckets=DELIVERY_BUCKETS, registry=r,
        )
        self.retries = Counter(
            "forethought_sender_retries", "Delivery attempts after the first.", ["channel"], registry=r
        )
        self.deadletters = Counter(
            "forethought_sender_deadletters", "Triggers written to senders.deadletter.", ["channel"], registry=r
        )
        self.duplicates = Counter(
            "forethought_sender_duplicates", "Triggers skipped because the ledger had their outcome already.",
            ["channel"], registry=r,
        )
        self.invalid = Counter(
            "forethought_sender_invalid_triggers", "Trigger records that were not valid triggers.", registry=r
        )
        self.ledger_entries = Gauge("forethought_sender_ledger_entries", "Entries held in the in-memory ledger.",
                                    registry=r)

    def prime(self, channels: Iterable[str]) -> None:
        """Export zeros for every sender and status, so rates and alerts work before the first event."""
        for channel in channels:
            for status in STATUSES:
                self.sends.labels(channel=channel, status=status)
            for metric in (self.retries, self.deadletters, self.duplicates):
                metric.labels(channel=channel)

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)


def web_app(metrics: SenderMetrics, health: Callable[[], dict[str, Any]]) -> web.Application:
    """``/metrics`` (Prometheus text), ``/health`` (always 200 while serving), ``/ready`` (503 until consuming)."""

    async def metrics_view(request: web.Request) -> web.Response:
        return web.Response(body=metrics.exposition(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    async def health_view(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", **health()})

    async def ready_view(request: web.Request) -> web.Response:
        body = health()
        return web.json_response(body, status=200 if body.get("ready") else 503)

    app = web.Application()
    app.router.add_get("/metrics", metrics_view)
    app.router.add_get("/health", health_view)
    app.router.add_get("/ready", ready_view)
    return app


async def serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Start ``app`` on ``host:port``; stop it with ``await runner.cleanup()``."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
