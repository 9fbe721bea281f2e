"""``/customers/{id}`` on any worker: a request for a customer whose partition another worker of the
group holds is forwarded to that worker, as Faust's ``app.table_route`` does (``app.router.route_req``).

Each worker advertises its web server's URL in the consumer group's metadata (Faust's ``canonical_url``,
set from ``FORETHOUGHT_WEB_ADVERTISED_URL``); after every rebalance Faust's assignor knows which URL
holds which partition of the customer-state table (``app.router.table_metadata``). The partition of a
customer is the one the worker itself places it in (murmur2 of the id, :func:`partition_of`), so the
owner found here is the worker that holds its state. A forwarded request carries :data:`ROUTED_HEADER`
and is never forwarded again (no loops while the group rebalances); the bearer token goes with it.

>>> same_worker("http://10.0.0.7:6066/", "http://10.0.0.7:6066"), same_worker("http://a:1", "http://a:2")
(True, False)
>>> owner_of({"http://a:6066": {"t": [0, 2]}, "http://b:6066": {"t": [1]}}, "t", 1)
'http://b:6066'
>>> owner_of({"http://a:6066": {"t": [0]}}, "t", 3) is None
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import aiohttp

ROUTED_HEADER = "X-Forethought-Routed-From"
FORWARD_TIMEOUT_SECONDS = 5.0


def owner_of(metadata: Mapping[str, Mapping[str, Sequence[int]]], topic: str, partition: int) -> str | None:
    """The URL that holds ``partition`` of ``topic`` in Faust's host-to-partitions map, None when none does."""
    for url, topics in metadata.items():
        if partition in topics.get(topic, ()):
            return url
    return None


def same_worker(a: str, b: str) -> bool:
    """Whether two URLs name the same web server (scheme, host and port)."""
    left, right = urlsplit(a), urlsplit(b)
    return (left.scheme, left.hostname, _port(left)) == (right.scheme, right.hostname, _port(right))


def _port(url: Any) -> int | None:
    return url.port or {"http": 80, "https": 443}.get(url.scheme)


def table_owner(app: Any, table: Any, partition: int) -> str | None:
    """The advertised URL of the worker holding ``partition`` of ``table`` as of the last rebalance."""
    try:
        metadata = app.router.table_metadata(table.name)
        topic = table.changelog_topic.get_topic_name()
    except (KeyError, AttributeError):  # no assignment yet
        return None
    return owner_of(metadata, topic, partition)


async def forward(app: Any, web: Any, request: Any, owner: str, me: str) -> Any:
    """GET the same path and query from ``owner``; its answer as it is, or a 502 saying who did not answer."""
    target = owner.rstrip("/") + str(request.rel_url)  # the same path and query, encoded as received
    headers = {ROUTED_HEADER: me, "Accept": "application/json"}
    if "Authorization" in request.headers:
        headers["Authorization"] = request.headers["Authorization"]
    try:
        timeout = aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_SECONDS)
        async with app.http_client.get(target, headers=headers, timeout=timeout, allow_redirects=False) as response:
            body = await response.read()
            return web.bytes(body, content_type=response.content_type, status=response.status,
                             headers={ROUTED_HEADER: me})
    except (TimeoutError, aiohttp.ClientError) as error:
        return web.json({"error": f"the worker that holds this customer ({owner}) did not answer",
                         "error_type": type(error).__name__, "owner": owner}, status=502)
