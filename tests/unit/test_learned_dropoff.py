"""The learned drop-off model through the engine's entry points: delayed labels, cold start,
checkpoints and determinism, as the worker and replay drive them."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable
from datetime import datetime, timezone

import pytest
import river

from forethought.contracts.events import ErrorEvent, PageView
from forethought.contracts.playbooks import PlaybookFile
from forethought.core import snapshots
from forethought.core.config import EngineConfig
from forethought.core.detectors import churn
from forethought.core.due import slot_at_or_after
from forethought.contracts.records import Outcome
from forethought.core.engine import Step, explain, observe_outcome, process, tick
from forethought.core.policy.profiles import ProfileState
from forethought.core.models import CheckpointError, PartitionModels
from forethought.core.policy.rules import compile_rules
from forethought.core.state import CustomerState

T0 = 1_790_000_040.0  # 2026-09-21T14:34:00Z
HOUR, DAY = 3600.0, 86_400.0
CONFIG = EngineConfig(look_scores=True)  # every look reports its scores (daily_scores)


def page(customer: str, n: int, at: float) -> PageView:
    return PageView(event_id=f"{customer}-{n}", customer_id=customer,
                    occurred_at=datetime.fromtimestamp(at, tz=timezone.utc))


def labels_of(steps: Iterable[Step]) -> list[int]:
    return [o.detail["label"] for s in steps for o in s.observations
            if o.kind == "label" and o.detail["model"] == "dropoff"]  # (the churn correction's are "churn")


def active(customer: str, models: PartitionModels | None, days: int = 3, per_day: int = 4,
           config: EngineConfig = CONFIG) -> tuple[CustomerState, list[Step]]:
    """A customer seen ``per_day`` times a day for ``days`` days."""
    state, steps, n = None, [], 0
    for d in range(days):
        for k in range(per_day):
            step = process(state, page(customer, n, T0 + d * DAY + k * 3 * HOUR), config, models=models)
            state, n = step.state, n + 1
            steps.append(step)
    assert state is not None
    return state, steps


def days_of_silence(state: CustomerState, models: PartitionModels, days: int) -> list[Step]:
    """Tick the customer once a day (as the worker's timer would) without any activity."""
    steps, start = [], state.last_seen or T0
    for d in range(1, days + 1):
        steps.append(tick(state, start + d * DAY, CONFIG, models=models))
    return steps


# ---- delayed labels ----------------------------------------------------------------------------


def test_an_active_customer_is_labelled_came_back_once_per_snapshot() -> None:
    models = PartitionModels()
    state, steps = active("c1", models, days=5)
    assert labels_of(steps) == [0] * models.labels and models.labels >= 3, "one 'came back' per daily snapshot"
    assert models.dropped == 0
    checks = [o for s in steps for o in s.observations if o.kind == "daily_scores"]
    assert sum(o.detail["snapshot"] for o in checks) == models.labels + (state.slice("learned_dropoff").snapshot is not None)


def test_a_silent_customer_is_labelled_dropped_once_when_the_horizon_passes() -> None:
    models = PartitionModels()
    state, _ = active("c1", models)
    before = models.labels
    steps = days_of_silence(state, models, 27)
    taken = [o.detail["at"] for s in steps for o in s.observations if o.kind == "daily_scores" and o.detail["snapshot"]]
    found = [(o.detail["label"], o.detail["taken_at"]) for s in steps for o in s.observations if o.kind == "label"]
    assert found == [(1, taken[0])], "exactly one 'dropped' label in the 27 silent days"
    assert taken[1] == taken[0] + 14 * DAY, "the check that resolved it took the next snapshot"
    assert models.labels == before + 1 and models.dropped == 1


def test_a_click_on_a_trigger_is_a_came_back_label_before_any_event_shows_it() -> None:
    models = PartitionModels()
    state, _ = active("c1", models)
    days_of_silence(state, models, 2)  # a daily check took a snapshot while the customer was away
    assert state.slice("learned_dropoff").snapshot is not None
    before = models.labels
    opened = Outcome(outcome_id="o1", trigger_id="t1", customer_id="c1", channel="email", status="delivered",
                     occurred_at=datetime.fromtimestamp(state.last_seen + 2.5 * DAY, tz=timezone.utc))
    assert labels_of([observe_outcome(state, ProfileState(), opened, CONFIG, models=models)]) == []
    clicked = opened.model_copy(update={"outcome_id": "o2", "status": "clicked"})
    assert labels_of([observe_outcome(state, ProfileState(), clicked, CONFIG, models=models)]) == [0]
    assert models.labels == before + 1 and state.slice("learned_dropoff").snapshot is None


def test_activity_after_the_horizon_is_a_drop_then_a_return() -> None:
    models = PartitionModels()
    state, _ = active("c1", models)
    comeback = process(state, page("c1", 999, (state.last_seen or T0) + 20 * DAY), CONFIG, models=models)
    assert labels_of([comeback]) == [1, 0], "the old snapshot dropped; the one taken in the silence came back"


def test_errors_count_as_activity_but_late_and_duplicate_events_do_not() -> None:
    models = PartitionModels()
    state, _ = active("c1", models)
    look = state.daily_at or 0  # the next look is the day after the last activity: it takes a snapshot
    tick(state, look + 1, CONFIG, models=models)
    assert state.slice("learned_dropoff").snapshot is not None
    duplicate = process(state, page("c1", 0, look + 5), CONFIG, models=models)
    late = process(state, page("c1", 5000, T0), CONFIG, models=models)
    assert labels_of([duplicate, late]) == [] and state.slice("learned_dropoff").snapshot is not None
    error = ErrorEvent(event_id="err-1", customer_id="c1", code="E1",
                       occurred_at=datetime.fromtimestamp(look + 60, tz=timezone.utc))
    assert labels_of([process(state, error, CONFIG, models=models)]) == [0]


def test_without_models_nothing_is_snapshotted_or_learned() -> None:
    state, steps = active("c1", None, days=5)
    assert state.slice("learned_dropoff").snapshot is None and labels_of(steps) == []
    assert explain(state, state.last_seen or T0, CONFIG)["scores"]["dropoff_learned"] is None


def test_the_horizon_is_configurable() -> None:
    models, config = PartitionModels(), EngineConfig(label_horizon_seconds=3 * DAY)
    state, _ = active("c1", models, config=config)
    before = models.dropped
    for d in range(1, 5):
        tick(state, (state.last_seen or T0) + d * DAY, config, models=models)
    assert models.dropped == before + 1


# ---- spacing snapshots out during a long silence (snapshot_backoff) ------------------------------

LONG = EngineConfig(idle_ttl_seconds=5 * 365 * DAY, look_scores=True)  # not evicted after 180 silent days
BACKOFF = LONG  # the default: snapshot_backoff 2
EVERY = LONG.replace(snapshot_backoff=1.0)  # the behaviour before snapshot_backoff


def silent_for(state: CustomerState, models: PartitionModels, days: int, config: EngineConfig,
               round_trip: bool = False) -> list[Step]:
    """Tick once a day for ``days`` days of silence; ``round_trip``: through the state codec each day."""
    steps, start = [], state.last_seen or T0
    for d in range(1, days + 1):
        if round_trip:
            state = CustomerState.from_bytes(state.to_bytes(), config)
        steps.append(tick(state, start + d * DAY, config, models=models))
    return steps


def dropped_days(steps: Iterable[Step]) -> list[int]:
    """When the snapshots labelled "dropped" were taken, in days after the first of them."""
    taken = [o.detail["taken_at"] for s in steps for o in s.observations
             if o.kind == "label" and o.detail["model"] == "dropoff" and o.detail["label"]]
    return [round((t - taken[0]) / DAY) for t in taken]


def test_the_default_backoff_is_two_and_one_gives_a_dropped_label_every_horizon_as_before() -> None:
    assert EngineConfig().section("learned_dropoff").snapshot_backoff == 2.0
    models = PartitionModels()
    state, _ = active("c1", models, config=EVERY)
    assert dropped_days(silent_for(state, models, 300, EVERY)) == list(range(0, 300 - 14, 14))


def test_with_backoff_the_snapshots_of_a_silence_space_out_geometrically() -> None:
    models = PartitionModels()
    config = BACKOFF.replace(churn_learn_correction=False)  # (its example ends are looks of their own)
    state, _ = active("c1", models, config=config)
    steps = silent_for(state, models, 300, config)
    assert dropped_days(steps) == [0, 14, 42, 98, 210], "gaps of 14, 28, 56 and 112 days"
    churn_look = slot_at_or_after("c1", churn.sample_at(state, BACKOFF.section("churn"), BACKOFF))
    looks = [o for s in steps for o in s.observations if o.kind == "daily_scores" and o.detail["at"] != churn_look]
    days = [round((o.detail["at"] - looks[0].detail["at"]) / DAY) for o in looks]
    assert days == [0, 14, 28, 42, 56, 98, 112, 210, 224], "a look per snapshot and per label, none in between" \
        " (besides the churn prior's one summary of the customer)"


def test_the_backoff_gap_is_capped() -> None:
    config = BACKOFF.replace(snapshot_backoff_max_seconds=30 * DAY)
    models = PartitionModels()
    state, _ = active("c1", models, config=config)
    assert dropped_days(silent_for(state, models, 200, config)) == [0, 14, 42, 72, 102, 132, 162]


def test_activity_restarts_the_spacing() -> None:
    models = PartitionModels()
    state, _ = active("c1", models, config=BACKOFF)
    assert dropped_days(silent_for(state, models, 120, BACKOFF)) == [0, 14, 42, 98]
    back = process(state, page("c1", 999, (state.last_seen or T0) + 120 * DAY), BACKOFF, models=models)
    assert labels_of([back]) == [], "nothing pending: day 98's snapshot was labelled on day 112, the next is day 210"
    assert dropped_days(silent_for(state, models, 120, BACKOFF)) == [0, 14, 42, 98], "as after the first activity"


def test_the_spacing_survives_the_state_codec_without_a_new_field() -> None:
    runs = []
    for round_trip in (False, True):
        models = PartitionModels()
        state, _ = active("c1", models, config=BACKOFF)
        runs.append((labels_of(silent_for(state, models, 250, BACKOFF, round_trip)), models.to_bytes()))
    assert runs[0] == runs[1] and runs[0][0] == [1] * 5, "the schedule follows from last_seen alone"
    assert [f.name for f in CustomerState.new("c1", BACKOFF).slice("learned_dropoff").FIELDS] == ["snapshot"]


@pytest.mark.parametrize("bad", [{"snapshot_backoff": 0.5}, {"snapshot_backoff": 0.0},
                                 {"snapshot_backoff": float("nan")}, {"snapshot_backoff_max_seconds": -1.0}])
def test_a_backoff_below_one_or_a_negative_cap_is_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="snapshot_backoff"):
        EngineConfig(**bad)


