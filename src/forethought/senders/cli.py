"""``forethought senders run --channel webhook|email|console [--channel ...]``.

Heavy imports (aiokafka, aiohttp, jinja2) happen inside the command, so ``forethought --help`` stays fast.
"""

from __future__ import annotations

import asyncio
import signal
from enum import StrEnum

import typer
from pydantic import ValidationError

senders_app = typer.Typer(help="Reference channel senders: webhook, email, console.", no_args_is_help=True)


class SenderChoice(StrEnum):
    webhook = "webhook"
    email = "email"
    console = "console"


@senders_app.command("run")
def run(
    channel: list[SenderChoice] = typer.Option(..., "--channel", "-c", help="A sender to run; repeat for several."),
    web_port: int = typer.Option(None, help="Overrides FORETHOUGHT_SENDER__WEB_PORT (/metrics, /health, /ready)."),
) -> None:
    """Consume engagement.triggers, deliver the channels served, publish outcomes, until SIGTERM/SIGINT."""
    from forethought.ops.failures import BadSetting, require_readable
    from forethought.ops.logs import configure_logging
    from forethought.ops.settings import validation_message
    from forethought.ops.startup import require_kafka_access
    from forethought.senders.service import SenderService
    from forethought.senders.settings import SenderAppSettings

    try:
        settings = SenderAppSettings()
        if web_port is not None:
            settings = settings.model_copy(update={"sender": settings.sender.model_copy(update={"web_port": web_port})})
        service = SenderService(settings, [c.value for c in channel])
    except ValidationError as exc:
        raise BadSetting(f"invalid configuration: {validation_message(exc)}") from None
    except ValueError as exc:
        raise BadSetting(f"invalid configuration: {exc}") from None
    require_readable({"FORETHOUGHT_SENDER__TEMPLATES_DIR": settings.sender.templates_dir}, directory=True)
    require_kafka_access(settings)
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(_serve(service))


async def _serve(service: object) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await service.run(stop)  # type: ignore[attr-defined]
