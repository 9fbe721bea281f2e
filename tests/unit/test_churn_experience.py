"""The learned churn correction's experience features (core.churn_context): taken at an example's
start from the state and the profile, learned with it, scored the same way; old checkpoints, old
slices and garbled bytes keep working."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from forethought.contracts.events import ErrorEvent, PageView
from forethought.contracts.records import Outcome, Profile
from forethought.core import btyd, churn_context
from forethought.core.churn_learned import HISTORY, NAMES, Correction, features
from forethought.core.config import EngineConfig
from forethought.core.detectors import churn
from forethought.core.detectors import churn_learned as cl
from forethought.core.engine import facts, observe_outcome, observe_profile, process, tick
from forethought.core.models import PartitionModels
from forethought.core.policy.profiles import ProfileState
from forethought.core.state import CustomerState

T0 = 1_790_000_040.0
DAY = 86_400.0
CONFIG = EngineConfig(churn_learn_prior=False, churn_learn_experience=True)
PRIOR = churn.prior(CONFIG.section("churn"), None)


def at(t: float) -> datetime:
    return datetime.fromtimestamp(t, tz=UTC)


def held(plan: str | None, signup: date | None) -> ProfileState:
    return ProfileState(Profile(customer_id="c", updated_at=at(T0 - DAY), plan=plan, signup_date=signup))


def first_example(events: list[PageView | ErrorEvent], profile: ProfileState,
                  config: EngineConfig = CONFIG) -> CustomerState:
    """The customer after their ``profile`` arrived, then ``events`` and the first look after them
    (where an example starts)."""
    state = None
    if profile.profile is not None:
        state = observe_profile(None, ProfileState(), profile.profile, T0 - 1, config).state
    for event in events:
        state = process(state, event, config, profile=profile, models=PartitionModels()).state
    assert state is not None
    return tick(state, events[-1].occurred_at.timestamp() + 1.5 * DAY, config, profile=profile,
                models=PartitionModels()).state


def visits_with_errors(errors: int) -> list[PageView | ErrorEvent]:
    out: list[PageView | ErrorEvent] = [PageView(event_id="p0", customer_id="c", occurred_at=at(T0))]
    out += [ErrorEvent(event_id=f"e{i}", customer_id="c", occurred_at=at(T0 + 60 * (i + 1)), code="E500",
                       message="boom") for i in range(errors)]
    return out


def test_an_example_keeps_the_experience_of_its_start_errors_plan_and_tenure() -> None:
    """A customer who signed up a year before they were first seen, on a paid plan, who met errors:
    the example that starts at the next look carries all three, as the customer was then."""
    profile = held("Pro", at(T0 - 365 * DAY).date())
    state = first_example(visits_with_errors(3), profile)
    lived = churn_context.values(cl.of(state).experience)
    assert cl.of(state).example_days > 0 and len(cl.of(state).experience) == len(churn_context.FEATURES)
    assert lived["error_share"] == pytest.approx(3 / 4, abs=0.01)
    assert lived["paid_plan"] == 1.0
    assert lived["log_tenure_days"] == pytest.approx(5.9, abs=0.05)  # ln(1 + ~366 days), not ln(1 + 1.5)
    free = first_example(visits_with_errors(0), held("free", None))
    plain = churn_context.values(cl.of(free).experience)
    assert plain["error_share"] == 0.0 and plain["paid_plan"] == 0.0 and plain["log_tenure_days"] < 1.0


def test_scores_read_the_same_experience_without_the_profile_at_hand() -> None:
    """Playbooks and explain() score without the profile: the plan and signup noted in the slice when
    the profile arrived stand in."""
    state = first_example(visits_with_errors(1), held("enterprise", at(T0 - 30 * DAY).date()))
    now = cl.example_at(state)
    assert now is not None
    assert cl.experience(state, now, CONFIG.section(cl.NAME)) == cl.of(state).experience


def test_the_correction_learns_what_the_experience_says() -> None:
    """Identical histories; the ones who met errors stay silent. Warm, the correction scores an
    erroring customer above an untroubled one: a thing buy-till-you-die cannot see."""
    model = Correction(min_labels=50)
    p = btyd.p_silent(PRIOR, 2, 10.0, 20.0, 14.0)
    for i in range(400):
        troubled = i % 2 == 0
        lived = churn_context.codes(churn_context.Experience(errors=8 if troubled else 0, events=40))
        model.learn(features(2, 10.0, 20.0, p, lived), p, silent=troubled)
    calm = features(2, 10.0, 20.0, p, churn_context.codes(churn_context.Experience(errors=0, events=40)))
    rough = features(2, 10.0, 20.0, p, churn_context.codes(churn_context.Experience(errors=8, events=40)))
    assert model.warm and model.blend(p, rough) > p > model.blend(p, calm)
    assert model.weights["error_share"] > 0


def test_a_checkpoint_written_before_the_experience_loads_and_learns_it() -> None:
    old = Correction(min_labels=4)
    p = btyd.p_silent(PRIOR, 1, 3.0, 9.0, 7.0)
    for i in range(8):
        old.learn(features(1, 3.0, 9.0, p), p, silent=i % 2 == 0)
    data = {**old.to_data(), "features": list(HISTORY)}  # as the previous release wrote it
    assert set(data["weights"]) == set(HISTORY)
    again = Correction(min_labels=4)
    again.load_data(data)
    assert again.warm and again.blend(p, features(1, 3.0, 9.0, p)) == old.blend(p, features(1, 3.0, 9.0, p))
    again.learn(features(1, 3.0, 9.0, p, churn_context.codes(churn_context.Experience())), p, silent=True)
    assert set(again.weights) == set(NAMES) and again.counts["error_share"] == 1


def test_an_example_started_before_the_upgrade_is_learned_on_its_history_only() -> None:
    """A stored example without experience bytes (or with garbled ones) is learned from what it has:
    the experience statistics do not move, the history ones do."""
    models = PartitionModels()
    state = first_example(visits_with_errors(0), held(None, None))
    for garbled in (b"", b"\x01\x02\x03"):
        again = state.copy()
        cl.of(again).experience = garbled
        assert CustomerState.from_bytes(again.to_bytes(), CONFIG) == again
        begun = cl.example_at(again)
        assert begun is not None
        done = tick(again, begun + cl.of(again).example_days * DAY + 1, CONFIG, models=models)
        (label,) = [o.detail for o in done.observations if o.kind == "label" and o.detail["model"] == "churn"]
        assert set(label["features"]) == set(HISTORY)
    assert "error_share" not in models.churn_learned.counts and models.churn_learned.counts["one_time"] == 2


def test_engaged_messages_are_counted_and_reach_the_experience() -> None:
    state = first_example(visits_with_errors(0), held(None, None))
    engaged = Outcome(outcome_id="o1", trigger_id="t1", customer_id="c", channel="email", status="clicked",
                      occurred_at=at(T0 + 2 * DAY))
    after = observe_outcome(state, ProfileState(), engaged, CONFIG).state
    assert after is not None and cl.of(after).engaged == 1
    assert churn_context.values(cl.experience(after, T0 + 2 * DAY, CONFIG.section(cl.NAME)))["log_engaged"] > 0.6


def test_off_by_default_the_correction_learns_from_the_history_only() -> None:
    off = EngineConfig(churn_learn_prior=False)
    state = first_example(visits_with_errors(2), held("pro", None), off)
    assert cl.of(state).experience == b"" and cl.of(state).example_days > 0
    assert set(cl.score(state, T0 + 3 * DAY, _moment(off))[2]) == set(HISTORY)
    assert "churn_learned" in facts(state, T0 + 3 * DAY, off, PartitionModels())["scores"]


def _moment(config: EngineConfig) -> cl.Moment:
    return cl.Moment(at=T0, config=config, models=PartitionModels())


def test_the_experience_learned_is_that_of_the_start_not_of_the_future() -> None:
    """Errors met during the example are not what the model learns from: the start's experience is."""
    models = PartitionModels()
    state = first_example(visits_with_errors(0), held(None, None))
    begun, days = cl.example_at(state), cl.of(state).example_days
    assert begun is not None and days > 1
    for i in range(5):  # a bad day inside the example's horizon
        error = ErrorEvent(event_id=f"later{i}", customer_id="c", occurred_at=at(begun + DAY + i), code="E500")
        state = process(state, error, CONFIG, models=models).state
    now = churn_context.values(cl.experience(state, begun + days * DAY, CONFIG.section(cl.NAME)))
    assert now["error_share"] > 0.5
    done = tick(state, begun + days * DAY + 1, CONFIG, models=models)
    (label,) = [o.detail for o in done.observations if o.kind == "label" and o.detail["model"] == "churn"]
    assert label["features"]["error_share"] == 0.0 and models.churn_learned.means["error_share"] == 0.0


def test_the_kept_experience_costs_a_few_bytes_and_round_trips() -> None:
    state = first_example(visits_with_errors(2), held("pro", at(T0 - 400 * DAY).date()))
    assert CustomerState.from_bytes(state.to_bytes(), CONFIG) == state
    bare = state.copy()
    bare.slices["churn_learned"] = cl.ChurnLearnedState()
    assert len(state.to_bytes()) - len(bare.to_bytes()) <= 24  # the example, 8 experience bytes, plan, signup


def test_only_a_profile_record_notes_the_plan_so_a_crash_replay_ends_alike() -> None:
    """After a crash the profile table can be ahead of the records run again: an event run with the
    newer profile at hand must not copy it into the state (the undisturbed run had not seen it yet)."""
    profile = held("pro", at(T0 - 30 * DAY).date())
    ahead = process(None, visits_with_errors(0)[0], CONFIG, profile=profile).state
    assert cl.of(ahead).paid is None and cl.of(ahead).signup_day is None
    noted = observe_profile(ahead, ProfileState(), profile.profile, T0 + 1, CONFIG).state  # type: ignore[arg-type]
    assert noted is not None and cl.of(noted).paid == 1 and cl.of(noted).signup_day is not None
