"""How a command of the runtime starts: settings from the environment and access to Kafka, or exit 2
with one line that names the problem (never a traceback, never a secret)."""

from __future__ import annotations

import asyncio

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from forethought.ops.kafka_security import KafkaAccessError, KafkaUnreachable, preflight
from forethought.ops.settings import Settings, validation_message

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False, soft_wrap=True)


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment (``None`` overrides ignored), or exit 2 with the invalid field named."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
    except ValidationError as exc:
        console.print(f"[red]Invalid configuration[/]: {validation_message(exc)}", soft_wrap=True)
        raise typer.Exit(2) from exc


def require_kafka_access(settings: Settings, strict: bool = True) -> None:
    """Exit 2 with one line when the broker refuses our credentials or TLS (or, ``strict``, cannot be
    reached at all; a long-running service instead keeps retrying an unreachable broker)."""
    try:
        asyncio.run(preflight(settings.kafka_bootstrap, settings))
    except KafkaUnreachable as exc:
        if strict:
            errors.print(f"[red]error[/]: {escape(str(exc))}")
            raise typer.Exit(2) from None
    except KafkaAccessError as exc:
        errors.print(f"[red]error[/]: {escape(str(exc))}")
        raise typer.Exit(2) from None
