"""scores.churn (core.detectors.churn, core.btyd): the closed form against lifetimes' own numbers, the
online prior, cold start, right-censoring of the prior's summaries, the signal, checkpoints and old states."""

from __future__ import annotations

import json
import math
import random
from datetime import date, datetime, timedelta, timezone

import pytest

from forethought.contracts.events import PageView
from forethought.contracts.playbooks import PlaybookFile
from forethought.contracts.records import Profile, Trigger
from forethought.core import btyd
from forethought.core.checkpoint import open_checkpoint, seal
from forethought.core.config import EngineConfig
from forethought.core.detectors import churn
from forethought.core.detectors.churn import ChurnState
from forethought.core.engine import Step, explain, observe_profile, process, tick
from forethought.core.models import PartitionModels
from forethought.core.policy.profiles import ProfileState
from forethought.core.policy.rules import compile_rules
from forethought.core.state import CustomerState

T0 = 1_790_000_040.0
DAY = 86_400.0
CONFIG = EngineConfig()
S = CONFIG.section("churn")
CONFIGURED = btyd.Params(S.churn_prior_r, S.churn_prior_alpha_days, S.churn_prior_a, S.churn_prior_b)

# lifetimes 0.11.3, ModifiedBetaGeoFitter with params_ = {r: 0.64, alpha: 51.3, a: 0.82, b: 1.24}:
# conditional_probability_alive(x, t_x, T), probability_of_n_purchases_up_to_time(t, 0) and
# _negative_log_likelihood (a mean over the customers) on this fixture.
LIFETIMES = btyd.Params(0.64, 51.3, 0.82, 1.24)
FIXTURE = [(0, 0.0, 1.0), (0, 0.0, 90.0), (1, 5.0, 30.0), (3, 60.0, 150.0), (10, 200.0, 210.0)]
LIFETIMES_P_ALIVE = [0.5989775535, 0.4415479384, 0.5992416652, 0.374272708, 0.9004951684]
LIFETIMES_P_NONE_14_90 = (0.9138627711245992, 0.7127885808094885)
LIFETIMES_MEAN_NLL = 13.27930011095989


def page(customer: str, n: int, at: float) -> PageView:
    return PageView(event_id=f"{customer}-{n}", customer_id=customer,
                    occurred_at=datetime.fromtimestamp(at, tz=timezone.utc))


def active_days(customer: str, days: list[int], models: PartitionModels | None,
                config: EngineConfig = CONFIG) -> CustomerState:
    """A customer active twice on each of ``days`` (days after T0)."""
    state = None
    for n, d in enumerate(days):
        for k in range(2):
            state = process(state, page(customer, 2 * n + k, T0 + d * DAY + k * 600), config, models=models).state
    assert state is not None
    return state


# ---- the closed form -----------------------------------------------------------------------------

def test_the_closed_form_gives_lifetimes_own_numbers() -> None:
    for (x, tx, T), expected in zip(FIXTURE, LIFETIMES_P_ALIVE):
        assert btyd.p_alive(LIFETIMES, x, tx, T) == pytest.approx(expected, abs=1e-9)
    # a newcomer's P(no activity in t) is MBG/NBD's unconditional P(X(t) = 0)
    assert [btyd.p_silent(LIFETIMES, 0, 0.0, 0.0, t) for t in (14.0, 90.0)] == pytest.approx(LIFETIMES_P_NONE_14_90)
    mean = -sum(btyd.loglik(LIFETIMES, *row) for row in FIXTURE) / len(FIXTURE)
    assert mean == pytest.approx(LIFETIMES_MEAN_NLL, rel=1e-12)


def test_the_score_grows_with_silence_and_falls_with_activity() -> None:
    silent = [btyd.p_silent(LIFETIMES, 3, 30.0, T, 14.0) for T in (31.0, 60.0, 120.0, 400.0)]
    assert silent == sorted(silent) and silent[0] < 0.8 < silent[-1] <= 1.0
    assert btyd.p_silent(LIFETIMES, 10, 118.0, 120.0, 14.0) < btyd.p_silent(LIFETIMES, 1, 118.0, 120.0, 14.0)
    age = btyd.age_at(LIFETIMES, 3, 30.0, 31.0, 14.0, 0.9, 3650.0)
    assert age is not None and btyd.p_silent(LIFETIMES, 3, 30.0, age, 14.0) == pytest.approx(0.9, abs=1e-4)


