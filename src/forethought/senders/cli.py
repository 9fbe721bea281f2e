"""``forethought senders run --channel webhook|email|console [--channel ...]`` and ``senders preview``.

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
    from forethought.ops.playbooks import BUILTIN
    from forethought.ops.settings import validation_message
    from forethought.ops.startup import require_kafka_access
    from forethought.senders.service import SenderService
    from forethought.senders.settings import SenderAppSettings

    try:
        settings = SenderAppSettings()
        if web_port is not None:
            settings = settings.model_copy(update={"sender": settings.sender.model_copy(update={"web_port": web_port})})
    except ValidationError as exc:
        raise BadSetting(f"invalid configuration: {validation_message(exc)}") from None
    require_readable({"FORETHOUGHT_SENDER__TEMPLATES_DIR": settings.sender.templates_dir}, directory=True)
    if SenderChoice.email in channel and str(settings.playbooks_file) != BUILTIN:  # its templates are checked
        require_readable({"FORETHOUGHT_PLAYBOOKS_FILE": settings.playbooks_file})
    try:
        service = SenderService(settings, [c.value for c in channel])
    except ValueError as exc:
        raise BadSetting(f"invalid configuration: {exc}") from None
    require_kafka_access(settings)
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(_serve(service))


async def _serve(service: object) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await service.run(stop)  # type: ignore[attr-defined]


@senders_app.command("preview")
def preview(
    playbook: str = typer.Option(..., "--playbook", "-p", help="A playbook of the playbooks file."),
    channel: str = typer.Option("email", "--channel", "-c", help="email, in_app, sms or push."),
    name: str = typer.Option(None, "--name", help="The customer's first name, as their profile would give it."),
    html: bool = typer.Option(False, "--html", help="Print the e-mail's HTML part instead of its text."),
) -> None:
    """Print what a customer would receive from PLAYBOOK on CHANNEL, for a realistic sample trigger.

    Uses FORETHOUGHT_PLAYBOOKS_FILE and FORETHOUGHT_SENDER__TEMPLATES_DIR like the running sender.
    """
    from forethought.ops.failures import BadSetting
    from forethought.ops.playbooks import PlaybookFileError, load_rules
    from forethought.ops.settings import validation_message
    from forethought.senders.samples import sample_trigger
    from forethought.senders.settings import SenderAppSettings
    from forethought.senders.templates import MESSAGE_CHANNELS, Customer, Renderer

    try:
        settings = SenderAppSettings()
        rules = load_rules(settings.playbooks_file)
    except ValidationError as exc:
        raise BadSetting(f"invalid configuration: {validation_message(exc)}") from None
    except PlaybookFileError as exc:
        raise BadSetting(str(exc)) from None
    book = rules.by_name.get(playbook)
    if book is None:
        raise BadSetting(f"no playbook {playbook!r} in {settings.playbooks_file}; one of: "
                         f"{', '.join(sorted(rules.by_name))}")
    if channel not in ("email", *MESSAGE_CHANNELS):
        raise BadSetting(f"channel {channel!r} has no customer wording (email, {', '.join(MESSAGE_CHANNELS)} have)")
    if channel not in book.channels:
        raise BadSetting(f"playbook {playbook} does not use {channel}: its channels are {', '.join(book.channels)}")
    renderer = Renderer(settings.sender.templates_dir, warn_fallback=False)
    trigger = sample_trigger(book.name, sorted(book.signals), channel, [key for key, _ in book.context])
    customer = Customer(trigger.customer_id, "ana@customers.example" if channel == "email" else None, name)
    if channel != "email":
        message = renderer.render_message(trigger, customer)
        typer.echo(f"[{message.template} template]\n{message.text}")
        folder = message.template
    else:
        mail = renderer.render(trigger, customer)
        typer.echo(f"[{mail.template} template]\nSubject: {mail.subject}\n\n{mail.html if html else mail.text}")
        folder = mail.template
    if folder == "default":
        typer.echo(f"note: {playbook} has no {channel} templates of its own: the generic default wording is sent "
                   "(docs/email-templates.md)", err=True)