# ---- cold start --------------------------------------------------------------------------------


def test_no_learned_score_until_enough_labels_of_both_kinds() -> None:
    models = PartitionModels(min_labels=20)
    states = {}
    for c in range(8):
        states[c], _ = active(f"c{c}", models, days=3)
    at = max(s.last_seen or T0 for s in states.values())
    assert models.labels >= 16 and models.dropped == 0
    assert explain(states[0], at, CONFIG, models)["scores"]["dropoff_learned"] is None, "only one class so far"
    for c in range(4):
        days_of_silence(states[c], models, 15)
    assert models.dropped >= 2 and models.warm
    view = explain(states[5], at + HOUR, CONFIG, models)
    assert 0.0 <= view["scores"]["dropoff_learned"] <= 1.0
    assert view["learned"]["model"]["warm"] is True


def test_a_customer_with_no_activity_has_no_learned_score() -> None:
    models = PartitionModels(min_labels=1)
    models.learn_dropoff(dict.fromkeys(snapshots.NAMES, 0.0), False)
    models.learn_dropoff(dict.fromkeys(snapshots.NAMES, 1.0), True)
    state = CustomerState.new("nobody", CONFIG)
    assert explain(state, T0, CONFIG, models)["scores"]["dropoff_learned"] is None


def test_playbooks_may_read_the_learned_score_and_it_never_matches_while_cold() -> None:
    spec = PlaybookFile.model_validate({"playbooks": [
        {"name": "learned_risk", "on": ["daily"], "when": "scores.dropoff_learned >= 0.0", "channels": ["email"],
         "priority": 50}], "policy": {"arbitration_window": "0s"}})
    rules = compile_rules(spec)
    cold = PartitionModels(min_labels=10_000)
    state, steps = active("c1", cold, days=4)
    fired = [t for s in steps for t in s.triggers]
    assert fired == [], "a None score never satisfies a comparison"
    warm = PartitionModels(min_labels=1)
    warm.learn_dropoff(dict.fromkeys(snapshots.NAMES, 0.0), False)
    warm.learn_dropoff(dict.fromkeys(snapshots.NAMES, 1.0), True)
    step = tick(state, (state.daily_at or 0) + 1, CONFIG, rules, models=warm)
    assert [t.playbook for t in step.triggers] == ["learned_risk"]


