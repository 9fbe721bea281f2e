"""Where a simulated population goes from the command line: a file, Kafka, or both.

``forethought simulate`` calls :func:`run_cli`. ``--to-kafka`` sends each record to the
catalogue topic that lists its ``type`` (profiles to ``customers.profile``), keyed by
``customer_id``, with the settings' bootstrap servers and topic prefix.

>>> routes(load_catalogue(), lambda name: "t1." + name)["error"]
't1.events.errors'
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError
from rich.console import Console

from forethought.ops.settings import Settings
from forethought.ops.topics import Catalogue, load_catalogue
from forethought.simulate.population import (
    SimulationConfig,
    Summary,
    encoded,
    open_lines,
    plans,
    progress_bar,
    write,
    write_truth,
)

CHECK_DELIVERY_EVERY = 10_000


def routes(catalogue: Catalogue, topic: Callable[[str], str]) -> dict[str, str]:
    """Record ``type`` → physical topic: the first catalogue topic that lists the kind."""
    table: dict[str, str] = {}
    for spec in catalogue.topics:
        for kind in spec.kinds:
            table.setdefault(kind, topic(spec.name))
    return table


async def produce(config: SimulationConfig, settings: Settings, output: Path | None = None,
                  truth_path: Path | None = None, progress: bool = False) -> Summary:
    """Send every record to Kafka (and write ``output``/``truth_path`` when given) in one pass."""
    from aiokafka import AIOKafkaProducer

    from forethought.ops.compression import producer_options
    from forethought.ops.kafka_security import aiokafka_options

    started = time.perf_counter()
    table = routes(load_catalogue(settings.topics_file), settings.topic)
    population = plans(config)
    summary = Summary(customers=len(population))
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=20,
                                **aiokafka_options(settings), **producer_options(settings.kafka_compression))
    await producer.start()
    try:
        out_context = open_lines(output) if output is not None else nullcontext(None)
        with out_context as out, progress_bar(config, summary, progress) as tick:
            pending: list[asyncio.Future[Any]] = []
            lines: list[bytes] = []
            for record, value in encoded(config, population, summary):
                key = record["customer_id"].encode()
                pending.append(await producer.send(table[record["type"]], value=value, key=key))
                lines.append(value)
                if len(pending) >= CHECK_DELIVERY_EVERY:
                    await _settle(pending, lines, out)
                    tick()
            await _settle(pending, lines, out)
    finally:
        await producer.stop()
    if output is not None:
        summary.output_bytes = output.stat().st_size
    if truth_path is not None:
        write_truth(truth_path, population, summary, config.seed)
    summary.seconds = time.perf_counter() - started
    return summary


async def _settle(pending: list[asyncio.Future[Any]], lines: list[bytes], out: IO[bytes] | None) -> None:
    await asyncio.gather(*pending)  # raises on the first failed delivery
    pending.clear()
    if out is not None and lines:
        out.write(b"\n".join(lines) + b"\n")
    lines.clear()


def run_cli(console: Console, settings: Settings | None, *, output: Path | None, truth_path: Path | None,
            quiet: bool = False, **options: Any) -> int:
    """``forethought simulate``: returns the exit code (2 for bad options, naming the option)."""
    config = parse_config(console, options)
    if config is None:
        return 2
    if output is None and settings is None:
        console.print("[red]Nothing to do[/]: give --output FILE and/or --to-kafka")
        return 2
    if settings is not None:
        summary = asyncio.run(produce(config, settings, output, truth_path, progress=not quiet))
    else:
        assert output is not None
        summary = write(config, output, truth_path, progress=not quiet)
    if not quiet:
        where = [f"{output} ({_size(summary.output_bytes)})"] if output is not None else []
        where += [f"Kafka {settings.kafka_bootstrap}"] if settings is not None else []
        where += [f"truth {truth_path}"] if truth_path is not None else []
        console.print(f"{summary.events:,} events and {summary.by_type['profile']:,} profiles for"
                      f" {config.customers:,} customers over {config.days:g} days in {summary.seconds:.1f} s"
                      f" → {', '.join(where)}")
    return 0


def parse_config(console: Console, options: dict[str, Any]) -> SimulationConfig | None:
    """The configuration from the command's options; None (the problem printed, naming the option)."""
    try:
        return SimulationConfig(**{k: v for k, v in options.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(f"--{str(e['loc'][0]).replace('_', '-')}: {e['msg']}" for e in exc.errors())
        console.print(f"[red]Invalid option[/] {problems}")
        return None


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"
