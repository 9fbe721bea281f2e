"""scores.churn_learned (core.churn_learned, core.detectors.churn_learned): cadence-relative examples
learned only once their horizon passed, with the features of their start (no look-ahead), the cold
fallback to scores.churn, explain(), checkpoints (restart gives the same scores; forged ones refused)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from forethought.contracts.events import PageView
from forethought.core import btyd
from forethought.core.checkpoint import open_checkpoint, seal
from forethought.core.churn_learned import NAMES, Correction, features, horizon_days
from forethought.core.config import EngineConfig
from forethought.core.detectors import churn
from forethought.core.detectors import churn_learned as cl
from forethought.core.engine import explain, facts, process, tick
from forethought.core.models import PartitionModels
from forethought.core.state import CustomerState

T0 = 1_790_000_040.0
DAY = 86_400.0
CONFIG = EngineConfig(churn_learn_prior=False)  # the configured prior: horizons and scores are known numbers
S = CONFIG.section("churn_learned")
PRIOR = churn.prior(CONFIG.section("churn"), None)


def page(customer: str, n: int, at: float) -> PageView:
    return PageView(event_id=f"{customer}-{n}", customer_id=customer,
                    occurred_at=datetime.fromtimestamp(at, tz=UTC))


def active_days(customer: str, days: list[float], models: PartitionModels | None,
                config: EngineConfig = CONFIG) -> CustomerState:
    """A customer active once on each of ``days`` (days after T0), every due look run on the way."""
    state = None
    for n, d in enumerate(days):
        at = T0 + d * DAY
        if state is not None:
            state = tick(state, at - 1, config, models=models).state
        state = process(state, page(customer, n, at), config, models=models).state
    assert state is not None
    return state


def labels_of(step_observations: object) -> list[dict[str, object]]:
    return [o.detail for o in step_observations if o.kind == "label" and o.detail["model"] == "churn"]  # type: ignore[attr-defined]


# ---- labels: known only when the horizon has passed, with the start's features -------------------

def test_the_example_horizon_is_relative_to_the_customers_own_cadence() -> None:
    """A customer active every day gets a horizon of a few days, a monthly one of months: a weekly
    customer silent for 10 days is not a daily customer silent for 10 days."""
    daily = horizon_days(x=30, T=30.0, r=PRIOR.r, alpha=PRIOR.alpha, multiple=2.0, low=1.0, high=90.0)
    monthly = horizon_days(x=3, T=90.0, r=PRIOR.r, alpha=PRIOR.alpha, multiple=2.0, low=1.0, high=90.0)
    assert daily <= 3 and monthly >= 40


def test_a_customer_who_comes_back_is_not_learned_before_the_horizon_passes() -> None:
    """Right-censoring, and no selection by the answer: the "came back" answer is only noted; the
    example is learned at the first look at or after its horizon, like a "silent" one."""
    models = PartitionModels()
    state = active_days("back", [0], models)
    step = tick(state, T0 + 1.5 * DAY, CONFIG, models=models)  # the first look: an example starts
    sl = cl.of(step.state)
    begun, days = cl.example_at(step.state), sl.example_days
    assert begun is not None and days > 2 and models.churn_learned.labels == 0
    back = process(step.state, page("back", 9, begun + DAY), CONFIG, models=models)
    assert models.churn_learned.labels == 0 and not labels_of(back.observations)
    assert cl.of(back.state).back_repeats == 0 and cl.of(back.state).back_hours == round((begun - T0) / 3600)  # noted
    before = tick(back.state, begun + days * DAY - 2 * DAY, CONFIG, models=models)
    assert models.churn_learned.labels == 0 and not labels_of(before.observations)
    after = tick(before.state, begun + days * DAY + DAY, CONFIG, models=models)
    (label,) = labels_of(after.observations)
    assert label["label"] == 0 and label["taken_at"] == begun and models.churn_learned.labels == 1


def test_a_silent_customer_is_labelled_silent_only_once_the_horizon_passed() -> None:
    models = PartitionModels()
    state = active_days("quiet", [0], models)
    step = tick(state, T0 + 1.5 * DAY, CONFIG, models=models)
    begun, days = cl.example_at(step.state), cl.of(step.state).example_days
    assert begun is not None and days > 0
    early = tick(step.state, begun + days * DAY - 1, CONFIG, models=models)
    assert models.churn_learned.labels == 0 and not labels_of(early.observations)
    late = tick(early.state, begun + days * DAY + DAY, CONFIG, models=models)
    (label,) = labels_of(late.observations)
    assert label["label"] == 1 and models.churn_learned.positives == 1
    assert cl.example_at(late.state) is not None  # the next example starts at the end of this one


def test_the_learned_features_are_those_of_the_start_not_of_the_future() -> None:
    """The customer comes back three times within the horizon: the model must learn the repeat count,
    last activity and age of the start (what a score at the start could see), nothing later."""
    models = PartitionModels()
    state = active_days("leak", [0], models)
    step = tick(state, T0 + 1.5 * DAY, CONFIG, models=models)
    begun, days = cl.example_at(step.state), cl.of(step.state).example_days
    assert begun is not None
    lived = cl.of(step.state).experience  # none by default (churn_learn_experience: test_churn_experience.py)
    assert lived == cl.experience(step.state, begun, CONFIG.section(cl.NAME)) == b""
    later = step.state
    for n, d in enumerate((1.0, 2.0, 3.0)):
        later = process(later, page("leak", 10 + n, begun + d * DAY), CONFIG, models=models).state
    assert churn.repeats(later) == 3
    done = tick(later, begun + days * DAY + DAY, CONFIG, models=models)
    (label,) = labels_of(done.observations)
    T = (begun - T0) / DAY
    expected = features(0, 0.0, T, btyd.p_silent(PRIOR, 0, 0.0, T, float(days)), lived)
    # x = 0 repeats, silent since the first day (the silence is kept in whole hours), the start's age
    assert label["features"]["log_repeats"] == 0.0 and label["features"]["one_time"] == 1.0
    assert label["features"]["log_age_days"] == expected["log_age_days"]
    assert {k: round(v - expected[k], 3) for k, v in label["features"].items() if abs(v - expected[k]) > 0.01} == {}
    assert models.churn_learned.means == label["features"]  # one example: its own values


def test_a_label_resolved_early_would_bias_the_model_and_is_not() -> None:
    """Half the customers come back a day into their example, half never: at any time before the
    horizons pass, nothing has been learned (learning the quick returns first would teach the model
    that customers come back); after, both kinds are learned."""
    models = PartitionModels()
    states = {}
    for i in range(10):
        state = active_days(f"b{i}", [0], models)
        states[i] = tick(state, T0 + 1.5 * DAY, CONFIG, models=models).state
    for i in range(0, 10, 2):
        states[i] = process(states[i], page(f"b{i}", 5, T0 + 2.5 * DAY), CONFIG, models=models).state
    shortest = min(cl.example_at(s) + cl.of(s).example_days * DAY for s in states.values())
    for i in states:
        states[i] = tick(states[i], shortest - DAY, CONFIG, models=models).state
    assert models.churn_learned.labels == 0
    for i in states:
        states[i] = tick(states[i], T0 + 100 * DAY, CONFIG, models=models).state
    assert models.churn_learned.labels >= 10 and 0 < models.churn_learned.positives < models.churn_learned.labels


# ---- the blend: cold fallback, warm correction, explain ---------------------------------------------

def test_cold_the_learned_score_is_the_churn_score_exactly() -> None:
    models = PartitionModels()
    state = active_days("cold", [0, 2, 9], models)
    for now in (T0 + 10 * DAY, T0 + 60 * DAY):
        found = facts(state, now, CONFIG, models)
        assert found["scores"]["churn_learned"] == found["scores"]["churn"]
    view = explain(state, T0 + 60 * DAY, CONFIG, models)["churn_learned"]
    assert view["correction"] == 0.0 and view["model"]["warm"] is False and "not applied" in view["reasons"][0]
    off = EngineConfig(churn_learn_prior=False, churn_learn_correction=False)
    assert facts(state, T0 + 60 * DAY, off, _warm())["scores"]["churn_learned"] == facts(
        state, T0 + 60 * DAY, off, _warm())["scores"]["churn"]


def _warm(n: int = 400) -> PartitionModels:
    """A partition whose correction learned that one-time customers stay silent more than BTYD says."""
    models = PartitionModels()
    model = models.churn_learned
    model.min_labels = 200
    for i in range(n):
        x = i % 3
        p = btyd.p_silent(PRIOR, x, 5.0 * x, 30.0, 20.0)
        model.learn(features(x, 5.0 * x, 30.0, p), p, silent=(x == 0) or i % 7 == 0)
    return models


def test_warm_the_correction_moves_the_score_and_explains_itself() -> None:
    models = _warm()
    state = active_days("warm", [0], models)
    now = T0 + 30 * DAY
    found = facts(state, now, CONFIG, models)["scores"]
    assert found["churn_learned"] > found["churn"]
    view = explain(state, now, CONFIG, models)["churn_learned"]
    assert view["model"]["warm"] and view["correction"] > 0 and view["btyd"] == pytest.approx(found["churn"], abs=1e-6)
    assert "one-time" in view["reasons"][0] or "odds" in view["reasons"][0]
    p = view["btyd"]
    assert view["score"] == pytest.approx(1 / (1 + math.exp(-(math.log(p / (1 - p)) + view["correction"]))), abs=1e-5)


# ---- checkpoints and stored states ---------------------------------------------------------------

def test_a_restart_from_the_checkpoint_gives_the_same_scores() -> None:
    models = _warm()
    again = PartitionModels.restore(models.to_bytes())
    assert again.origin == "restored" and again.churn_learned.to_data() == models.churn_learned.to_data()
    state = active_days("restart", [0, 4, 5], None)
    for now in (T0 + 6 * DAY, T0 + 90 * DAY):
        assert facts(state, now, CONFIG, again)["scores"] == facts(state, now, CONFIG, models)["scores"]
    header, payload = open_checkpoint(models.to_bytes())
    del payload["churn_learned"]  # written before the correction existed
    old = PartitionModels.restore(seal({k: v for k, v in header.items() if k != "sha256"}, payload))
    assert old.origin == "restored" and old.churn_learned.labels == 0


@pytest.mark.parametrize("forged", [
    [1], {"features": ["other"]}, {**Correction().to_data(), "weights": {"btyd_logit": "1"}},
    {**Correction().to_data(), "weights": {"__import__": 1.0}}, {**Correction().to_data(), "vars": {"one_time": -1.0}},
    {**Correction().to_data(), "counts": {"one_time": 1.5}}, {**Correction().to_data(), "labels": 2, "positives": 3},
    {**Correction().to_data(), "intercept": float("inf")}, {**Correction().to_data(), "labels": -1},
])
def test_a_forged_correction_is_refused_with_a_clear_error(forged: object) -> None:
    header, payload = open_checkpoint(_warm().to_bytes())
    payload["churn_learned"] = forged
    models = PartitionModels.restore(seal({k: v for k, v in header.items() if k != "sha256"}, payload))
    assert models.origin == "failed" and models.churn_learned.labels == 0
    assert "model checkpoint" in (models.problem or "") and "churn correction" in (models.problem or "")


def test_the_slice_round_trips_and_costs_a_few_bytes() -> None:
    models = PartitionModels()
    state = active_days("codec", [0, 1], models)
    state = tick(state, T0 + 2.5 * DAY, CONFIG, models=models).state
    assert cl.of(state).example_days > 0
    assert CustomerState.from_bytes(state.to_bytes(), CONFIG) == state
    bare = state.copy()
    bare.slices["churn_learned"] = cl.ChurnLearnedState()
    assert len(state.to_bytes()) - len(bare.to_bytes()) <= 12
    older = state.copy()
    del older.slices["churn_learned"]  # a state written before this detector
    assert CustomerState.from_bytes(older.to_bytes(), CONFIG).slice("churn_learned") == cl.ChurnLearnedState()


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        EngineConfig(churn_label_min_days=10, churn_label_max_days=5)
    with pytest.raises(ValueError):
        EngineConfig(churn_correction_rate=0)
    assert set(Correction().to_data()["features"]) == set(NAMES)


def test_playbooks_can_read_the_learned_score_and_misspelt_names_are_refused() -> None:
    from forethought.contracts.playbooks import PlaybookFile
    from forethought.core.policy.rules import compile_rules

    def book(when: str) -> object:
        return compile_rules(PlaybookFile.model_validate({"playbooks": [
            {"name": "churn_risk", "on": ["churn"], "when": when, "channels": ["email"], "priority": 50,
             "context": {"learned": "scores.churn_learned"}}], "policy": {"arbitration_window": "0s"}}))

    rules = book("scores.churn_learned >= 0.9")
    models = _warm()
    config = EngineConfig(churn_learn_prior=False)
    state = active_days("book", [0], None)
    due = churn.of(state).churn_deadline
    assert due is not None
    step = tick(state, due + 20 * DAY, config, rules, models=models)
    fired = [t for t in step.triggers if t.playbook == "churn_risk"]
    assert fired and 0.9 <= fired[0].context["learned"] <= 1.0
    with pytest.raises(ValueError):
        book("scores.churn_lerned >= 0.9")


def test_no_example_starts_that_idle_eviction_would_cut_short() -> None:
    """An example whose horizon ends after the customer would be evicted for idling is not started:
    silent customers' answers would be lost and returning ones' learned, teaching the model that long
    silences end in returns. The detector stays closed (no looks) until the customer is active again."""
    config = EngineConfig(churn_learn_prior=False, idle_ttl_seconds=60 * DAY, churn_label_max_days=20.0)
    models = PartitionModels()
    state = active_days("ttl", [0], models, config)
    state = tick(state, T0 + 1.5 * DAY, config, models=models).state
    started = []
    while cl.of(state).example_days > 0:  # 20-day examples while one fits before the eviction at day 60
        begun = cl.example_at(state)
        assert begun is not None and begun + 21 * DAY <= T0 + 60 * DAY
        started.append(begun)
        state = tick(state, begun + 20 * DAY + 1, config, models=models).state
    assert len(started) == 2 and models.churn_learned.labels == 2  # the third would end after day 60
    assert cl.of(state).example_days == cl.CLOSED and cl.example_at(state) is None
    m = cl.Moment(at=started[-1] + 20 * DAY + 2, config=config, models=models)
    assert cl.ChurnLearned().look_due(state, m.at, config.section(cl.NAME), m) == cl.NEVER
    assert explain(state, m.at, config, models)["churn_learned"]["pending_example"] is None
    back = process(state, page("ttl", 9, T0 + 55 * DAY), config, models=models).state  # active again
    assert cl.of(back).example_days == 0
    again = tick(back, T0 + 57 * DAY, config, models=models).state
    assert cl.of(again).example_days == 20 and models.churn_learned.labels == 2  # a new one, after the return
