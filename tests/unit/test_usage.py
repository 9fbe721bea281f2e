"""Usage anomalies through the engine: spikes and drops against the customer's own level."""

from __future__ import annotations

import math
import random
from datetime import datetime, timezone

from forethought.contracts.events import Usage
from forethought.core.config import EngineConfig
from forethought.core.detectors.usage import UsageSettings, observe
from forethought.core.engine import process

CONFIG = EngineConfig()
START = datetime(2026, 9, 7, tzinfo=timezone.utc).timestamp()


def run(quantities: list[float], metric: str = "api_calls", every: float = 600) -> list:
    """The usage triggers of one customer reporting ``quantities``, one report ``every`` seconds."""
    state, fired = None, []
    for i, quantity in enumerate(quantities):
        event = Usage(event_id=f"u{i}", customer_id="c", metric=metric, quantity=quantity, unit="calls",
                      occurred_at=datetime.fromtimestamp(START + every * i, tz=timezone.utc))
        step = process(state, event, CONFIG)
        state, fired = step.state, fired + [t for t in step.triggers if t.playbook == "usage_anomaly"]
    return fired


def noisy(n: int, level: float, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [level * rng.lognormvariate(0, 0.4) for _ in range(n)]


def test_a_tenfold_spike_fires_once_per_episode_on_its_second_high_report_with_its_evidence() -> None:
    fired = run(noisy(40, 500) + [5_000, 6_000, 5_500] + noisy(10, 500, seed=2))
    assert [t.context["direction"] for t in fired] == ["spike"]
    assert fired[0].reasons[0].observed == 6_000 and 300 < fired[0].reasons[0].baseline < 800
    assert "x this customer's usual" in fired[0].reasons[0].text


def test_one_stray_high_report_is_not_a_spike() -> None:
    assert run(noisy(40, 500) + [5_000] + noisy(10, 500, seed=2)) == []


def test_a_spike_does_not_become_the_new_normal_so_its_end_is_not_a_drop() -> None:
    spike = [v * 10 for v in noisy(60, 500, seed=4)]  # hours of reports at ten times the level
    fired = run(noisy(40, 500) + spike + noisy(20, 500, seed=5))
    assert [t.context["direction"] for t in fired] == ["spike"]
    assert 300 < fired[0].reasons[0].baseline < 800


def test_a_lasting_change_is_learned_as_the_new_level_after_a_week() -> None:
    risen = [v * 10 for v in noisy(80, 500, seed=6)]  # ten days at ten times the level, a report every 3 hours
    again = [v * 100 for v in noisy(3, 500, seed=7)]  # then ten times the new level
    fired = run(noisy(40, 500) + risen + again, every=3 * 3600)
    assert [t.context["direction"] for t in fired] == ["spike", "spike"]
    assert 3_000 < fired[1].reasons[0].baseline < 8_000, "the second spike is judged against the new level"


def test_a_small_quantity_metric_drops_as_visibly_as_a_large_one() -> None:
    small = run(noisy(20, 1.2, seed=8) + [0.1, 0.12, 0.08])
    large = run(noisy(20, 1_200, seed=8) + [100, 120, 80])
    assert [t.context["direction"] for t in small] == [t.context["direction"] for t in large] == ["drop"]


def test_a_new_customer_spike_is_caught_after_two_reports_of_baseline() -> None:
    fired = run([500, 520, 6_000, 5_500, 6_200])
    assert [t.context["direction"] for t in fired] == ["spike"]


def test_a_sustained_drop_fires_after_two_low_reports_not_one() -> None:
    assert run(noisy(40, 500) + [20] + noisy(5, 500, seed=3)) == []
    fired = run(noisy(40, 500) + [20, 25, 30])
    assert [t.context["direction"] for t in fired] == ["drop"]


def test_the_ordinary_tail_of_a_frequent_reporter_rarely_counts_as_an_anomaly() -> None:
    false_alarms = sum(len(run(noisy(4_000, 500, seed=seed))) for seed in range(10, 15))
    assert false_alarms <= 1, f"{false_alarms} false alarms in 20,000 ordinary reports"


def test_nothing_fires_before_the_customer_has_a_baseline() -> None:
    assert run([500, 500, 5_000]) == []


def test_a_kept_level_of_an_older_or_damaged_state_is_read_without_failing() -> None:
    s = UsageSettings()
    for kept in ([20, math.log1p(500), 0.16], [20, math.log1p(500), 0.16, 1, 0]):  # no episode; before `since`
        data, verdict = observe(kept, 500, s, at=START)
        assert verdict is None and len(data) == (6 if data[3] else 5)  # `since` only during an episode
    data, _ = observe([20, math.log1p(500), 0.16], 6_000, s, at=START)
    _, spike = observe(data, 6_500, s, at=START + 60)
    assert spike is not None and spike[0] == "spike"


def test_an_episode_keeps_its_start_only_while_it_lasts() -> None:
    """Outside an episode nothing reads when one began, so the metric's state drops it (9 bytes per
    metric in every stored state); a spike that lasts a week is still taken for a new level."""
    s = UsageSettings()
    data: list[float] = []
    for i in range(10):
        data, _ = observe(data, 100 + i, s, at=START + i)
    assert len(data) == 5
    data, _ = observe(data, 5_000, s, at=START + 100)
    data, spike = observe(data, 5_200, s, at=START + 160.7)
    assert spike is not None and data[3] == 1 and data[5] == float(int(START + 160.7))
    for i in range(3):
        data, _ = observe(data, 100, s, at=START + 200 + i)
    assert data[3] == 0 and len(data) == 5  # the spike ended: its start is gone
    data, _ = observe(data, 5_000, s, at=START + 300)
    data, again = observe(data, 5_100, s, at=START + 400)
    assert again is not None and data[5] == START + 400
    data, _ = observe(data, 5_050, s, at=START + 400 + s.usage_adapt_seconds)
    assert data[3] == 0 and data[0] == 1  # a week-long spike: the new level is learned anew
