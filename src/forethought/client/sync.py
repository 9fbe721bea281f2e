"""``SyncProducer``: the async producer for plain (non-async) apps, e.g. Django, Flask, scripts.

It runs an event loop in a background thread; ``send`` is safe to call from any thread and returns
a ``concurrent.futures.Future`` that resolves to a ``Delivery`` (or fails with ``DeliveryError``)::

    from forethought.client import SyncProducer, events

    with SyncProducer("localhost:9092") as producer:
        future = producer.send(events.feature_used("cust-42", feature="export"))
        print(future.result(timeout=10))   # Delivery(record_id=..., topic='events.clickstream', ...)
        producer.send(events.session_end("cust-42"), headers={"source": "web"})
        producer.flush(timeout=10)         # 0: nothing left in flight

It takes the arguments of ``ForethoughtProducer`` (all optional: ``ClientSettings`` fills the rest
from the environment) and ``send`` takes the same ``timestamp``, ``headers`` and ``traceparent``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterable, Mapping
from concurrent import futures
from types import TracebackType
from typing import Any, TypeVar

from pydantic import BaseModel

from forethought.client.headers import HeaderValue, Timestamp
from forethought.client.producer import Delivery, ForethoughtProducer, SendReport
from forethought.client.wire import Encoded

T = TypeVar("T")


class SyncProducer:
    """A thread-safe, blocking facade over ``ForethoughtProducer``; takes the same arguments."""

    def __init__(self, bootstrap: str | None = None, prefix: str | None = None, *, start_timeout: float = 60.0,
                 **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="forethought-producer", daemon=True)
        self._thread.start()
        self._guard = threading.Lock()
        self._inflight: set[futures.Future[Delivery]] = set()
        self._closed = False
        try:
            self._producer = self._call(self._open(bootstrap, prefix, options), start_timeout)
        except BaseException:
            self._stop_loop()
            raise

    async def _open(self, bootstrap: str | None, prefix: str | None, options: dict[str, Any]) -> ForethoughtProducer:
        producer = ForethoughtProducer(bootstrap, prefix, **options)  # built inside the loop, as aiokafka wants
        await producer.start()
        return producer

    def send(self, record: BaseModel, *, timestamp: Timestamp | None = None,
             headers: Mapping[str, HeaderValue] | None = None, traceparent: str | None = None,
             ) -> futures.Future[Delivery]:
        """Queue ``record``; the future resolves once the broker acknowledged it.

        Raises ``RecordTooLarge`` / ``UnroutableRecord`` / ``InvalidHeader`` in the calling thread, before
        anything is sent.
        """
        encoded = self._producer.router.encode(record, timestamp=timestamp, headers=headers, traceparent=traceparent)
        with self._guard:
            if self._closed:
                raise RuntimeError("the producer is closed")
            future = asyncio.run_coroutine_threadsafe(self._deliver(encoded), self._loop)
            self._inflight.add(future)
        future.add_done_callback(self._forget)
        return future

    def send_many(self, records: Iterable[BaseModel], timeout: float | None = None, *,
                  headers: Mapping[str, HeaderValue] | None = None, traceparent: str | None = None) -> SendReport:
        """Send all records and wait for every acknowledgement; see ``ForethoughtProducer.send_many``."""
        return self._call(self._producer.send_many(list(records), headers=headers, traceparent=traceparent), timeout)

    def flush(self, timeout: float | None = None) -> int:
        """Wait up to ``timeout`` seconds for records in flight; returns how many are still pending."""
        with self._guard:
            inflight = list(self._inflight)
        _, pending = futures.wait(inflight, timeout)
        return len(pending)

    def close(self, timeout: float | None = 30.0) -> None:
        """Flush, disconnect and stop the background thread. Safe to call twice."""
        with self._guard:
            if self._closed:
                return
            self._closed = True
        try:
            self.flush(timeout)
            self._call(self._producer.close(), timeout)
        finally:
            self._stop_loop()

    def __enter__(self) -> SyncProducer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    async def _deliver(self, encoded: Encoded) -> Delivery:
        return await self._producer.send_encoded(encoded)

    def _forget(self, future: futures.Future[Delivery]) -> None:
        with self._guard:
            self._inflight.discard(future)

    def _call(self, coroutine: Coroutine[Any, Any, T], timeout: float | None) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()