def test_the_online_fit_recovers_the_population_that_made_the_data() -> None:
    truth, rnd = btyd.Params(0.8, 10.0, 0.6, 2.5), random.Random(3)
    fit = btyd.OnlineFit(min_samples=200)
    for _ in range(2500):
        lam, p = rnd.gammavariate(truth.r, 1 / truth.alpha), rnd.betavariate(truth.a, truth.b)
        age, t, x, tx = rnd.uniform(7, 150), 0.0, 0, 0.0
        alive = rnd.random() >= p  # MBG/NBD: one may leave at the first activity too
        while alive and (t := t + rnd.expovariate(lam)) < age:
            x, tx = x + 1, t
            alive = rnd.random() >= p
        fit.learn(x, tx, age)
    got = fit.params()
    assert got is not None
    table = fit.table
    assert btyd.total_loglik(got, table) >= btyd.total_loglik(truth, table) - 1.0  # as likely as the truth
    assert got.r / got.alpha == pytest.approx(truth.r / truth.alpha, rel=0.25)  # the mean rate
    assert got.a / (got.a + got.b) == pytest.approx(truth.a / (truth.a + truth.b), rel=0.25)  # the mean p


# ---- through the engine ----------------------------------------------------------------------------

def test_a_brand_new_customer_is_scored_with_the_configured_prior_before_any_fit() -> None:
    models = PartitionModels()
    state = process(None, page("new", 0, T0), CONFIG, models=models).state
    assert state is not None
    view = explain(state, T0, CONFIG, models)["churn"]
    assert view["score"] == pytest.approx(btyd.p_silent(CONFIGURED, 0, 0.0, 0.0, 14.0), abs=1e-6)
    assert view["prior"]["learned"] is False and view["horizon_days"] == 14.0 and view["repeat_periods"] == 0
    assert explain(state, T0, CONFIG)["churn"]["score"] == view["score"]  # without models too
    assert len(view["reasons"]) == 3 and "No activity for" in view["reasons"][0]


def test_the_horizon_is_the_label_horizon_unless_set() -> None:
    state = active_days("h", [0, 3], None)
    own = explain(state, T0 + 10 * DAY, EngineConfig(label_horizon_seconds=7 * DAY))["churn"]
    set_ = explain(state, T0 + 10 * DAY, EngineConfig(churn_horizon_seconds=30 * DAY))["churn"]
    assert own["horizon_days"] == 7.0 and set_["horizon_days"] == 30.0 and own["score"] > set_["score"]


def test_repeat_periods_count_active_days_not_events() -> None:
    state = active_days("r", [0, 0, 1, 5], None)
    assert state.slice("churn").churn_repeats == 2 and state.events == 8


CHURN_RULES = compile_rules(PlaybookFile.model_validate({"playbooks": [
    {"name": "churn_risk", "on": ["churn"], "when": "scores.churn >= 0.9", "channels": ["email"], "priority": 50,
     "context": {"churn": "scores.churn"}}], "policy": {"arbitration_window": "0s"}}))


def churned(step: Step) -> list[Trigger]:
    return [t for t in step.triggers if t.playbook == "churn_risk"]


