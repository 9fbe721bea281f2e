"""Forethought benchmark: core speed, worker throughput against Faust's own ceiling, latency, state size.

Run from the repository root::

    .venv/bin/python benchmarks/bench.py                  # 100k events, 2000 customers
    .venv/bin/python benchmarks/bench.py --events 20000 --json bench.json
    .venv/bin/python benchmarks/bench.py --profile        # also cProfile the in-process worker path
    .venv/bin/python benchmarks/bench.py --skip-kafka     # parts 1 and 5 only, no broker
    .venv/bin/python benchmarks/bench.py --long           # also part 6 (or FORETHOUGHT_BENCH_LONG=1)
    .venv/bin/python benchmarks/bench.py --set FORETHOUGHT_BATCH_WITHIN_SECONDS=0.2  # try a setting

The defaults take about 4-5 minutes on 2 cores (longer when other processes compete); ``--long``
adds the replays of part 6 (today ~20 minutes, most of it CDNOW).

A second table lists the targets of issue #11 side by side with what this run measured, each
"met", "NOT MET" or "not run" (``benchkit/targets.py``).

Broker: ``--bootstrap`` (default ``$FORETHOUGHT_KAFKA_BOOTSTRAP``); when neither is given the
script starts a :class:`~forethought.devkafka.LocalBroker` (Kafka 3.9.1, JVM, no Docker)
and stops it at the end. Every worker and broker it starts is stopped in ``finally`` blocks, also
on Ctrl-C and SIGTERM. Topics get a unique prefix (``b<hex>.``); on an external broker they are
deleted at the end (best effort).

What is measured (one run prints everything in one table; ``--json FILE`` writes it too):

1. **Core, one core.** ``--events`` realistic events (~75 % clickstream, ~20 % usage, ~5 % errors;
   customers drawn with a mild Zipf skew, weight ∝ 1/sqrt(rank); strictly increasing event times
   over the last 300 s) are built once. Timed with ``time.perf_counter``, median of 3 repetitions,
   each from empty state (a ``dict`` of one ``CustomerState`` per customer):
   ``process()`` over already-decoded pydantic events; ``decode_event`` alone over the raw JSON
   bytes; decode + process; and ``BatchProcessor.handle + commit`` (the worker's in-process path:
   decode, murmur2 partition check, per-batch state (de)serialisation, metrics; batches of 500; a
   dict as the table: no Kafka, no Faust). **Runtime in process**: the line for
   ``forethought.core.runtime.PartitionRuntime`` and its ratio to ``process()`` with the models;
   until the runtime exists ``BatchProcessor`` handle+commit stands in for it, and says so
   (``benchkit/runtime.py`` marks the place).
2. **Worker end to end.** The same events are produced (keyed by customer_id, topic per kind,
   acks=all, linger 20 ms) *before* the worker starts, **topic by topic** (all clickstream, then all
   usage, then all errors; ``--backlog interleaved`` produces them in event-time order instead:
   either way each partition holds the same records, only the Kafka timestamps and the production
   order differ); then the real worker runs as a child process
   (``running_worker``) with the integration tests' engine settings (1-minute buckets,
   BURST_MIN_ERRORS=5, ...) and ``FORETHOUGHT_LOG_LEVEL=WARNING``. Its ``/metrics`` are polled every
   0.1 s; throughput = (count at end - count at the first non-zero poll) / (time between), where
   count = sum of ``forethought_events_in_total``. It ends when every event is counted (timeout
   300 s: the partial figure is reported). The worker's own histograms then tell where its wall time
   went: inside the core (``processing_seconds``), inside the batch handler including Kafka sends
   (``batch_seconds``), and the rest (Faust/aiokafka fetching, dispatch, commits, timers).
   The worker's trigger counts are shown beside an in-order reference computed by the core over
   the same events. More silences than the reference means customers were timed out while their
   next events were still queued (the backlog is consumed unevenly across topics). After the worker
   has stopped, its ``customer_state`` changelog is read back (last value per key): the state bytes
   per customer as stored (part 5).
3. **Ceilings.** *No-op Faust agent* (``benchkit/noop_agent.py``, a child process): an app built by
   the worker's own ``_create_app``, a consumer group of its own, one agent over the worker's input
   topics with the worker's batching (``take_events(FORETHOUGHT_BATCH_SIZE,
   within=FORETHOUGHT_BATCH_WITHIN_SECONDS)``, the stream's own acks off), no table, no sends: it
   only counts. Throughput from its first batch to its last. The ratio worker/no-op is what the
   worker keeps of faust-streaming's own ceiling. *Bare consumer*: a plain ``AIOKafkaConsumer``
   (fresh group, earliest) on the same topics and records that only runs ``decode_event``; same
   throughput definition (first batch to last): the ceiling set by Python + aiokafka + pydantic.
4. **Event-to-trigger latency.** A fresh worker on fresh topics. Bursts for 200 new customers spread
   over 10 s of real time; each burst is 6 errors 0.1 s apart with ``occurred_at`` = wall time at
   production (bursts never straddle a 60 s bucket boundary, so the 5th error fires). Latency =
   wall time the consumer of ``engagement.triggers`` received the trigger - wall time the
   triggering error (matched by the trigger's ``fired_at``) was handed to the producer. Includes
   the worker's batching window (``batch_within_seconds`` = 50 ms) and both Kafka hops. Under load:
   from 2 s before the first burst until the bursts' triggers are in, realistic events of 2,000
   other customers (``benchkit/load.py``) arrive at a rate such that load + bursts = ``--latency-load``
   (default 0.5) × the worker's events/s measured in part 2 of the same run, or
   ``--latency-rate`` events/s (a fixed load; the target is then not judged). Also the latency by
   when each burst began (2 s bins): flat, the worker kept up; rising, it fell behind its input.
5. **State size.** ``len(state.to_bytes())`` over every customer of the core run, the worker's
   ``forethought_state_bytes`` gauge (mean over a sample of at most 200 table values), and the size
   of each customer's last value on the worker's state changelog (the target's figure).
6. **Replay, whole process** (only with ``--long``): ``forethought replay`` of the CDNOW file of
   ``make eval-real`` and of one customer in ``--eval-every`` (default 10) of the ``make eval``
   file (each customer's whole history), each a child process timed from spawn to exit, with its user/system CPU and peak memory
   from ``os.wait4`` (``benchkit/replaylines.py``).

Numbers depend on the machine; the broker runs on the same machine and competes for the CPU.
This is a benchmark, not a test: nothing here asserts a time. The parts live in ``benchkit/``
(``workload``, ``core``, ``runtime``, ``kafka``, ``noop``/``noop_agent``, ``changelog``, ``latency``/``load``,
``replaylines``, ``report``/``targets``, ``cli``); this file is the entry point.
"""

from __future__ import annotations

import sys
from pathlib import Path

if str(Path(__file__).resolve().parent) not in sys.path:  # run as a script, benchmarks/ is already there
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit import cli  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark with the given command line (default ``sys.argv[1:]``)."""
    return cli.main(argv, __doc__.split("\n", 1)[0])


if __name__ == "__main__":
    sys.exit(main())
