"""``forethought kafka start | stop | status | tool``: a local broker in the background, and Kafka's own tools.

Lines for people go to stderr; ``start`` and ``status`` print only the ``export`` line on stdout, so
``eval "$(forethought kafka start)"`` points this shell at the broker.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from forethought.ops.startup import load_settings

__all__ = ["kafka_start", "kafka_status", "kafka_stop", "kafka_tool"]

_DIR_HELP = "The broker's folder: data, logs, state file (default: ~/.cache/forethought/local-broker)."


def _say(line: str) -> None:
    typer.echo(line, err=True)


def _folder(directory: Path | None) -> Path:
    from forethought.devkafka.background import default_dir

    return (directory or default_dir()).expanduser().resolve()


def _dir_flag(data_dir: Path) -> str:
    """`` --dir X`` when ``data_dir`` is not the default, for the commands the user is told to run next."""
    from forethought.devkafka.background import default_dir

    return "" if data_dir == default_dir().expanduser().resolve() else f" --dir {data_dir}"


def kafka_start(
    directory: Path = typer.Option(None, "--dir", help=_DIR_HELP, file_okay=False),
    port: int = typer.Option(9092, help="Port on 127.0.0.1 for clients (the default bootstrap's)."),
    heap: str = typer.Option("512m", help="The broker JVM's heap."),
    timeout: float = typer.Option(90.0, help="Seconds to wait for the broker to serve."),
) -> None:
    """Start a local broker in the background (127.0.0.1 only); print the bootstrap address to export."""
    from forethought.devkafka import background
    from forethought.devkafka.jars import BrokerError

    data_dir = _folder(directory)
    version = load_settings().kafka_version
    try:
        state, started = background.start(data_dir, port, version, heap, timeout)
    except BrokerError as exc:
        first, log = str(exc).splitlines()[0], data_dir / "broker.log"
        where = "" if isinstance(exc, background.PortInUse) or not log.is_file() else f" (log: {log})"
        _say(f"cannot start the local Kafka broker: {first}{where}")
        raise typer.Exit(1) from exc
    verb = "started" if started else "already running"
    _say(f"Kafka {state.version} broker {verb} at {state.bootstrap} (pid {state.pid}; data and logs in "
         f"{state.data_dir}); stop it with: forethought kafka stop{_dir_flag(data_dir)}")
    typer.echo(state.export_line)


def kafka_stop(
    directory: Path = typer.Option(None, "--dir", help=_DIR_HELP, file_okay=False),
    timeout: float = typer.Option(30.0, help="Seconds to wait after SIGTERM before SIGKILL."),
) -> None:
    """Stop the background broker (SIGTERM, then SIGKILL); its data stays for the next start."""
    from forethought.devkafka import background

    data_dir = _folder(directory)
    state, stale = background.stop(data_dir, timeout)
    if state is not None:
        _say(f"stopped the broker at {state.bootstrap} (pid {state.pid}); data kept in {data_dir}")
    else:
        _say(f"not running{' (removed a stale state file)' if stale else ''}: no broker in {data_dir}")


def kafka_status(directory: Path = typer.Option(None, "--dir", help=_DIR_HELP, file_okay=False)) -> None:
    """Exit 0 and print the address when the background broker runs, exit 1 when it does not."""
    from forethought.devkafka import background

    data_dir = _folder(directory)
    state, stale = background.running(data_dir)
    if state is None:
        _say(f"not running{' (removed a stale state file)' if stale else ''}: no broker in {data_dir}")
        raise typer.Exit(1)
    _say(f"Kafka {state.version} broker running at {state.bootstrap} (pid {state.pid}; log: {state.log})")
    typer.echo(state.export_line)


def _tools_help() -> str:
    from forethought.devkafka.tools import TOOLS

    lines = ["usage: forethought kafka tool NAME [ARGS...]   (--bootstrap-server is added from the settings)", ""]
    lines += [f"  {name:<20} {what}" for name, (what, _) in TOOLS.items()]
    lines += ["", "Each accepts the options of Kafka's bin/kafka-NAME.sh; `forethought kafka tool NAME --help`."]
    return "\n".join(lines)


def kafka_tool(
    name: str = typer.Argument(None, help="topics, console-consumer, consumer-groups, ... (none: the list)."),
    args: list[str] = typer.Argument(None, help="Passed to the tool as they are."),
) -> None:
    """Run one of Kafka's command line tools (topics, console-consumer, consumer-groups, ...) from the jars."""
    from forethought.devkafka.jars import BrokerError
    from forethought.devkafka.tools import tool_command

    if name in (None, "--help", "-h", "help"):
        typer.echo(_tools_help())
        raise typer.Exit(0 if name else 2)
    settings = load_settings()
    try:
        cmd = tool_command(name, list(args or []), settings.kafka_bootstrap, settings.kafka_version)
    except BrokerError as exc:
        _say(str(exc).splitlines()[0])
        raise typer.Exit(2) from exc
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(cmd[0], cmd)  # the tool takes over this process: its output, Ctrl-C and exit code are the user's


TOOL_CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}
