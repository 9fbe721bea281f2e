"""The learned population prior: newcomers are judged against how this partition's customers behave."""

from __future__ import annotations

import math
import random

from datetime import datetime, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from forethought.contracts.events import PageView
from forethought.core.config import EngineConfig
from forethought.core.engine import explain, process
from forethought.core.models import PartitionModels
from forethought.core.population import PopulationPrior
from forethought.core.state import CustomerState

DAY = 86_400.0
T0 = 1_790_000_000 - 1_790_000_000 % DAY
CONFIG = EngineConfig(prior_learned=True, prior_min_customers=10, visit_gap_seconds=600, prior_gap_seconds=DAY)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.floats(4.0, 14.0), st.floats(0.0, 3.0), st.floats(0.0, 3 * DAY - 1)), min_size=1,
                max_size=60), st.randoms(use_true_random=False))
def test_the_prior_depends_on_which_customers_were_seen_not_their_order(
        seen: list[tuple[float, float, float]], shuffler: random.Random) -> None:
    ordered, shuffled = PopulationPrior(min_customers=1), PopulationPrior(min_customers=1)
    for mean, var, at in seen:
        ordered.learn(mean, var, T0 + at)
    for mean, var, at in shuffler.sample(seen, len(seen)):
        shuffled.learn(mean, var, T0 + at)
    assert all(ordered.prior(T0 + d * DAY) == shuffled.prior(T0 + d * DAY) for d in range(6))


def test_a_window_is_used_only_from_two_windows_later_and_only_with_enough_customers() -> None:
    prior = PopulationPrior(window=DAY, min_customers=3)
    for i in range(3):
        prior.learn(math.log(3600), 0.1, T0 + 100 + i)
    assert prior.prior(T0 + DAY + 50) is None, "the day after: daily checks may still be on their way"
    mean, sd = prior.prior(T0 + 2 * DAY + 1) or (0, 0)
    assert round(math.exp(mean)) == 3600 and math.isclose(sd, math.sqrt(0.1), rel_tol=1e-4)
    prior.learn(math.log(60), 0.1, T0 + 3 * DAY)
    assert prior.prior(T0 + 5 * DAY) is None, "a day with fewer than min_customers gives no prior"


def visits(models: PartitionModels, customer: str, start: float, every: float, count: int,
           state: CustomerState | None = None) -> CustomerState:
    for n in range(count):
        at = datetime.fromtimestamp(T0 + start + n * every, tz=timezone.utc)
        step = process(state, PageView(event_id=f"{customer}-{start}-{n}", customer_id=customer, occurred_at=at),
                       CONFIG, models=models)
        assert step.state is not None
        state = step.state
    assert state is not None
    return state


def test_a_newcomer_in_an_hourly_population_is_judged_by_hours_not_the_configured_day() -> None:
    models = PartitionModels(config=CONFIG)
    for c in range(20):  # regulars who come back every hour or so, for three days
        visits(models, f"regular-{c}", c * 60.0, 3600.0 + 30 * c, 3 * 24 - 1)
    assert models.population.prior(T0 + 3 * DAY) is not None
    newcomer = visits(models, "newcomer", 3 * DAY, 3000.0, 2)
    view = explain(newcomer, T0 + 3 * DAY + 3000, CONFIG, models)
    assert view["population_prior"]["learned"]
    assert 3000 < view["population_prior"]["typical_gap_seconds"] < 5400
    assert view["silence_threshold_seconds"] < 0.5 * DAY, "a configured one-day prior would wait days"

    fixed = explain(newcomer, T0 + 3 * DAY + 3000, CONFIG.replace(prior_learned=False), models)
    assert (fixed["population_prior"]["typical_gap_seconds"], fixed["population_prior"]["learned"]) == (DAY, False)
    assert fixed["silence_threshold_seconds"] > view["silence_threshold_seconds"], "prior_learned: false keeps the day"


def test_the_learned_prior_survives_a_checkpoint() -> None:
    models = PartitionModels(partition=2, config=CONFIG)
    for c in range(12):
        visits(models, f"c{c}", c * 10.0, 7200.0, 40)
    at = T0 + 3 * DAY + 1
    restored = PartitionModels.restore(models.to_bytes(), partition=2, config=CONFIG)
    assert restored.population.prior(at) == models.population.prior(at) is not None
    assert restored.config_at(CONFIG, at) == models.config_at(CONFIG, at) != CONFIG


def test_a_daily_check_run_late_still_finds_the_window_its_prior_comes_from() -> None:
    prior = PopulationPrior(window=DAY, min_customers=1)
    prior.learn(math.log(3600), 0.1, T0 + 10)
    expected = prior.prior(T0 + 2 * DAY + 5)
    prior.learn(math.log(60), 0.1, T0 + 6 * DAY)  # the worker ran later customers' checks first
    assert expected is not None and prior.prior(T0 + 2 * DAY + 5) == expected
