"""``forethought simulate --closed-loop`` and ``--respond``: the command-line side of the closed loop (an app
module: it joins the simulator and replay's engine, two adapters that never import each other).

``--closed-loop`` runs the engine in-process over the population (the worker's engine settings,
playbooks and partition count, as ``replay`` does) with the customers answering its triggers, and
prints per playbook the triggers, the customers' answers and re-engagement of the treated against
the holdout (``--report FILE``: all of it as JSON; ``--output FILE``: every record fed, outcomes and
reactions included; ``--truth FILE``: the ground truth with each customer's response traits).
``--respond`` answers a live worker's triggers from Kafka (:mod:`forethought.simulate.respond_live`).
"""

from __future__ import annotations

import asyncio
import signal
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import IO, Any

import orjson
from rich.console import Console

from forethought.closed_loop import LoopResult, run_closed_loop
from forethought.ops.settings import Settings
from forethought.simulate.population import open_lines, truth
from forethought.simulate.sinks import parse_config


def conflicting(*, closed_loop: bool, respond: bool, to_kafka: bool, output: Path | None,
                report: Path | None) -> str | None:
    """What is wrong with the combination of options (None: nothing).

    >>> conflicting(closed_loop=True, respond=False, to_kafka=True, output=None, report=None)
    '--closed-loop runs in-process: not with --respond or --to-kafka'
    >>> conflicting(closed_loop=False, respond=True, to_kafka=False, output=None, report=None) is None
    True
    """
    if closed_loop and (respond or to_kafka):
        return "--closed-loop runs in-process: not with --respond or --to-kafka"
    if respond and (to_kafka or output is not None or report is not None):
        return ("--respond answers a running worker's triggers: produce the population first with"
                " --to-kafka in a separate run; --output and --report go with --closed-loop")
    return None


def run_loop_cli(console: Console, settings: Settings, *, respond: bool, report: Path | None, output: Path | None,
                 truth_path: Path | None, playbooks: Path, respond_seconds: float | None, quiet: bool,
                 **options: Any) -> int:
    """Run ``--closed-loop`` (``respond`` False) or ``--respond``; returns the exit code."""
    config = parse_config(console, options)
    if config is None:
        return 2
    if truth_path is not None:
        with open_lines(truth_path) as lines:
            for row in truth(config):
                lines.write(orjson.dumps(row) + b"\n")
    if respond:
        return _respond(console, config, settings, respond_seconds, quiet)
    from forethought.ops.playbooks import load_rules
    from forethought.ops.topics import load_catalogue

    rules = load_rules(playbooks)
    partitions = load_catalogue(settings.topics_file).partitions
    started = time.perf_counter()
    sink: AbstractContextManager[IO[bytes] | None] = open_lines(output) if output is not None else nullcontext()
    with sink as out:

        def write(record: dict[str, Any]) -> None:
            if out is not None:
                out.write(orjson.dumps(record) + b"\n")

        result = run_closed_loop(config, settings.engine, rules, partitions=partitions, on_record=write)
    data = result.report()
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    if not quiet:
        _print(console, result, time.perf_counter() - started)
    return 0


def _print(console: Console, result: LoopResult, seconds: float) -> None:
    data = result.report()
    fed = ", ".join(f"{n:,} {source}" for source, n in data["records"].items())
    console.print(f"closed loop: {fed} records fed in {seconds:.1f} s")
    console.print(f"{'playbook':<20}{'sent':>6}{'opened':>7}{'clicked':>8}{'back':>5}{'left':>5}"
                  f"{'treated':>8}{'holdout':>8}{'lift':>7}")
    for name, row in data["playbooks"].items():
        answers, lift = row["responses"], row["reengagement"] or {}
        rates = [_rate(lift.get("treated")), _rate(lift.get("holdout"))]
        difference = "-" if lift.get("lift") is None else f"{lift['lift']:+.3f}"
        console.print(f"{name[:19]:<20}{row['triggers']:>6}{answers.get('opened', 0):>7}"
                      f"{answers.get('clicked', 0):>8}{answers.get('returned', 0):>5}{answers.get('left', 0):>5}"
                      f"{rates[0]:>8}{rates[1]:>8}{difference:>7}")
    if data["skipped_triggers"]:
        console.print(f"[yellow]triggers not answered[/]: {data['skipped_triggers']}")


def _rate(group: dict[str, Any] | None) -> str:
    return "-" if not group else f"{group['rate']:.3f}"


def _respond(console: Console, config: Any, settings: Settings, seconds: float | None, quiet: bool) -> int:
    from forethought.simulate.respond_live import respond

    async def main() -> dict[str, Any]:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        responder = await respond(config, settings, seconds=seconds, stop=stop)
        return responder.report()

    data = asyncio.run(main())
    if not quiet:
        console.print(f"answered: {data['responses_by_playbook']}")
        if data["skipped_triggers"]:
            console.print(f"[yellow]triggers not answered[/]: {data['skipped_triggers']}")
    return 0
