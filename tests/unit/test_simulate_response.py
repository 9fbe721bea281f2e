"""The simulator's response model: hidden types, the hour effect, variants and the true uplift."""

from __future__ import annotations

from collections import Counter
from statistics import mean

import pytest

from forethought.simulate.plans import SimulationConfig, plan_customer
from forethought.simulate.population import truth
from forethought.simulate.response import (
    CHANNELS,
    OFF_HOUR_FLOOR,
    ResponseModel,
    UnknownVariant,
    hour_factor,
)
from forethought.simulate.timeline import HOUR_MS

CONFIG = SimulationConfig(customers=600, days=30, seed=11, churn_rate=0.4)
PLANS = [plan_customer(CONFIG, i) for i in range(CONFIG.customers)]


def _reactions(model: ResponseModel, order: list[int]) -> dict[int, object]:
    return {i: model.react(PLANS[i], "email", "default", PLANS[i].active_from, f"t-{i}") for i in order}


def test_same_seed_same_traits_and_answers_whatever_the_order() -> None:
    forward = _reactions(ResponseModel(11), list(range(100)))
    backward = _reactions(ResponseModel(11), list(reversed(range(100))))
    assert forward == backward
    other = ResponseModel(12)
    assert [ResponseModel(11).traits(p) for p in PLANS] != [other.traits(p) for p in PLANS]


def test_types_follow_the_plan_and_all_four_occur() -> None:
    model = ResponseModel(11)
    kinds = Counter(model.traits(p).kind for p in PLANS)
    assert set(kinds) == {"persuadable", "lost_cause", "sure_thing", "sleeping_dog"}
    for plan in PLANS:
        kind = model.traits(plan).kind
        assert (kind in ("persuadable", "lost_cause")) == (plan.dropoff is not None)


def test_persuadables_come_back_and_sleeping_dogs_leave() -> None:
    model = ResponseModel(11)
    fates: dict[str, Counter[str]] = {}
    for plan in PLANS:
        kind = model.traits(plan).kind
        for k in range(20):
            reaction = model.react(plan, "in_app", "default", plan.active_from + k * 7 * HOUR_MS, f"m{k}")
            tally = fates.setdefault(kind, Counter())
            tally["messages"] += 1
            tally["returned"] += reaction.returned is not None
            tally["left"] += reaction.left is not None
            tally["clicked"] += reaction.clicked is not None
    assert fates["persuadable"]["returned"] > 0.1 * fates["persuadable"]["messages"]
    assert fates["sleeping_dog"]["left"] > 0.1 * fates["sleeping_dog"]["messages"]
    for kind in ("sure_thing", "lost_cause", "sleeping_dog"):
        assert fates[kind]["returned"] == 0
    for kind in ("sure_thing", "lost_cause", "persuadable"):
        assert fates[kind]["left"] == 0
    assert fates["lost_cause"]["clicked"] == fates["sleeping_dog"]["clicked"] == 0
    uplift = {kind: mean(model.uplift(p, "email", "default") for p in PLANS if model.traits(p).kind == kind)
              for kind in fates}
    assert uplift["persuadable"] > 0.05 > 0 == uplift["sure_thing"] == uplift["lost_cause"] > uplift["sleeping_dog"]


def test_a_message_at_the_customers_busy_hour_works_better() -> None:
    model = ResponseModel(11)
    office = [p for p in PLANS if p.segment.profile == "office"][:80]
    busy, night = Counter(), Counter()
    for plan in office:
        day = plan.active_from - plan.active_from % (24 * HOUR_MS) + 2 * 24 * HOUR_MS
        factors = {h: hour_factor(plan, day + h * HOUR_MS) for h in range(24)}
        peak, low = max(factors, key=factors.__getitem__), min(factors, key=factors.__getitem__)
        assert factors[peak] > factors[low] >= OFF_HOUR_FLOOR
        for k in range(25):
            busy["opened"] += model.react(plan, "email", "default", day + peak * HOUR_MS, f"b{k}").opened is not None
            night["opened"] += model.react(plan, "email", "default", day + low * HOUR_MS, f"n{k}").opened is not None
    assert busy["opened"] > 1.8 * night["opened"]
    plan = office[0]
    assert model.p_open(plan, "email", None, 1.0) > model.p_open(plan, "email", None, OFF_HOUR_FLOOR)


def test_variants_change_the_odds_by_segment_and_unknown_ones_are_refused() -> None:
    model = ResponseModel(11)
    monthly = next(p for p in PLANS if p.segment.name == "monthly" and model.traits(p).kind == "persuadable")
    daily = next(p for p in PLANS if p.segment.name == "daily" and model.traits(p).kind == "persuadable")
    assert model.uplift(monthly, "email", "offer") > model.uplift(monthly, "email", "default")
    assert model.uplift(daily, "email", "offer") < model.uplift(daily, "email", "default")
    assert model.p_click(daily, "email", None) == model.p_click(daily, "email", "default")
    with pytest.raises(UnknownVariant, match="unknown variant 'nope'"):
        model.react(daily, "email", "nope", daily.active_from, "t")
    assert model.uplift(daily, "webhook", "default") == 0.0  # nobody reads a webhook


def test_truth_gives_type_and_uplift_per_channel_and_variant() -> None:
    small = SimulationConfig(customers=40, days=10, seed=11)
    model = ResponseModel(11)
    for row in truth(small):
        plan = plan_customer(small, int(row["customer_id"].split("-")[1]))
        response = row["response"]
        assert response["type"] == model.traits(plan).kind
        assert set(response["uplift"]) == set(CHANNELS)
        assert set(response["uplift"]["email"]) == {"default", "offer", "personal", "short"}
        assert response["uplift"]["email"]["default"] == round(model.uplift(plan, "email", "default"), 4)
        busy, quiet = response["uplift"]["in_app"]["default"], response["uplift_off_hours"]["in_app"]["default"]
        assert abs(busy) >= abs(quiet)
        assert (busy == 0) == (response["type"] in ("sure_thing", "lost_cause"))