def test_the_churn_signal_fires_once_per_silence_at_its_threshold_with_reasons() -> None:
    state = active_days("quiet", [0, 2, 4, 6, 8], None)
    due = state.slice("churn").churn_deadline
    assert due is not None and state.last_seen is not None and due > state.last_seen
    early = tick(state, due - DAY, CONFIG, CHURN_RULES)
    assert not churned(early) and early.state is not None
    step = tick(early.state, due + 3600, CONFIG, CHURN_RULES)  # (set at the day's first event: minutes early)
    fired = churned(step)
    assert len(fired) == 1 and fired[0].scores["churn"] >= S.churn_threshold - 1e-6
    assert [r.signal for r in fired[0].reasons] == ["silence_seconds", "active_periods", "churn"]
    assert step.state is not None and not churned(tick(step.state, due + 30 * DAY, CONFIG, CHURN_RULES))
    back = process(step.state, page("quiet", 99, due + 2 * DAY), CONFIG, CHURN_RULES).state
    assert back is not None and back.slice("churn").churn_deadline is not None  # armed again


def test_a_summary_enters_the_prior_only_at_the_customers_own_fixed_age() -> None:
    """Right-censoring: the prior learns (x, t_x, T) at an age fixed by the id alone, never when the
    customer's activity says so; a customer younger than that age is not in it at all."""
    models = PartitionModels()
    state = active_days("census", [0, 1, 2], models)
    sample_at = churn.sample_at(state, S, CONFIG)
    age = (sample_at - T0) / DAY
    assert S.churn_sample_min_days <= age <= S.churn_sample_max_days
    before = tick(state, sample_at - DAY, CONFIG, models=models)
    assert models.churn.samples == 0 and not before.state.slice("churn").churn_sampled
    after = tick(before.state, sample_at + 2 * DAY, CONFIG, models=models)
    ((x, tx, T), weight), = models.churn.table.items()
    assert (x, tx, weight) == (2, 2, 1.0) and btyd._grid(age) - 4 <= T <= btyd._grid(age + 1) + 4  # days/weeks grid
    assert after.state.slice("churn").churn_sampled == 1
    tick(after.state, sample_at + 40 * DAY, CONFIG, models=models)
    assert models.churn.samples == 1  # once per customer


FIRST_DAY = datetime.fromtimestamp(T0, tz=timezone.utc).date()
OLD = FIRST_DAY - timedelta(days=730)  # a customer of two years first seen on FIRST_DAY
NO_PROFILE = ProfileState()


def _census_profile(signup: date | None, at: float = T0 + DAY) -> Profile:
    return Profile(customer_id="census", updated_at=datetime.fromtimestamp(at, tz=timezone.utc), signup_date=signup)


def _sampled(state: CustomerState, models: PartitionModels, held: ProfileState = NO_PROFILE) -> float:
    """The prior's samples once the customer's sampling look ran with ``held`` in the profile table."""
    after = tick(state, churn.sample_at(state, S, CONFIG) + 2 * DAY, CONFIG, profile=held, models=models)
    assert after.state.slice("churn").churn_sampled == 1, "looked at once, either way"
    return models.churn.samples


def test_a_customer_who_signed_up_long_before_their_first_event_does_not_teach_the_prior() -> None:
    """Left truncation: a customer of two years first seen today is not a newcomer with a short history."""
    def sampled(signup: date | None) -> float:
        models, profile = PartitionModels(), _census_profile(signup)
        state = active_days("census", [0, 1, 2], models)
        noted = observe_profile(state, NO_PROFILE, profile, T0 + DAY, CONFIG)  # the profile record
        assert noted.state is not None and noted.profile is not None
        return _sampled(noted.state, models, noted.profile)

    assert sampled(OLD) == 0
    assert sampled(FIRST_DAY - timedelta(days=3)) == 1, "signed up days before: their first event is their start"
    assert sampled(None) == 1, "no signup date: the first event is the start"
    assert _sampled(active_days("census", [0, 1, 2], models := PartitionModels()), models) == 1, "no profile"