# ---- checkpoints -------------------------------------------------------------------------------


def trained(seed_customers: int = 6) -> PartitionModels:
    models = PartitionModels(partition=2, min_labels=4)
    for c in range(seed_customers):
        state, _ = active(f"c{c}", models, days=3)
        if c % 2:
            days_of_silence(state, models, 15)
    assert models.warm
    return models


def test_a_checkpoint_round_trip_keeps_scores_and_counters() -> None:
    models = trained()
    x = dict.fromkeys(snapshots.NAMES, 0.3)
    restored = PartitionModels.restore(models.to_bytes(), partition=2, min_labels=4)
    assert (restored.origin, restored.problem) == ("restored", None)
    assert (restored.labels, restored.dropped) == (models.labels, models.dropped)
    assert restored.dropoff(x) == models.dropoff(x)
    probes = [dict.fromkeys(snapshots.NAMES, v / 10) for v in range(11)]
    for m in (models, restored):
        for i, probe in enumerate(probes):
            m.learn_dropoff(probe, i % 3 == 0)
    assert [restored.dropoff(p) for p in probes] == [models.dropoff(p) for p in probes], "both go on identically"


def corrupt(raw: bytes, how: str) -> bytes:
    (length,) = struct.unpack_from(">I", raw, 5)
    header = json.loads(raw[9:9 + length])
    if how == "payload":
        return raw[:-10] + bytes(b ^ 0xFF for b in raw[-10:])
    if how == "truncated":
        return raw[: 9 + length // 2]
    if how == "magic":
        return b"JUNK" + raw[4:]
    if how == "format":
        return raw[:4] + b"\x09" + raw[5:]
    changed = {"features": header["features"][:-1]} if how == "features" else {"river": "0.1.0"}
    new = json.dumps({**header, **changed}).encode()
    return raw[:5] + struct.pack(">I", len(new)) + new + raw[9 + length:]


@pytest.mark.parametrize(("how", "message"), [
    ("payload", "corrupt model checkpoint: payload does not match its digest"),
    ("truncated", "corrupt model checkpoint: truncated header"),
    ("magic", "corrupt model checkpoint: not a Forethought model checkpoint"),
    ("format", "incompatible model checkpoint: format 9, this worker reads format 3"),
    ("features", "incompatible model checkpoint: written for other snapshot features"),
    ("river", f"incompatible model checkpoint: written with River 0.1.0, this worker runs {river.__version__}"),
])
def test_a_bad_checkpoint_is_refused_with_its_reason_and_replaced_by_a_fresh_model(how: str, message: str) -> None:
    bad = corrupt(trained().to_bytes(), how)
    with pytest.raises(CheckpointError) as error:
        PartitionModels.from_bytes(bad)
    assert str(error.value) == message
    fallback = PartitionModels.restore(bad, partition=2, min_labels=4)
    assert (fallback.origin, fallback.problem, fallback.labels, fallback.warm) == ("failed", message, 0, False)
    assert fallback.dropoff(dict.fromkeys(snapshots.NAMES, 0.3)) is None


def test_no_checkpoint_means_a_fresh_cold_model() -> None:
    fresh = PartitionModels.restore(None, partition=1)
    assert (fresh.origin, fresh.problem, fresh.labels, fresh.warm) == ("fresh", None, 0, False)


def test_the_same_input_in_the_same_order_gives_the_same_model() -> None:
    assert trained().to_bytes() == trained().to_bytes()


# ---- state size --------------------------------------------------------------------------------


def test_a_busy_customer_with_a_pending_snapshot_stays_under_one_kib() -> None:
    from test_engine import mixed_events

    models = PartitionModels()
    state = None
    for event in mixed_events(1000):
        state = process(state, event, CONFIG, models=models).state
    assert state is not None
    tick(state, (state.daily_at or 0) + 1, CONFIG, models=models)
    assert state.slice("learned_dropoff").snapshot is not None and len(state.slice("learned_dropoff").snapshot) == 20
    size = len(state.to_bytes())
    print(f"busy customer state with a pending snapshot: {size} bytes")
    assert size < 1024, size
    assert CustomerState.from_bytes(state.to_bytes(), CONFIG).to_bytes() == state.to_bytes()


def test_without_look_scores_the_looks_learn_the_same_and_report_only_what_playbooks_read() -> None:
    """``look_scores`` (on for ``replay --truth``) only adds reports: snapshots, labels, the model and
    the state are the same without it, and looks that take no snapshot then build no facts."""
    runs = {}
    for on in (True, False):
        models, config = PartitionModels(), LONG.replace(look_scores=on)
        state, steps = active("c1", models, config=config)
        steps += silent_for(state, models, 300, config)
        runs[on] = (labels_of(steps), dropped_days(steps), models.labels, models.dropped,
                    models.to_bytes(), state.to_bytes(),
                    sum(o.kind == "daily_scores" for s in steps for o in s.observations))
    assert runs[True][:-1] == runs[False][:-1]
    assert runs[True][-1] >= 9 and runs[False][-1] == 0, "off: no look of this customer is a playbook's"
