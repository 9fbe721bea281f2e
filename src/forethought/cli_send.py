"""``forethought send FILE``: validate JSON lines of any inbound kind and send them to their topics.

Each line is one event, profile or outcome as JSON (``.gz`` files are read transparently)::

    forethought send events.jsonl --bootstrap localhost:9092
    forethought send backfill.jsonl.gz --prefix staging. --dry-run

Invalid lines are reported with their line number and reason and skipped; the rest are sent, keyed
by customer_id. Exit code 0 when every line was sent, 1 when some were invalid or not delivered.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from io import BufferedReader
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table

if TYPE_CHECKING:
    from forethought.client.producer import SendReport
    from forethought.client.wire import Encoded, Router
    from forethought.ops.settings import Settings

CHUNK = 5_000  # records in flight at once
SHOWN = 20  # invalid lines printed one by one
console = Console(highlight=False)


@dataclass(frozen=True, slots=True)
class Invalid:
    """A line that was not sent, and why."""

    line: int
    reason: str
    detail: str


def open_lines(path: Path) -> gzip.GzipFile | BufferedReader:
    """The file as binary lines, gunzipped when it starts with the gzip magic bytes."""
    with path.open("rb") as head:
        gzipped = head.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else path.open("rb")


def scan(lines: Iterable[bytes], router: Router, invalid: list[Invalid]) -> Iterator[Encoded]:
    """Encoded records of the valid lines; invalid ones are appended to ``invalid``. Blank lines are skipped."""
    from forethought.client.wire import InvalidRecord, RecordTooLarge, UnroutableRecord, decode_record

    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield router.encode(decode_record(line))
        except InvalidRecord as exc:
            invalid.append(Invalid(number, exc.reason, str(exc)))
        except RecordTooLarge as exc:
            invalid.append(Invalid(number, "oversized", str(exc)))
        except UnroutableRecord as exc:
            invalid.append(Invalid(number, "unroutable", str(exc)))


def chunked(records: Iterator[Encoded], size: int = CHUNK) -> Iterator[list[Encoded]]:
    """Consecutive lists of at most ``size`` records."""
    while chunk := list(islice(records, size)):
        yield chunk


async def deliver(records: Iterator[Encoded], settings: Settings, timeout_ms: int) -> SendReport:
    """Send every record, a chunk at a time; returns the combined report."""
    from forethought.client.producer import ForethoughtProducer, SendReport
    from forethought.ops.kafka_security import aiokafka_options
    from forethought.ops.topics import load_catalogue

    report = SendReport()
    async with ForethoughtProducer(
        settings.kafka_bootstrap, settings.topic_prefix, catalogue=load_catalogue(settings.topics_file),
        max_event_bytes=settings.max_event_bytes, request_timeout_ms=timeout_ms, compression=settings.kafka_compression,
        **aiokafka_options(settings),
    ) as producer:
        for chunk in chunked(records):
            await producer.send_encoded_many(chunk, report)
    return report


def count_only(records: Iterator[Encoded]) -> SendReport:
    """The report a dry run prints: what would be sent where."""
    from forethought.client.producer import SendReport

    report = SendReport()
    for record in records:
        report.sent += 1
        report.per_topic[record.topic] += 1
    return report


def send_command(
    file: Path = typer.Argument(..., help="JSON lines (optionally .gz): events, profiles and outcomes."),
    bootstrap: str | None = typer.Option(None, help="Overrides FORETHOUGHT_KAFKA_BOOTSTRAP."),
    prefix: str | None = typer.Option(None, help="Overrides FORETHOUGHT_TOPIC_PREFIX."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and route only; send nothing."),
    timeout: float = typer.Option(30.0, min=0.1, help="Seconds a record may wait for the broker."),
) -> None:
    """Validate a JSON-lines file and send each record to its topic, keyed by customer_id."""
    from aiokafka.errors import KafkaError

    from forethought.client.wire import Router
    from forethought.ops.failures import BadSetting, require_readable
    from forethought.ops.startup import load_settings, require_kafka_access
    from forethought.ops.topics import CatalogueError, load_catalogue

    require_readable({"input": file})
    settings = load_settings(kafka_bootstrap=bootstrap, topic_prefix=prefix)
    require_readable({"FORETHOUGHT_TOPICS_FILE": settings.topics_file})
    try:
        router = Router(settings.topic_prefix, load_catalogue(settings.topics_file), settings.max_event_bytes)
    except CatalogueError as exc:
        raise BadSetting(f"invalid topic catalogue: {exc}") from None
    if not dry_run:
        require_kafka_access(settings)
    invalid: list[Invalid] = []
    try:
        with open_lines(file) as lines, quiet("aiokafka"):  # failures are reported below, not logged per retry
            records = scan(lines, router, invalid)
            report = count_only(records) if dry_run else asyncio.run(deliver(records, settings, int(timeout * 1000)))
    except KafkaError as exc:
        where = escape(settings.kafka_bootstrap)
        console.print(f"[red]cannot reach Kafka at {where}[/]: {escape(repr(exc))}", soft_wrap=True)
        raise typer.Exit(1) from exc
    except (OSError, EOFError) as exc:  # e.g. a truncated .gz; records before the damage may have been sent
        console.print(f"[red]cannot read {escape(str(file))}[/]: {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(1) from exc
    print_summary(file, report, invalid, dry_run)
    raise typer.Exit(1 if invalid or report.failures else 0)


@contextmanager
def quiet(logger: str) -> Iterator[None]:
    """Silence ``logger`` for the duration (its level restored after)."""
    log = logging.getLogger(logger)
    level, log.level = log.level, logging.CRITICAL + 1
    try:
        yield
    finally:
        log.setLevel(level)


def print_summary(file: Path, report: SendReport, invalid: list[Invalid], dry_run: bool) -> None:
    """Invalid lines (the first few), sent per topic, invalid per reason, delivery failures."""
    for bad in invalid[:SHOWN]:
        console.print(f"[yellow]line {bad.line}[/] ({bad.reason}): {escape(bad.detail)}", soft_wrap=True)
    if len(invalid) > SHOWN:
        console.print(f"... and {len(invalid) - SHOWN} more invalid lines")
    verb = "would send" if dry_run else "sent"
    console.print(f"{escape(file.name)}: {verb} {report.sent} records")
    if report.per_topic:
        table = Table("topic", Column(verb, justify="right"))
        for topic, count in sorted(report.per_topic.items()):
            table.add_row(topic, str(count))
        console.print(table)
    reasons = Counter(bad.reason for bad in invalid)
    console.print(f"invalid lines: {len(invalid)}"
                  + (f" ({', '.join(f'{r}={n}' for r, n in sorted(reasons.items()))})" if reasons else ""))
    if not dry_run:
        console.print(f"delivery failures: {len(report.failures)}")
        for record_id, error in report.failures[:SHOWN]:
            console.print(f"[red]not delivered[/] {escape(record_id)}: {escape(error)}", soft_wrap=True)