def test_the_left_truncation_is_decided_from_the_state_not_the_profile_table() -> None:
    """The look reads the signup date its state noted from the latest profile record, so it decides
    alike whatever the profile table holds by then (after a crash, the table can be ahead of the records
    run again, or behind them): a profile noted before the look counts with the table emptied since, one
    only in the table (its record not applied to this state) does not, and a profile before any event
    counts from the first event."""
    models = PartitionModels()
    noted = observe_profile(active_days("census", [0, 1, 2], models), NO_PROFILE, _census_profile(OLD),
                            T0 + DAY, CONFIG).state
    assert noted is not None and _sampled(noted, models, NO_PROFILE) == 0
    ahead = ProfileState(_census_profile(OLD))
    assert _sampled(active_days("census", [0, 1, 2], models := PartitionModels()), models, ahead) == 1
    before = observe_profile(None, NO_PROFILE, _census_profile(OLD, T0 - DAY), T0 - DAY, CONFIG).state
    assert before is not None and before.first_seen is None
    state = process(before, page("census", 0, T0), CONFIG, models=(models := PartitionModels())).state
    assert state is not None and _sampled(state, models) == 0


def test_a_profile_record_older_than_the_table_reaches_a_state_that_has_not_seen_it() -> None:
    """After a crash the table can hold a newer profile than the records run again: the older record
    is still new to the state, which notes it (the undisturbed run did); a record older than what the
    state itself has seen (out of order) is not, and the table keeps the newer one in both cases."""
    state = active_days("census", [0, 1, 2], None)
    newer = ProfileState(_census_profile(None, T0 + 3 * DAY))  # flushed before the states: the table is ahead
    run_again = observe_profile(state, newer, _census_profile(OLD), T0 + DAY, CONFIG)
    assert run_again.profile == newer and run_again.state is not None
    assert run_again.state.slice("churn").churn_signup_day is not None
    assert run_again.state.profile_at == T0 + DAY
    caught_up = observe_profile(run_again.state, newer, _census_profile(None, T0 + 3 * DAY), T0 + 3 * DAY, CONFIG)
    assert caught_up.state is not None and caught_up.state.slice("churn").churn_signup_day is None
    stale = observe_profile(caught_up.state, newer, _census_profile(OLD, T0 + 2 * DAY), T0 + 4 * DAY, CONFIG)
    assert stale.state is not None and stale.state.slice("churn").churn_signup_day is None, "out of order: not noted"
    assert CustomerState.from_bytes(stale.state.to_bytes(), CONFIG).profile_at == T0 + 3 * DAY


def test_a_later_profile_without_a_signup_date_is_what_the_look_reads() -> None:
    """As the profile table does, the state keeps the latest profile's word: one without a signup date
    makes the first event the start again."""
    models = PartitionModels()
    state = active_days("census", [0, 1, 2], models)
    first = observe_profile(state, NO_PROFILE, _census_profile(OLD), T0 + DAY, CONFIG)
    assert first.state is not None and first.profile is not None
    second = observe_profile(first.state, first.profile, _census_profile(None, T0 + 2 * DAY), T0 + 2 * DAY, CONFIG)
    assert second.state is not None and second.profile is not None
    assert _sampled(second.state, models, second.profile) == 1


def test_the_learned_prior_replaces_the_configured_one_once_fitted() -> None:
    config = EngineConfig(churn_min_samples=20)
    models = PartitionModels(config=config)
    for i in range(30):
        state = active_days(f"c{i}", list(range(0, 2 + i % 5)), models, config)
        tick(state, T0 + 160 * DAY, config, models=models)
    assert models.churn.samples == 30 and models.churn.params() is not None
    view = explain(state, T0 + 160 * DAY, config, models)["churn"]
    assert view["prior"]["learned"] is True and view["prior"]["r"] == models.churn.params().r
    off = EngineConfig(churn_min_samples=20, churn_learn_prior=False)
    assert explain(state, T0 + 160 * DAY, off, models)["churn"]["prior"]["learned"] is False


# ---- checkpoints and stored states ---------------------------------------------------------------

def _learned(n: int = 40) -> PartitionModels:
    models = PartitionModels()
    models.churn.min_samples = 30
    for i in range(n):
        models.churn.learn(i % 4, float(10 * (i % 4)), 60.0 + i % 3)
    return models


