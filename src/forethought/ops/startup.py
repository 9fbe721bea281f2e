"""How a command of the runtime starts: settings from the environment and the config file, and access to
Kafka, or a :class:`~forethought.ops.failures.Failure` with one line that names the problem and what to
change (never a traceback, never a secret)."""

from __future__ import annotations

import asyncio

from pydantic import ValidationError

from forethought.ops.failures import BadSetting, BrokerUnavailable
from forethought.ops.kafka_security import KafkaAccessError, KafkaSecurity, KafkaUnreachable, preflight
from forethought.ops.settings import Settings, validation_message

RETRY_PAUSE_SECONDS = (0.2, 1.0)  # first pause between attempts to reach Kafka, and the longest


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment and config file (``None`` overrides ignored), or :class:`BadSetting`
    with the invalid or unknown setting named."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
    except ValidationError as exc:
        raise BadSetting(f"invalid configuration: {validation_message(exc)}") from None


def require_kafka_access(settings: Settings) -> None:
    """Wait up to ``kafka_wait_seconds`` for a bootstrap server to accept us; else :class:`BrokerUnavailable`
    naming the address and the settings to change. A refusal (credentials, TLS) fails at once."""
    wait = settings.kafka_wait_seconds
    try:
        asyncio.run(wait_for_kafka(settings.kafka_bootstrap, settings, wait))
    except KafkaUnreachable as exc:
        raise BrokerUnavailable(
            f"{exc} (waited {wait:g} s): start the broker or set FORETHOUGHT_KAFKA_BOOTSTRAP to its address"
            " (FORETHOUGHT_KAFKA_WAIT_SECONDS sets the wait)") from None
    except KafkaAccessError as exc:
        raise BrokerUnavailable(str(exc)) from None


async def wait_for_kafka(bootstrap: str, settings: KafkaSecurity, wait: float) -> None:
    """:func:`preflight` again and again until a server answers or ``wait`` seconds have passed (then the
    last :class:`KafkaUnreachable` is raised); one attempt when ``wait`` is 0."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    pause, longest = RETRY_PAUSE_SECONDS
    while True:
        try:
            await preflight(bootstrap, settings, timeout=max(deadline - loop.time(), 0.5))
            return
        except KafkaUnreachable:
            if loop.time() + pause >= deadline:
                raise
        await asyncio.sleep(pause)
        pause = min(pause * 2, longest)
