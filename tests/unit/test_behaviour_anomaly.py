"""The multivariate anomaly detector: Half-Space Trees per partition over customer-minute features."""

from __future__ import annotations

import random

from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forethought.contracts.events import ErrorEvent, PageView
from forethought.contracts.records import Trigger
from forethought.core.anomaly import WindowedTrees
from forethought.core.config import EngineConfig
from forethought.core.engine import explain, process
from forethought.core.models import PartitionModels
from forethought.core.state import CustomerState

FEATURES = ("a", "b", "c")
CONFIG = EngineConfig(anomaly_window_seconds=600, anomaly_min_reference=100, anomaly_alert_rate=0.01,
                      allowed_lateness_seconds=0, visit_gap_seconds=300)
T0 = 1_790_000_000 - 1_790_000_000 % 600  # a window boundary


def trees(**overrides: float) -> WindowedTrees:
    options = {"window": 100.0, "guard": 0.0, "alert_rate": 0.01, "min_reference": 50, "seed": 3, **overrides}
    return WindowedTrees(FEATURES, n_trees=10, height=8, **options)  # type: ignore[arg-type]


def ordinary(rng: random.Random) -> dict[str, float]:
    return {"a": rng.uniform(0.1, 0.3), "b": rng.uniform(0.2, 0.5), "c": rng.uniform(0.0, 0.2)}


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(T0 + seconds, tz=timezone.utc)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.randoms(use_true_random=False))
def test_scores_depend_on_which_observations_fell_in_a_window_not_their_order(seed: int, shuffler: random.Random) -> None:
    rng = random.Random(seed)
    windows = [[(w * 100 + rng.uniform(0, 99.9), ordinary(rng) if rng.random() < 0.97 else {"a": 0.9, "b": 0.9, "c": 0.9})
                for _ in range(120)] for w in range(4)]
    in_time, shuffled = trees(), trees()
    verdicts: list[list[object]] = [[], []]
    for window in windows:  # the worker sees each window in Kafka order, replay in event-time order
        for model, order, out in ((in_time, sorted(window, key=lambda o: o[0]), verdicts[0]),
                                  (shuffled, shuffler.sample(window, len(window)), verdicts[1])):
            out.extend(sorted((t, model.observe(x, t)) for t, x in order))
    assert verdicts[0] == verdicts[1]
    assert {w: (v.mass, v.count, v.scores) for w, v in in_time.windows.items()} == \
        {w: (v.mass, v.count, v.scores) for w, v in shuffled.windows.items()}


def test_the_alert_rate_holds_on_ordinary_traffic() -> None:
    model, rng = trees(window=1000.0, min_reference=500), random.Random(5)
    flagged = scored = 0
    for i in range(8000):
        verdict = model.observe(ordinary(rng), i * 1.0)
        scored += verdict.score is not None and verdict.threshold is not None
        flagged += verdict.anomalous
    assert scored >= 5000
    assert 0.002 <= flagged / scored <= 0.03, f"{flagged} of {scored} flagged at a 1% alert rate"


def test_an_outlier_is_flagged_and_the_feature_that_stands_out_comes_first() -> None:
    model, rng = trees(), random.Random(1)
    for i in range(300):
        model.observe(ordinary(rng), float(i))
    verdict = model.observe({"a": 0.2, "b": 0.3, "c": 0.95}, 301.0)
    assert verdict.anomalous and verdict.score is not None and verdict.threshold is not None
    assert verdict.score >= verdict.threshold
    name, value, usual, z = verdict.unusual[0]
    assert (name, value) == ("c", 0.95) and usual < 0.2 and z > 5
    assert not model.observe({"a": 0.2, "b": 0.3, "c": 0.1}, 302.0).anomalous


def test_cold_until_a_reference_window_holds_enough_and_cold_again_after_a_long_gap() -> None:
    model, rng = trees(), random.Random(2)
    first = [model.observe(ordinary(rng), float(i)) for i in range(100)]
    assert all(v.score is None and not v.anomalous for v in first), "no reference window yet"
    second = [model.observe(ordinary(rng), 100.0 + i) for i in range(100)]
    assert all(v.score is not None for v in second) and all(v.threshold is None for v in second), \
        "scores from window 0, but no scores yet to set a threshold from"
    assert model.observe(ordinary(rng), 250.0).threshold is not None
    assert model.observe(ordinary(rng), 900.0).score is None, "the reference window (800-900) saw nothing"
    assert len(model.windows) <= 4, "old windows are dropped"


