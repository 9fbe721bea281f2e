"""How the CLI ends when something is wrong: one line on stderr, a distinct exit code (docs/cli-errors.md).

:class:`FailureGroup` is the root command's class. It runs the command and turns what escapes into
``error: <what to fix>``: a :class:`~forethought.ops.failures.Failure` (setting, file, broker), a
command-line mistake (click's usage errors, exit 2), a Kafka client error in mid-command (exit 5), and,
as a last resort, a bug: exit 70 with the exception in one line, the traceback with ``--debug`` or
``FORETHOUGHT_DEBUG=1``. :func:`root_options` adds ``--version``, ``--debug`` and ``--config``.
"""

from __future__ import annotations

import os
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from forethought.ops.failures import (
    DEBUG_VARIABLE,
    INTERNAL_ERROR,
    BrokerUnavailable,
    Failure,
    debug_enabled,
    require_readable,
)
from forethought.ops.settings_sources import CONFIG_FILE_VARIABLE

# The click typer runs on (its own copy since typer 0.25, click itself before): its exception classes.
clicks: Any = sys.modules[typer.BadParameter.__module__]


def say(message: str) -> None:
    """``error: <message>`` as one line on stderr (newlines in the message folded)."""
    line = " ".join(message.split())
    typer.echo(f"{typer.style('error', fg='red', bold=True)}: {line}", err=True)


def exit_code_of(exc: BaseException) -> tuple[int, str] | None:
    """The exit code and line for an exception a user can fix; None for a bug."""
    if isinstance(exc, Failure):
        return exc.exit_code, str(exc)
    if isinstance(exc, clicks.ClickException):
        hint = f" (see: {exc.ctx.command_path} --help)" if isinstance(exc, clicks.UsageError) and exc.ctx else ""
        return int(exc.exit_code), str(exc.format_message()) + hint
    if type(exc).__module__.split(".")[0] in ("aiokafka", "kafka"):  # the broker went away mid-command
        return BrokerUnavailable.exit_code, (f"Kafka failed during the command: {type(exc).__name__}: {exc} (is the"
                                             " broker at FORETHOUGHT_KAFKA_BOOTSTRAP still up?)")
    return None


class FailureGroup(TyperGroup):
    """The root command: failures end in one line and an exit code, never a traceback (unless asked)."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        """Click's ``main``; in standalone mode (the console script, CliRunner) failures end here."""
        if not kwargs.get("standalone_mode", True) or len(args) > 3:
            return super().main(*args, **kwargs)  # the caller handles what escapes
        kwargs["standalone_mode"] = False
        try:
            outcome = super().main(*args, **kwargs)
        except typer.Abort:
            say("aborted")
            sys.exit(1)
        except clicks.UsageError as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # the help was printed: nothing else to say
                sys.exit(exc.exit_code)
            fail(exc)
        except Exception as exc:  # the one place where every failure ends
            fail(exc)
        sys.exit(outcome if isinstance(outcome, int) else 0)


def fail(exc: Exception) -> None:
    """Say what to fix and exit with its code; a bug re-raised when tracebacks are wanted."""
    known = exit_code_of(exc)
    if known is None and debug_enabled():
        raise exc
    code, line = known or (INTERNAL_ERROR, f"unexpected {type(exc).__name__}: {exc} (a bug: run again"
                                           f" with --debug or {DEBUG_VARIABLE}=1 for the traceback)")
    say(line)
    sys.exit(code)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"forethought {metadata.version('forethought')}")
        raise typer.Exit(0)


def root_options(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug", help=f"Tracebacks for unexpected errors (or {DEBUG_VARIABLE}=1)."),
    config: Path = typer.Option(None, "--config", metavar="FILE",
                                help=f"Settings from a TOML file; environment variables win ({CONFIG_FILE_VARIABLE})."),
) -> None:
    """Forethought: real-time behaviour scoring for proactive engagement."""
    if debug:
        os.environ[DEBUG_VARIABLE] = "1"
    if config is not None:
        require_readable({"--config": config})
        os.environ[CONFIG_FILE_VARIABLE] = str(config)  # child processes (the demo's worker) read it too
