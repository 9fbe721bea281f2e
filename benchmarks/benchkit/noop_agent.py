"""faust-streaming's own ceiling: a no-op agent over the worker's inputs, run as a child process.

The agent subscribes to the same topics as the worker's ``behaviour`` agent (``BEHAVIOUR_INPUTS``
under the deployment's prefix), in an app built by the worker's own ``_create_app`` (same commit
interval, offset reset, stream settings), and takes events in batches exactly as the worker does
(``take_events(batch_size, within=batch_within_seconds)`` with the stream's own acks off, so only
``take_events`` acknowledges). It writes nothing to any table and sends nothing: it only counts.

Run by :func:`benchkit.noop.bench_noop`::

    python benchmarks/benchkit/noop_agent.py RESULT.json EXPECTED

with the worker's environment (``FORETHOUGHT_*``; a consumer group of its own). It rewrites
``RESULT.json`` (count, first/last batch times and this process's CPU seconds at those moments) at
most twice a second and once when ``EXPECTED`` events are counted; the benchmark stops it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import faust
from faust.worker import Worker as FaustWorker

from forethought.cli import load_settings
from forethought.ops.topics import BEHAVIOUR_INPUTS, load_catalogue
from forethought.stream.worker import _create_app

WRITE_EVERY = 0.5


@dataclass
class Count:
    """What the no-op agent saw: events, and (wall, CPU) at the first and the last batch."""

    expected: int
    count: int = 0
    first_count: int = 0
    first_at: float | None = None
    last_at: float | None = None
    first_cpu: float | None = None
    last_cpu: float | None = None
    batches: int = 0

    def add(self, n: int) -> None:
        """Count one batch of ``n`` events.

        >>> c = Count(expected=3); c.add(2); c.add(1); (c.count, c.first_count, c.batches, c.done)
        (3, 2, 2, True)
        """
        now, cpu = time.perf_counter(), time.process_time()
        self.count += n
        self.batches += 1
        if self.first_at is None:
            self.first_at, self.first_cpu, self.first_count = now, cpu, self.count
        self.last_at, self.last_cpu = now, cpu

    @property
    def done(self) -> bool:
        """Every expected event counted."""
        return self.count >= self.expected


def _write(path: Path, count: Count) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({**asdict(count), "done": count.done}))
    os.replace(tmp, path)  # the benchmark never reads half a file


def build(result: Path, expected: int) -> faust.App:
    """The app with its one no-op agent."""
    settings = load_settings()
    app = _create_app(settings, load_catalogue(settings.topics_file))
    source = app.topic(*(settings.topic(t) for t in BEHAVIOUR_INPUTS), key_type=bytes, value_type=bytes,
                       key_serializer="raw", value_serializer="raw")
    count = Count(expected)

    @app.agent(source, name="noop", concurrency=1)
    async def noop(stream: faust.StreamT) -> None:
        stream.enable_acks = False  # as the worker: only take_events acknowledges
        written = 0.0
        async for events in stream.take_events(settings.batch_size, within=settings.batch_within_seconds):
            count.add(len(events))
            if count.done or count.last_at - written >= WRITE_EVERY:  # type: ignore[operator]
                _write(result, count)
                written = count.last_at  # type: ignore[assignment]

    return app


def main(argv: list[str]) -> None:
    """``RESULT.json EXPECTED``: run the no-op worker until terminated."""
    result, expected = Path(argv[0]), int(argv[1])
    app = build(result, expected)
    FaustWorker(app, loglevel="warning", quiet=True, redirect_stdouts=False).execute_from_commandline()


if __name__ == "__main__":
    main(sys.argv[1:])
