"""Usage anomalies through the engine: spikes and drops against the customer's own level."""

from __future__ import annotations

import random
from datetime import datetime, timezone

from forethought.contracts.events import Usage
from forethought.core.config import EngineConfig
from forethought.core.engine import process

CONFIG = EngineConfig()
START = datetime(2026, 9, 7, tzinfo=timezone.utc).timestamp()


def run(quantities: list[float], metric: str = "api_calls") -> list:
    state, fired = None, []
    for i, quantity in enumerate(quantities):
        event = Usage(event_id=f"u{i}", customer_id="c", metric=metric, quantity=quantity, unit="calls",
                      occurred_at=datetime.fromtimestamp(START + 600 * i, tz=timezone.utc))
        step = process(state, event, CONFIG)
        state, fired = step.state, fired + [t for t in step.triggers if t.playbook == "usage_anomaly"]
    return fired


def noisy(n: int, level: float, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [level * rng.lognormvariate(0, 0.4) for _ in range(n)]


def test_a_tenfold_spike_fires_once_per_episode_with_its_evidence() -> None:
    fired = run(noisy(40, 500) + [5_000, 6_000, 5_500] + noisy(10, 500, seed=2))
    assert [t.context["direction"] for t in fired] == ["spike"]
    assert fired[0].reasons[0].observed == 5_000 and 300 < fired[0].reasons[0].baseline < 800
    assert "x this customer's usual" in fired[0].reasons[0].text


def test_a_sustained_drop_fires_after_two_low_reports_not_one() -> None:
    assert run(noisy(40, 500) + [20] + noisy(5, 500, seed=3)) == []
    fired = run(noisy(40, 500) + [20, 25, 30])
    assert [t.context["direction"] for t in fired] == ["drop"]


def test_the_ordinary_tail_of_a_frequent_reporter_rarely_counts_as_an_anomaly() -> None:
    false_alarms = sum(len(run(noisy(4_000, 500, seed=seed))) for seed in range(10, 15))
    assert false_alarms <= 1, f"{false_alarms} false alarms in 20,000 ordinary reports"


def test_nothing_fires_before_the_customer_has_a_baseline() -> None:
    assert run([500, 500, 5_000]) == []
