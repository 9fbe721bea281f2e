"""What playbook variants (#16 point 2) add to the worker's core, in CPU time, A against B in one run.

Two partition runtimes see the same kind of traffic: customers with an error burst (one trigger
each), an outcome per trigger (``clicked`` with a chance that depends on the variant, else
``delivered``), then event time passes the reward window. Runtime A's playbook has no variants;
B's is the same playbook with three variants chosen by Thompson sampling (or ``--policy ucb``).
Chunks of customers alternate A, B, A, B... so both see the same machine load; each record's
``feed`` is timed alone with ``time.process_time`` (CPU seconds, a loaded machine's waits do not
count), with the garbage collector off inside a chunk (a collection between chunks). Printed: per
trigger (the burst's last error, which fires it), per outcome, and per pull settled after its window
(at the customer's next due time: event time then moves 8 days, an hour at a time, A and B in
turn), A and B and what B adds::

    .venv/bin/python benchmarks/variant_cost.py [--customers 6000] [--policy thompson]

Results and the machine's load are in docs/playbooks.md ("Variants and the bandit").
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
from datetime import UTC, datetime

from forethought.contracts.events import ErrorEvent
from forethought.contracts.records import Outcome, Trigger
from forethought.core.config import EngineConfig
from forethought.core.models import PartitionModels
from forethought.core.runtime import PartitionRuntime
from forethought.ops.playbooks import parse_rules

CONFIG = EngineConfig(bucket_seconds=10, burst_min_errors=3)
T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC).timestamp()
BOOK = """playbooks:
  - name: burst_help
    on: [error_burst]
    channels: [in_app, email]
    priority: 70
"""
VARIANTS = """    variants:
      - {name: short, template: help_short}
      - {name: long, template: help_long}
      - {name: by_mail, template: help_mail, channel: email}
    bandit: {policy: POLICY, reward: [clicked], reward_window: 1d}
"""
CLICKS = {None: 0.1, "short": 0.05, "long": 0.1, "by_mail": 0.15}


def at(t: float) -> datetime:
    return datetime.fromtimestamp(t, tz=UTC)


class Side:
    """One runtime and the CPU seconds its triggers, outcomes and window ends took."""

    def __init__(self, name: str, playbooks: str) -> None:
        self.name = name
        self.runtime = PartitionRuntime(0, CONFIG, parse_rules(playbooks), PartitionModels())
        self.trigger_cpu, self.outcome_cpu, self.triggers, self.outcomes = [], [], 0, 0
        self.rng = random.Random(1)

    def chunk(self, first: int, count: int, start: float) -> None:
        """``count`` customers from number ``first``, their bursts one second apart from ``start``."""
        cpu_trigger = cpu_outcome = 0.0
        fired: list[Trigger] = []
        for n in range(first, first + count):
            customer, t = f"{self.name}{n}", start + (n - first)
            for i in range(3):
                event = ErrorEvent(event_id=f"{customer}-{i}", customer_id=customer, code="E1", occurred_at=at(t))
                before = time.process_time()
                emitted = self.runtime.feed(event)
                if i == 2:
                    cpu_trigger += time.process_time() - before
                fired += [tr for e in emitted if e.step for tr in e.step.triggers]
        for trigger in fired:
            status = "clicked" if self.rng.random() < CLICKS[trigger.variant] else "delivered"
            outcome = Outcome(outcome_id=f"o-{trigger.trigger_id}", trigger_id=trigger.trigger_id,
                              customer_id=trigger.customer_id, channel=trigger.channel, status=status,
                              occurred_at=trigger.fired_at)
            before = time.process_time()
            self.runtime.feed(outcome)
            cpu_outcome += time.process_time() - before
        self.trigger_cpu.append(cpu_trigger / max(1, len(fired)))
        self.outcome_cpu.append(cpu_outcome / max(1, len(fired)))
        self.triggers += len(fired)

    def window_end(self, until: float) -> tuple[float, int, int]:
        """CPU seconds to move event time to ``until``, the due ticks and the pulls settled on the way."""
        before = time.process_time()
        emitted = self.runtime.advance(until)
        cpu = time.process_time() - before
        return cpu, len(emitted), sum(1 for e in emitted if e.step for o in e.step.observations
                                      if o.kind == "variant_reward")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=6000, help="per side")
    parser.add_argument("--chunk", type=int, default=250)
    parser.add_argument("--policy", choices=("thompson", "ucb"), default="thompson")
    args = parser.parse_args()
    a, b = Side("a", BOOK), Side("b", BOOK + VARIANTS.replace("POLICY", args.policy))
    for first in range(0, args.customers, args.chunk):
        start = T0 + first
        for side in (a, b) if (first // args.chunk) % 2 == 0 else (b, a):
            gc.collect()  # a collection lands in neither side's chunk
            gc.disable()
            side.chunk(first, args.chunk, start)
            gc.enable()
    cpu_a = cpu_b = 0.0
    ticks_a = ticks_b = settled = 0
    for hour in range(1, 24 * 8 + 2):  # event time moves an hour at a time, A and B in turn (past the 7-day watches)
        gc.collect()
        for side in (a, b) if hour % 2 else (b, a):
            cpu, ticks, done = side.window_end(T0 + hour * 3600.0)
            if side is a:
                cpu_a, ticks_a = cpu_a + cpu, ticks_a + ticks
            else:
                cpu_b, ticks_b, settled = cpu_b + cpu, ticks_b + ticks, settled + done
    bandit = b.runtime.models.bandits.by_playbook["burst_help"]  # type: ignore[union-attr]
    print(f"{args.customers} customers per side, chunks of {args.chunk}, policy {args.policy}; arms "
          f"[pulls, successes, failures]: {bandit.arms}")
    for what, xs, ys in (("trigger", a.trigger_cpu, b.trigger_cpu), ("outcome", a.outcome_cpu, b.outcome_cpu)):
        pairs = [y - x for x, y in zip(xs, ys, strict=True)]
        print(f"per {what:8s} A {statistics.median(xs) * 1e6:7.1f} us   B {statistics.median(ys) * 1e6:7.1f} us   "
              f"B - A: median {statistics.median(pairs) * 1e6:5.1f} us, mean {statistics.fmean(pairs) * 1e6:5.1f} us"
              f" over {len(pairs)} chunk pairs")
    print(f"8 days of due ticks: A {cpu_a:.3f} s ({ticks_a} ticks), B {cpu_b:.3f} s ({ticks_b} ticks, {settled} pulls"
          f" settled as failures): B - A {(cpu_b - cpu_a) / max(1, settled) * 1e6:.1f} us per pull")


if __name__ == "__main__":
    main()
