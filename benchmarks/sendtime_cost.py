"""What send windows cost (issue #16 point 3), in CPU time, A and B interleaved in one process.

Per event: the bench's events (``benchkit.workload``: 2,000 customers) through one
:class:`PartitionRuntime` per partition with models, every customer with a profile in a time zone
(so each new active hour is a real zone conversion), with the active-hours detector (B, this
checkout) and without it (A, the engine as before); runs alternate A, B, A, B... and the medians
are compared. Also the mean encoded state size at the end of each.

Per trigger: the shipped playbooks (C) against the same with a 24h ``send_window`` on
``feature_welcome`` (D), interleaved likewise; the extra CPU divided by that playbook's triggers
(choosing the hour, holding the trigger in state, the release at the due time and its second
policy pass). And ``sendwindow.hold`` alone, per call::

    .venv/bin/python benchmarks/sendtime_cost.py [--events 100000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import timeit
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).parent))

from benchkit.common import engine_config  # noqa: E402
from benchkit.workload import build_workload  # noqa: E402

from forethought.contracts.events import FeatureUsed, InboundEvent, PageView  # noqa: E402
from forethought.contracts.partitioning import partition_of  # noqa: E402
from forethought.contracts.records import Profile  # noqa: E402
from forethought.core.config import EngineConfig  # noqa: E402
from forethought.core.detectors import active_hours  # noqa: E402
from forethought.core.engine import process, tick  # noqa: E402
from forethought.core.models import PartitionModels  # noqa: E402
from forethought.core.plugin import Moment  # noqa: E402
from forethought.core.policy.profiles import ProfileState  # noqa: E402
from forethought.core.policy.rules import Rules  # noqa: E402
from forethought.core.policy.sendwindow import hold  # noqa: E402
from forethought.core.policy.timing import QuietHours  # noqa: E402
from forethought.core.registry import Registry, builtin_registry  # noqa: E402
from forethought.core.runtime import PartitionRuntime  # noqa: E402
from forethought.core.sendtime import Activity, counted  # noqa: E402
from forethought.ops.playbooks import load_rules, parse_rules  # noqa: E402
from forethought.ops.settings import Settings  # noqa: E402
from forethought.ops.topics import load_catalogue  # noqa: E402

END = 1_780_000_000.0
ZONES = ("Asia/Tokyo", "Europe/Berlin", "America/New_York", "Australia/Sydney")


Result = tuple[Counter[str], int, int]


def run(events: list[InboundEvent], config: EngineConfig, rules: Rules, partitions: int) -> Result:
    """Every event through its partition's runtime, then the clock to a day after the last; returns
    (triggers by playbook, summed encoded state bytes, states)."""
    profiles: dict[str, ProfileState] = {}

    def profile(customer: str) -> ProfileState:
        held = profiles.get(customer)
        if held is None:
            zone = ZONES[zlib.crc32(customer.encode()) % len(ZONES)]
            held = profiles[customer] = ProfileState().with_profile(Profile(
                customer_id=customer, updated_at=datetime(2026, 1, 1, tzinfo=UTC), timezone=zone))
        return held

    runtimes = {p: PartitionRuntime(p, config, rules, PartitionModels(p, config.model_min_labels, config),
                                    load_profile=profile) for p in range(partitions)}
    partition: dict[str, int] = {}
    fired: Counter[str] = Counter()
    for event in events:
        key = event.customer_id
        p = partition.get(key)
        if p is None:
            p = partition[key] = partition_of(key.encode(), partitions)
        fired.update(t.playbook for e in runtimes[p].feed(event) if e.step is not None for t in e.step.triggers)
    for runtime in runtimes.values():
        fired.update(t.playbook for e in runtime.advance(END + 86_400) if e.step is not None for t in e.step.triggers)
    states = [s for r in runtimes.values() for s in r.customers()]
    return fired, sum(len(s.to_bytes()) for s in states), len(states)


def interleaved(lines: dict[str, Callable[[], Any]], repeats: int) -> dict[str, tuple[float, Any]]:
    """CPU seconds (median) and the last result of each line, the lines run in turn ``repeats`` times."""
    times: dict[str, list[float]] = {name: [] for name in lines}
    results: dict[str, Any] = {}
    for _ in range(repeats):
        for name, line in lines.items():
            started = time.process_time()
            results[name] = line()
            times[name].append(time.process_time() - started)
    return {name: (statistics.median(times[name]), results[name]) for name in lines}


def hook_cost(events: list[InboundEvent], repeats: int) -> tuple[float, float]:
    """Microseconds of CPU per event of the active-hours hook alone (called as the engine calls it, on
    the events in time order with each customer's previous event time and zone), net of an empty loop
    over the same calls; and the share of events that open a new active hour."""
    hook, settings, states, rows = active_hours.ActiveHours(), active_hours.ActiveHoursSettings(), {}, []
    last: dict[str, float] = {}
    moments = {zone: Moment(0.0, None, PartitionModels(0), profile=ProfileState().with_profile(Profile(
        customer_id="x", updated_at=datetime(2026, 1, 1, tzinfo=UTC), timezone=zone))) for zone in ZONES}
    for event in sorted(events, key=lambda e: e.epoch):
        key = event.customer_id
        state = states.get(key)
        if state is None:
            state = states[key] = SimpleNamespace(slices={active_hours.NAME: active_hours.ActiveHoursState()})
        rows.append((SimpleNamespace(last_seen=last.get(key), slices=state.slices), event, event.epoch,
                     moments[ZONES[zlib.crc32(key.encode()) % len(ZONES)]]))
        last[key] = max(last.get(key, event.epoch), event.epoch)
    new = sum(1 for state, _e, ts, _m in rows if state.last_seen is None or ts // 3600 > state.last_seen // 3600)

    def empty(*_args: object) -> None:
        return None

    times: list[float] = []
    for _ in range(repeats):
        started = time.process_time()
        for state, event, ts, m in rows:
            empty(state, event, ts, None, m)
        bare = time.process_time() - started
        started = time.process_time()
        for state, event, ts, m in rows:
            hook.before_event(state, event, ts, settings, m)  # type: ignore[arg-type]
        times.append(time.process_time() - started - bare)
    return statistics.median(times) / len(rows) * 1e6, new / len(rows)


def held_trigger_cost(repeats: int, calls: int = 2000) -> tuple[float, float]:
    """Microseconds of CPU a trigger costs when it is sent at once (a playbook without a window) and
    when it is held for the customer's hour and released by a later tick (with a 24h window): one
    customer in Tokyo with ten mornings at 09:10, then a first use at 15:00, then the clock to 09:00
    the next day (both), on copies of the state."""
    tokyo = ZoneInfo("Asia/Tokyo")
    held = ProfileState().with_profile(Profile(customer_id="c1", updated_at=datetime(2026, 1, 1, tzinfo=UTC),
                                               timezone="Asia/Tokyo"))
    models, config, state = PartitionModels(0), EngineConfig(), None
    for day in range(1, 11):
        event = PageView(event_id=f"p{day}", customer_id="c1", occurred_at=datetime(2026, 11, day, 9, 10, tzinfo=tokyo))
        state = process(state, event, config, profile=held, models=models).state
    use = FeatureUsed(event_id="f", customer_id="c1", feature="export",
                      occurred_at=datetime(2026, 11, 11, 15, tzinfo=tokyo))
    release = datetime(2026, 11, 12, 9, tzinfo=tokyo).timestamp()
    book = "policy:\n  arbitration_window: 1h\nplaybooks:\n  - {name: tip, on: [feature_first_use], channels: [in_app],"
    at_once, windowed = parse_rules(book + " priority: 40}"), parse_rules(book + " priority: 40, send_window: 24h}")
    assert state is not None

    def now() -> None:  # the clock moves to the same time (a daily look falls in between in both)
        for _ in range(calls):
            step = process(state.copy(), use, config, at_once, held, models)
            assert step.state is not None and step.triggers
            assert not tick(step.state, release, config, at_once, held, models).triggers

    def later() -> None:
        for _ in range(calls):
            step = process(state.copy(), use, config, windowed, held, models)
            assert step.state is not None and not step.triggers
            assert tick(step.state, release, config, windowed, held, models).triggers

    times = interleaved({"now": now, "held": later}, repeats)
    return times["now"][0] / calls * 1e6, times["held"][0] / calls * 1e6


def hold_cost(calls: int) -> float:
    """Microseconds of CPU per :func:`hold` (a customer with their own hours, Tokyo, quiet hours), the
    best of 5 rounds (as the machine-speed reference)."""
    own = b""
    for hour in (9, 9, 9, 10, 20, 9, 9, 21, 9, 9):
        own = counted(own, hour)
    activity, quiet = Activity(own, None), QuietHours.parse("22:00-08:00")
    instants = [1_780_000_000.0 + 997 * i for i in range(calls)]

    def calls_of_hold() -> None:
        for now in instants:
            hold(now, 86_400.0, "Asia/Tokyo", activity, quiet, "Asia/Tokyo")

    return min(timeit.repeat(calls_of_hold, number=1, repeat=5, timer=time.process_time)) / calls * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", choices=("events", "triggers", "pieces"), help="one part only")
    args = parser.parse_args()
    events = build_workload(args.events, 2000, end=END).events
    for event in events:
        _ = event.epoch
    config, partitions = engine_config(), load_catalogue().partitions
    without = EngineConfig(Registry(tuple(d for d in builtin_registry() if d.name != active_hours.NAME)),
                           **config.changed())
    rules = load_rules(Settings().playbooks_file)
    windowed = replace(rules, playbooks=tuple(replace(p, send_window=86_400.0) if p.name == "feature_welcome" else p
                                              for p in rules.playbooks), by_name={}, by_signal={})
    if args.only in (None, "events"):
        per_event_lines(events, config, without, rules, partitions, args.repeats)
    if args.only in (None, "triggers"):
        per_trigger_lines(events, config, rules, windowed, partitions, args.repeats)
    if args.only in (None, "pieces"):
        print(f"sendwindow.hold alone: {hold_cost(20_000):.2f} µs per call")
        sent, held = held_trigger_cost(args.repeats)
        print(f"a trigger sent at once: {sent:.1f} µs; held for the customer's hour and released by the tick:"
              f" {held:.1f} µs; added per held trigger: {held - sent:+.1f} µs (process() and tick() in both)")
        reference = min(timeit.repeat("sum(range(1000))", number=2000, repeat=5, timer=time.process_time)) / 2000 * 1e6
        print(f"machine speed reference: sum(range(1000)) takes {reference:.1f} µs here")
        hook, share = hook_cost(events, args.repeats)
        print(f"active-hours hook alone: {hook:.3f} µs per event (median of {args.repeats}); {share:.1%} of events"
              " open a new active hour")
    return 0


def per_event_lines(events: list[InboundEvent], config: EngineConfig, without: EngineConfig, rules: Rules,
                    partitions: int, repeats: int) -> None:
    n = len(events)
    per_event = interleaved({"A without active hours": lambda: run(events, without, rules, partitions),
                             "B with active hours": lambda: run(events, config, rules, partitions)}, repeats)
    for name, (cpu, (_fired, size, states)) in per_event.items():
        print(f"{name}: {cpu / n * 1e6:.2f} µs/event CPU (median of {repeats}), mean state {size / states:.0f} B")
    (a, ra), (b, rb) = per_event.values()
    grown = rb[1] / rb[2] - ra[1] / ra[2]
    print(f"per event added: {(b - a) / n * 1e6:+.3f} µs ({b / a - 1:+.1%}); mean state {grown:+.1f} B")


def per_trigger_lines(events: list[InboundEvent], config: EngineConfig, rules: Rules, windowed: Rules,
                      partitions: int, repeats: int) -> None:
    per_trigger = interleaved({"C shipped playbooks": lambda: run(events, config, rules, partitions),
                               "D feature_welcome with send_window 24h": lambda: run(events, config, windowed,
                                                                                    partitions)}, repeats)
    (c, rc), (d, rd) = per_trigger.values()
    welcome = rc[0]["feature_welcome"]
    print(f"C: {sum(rc[0].values())} triggers, feature_welcome {welcome}; D: {sum(rd[0].values())} triggers,"
          f" feature_welcome {rd[0]['feature_welcome']}; CPU C {c:.2f} s, D {d:.2f} s")
    print(f"per send-window trigger added: (D - C) / {welcome} = {(d - c) / max(welcome, 1) * 1e6:+.1f} µs")


if __name__ == "__main__":
    sys.exit(main())