def test_a_reference_that_scored_too_few_minutes_gives_no_threshold_rather_than_its_maximum() -> None:
    model, rng = trees(window=100.0, guard=20.0, min_reference=50), random.Random(6)
    for i in range(200):  # window -1: busy
        model.observe(ordinary(rng), -100.0 + i * 0.5)
    for i in range(30):  # window 0: a quiet day, too few minutes to be a reference
        model.observe(ordinary(rng), i * 3.0)
    for i in range(100):  # window 1: only its first 20 s are scored (against window -1); then cold
        model.observe(ordinary(rng), 100.0 + i * 0.99)
    assert model.windows[1].count >= 95 and 0 < model.windows[1].scored < 50
    verdicts = [model.observe(ordinary(rng), 220.0 + i * 0.5) for i in range(100)]
    assert all(v.threshold is None and not v.anomalous for v in verdicts), "21 scores cannot hold a 1% rate"


def test_minutes_arriving_late_within_the_guard_score_as_if_in_order() -> None:
    rng = random.Random(8)
    stream = sorted((rng.uniform(0, 400), ordinary(rng)) for _ in range(600))
    jittered = sorted(stream, key=lambda o: o[0] + rng.uniform(0, 15))  # at most 15 s out of order
    in_order, late = trees(guard=20.0), trees(guard=20.0)
    first = {t: in_order.observe(x, t) for t, x in stream}
    second = {t: late.observe(x, t) for t, x in jittered}
    assert first == second and any(v.score is not None for v in first.values())


def test_anomalies_are_not_learned_but_a_storm_of_them_raises_the_threshold() -> None:
    model, rng = trees(), random.Random(4)
    for i in range(200):
        model.observe(ordinary(rng), float(i))
    odd = {"a": 0.95, "b": 0.95, "c": 0.95}
    storm = [model.observe(odd, 200.0 + i) for i in range(60)]
    assert all(v.anomalous for v in storm)
    calm = [model.observe(ordinary(rng), 260.0 + i * 0.3) for i in range(100)]
    assert model.windows[2].count == sum(not v.anomalous for v in calm) >= 95, "the anomalies were scored, not learned"
    later = model.observe(odd, 305.0)
    assert later.score is not None and storm[0].score is not None and later.score >= storm[0].score - 0.001, \
        "still as isolated as before: the reference never learned them"
    assert later.threshold is not None and later.threshold > storm[0].threshold, \
        "a third of window 2's scores were that high: the threshold rose to hold the alert rate"


def _traffic(models: PartitionModels, minutes: int, customers: int = 30,
             fired: list[Trigger] | None = None) -> dict[str, CustomerState]:
    states: dict[str, CustomerState] = {}
    fired = [] if fired is None else fired
    rng = random.Random(9)
    for minute in range(minutes):
        for c in range(customers):
            cid = f"c{c}"
            for k in range(rng.randint(1, 3)):
                event = PageView(event_id=f"{cid}-{minute}-{k}", customer_id=cid, page="/home",
                                 occurred_at=at(minute * 60 + c + k * 7))
                step = process(states.get(cid), event, CONFIG, models=models)
                assert step.state is not None
                fired.extend(step.triggers)
                states[cid] = step.state
    return states


def test_an_error_burst_becomes_a_behaviour_anomaly_trigger_that_names_its_features() -> None:
    models = PartitionModels(config=CONFIG)
    states = _traffic(models, minutes=35)
    state, fired = states["c0"], []
    for i in range(15):
        event = ErrorEvent(event_id=f"burst-{i}", customer_id="c0", code="E500", occurred_at=at(35 * 60 + 1 + i * 3))
        step = process(state, event, CONFIG, models=models)
        state, fired = step.state, fired + list(step.triggers)
    step = process(state, PageView(event_id="after", customer_id="c0", page="/", occurred_at=at(36 * 60 + 5)),
                   CONFIG, models=models)  # the next minute closes the burst's minute
    behaviour = [t for t in [*fired, *step.triggers] if t.detector == "behaviour_anomaly"]
    assert len(behaviour) == 1, [t.detector for t in fired]
    trigger = behaviour[0]
    assert trigger.playbook == "unusual_behaviour" and trigger.scores["behaviour_anomaly"] >= trigger.scores["behaviour_threshold"]
    assert {r.signal for r in trigger.reasons} & {"bucket.errors", "bucket.error_share", "bucket.error_z"}
    errors = next(r for r in trigger.reasons if r.signal in ("bucket.errors", "bucket.error_share", "bucket.error_z"))
    assert errors.observed > errors.baseline and "spreads above what this partition usually sees" in errors.text
    assert trigger.context["bucket_start"] == T0 + 35 * 60


