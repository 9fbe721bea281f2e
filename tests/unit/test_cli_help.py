"""Every verb's --help reads as plain help: no `<bool>`, `<list[Path]>`, `<str>` type artefacts.

typer 0.27 started printing parameter types as `<str>`, `<file>`, `{inputs}` and 0.29 as `<bool>`,
`<list[Path]>`; pyproject.toml bounds typer below 0.27 and the lock pins a version that prints
`TEXT`, `PATH`, `FILE`. These tests fail if a re-lock lets such a version back in.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from forethought.cli import app

# `<bool>`, `<str>`, `<path>`, `<list[Path]>`, `<dict[str, int]>`: a type where a metavar belongs
ARTEFACT = re.compile(r"<[a-z_]+(\[[^>\]]*\])?>|<list\[|\{[a-z_]+\}")


def verb_paths() -> list[list[str]]:
    """Every command path of the CLI: ["worker"], ["topics", "create"], ...; the group itself is []."""
    paths: list[list[str]] = []

    def walk(command: Any, path: list[str]) -> None:  # typer's own (vendored) click types
        paths.append(path)
        if getattr(command, "commands", None):
            for name, sub in sorted(command.commands.items()):
                walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return paths


def test_the_cli_has_verbs_to_check() -> None:
    names = {" ".join(p) for p in verb_paths()}
    assert {"worker", "replay", "topics", "senders"} <= names and len(names) > 10


def test_the_artefact_pattern_catches_what_newer_typer_prints() -> None:
    for line in ["│ --help    <bool>  Show this message", "│ *  inputs  <list[Path]>  JSON lines",
                 "Usage: forethought replay [OPTIONS] {inputs}...", "--snapshot-at   <str>   Event time"]:
        assert ARTEFACT.search(line), line
    for line in ["│ --help          Show this message and exit.", "│ *  inputs...  FILE  JSON lines",
                 "--report   PATH  The report as JSON", "--bootstrap   TEXT  host:port"]:
        assert not ARTEFACT.search(line), line


@pytest.mark.parametrize("path", verb_paths(), ids=lambda p: " ".join(p) or "forethought")
def test_help_has_no_type_artefacts(path: list[str]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "100", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    # `kafka tool` passes its arguments to Kafka's own tools: its help is its own list of them
    assert ("usage: forethought kafka tool NAME" if path == ["kafka", "tool"] else "Usage:") in result.output
    found = [line.strip() for line in result.output.splitlines() if ARTEFACT.search(line)]
    assert found == [], f"`forethought {' '.join(path)} --help` shows type artefacts: {found}"


def test_the_installed_command_prints_plain_help() -> None:
    """The `forethought` script itself (the entry point a user runs), as a terminal would show it."""
    exe = Path(sys.executable).parent / "forethought"
    assert exe.exists(), f"{exe} missing: run `make install`"
    for args in (["--help"], ["replay", "--help"]):
        out = subprocess.run([str(exe), *args], capture_output=True, text=True, check=True,
                             env={**os.environ, "COLUMNS": "100", "NO_COLOR": "1"}).stdout
        assert "Usage: forethought" in out
        assert not ARTEFACT.search(out), out
