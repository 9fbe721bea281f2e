"""A local Kafka broker for development, tests, the demo and the benchmark: Maven Central jars run
with the JDK, no Docker.

Not part of the runtime: the worker, the senders and the SDK never import it. ``forethought kafka
fetch|check`` and ``make kafka-jars`` use it, and so do the integration tests' fixtures::

    from forethought.devkafka import LocalBroker

    with LocalBroker() as bootstrap:   # "127.0.0.1:<port>"
        ...

:mod:`~forethought.devkafka.broker` runs the broker, :mod:`~forethought.devkafka.jars` fetches and
caches its classpath, :mod:`~forethought.devkafka.secure` adds TLS and SASL listeners for the tests.
"""

from __future__ import annotations

from forethought.devkafka.broker import *  # noqa: F403 - the broker's API, as its __all__ names it
from forethought.devkafka.broker import __all__ as _BROKER_API
from forethought.devkafka.secure import make_pki

__all__ = [*_BROKER_API, "make_pki"]