def test_ordinary_minutes_of_the_same_traffic_raise_nothing_once_warm() -> None:
    models = PartitionModels(config=CONFIG)
    _traffic(models, minutes=20)
    assert models.behaviour.threshold(T0 + 20 * 60) is not None, "warm: a reference with scores"
    fired: list[Trigger] = []
    _traffic(models, minutes=20, fired=fired)  # the same customers carry on, as usual
    minutes = 20 * 30
    assert len([t for t in fired if t.detector == "behaviour_anomaly"]) <= 0.03 * minutes, "about the 1% alert rate"


def test_models_checkpoint_their_trees_and_mismatched_checkpoints_start_the_trees_fresh() -> None:
    models = PartitionModels(partition=1, config=CONFIG)
    _traffic(models, minutes=25)
    probe = {name: 0.3 for name in models.behaviour.features}
    restored = PartitionModels.restore(models.to_bytes(), partition=1, config=CONFIG)
    assert restored.behaviour_origin == "restored"
    assert restored.behaviour.observe(probe, T0 + 1500) == models.behaviour.observe(probe, T0 + 1500)

    stricter = CONFIG.replace(anomaly_alert_rate=0.001, anomaly_min_reference=7, allowed_lateness_seconds=30)
    tuned = PartitionModels.restore(models.to_bytes(), partition=1, config=stricter).behaviour
    assert (tuned.alert_rate, tuned.min_reference, tuned.guard) == (0.001, 7, 30), "settings that keep the masses apply"
    floor = PartitionModels.restore(models.to_bytes(), partition=1, config=CONFIG.replace(anomaly_mass_floor=0.01))
    assert floor.behaviour_origin == "fresh", "another mass floor changes the score scale: fresh trees"

    taller = EngineConfig(anomaly_window_seconds=600, anomaly_tree_height=6)
    other = PartitionModels.restore(models.to_bytes(), partition=1, config=taller)
    assert (other.origin, other.behaviour_origin, other.behaviour.height) == ("restored", "fresh", 6)



def test_explain_shows_sessions_and_the_hour_and_day_rings() -> None:
    models = PartitionModels(config=CONFIG)
    state = _traffic(models, minutes=10, customers=2)["c1"]
    view = explain(state, T0 + 10 * 60, CONFIG, models)
    assert view["sessions"] == 1 and 500 <= view["session_seconds"] <= 600
    assert view["events_last_hour"] == view["events_last_24_hours"] == state.events
    assert view["behaviour"]["reference_size"] > 0 and view["behaviour"]["anomalous_run"] is None


@pytest.mark.parametrize(("field", "value", "message"), [
    ("anomaly_tree_height", 9, "anomaly_tree_height must be <= 8"),
    ("anomaly_alert_rate", 0.5, "anomaly_alert_rate must be < 0.5"),
    ("anomaly_window_seconds", 0, "anomaly_window_seconds must be > 0"),
    ("anomaly_window_seconds", 300, "anomaly_window_seconds must be longer than allowed_lateness_seconds"),
])
def test_bad_anomaly_settings_fail_with_the_field_named(field: str, value: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EngineConfig(**{field: value})


def test_state_keeps_rings_sessions_and_the_anomalous_run_across_a_restart_and_reads_version_2() -> None:
    models = PartitionModels(config=CONFIG)
    state = _traffic(models, minutes=12, customers=3)["c2"]
    state.slice("behaviour").odd = [5, 7]
    again = CustomerState.from_bytes(state.to_bytes(), CONFIG)
    assert again == state and again.hours.total() == state.events and again.session_start is not None
    older = {k: v for k, v in state.to_dict().items() if k not in ("hr", "ses", "am", "mu", "odd")} | {"v": 2}
    upgraded = CustomerState.from_dict(older, CONFIG)
    assert (upgraded.events, upgraded.hours.head, upgraded.slice("behaviour").odd, upgraded.session_start) == (state.events, -1, [], None)
    with pytest.raises(ValueError, match="unsupported customer state version 1"):
        CustomerState.from_dict(older | {"v": 1}, CONFIG)