def test_the_prior_survives_a_checkpoint_and_old_checkpoints_still_load() -> None:
    models = _learned()
    again = PartitionModels.restore(models.to_bytes())
    assert again.origin == "restored" and again.churn.table == models.churn.table
    assert again.churn.params() == models.churn.params() and again.churn.params() is not None
    header, payload = open_checkpoint(models.to_bytes())
    del payload["churn"]  # written before the churn score existed
    old = PartitionModels.restore(seal({k: v for k, v in header.items() if k != "sha256"}, payload))
    assert old.origin == "restored" and old.churn.params() is None and old.churn.samples == 0


@pytest.mark.parametrize("forged", [{"table": "x"}, {"table": [[1, 5, 2, 1.0]]}, {"table": [[1, 1, 2, -3]]},
                                    {"table": [], "fitted": {"r": -1, "alpha": 1, "a": 1, "b": 1}}, [1]])
def test_a_forged_churn_prior_is_refused_and_the_worker_goes_on_fresh(forged: object) -> None:
    header, payload = open_checkpoint(_learned().to_bytes())
    payload["churn"] = forged
    models = PartitionModels.restore(seal({k: v for k, v in header.items() if k != "sha256"}, payload))
    assert models.origin == "failed" and models.churn.samples == 0


def test_the_slice_round_trips_and_a_state_written_without_it_loads() -> None:
    state = active_days("codec", [0, 1, 3, 4], None)
    assert CustomerState.from_bytes(state.to_bytes(), CONFIG) == state
    older = state.copy()
    del older.slices["churn"]  # as a state written before the churn detector
    loaded = CustomerState.from_bytes(older.to_bytes(), CONFIG)
    assert loaded.slice("churn") == ChurnState()
    assert churn.repeats(loaded) == loaded.visits - 1  # visits stand in for the repeat days
    assert 0 < explain(loaded, T0 + 20 * DAY, CONFIG)["churn"]["score"] < 1
    assert CustomerState.from_bytes(json.dumps(state.to_dict()).encode(), CONFIG) == state  # the JSON form
    old_json = {k: v for k, v in state.to_dict().items() if k != "chn"}  # as written before the churn slice
    legacy = CustomerState.from_bytes(json.dumps(old_json).encode(), CONFIG)
    assert legacy.slice("churn") == ChurnState() and not math.isnan(explain(legacy, T0, CONFIG)["churn"]["score"])


def test_the_noted_signup_day_round_trips_and_a_slice_written_before_it_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    state = active_days("codec", [0, 1, 3, 4], None)
    churn.of(state).churn_signup_day = 19_000
    assert CustomerState.from_bytes(state.to_bytes(), CONFIG) == state
    as_json = state.to_dict()
    assert CustomerState.from_bytes(json.dumps(as_json).encode(), CONFIG) == state  # the JSON form
    as_json["chn"] = as_json["chn"][:4]  # as written before the signup day
    assert CustomerState.from_bytes(json.dumps(as_json).encode(), CONFIG).slice("churn").churn_signup_day is None
    monkeypatch.setattr(ChurnState, "FIELDS", ChurnState.FIELDS[:4])  # the table before the field was appended
    older = state.to_bytes()
    monkeypatch.undo()
    loaded = CustomerState.from_bytes(older, CONFIG)
    assert loaded.slice("churn").churn_signup_day is None  # no signup known: the first event is the start
    assert loaded.slice("churn").churn_repeats == churn.of(state).churn_repeats


def test_an_idle_customers_summary_keeps_what_the_score_needs() -> None:
    state = active_days("idle", [0, 3, 9], None)
    detector, part = churn.Churn(), churn.Churn().summarise(state, S)
    assert part == [2, 0]
    fresh = CustomerState.new("idle", CONFIG)
    fresh.first_seen, fresh.last_seen, fresh.visits = state.first_seen, state.last_seen, state.visits
    detector.revive(fresh, part, S)
    later = T0 + 300 * DAY
    assert explain(fresh, later, CONFIG)["churn"]["score"] == explain(state, later, CONFIG)["churn"]["score"]
    for bad in ([1], [-1, 0], [1, 2], [1.5, 0]):
        with pytest.raises(ValueError):
            detector.revive(fresh, bad, S)
