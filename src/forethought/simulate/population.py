"""A synthetic customer population with ground truth, for backtests and quality evaluation.

Segments from API integrations (a visit every few minutes) to monthly purchasers (every 7–35
days), each customer with their own cadence, time zone, working hours, plan, error rate and
usage scale; some drop off (most with warning signs first), some hit injected anomalies, some
sign up mid-horizon. Records stream out sorted by event time (profiles by ``updated_at``),
generated one UTC day at a time, so memory stays bounded by a day of events.

>>> config = SimulationConfig(customers=20, days=7, seed=5)
>>> records = list(simulate(config))
>>> records[0]["type"], sum(r["type"] == "profile" for r in records)
('profile', 20)
>>> truths = list(truth(config))
>>> sorted(truths[0])[:4]
['anomalies', 'cadence_seconds', 'customer_id', 'dropoff_at']
"""

from __future__ import annotations

import gzip
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from forethought.simulate.behaviour import Customer, Item, customer_stream
from forethought.simulate.plans import SEGMENTS, CustomerPlan, SimulationConfig, plan_customer
from forethought.simulate.response import ResponseModel
from forethought.simulate.timeline import DAY_MS, day_of, iso

__all__ = ["SEGMENTS", "SimulationConfig", "Summary", "plans", "simulate", "truth", "write"]
FLUSH_EVERY = 4096


def plans(config: SimulationConfig) -> list[CustomerPlan]:
    """The plan of every customer (small: no events)."""
    return [plan_customer(config, i) for i in range(config.customers)]


def items(config: SimulationConfig, population: list[CustomerPlan] | None = None) -> Iterator[Item]:
    """``(epoch_ms, customer index, seq, record)`` for every record, sorted; seq 0 is the profile.

    Generated one UTC day at a time over the customers active that day, so memory holds about
    one day of events (and a generator only for customers between signup and drop-off).
    """
    population = plans(config) if population is None else population
    starting: dict[int, list[CustomerPlan]] = defaultdict(list)
    for plan in population:
        starting[day_of(plan.active_from)].append(plan)
    active: list[Customer] = []
    for day in range(day_of(config.start_ms), day_of(config.end_ms - 1) + 1):
        active.extend(Customer(plan, config.seed) for plan in starting.pop(day, ()))
        batch: list[Item] = []
        for customer in active:
            batch.extend(customer.day(day))
        active = [customer for customer in active if customer.last_day > day]
        batch.sort()
        yield from batch


def simulate(config: SimulationConfig) -> Iterator[dict[str, Any]]:
    """Every record (profiles and events) as a JSON-ready dict, sorted by event time."""
    return (record for _, _, _, record in items(config))


def truth(config: SimulationConfig) -> Iterator[dict[str, Any]]:
    """The ground truth of every customer, in customer order (re-runs each customer alone)."""
    response = ResponseModel(config.seed)
    for plan in plans(config):
        last = None
        for ms, _, seq, _ in customer_stream(plan, config.seed):
            if seq:
                last = ms
        yield truth_record(plan, last, response)


def truth_record(plan: CustomerPlan, last_ms: int | None, response: ResponseModel | None = None) -> dict[str, Any]:
    """One customer's ground truth; ``last_ms`` is the time of their last event (None: none) when
    no message reaches them; ``response``: their hidden answer to messages (docs/simulator-response.md)."""
    anomalies = []
    if plan.anomaly is not None:
        a = plan.anomaly
        entry: dict[str, Any] = {"kind": a.kind, "start": iso(a.start), "end": iso(a.end)}
        entry.update({"code": a.code, "count": a.count} if a.code else {"factor": a.factor})
        anomalies.append(entry)
    return {
        "customer_id": plan.customer_id, "segment": plan.segment.name, "timezone": plan.timezone,
        "plan": plan.plan, "cadence_seconds": round(plan.cadence / 1000, 3),
        "dropoff_at": None if plan.dropoff is None else iso(plan.dropoff),
        "last_activity_at": None if last_ms is None else iso(last_ms),
        "precursors": list(plan.precursors),
        "precursors_from": None if plan.decline_from is None else iso(plan.decline_from),
        "anomalies": anomalies, "signup_at": iso(plan.signup),
        "new_signup": plan.signup == plan.active_from,
        **({} if response is None else {"response": response.truth(plan)}),
    }


