"""Web views of the worker: /metrics, /health, /ready and /customers/{customer_id}."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST

from forethought.core.engine import explain

if TYPE_CHECKING:
    from forethought.stream.worker import Worker


def register_views(worker: Worker) -> None:
    """Attach the views to the worker's Faust app."""
    app = worker.app

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        return web.bytes(worker.metrics.exposition(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        if worker.failure is not None:  # the behaviour agent died: restart this process
            return web.json({"status": "failed", "error": worker.failure}, status=503)
        return web.json({"status": "ok"})

    @app.page("/ready")
    async def ready(web: Any, request: Any) -> Any:
        status = readiness(worker)
        return web.json(status, status=200 if status["ready"] else 503)

    @app.page("/customers/{customer_id}")
    async def customer(web: Any, request: Any, customer_id: str) -> Any:
        raw = worker.processor.table.get(customer_id.encode())
        if raw is None:
            return web.json({"error": f"no state for customer {customer_id!r} on this worker"}, status=404)
        state = worker.processor.load(raw)
        partition = worker.processor.partition_for(customer_id.encode())
        now = worker.processor.stream_time(partition, time.time()) or time.time()
        profile = worker.processor.profile(customer_id.encode()).to_dict()
        models = worker.processor.models.get(partition)
        view = explain(state, now, worker.settings.engine, models)
        return web.json({**view, "state_bytes": len(raw), "profile": profile})


def readiness(worker: Worker) -> dict[str, Any]:
    """Ready when partitions are assigned and neither rebalancing nor recovering."""
    app = worker.app
    assigned = len(app.assignor.assigned_actives()) if app.assignor else 0
    ready = assigned > 0 and not app.rebalancing and not app.in_recovery and worker.failure is None
    return {"ready": ready, "assigned_partitions": assigned, "rebalancing": bool(app.rebalancing),
            "recovering": bool(app.in_recovery), "failure": worker.failure}
