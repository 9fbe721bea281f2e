"""Failures the user fixes: one line naming what to fix, a distinct exit code, no traceback.

Every command raises one of these for a problem outside the program (a setting, a file, the broker);
the CLI prints ``error: <message>`` on stderr and exits with the class's code (docs/cli-errors.md).
Anything else is a bug: one line too, exit 70, and the traceback with ``--debug`` or ``FORETHOUGHT_DEBUG=1``.

Output paths are checked before any work starts, and nothing is created by the check::

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     require_writable({"--report": Path(tmp) / "nodir" / "r.json", "--triggers-out": None})
    Traceback (most recent call last):
    ...
    forethought.ops.failures.OutputUnwritable: --report .../nodir/r.json: directory .../nodir does not exist
    >>> suggestion("silence_zz", ["silence_z", "burst_z"])
    ' (did you mean silence_z?)'
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

DEBUG_VARIABLE = "FORETHOUGHT_DEBUG"


class Failure(Exception):
    """A problem the user fixes; ``str()`` is the one line shown, ``exit_code`` the process's exit code."""

    exit_code = 1


class BadSetting(Failure):
    """A setting (environment, config file, option) is unknown or invalid."""

    exit_code = 2


class InputMissing(Failure):
    """A file the command reads does not exist or cannot be read."""

    exit_code = 3


class OutputUnwritable(Failure):
    """A path the command writes cannot be written (found before any work starts)."""

    exit_code = 4


class BrokerUnavailable(Failure):
    """Kafka could not be reached within the wait, or refused our credentials or TLS."""

    exit_code = 5


INTERNAL_ERROR = 70  # sysexits' EX_SOFTWARE: a bug
INTERRUPTED = 130


def debug_enabled() -> bool:
    """Whether tracebacks are wanted (``--debug`` sets ``FORETHOUGHT_DEBUG=1``)."""
    return os.environ.get(DEBUG_VARIABLE, "").strip().lower() not in ("", "0", "false", "no")


def suggestion(word: str, candidates: Iterable[str]) -> str:
    """`` (did you mean X?)`` for the closest candidate, or ``""`` when none is close."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def require_writable(outputs: Mapping[str, Path | None]) -> None:
    """Raise :class:`OutputUnwritable` for the first output file (option name → path; None: not asked
    for) that could not be created or replaced: its directory missing or read-only, or it is a directory."""
    for option, path in outputs.items():
        if path is None:
            continue
        parent = path.parent if str(path.parent) else Path(".")
        if path.is_dir():
            raise OutputUnwritable(f"{option} {path}: is a directory (give a file name)")
        if not parent.is_dir():
            what = "is not a directory" if parent.exists() else "does not exist"
            raise OutputUnwritable(f"{option} {path}: directory {parent} {what}")
        if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
            raise OutputUnwritable(f"{option} {path}: permission denied")


def require_directory_writable(option: str, path: Path) -> None:
    """Raise :class:`OutputUnwritable` unless ``path`` is, or can be made as, a writable directory."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputUnwritable(f"{option} {path}: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputUnwritable(f"{option} {path}: permission denied in {existing}")


def require_readable(inputs: Mapping[str, Path | None], directory: bool = False) -> None:
    """Raise :class:`InputMissing` for the first input (what → path; None: not asked for) that is missing,
    of the wrong kind (a directory for a file, or the reverse) or unreadable."""
    for what, path in inputs.items():
        if path is None:
            continue
        if not path.exists():
            raise InputMissing(f"{what} {path}: does not exist")
        if path.is_dir() != directory:
            raise InputMissing(f"{what} {path}: is {'not ' if directory else ''}a directory")
        if not os.access(path, os.R_OK):
            raise InputMissing(f"{what} {path}: permission denied")