@dataclass
class Summary:
    """What a run produced."""

    customers: int = 0
    records: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    output_bytes: int = 0
    last_ms: dict[int, int] = field(default_factory=dict, repr=False)
    now_ms: int = 0

    @property
    def events(self) -> int:
        return self.records - self.by_type["profile"]


def encoded(config: SimulationConfig, population: list[CustomerPlan], summary: Summary,
            ) -> Iterator[tuple[dict[str, Any], bytes]]:
    """Each record with its JSON bytes, counting into ``summary`` as it goes."""
    last, by_type = summary.last_ms, summary.by_type
    for ms, index, seq, record in items(config, population):
        if seq:
            last[index] = ms
        by_type[record["type"]] += 1
        summary.now_ms = ms
        yield record, orjson.dumps(record)
    summary.records = sum(by_type.values())


def write(config: SimulationConfig, output: Path | str, truth_path: Path | str | None = None,
          progress: bool = False) -> Summary:
    """Write the records to ``output`` (JSON lines, gzip when it ends with .gz) and the truth."""
    started = time.perf_counter()
    population = plans(config)
    summary = Summary(customers=len(population))
    with open_lines(output) as out, progress_bar(config, summary, progress) as tick:
        buffer: list[bytes] = []
        for _, line in encoded(config, population, summary):
            buffer.append(line)
            if len(buffer) >= FLUSH_EVERY:
                _flush(out, buffer)
                tick()
        _flush(out, buffer)
    summary.output_bytes = Path(output).stat().st_size
    if truth_path is not None:
        write_truth(truth_path, population, summary, config.seed)
    summary.seconds = time.perf_counter() - started
    return summary


def write_truth(path: Path | str, population: Iterable[CustomerPlan], summary: Summary, seed: int) -> None:
    """Ground truth, one JSON line per customer, with the last activity seen in ``summary`` and the
    response model of ``seed``."""
    response = ResponseModel(seed)
    with open_lines(path) as out:
        for plan in population:
            out.write(orjson.dumps(truth_record(plan, summary.last_ms.get(plan.index), response)) + b"\n")


def _flush(out: IO[bytes], buffer: list[bytes]) -> None:
    if buffer:
        out.write(b"\n".join(buffer) + b"\n")
        buffer.clear()


@contextmanager
def open_lines(path: Path | str) -> Iterator[IO[bytes]]:
    """A binary file for writing; gzip (reproducible: no name, no timestamp) for ``*.gz``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as raw:
        if path.suffix != ".gz":
            yield raw
            return
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as zipped:
            yield zipped  # type: ignore[misc]


def read_lines(path: Path | str) -> Iterator[dict[str, Any]]:
    """Read back a file written by :func:`write` (plain or gzip)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        for line in handle:
            yield orjson.loads(line)


@contextmanager
def progress_bar(config: SimulationConfig, summary: Summary, enabled: bool) -> Iterator[Any]:
    """A rich progress bar on stderr over simulated time; yields a ``tick()`` to refresh it."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    enabled = enabled and console.is_terminal
    bar = Progress(TextColumn("simulating"), BarColumn(), TextColumn("day {task.completed:.1f}/{task.total:g}"),
                   TextColumn("{task.fields[events]:,} records"), TimeElapsedColumn(),
                   console=console, disable=not enabled, transient=False)
    task = bar.add_task("simulate", total=config.days, events=0)
    start = config.start_ms

    def tick() -> None:
        if enabled:
            day = max(0.0, (summary.now_ms - start) / DAY_MS)
            bar.update(task, completed=min(config.days, day), events=sum(summary.by_type.values()))

    with bar:
        yield tick
        tick()
