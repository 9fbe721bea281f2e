"""Web views of the worker: /metrics, /health, /ready and /customers/{customer_id}.

``/customers/{id}`` answers on any worker of the group: a customer another worker holds is asked of
that worker (:mod:`forethought.stream.routing`, as Faust's ``table_route``). It shows the customer's
scores, facts, recent decisions with their reasons (docs/why-not.md) and profile, every point in
time as ISO-8601 UTC text. It shows customer data (an e-mail address among them): with
``FORETHOUGHT_WEB_TOKEN`` set it answers only ``Authorization: Bearer <token>``; the open views
(:data:`OPEN_PATHS`) show nothing about any customer. Faust's own ``/router`` and ``/table`` pages
are switched off where the app is created (:func:`forethought.stream.worker.web_settings`).

>>> from pydantic import SecretStr
>>> token = SecretStr("s3cret-token-0123456789")
>>> authorized("Bearer s3cret-token-0123456789", token), authorized("Bearer wrong", token)
(True, False)
>>> authorized(None, token), authorized("s3cret-token-0123456789", token), authorized(None, None)
(False, False, True)
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import SecretStr

from forethought.core.summary import summary_view
from forethought.core.why import customer_view as why_view
from forethought.core.why import iso, with_iso_times
from forethought.ops.logs import get_logger
from forethought.stream.routing import ROUTED_HEADER, forward, same_worker, table_owner

if TYPE_CHECKING:
    import faust

    from forethought.ops.metrics import Metrics
    from forethought.ops.settings import Settings
    from forethought.stream.processor import BatchProcessor

log = get_logger("web")
TOKEN_SETTING = "FORETHOUGHT_WEB_TOKEN"
OPEN_PATHS = frozenset({"/", "/metrics", "/health", "/ready"})
"""Views served without a token: counts, health and readiness, never customer data."""
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="forethought"'}


class Served(Protocol):
    """What the views read of the running worker (:class:`forethought.stream.worker.Worker`)."""

    settings: Settings
    app: faust.App
    processor: BatchProcessor
    metrics: Metrics
    failure: str | None

    @property
    def index_ready(self) -> bool: ...

    def owner(self) -> Callable[[bytes], bool]: ...


def authorized(header: str | None, token: SecretStr | None) -> bool:
    """Whether an ``Authorization`` header carries ``token`` (always true when no token is configured).

    The comparison is constant-time; the scheme is case-insensitive as HTTP says.
    """
    if token is None:
        return True
    scheme, _, presented = (header or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not presented:
        return False
    return hmac.compare_digest(presented.strip().encode(), token.get_secret_value().encode())


def register_views(worker: Served) -> None:
    """Attach the views to the worker's Faust app; warn when customer data would be served to anyone."""
    app = worker.app
    token = worker.settings.web_token
    if token is None:
        log.warning("web_token_missing", setting=TOKEN_SETTING,
                    detail=f"/customers serves scores and profiles to anyone who can reach "
                           f"{worker.settings.web_url}; set {TOKEN_SETTING} to require a bearer token")

    def denied(web: Any, request: Any) -> Any | None:
        if authorized(request.headers.get("Authorization"), token):
            return None
        return web.json({"error": "a bearer token is required"}, status=401, headers=dict(CHALLENGE))

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        return web.bytes(worker.metrics.exposition(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        if worker.failure is not None:  # the behaviour agent died: restart this process
            return web.json({"status": "failed", "error": _kind(worker.failure)}, status=503)
        return web.json({"status": "ok"})

    @app.page("/ready")
    async def ready(web: Any, request: Any) -> Any:
        status = readiness(worker)
        open_status = {**status, "failure": _kind(status["failure"])}  # the message may quote a record
        return web.json(open_status, status=200 if status["ready"] else 503)

    @app.page("/customers/{customer_id}")
    async def customer(web: Any, request: Any, customer_id: str) -> Any:
        if (refusal := denied(web, request)) is not None:
            return refusal
        key, me = customer_id.encode(), str(app.conf.canonical_url)
        if ROUTED_HEADER not in request.headers and not owns(worker, key):  # routed once at most
            owner = table_owner(app, worker.processor.table, worker.processor.partition_for(key))
            if owner is not None and not same_worker(owner, me):
                return await forward(app, web, request, owner, me)
        try:
            view = customer_view(worker, key)
            if view is None:
                return web.json({"error": f"no state for customer {customer_id!r}", "served_by": me,
                                 "partition": worker.processor.partition_for(key)}, status=404)
        except Exception as error:  # noqa: BLE001 - a stored state that cannot be read is this customer's problem
            log.error("customer_view_failed", customer_id=customer_id, error_type=type(error).__name__)
            return web.json({"error": "the stored state of this customer cannot be read",
                             "error_type": type(error).__name__}, status=500)
        return web.json(view)


def owns(worker: Served, key: bytes) -> bool:
    """Whether this worker holds the active partition of ``key`` (False before any assignment)."""
    try:
        return worker.owner()(key)
    except (AttributeError, KeyError):  # no assignor yet
        return False


def customer_view(worker: Served, key: bytes) -> dict[str, Any] | None:
    """What ``/customers/{id}`` shows: :func:`forethought.core.why.customer_view` of the live state
    (scores, facts, recent decisions), its stored size, the profile and which worker answered, every
    point in time as ISO-8601 text; None when this worker holds no state for ``key``. A customer
    evicted after idling is shown from their summary (scored as the summary revives them), marked
    ``summarised``, with the idle reason.

    Raises when the stored state or profile cannot be loaded (e.g. forged in its changelog).
    """
    state, summary = worker.processor.state(key), None
    if state is None:
        if (summary := worker.processor.summary(key)) is None:
            return None
        state = summary.revive(worker.settings.engine)
    raw = worker.processor.dump(summary or state)
    partition = worker.processor.partition_for(key)
    now = worker.processor.stream_time(partition, time.time()) or time.time()
    profile = worker.processor.profile(key).to_dict()
    profile["u"] = {channel: iso(at) for channel, at in profile["u"].items()}  # unsubscribed, since
    models = worker.processor.models.get(partition)
    view = why_view(state, now, worker.settings.engine, models)
    if summary is not None:
        view |= summary_view(summary, now, worker.settings.engine)
    return {**with_iso_times(view), "state_bytes": len(raw), "profile": profile, "partition": partition,
            "served_by": str(worker.app.conf.canonical_url)}


def readiness(worker: Served) -> dict[str, Any]:
    """Ready when partitions are assigned, neither rebalancing nor recovering, the deadline index
    rebuilt for the held partitions (``stream.index_rebuild``: every held customer's due looks can
    fire), and the broker answers (``stream.recovery``: false from the second unanswered metadata
    request in a row).

    The open ``/ready`` and ``/health`` views name a failure by its exception type only: an
    exception's message may quote a record (the full message is in the worker's log).
    """
    app = worker.app
    assignor = getattr(app, "assignor", None)  # none before the app starts, whatever Faust's type says
    assigned = len(assignor.assigned_actives()) if assignor is not None else 0
    recovery = getattr(worker, "recovery", None)
    reachable = recovery is None or recovery.reachable
    indexed = worker.index_ready
    ready = (assigned > 0 and not app.rebalancing and not app.in_recovery and indexed and worker.failure is None
             and reachable)
    return {"ready": ready, "assigned_partitions": assigned, "rebalancing": bool(app.rebalancing),
            "recovering": bool(app.in_recovery), "index_rebuilt": indexed, "broker_reachable": reachable,
            "failure": worker.failure}


def _kind(failure: str | None) -> str | None:
    """``"OverflowError: math range error"`` → ``"OverflowError"``."""
    return None if failure is None else failure.split(":", 1)[0]
