"""Uplift targeting (#16 point 4): the T-learner, its labels, the uplift gate, holdouts and checkpoints."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from forethought.contracts.events import ErrorEvent, PageView
from forethought.contracts.records import Reason
from forethought.core.checkpoint import CheckpointError, open_checkpoint, seal
from forethought.core.config import EngineConfig
from forethought.core.engine import explain, process, tick
from forethought.core.models import PartitionModels
from forethought.core.policy.rules import RuleError, Rules
from forethought.core.policy.timing import in_holdout
from forethought.core.state import CustomerState
from forethought.core.uplift import FEATURES, UpliftModels, snapshot, vector
from forethought.core.why import decisions_view
from forethought.ops.playbooks import PlaybookFileError, load_rules, parse_rules

ROOT = Path(__file__).resolve().parents[2]
CONFIG = EngineConfig(bucket_seconds=10, burst_min_errors=3, burst_quiet_buckets=1)
T0 = datetime(2026, 11, 2, 3, 0, tzinfo=UTC).timestamp()
DAY = 86_400.0

# a persuadable comes back far more often when messaged; a sleeping dog less often (the message annoys)
PERSUADABLE = {"scores": {"dropoff": 0.85, "churn": 0.6}, "features": {"days_since_last_seen": 9, "visits": 4,
                                                                        "days_since_first_seen": 30}}
SLEEPING_DOG = {"scores": {"dropoff": 0.2, "churn": 0.1}, "features": {"days_since_last_seen": 1, "visits": 80,
                                                                        "days_since_first_seen": 400}}
REASON = Reason(signal="errors", observed=5.0, baseline=0.2, text="5 errors in 10 s")
RATES = {("persuadable", True): 0.55, ("persuadable", False): 0.15,
         ("sleeping_dog", True): 0.45, ("sleeping_dog", False): 0.70}


def jitter(base: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A customer of the segment ``base``: every feature moved by up to ±30%."""
    return {section: {k: v * rng.uniform(0.7, 1.3) for k, v in values.items()} for section, values in base.items()}


def planted_stream(seed: int, n: int = 6000) -> tuple[UpliftModels, list[tuple[str, bytes]]]:
    """Decisions of one playbook (10% held out) with outcomes drawn from :data:`RATES`; returns the
    trained estimators and a fresh sample of customers of both segments to score."""
    rng, models = random.Random(seed), UpliftModels()
    for _ in range(n):
        segment = rng.choice(("persuadable", "sleeping_dog"))
        env = jitter(PERSUADABLE if segment == "persuadable" else SLEEPING_DOG, rng)
        treated = rng.random() >= 0.1
        back = rng.random() < RATES[segment, treated]
        models.learn("nudge", "treated" if treated else "holdout", snapshot(env), back)
    sample = [(s, snapshot(jitter(PERSUADABLE if s == "persuadable" else SLEEPING_DOG, rng)))
              for s in ("persuadable", "sleeping_dog") for _ in range(200)]
    return models, sample


def test_the_estimator_learns_a_planted_uplift_persuadables_above_sleeping_dogs() -> None:
    models, sample = planted_stream(seed=11)
    scores = {s: [models.score("nudge", x) for seg, x in sample if seg == s] for s in ("persuadable", "sleeping_dog")}
    mean = {s: sum(v) / len(v) for s, v in scores.items()}  # type: ignore[arg-type]
    assert mean["persuadable"] > 0.15 and mean["sleeping_dog"] < -0.05, mean
    assert mean["persuadable"] - mean["sleeping_dog"] > 0.3, mean
    # ranks: nearly every persuadable is scored above nearly every sleeping dog
    assert min(scores["persuadable"]) > max(scores["sleeping_dog"])  # type: ignore[type-var]


def test_the_estimator_is_deterministic_per_seed() -> None:
    first, second = planted_stream(seed=5, n=800)[0], planted_stream(seed=5, n=800)[0]
    assert json.dumps(first.to_data()) == json.dumps(second.to_data())


def test_no_score_until_both_arms_have_enough_labels_of_both_kinds() -> None:
    models, x = UpliftModels(), snapshot(PERSUADABLE)
    for i in range(200):  # plenty of treated outcomes, no held-out ones
        models.learn("nudge", "treated", x, i % 3 == 0)
    assert models.score("nudge", x) is None and not models.ready("nudge")
    for i in range(49):
        models.learn("nudge", "holdout", x, i % 3 == 0)
    assert models.score("nudge", x) is None  # 49 < MIN_LABELS
    models.learn("nudge", "global_control", x, False)
    assert models.score("nudge", x) is not None
    models.learn("nudge", "treated", b"\x01", True)  # a watch without a full snapshot teaches nothing
    models.learn("nudge", "someone_else", x, True)  # nor an unknown group
    assert models.playbooks["nudge"].counts == [200, 67, 50, 17]


# --- through the engine: labels after the window only, the gate, holdouts ------------------------

def rules_text(when: str = "true", holdout: float = 0.5, window: str = "1d", mode: str = "live") -> str:
    return f"""policy:
  arbitration_window: 0s
  reengagement_window: {window}
playbooks:
  - name: burst
    on: [error_burst]
    when: '{when}'
    channels: [in_app]
    priority: 70
    holdout: {holdout}
    mode: {mode}
"""


def burst(state: CustomerState | None, customer: str, at: float, rules: Rules, models: PartitionModels | None,
          n: int = 0) -> Any:
    """Three errors in one 10 s bucket: one error burst, one decision; returns the last step and all decisions."""
    decisions: list[Any] = []
    step = None
    for i in range(3):
        event = ErrorEvent(event_id=f"{customer}-e{n + i}", customer_id=customer, code="E1",
                           occurred_at=datetime.fromtimestamp(at + i, UTC))
        step = process(state, event, CONFIG, rules, models=models)
        state = step.state
        decisions += step.decisions
    return step, decisions


def page(state: CustomerState, customer: str, at: float, rules: Rules, models: PartitionModels | None) -> Any:
    event = PageView(event_id=f"{customer}-p{at}", customer_id=customer, occurred_at=datetime.fromtimestamp(at, UTC))
    return process(state, event, CONFIG, rules, models=models)


def labels(models: PartitionModels) -> list[int]:
    arms = models.uplift.playbooks.get("burst")
    return [0, 0, 0, 0] if arms is None else list(arms.counts)


def test_a_label_is_learned_only_when_the_customer_comes_back_or_the_window_closes() -> None:
    rules, models = parse_rules(rules_text(when="scores.uplift.burst > -1", holdout=0.5)), PartitionModels()
    customers = [f"c{i}" for i in range(12)]
    states = {}
    for c in customers:
        step, decisions = burst(None, c, T0, rules, models)
        states[c] = step.state
        (watch,) = step.state.policy.watch
        assert len(watch.x) == len(FEATURES)  # the features as they were at the decision
        assert watch.group == ("holdout" if in_holdout(c, "holdout:burst", 0.5) else "treated")
    assert labels(models) == [0, 0, 0, 0]  # nothing is known yet
    back = customers[:6]
    for c in back:  # half the customers come back within the window: a label 1 at once
        states[c] = page(states[c], c, T0 + DAY / 2, rules, models).state
    treated_back = sum(not in_holdout(c, "holdout:burst", 0.5) for c in back)
    assert labels(models) == [treated_back, treated_back, 6 - treated_back, 6 - treated_back]
    for c in customers[6:]:  # the others: no label until the window has closed
        states[c] = tick(states[c], T0 + DAY - 10, CONFIG, rules, models=models).state
    assert sum(labels(models)[::2]) == 6
    for c in customers[6:]:
        states[c] = tick(states[c], T0 + DAY + 10, CONFIG, rules, models=models).state
    counts = labels(models)
    assert counts[0] + counts[2] == 12 and counts[1] + counts[3] == 6


def warm(models: PartitionModels) -> None:
    """Train the partition's ``burst`` estimator on the planted stream (persuadables helped)."""
    models.uplift = planted_stream(seed=3, n=3000)[0]
    models.uplift.playbooks["burst"] = models.uplift.playbooks.pop("nudge")


@pytest.mark.parametrize("threshold", [0.0, 0.5])
def test_a_customer_skipped_for_low_uplift_is_recorded_and_holdouts_are_untouched(threshold: float) -> None:
    """A new customer's burst scores about +0.39 on the planted estimator: above 0, below 0.5."""
    gated = parse_rules(rules_text(when=f"scores.uplift.burst > {threshold}", holdout=0.3))
    plain = parse_rules(rules_text(holdout=0.3))
    models = PartitionModels()
    warm(models)
    verdicts: dict[str, list[tuple[str, str | None]]] = {"gated": [], "plain": []}
    for i in range(40):
        c = f"k{i}"
        step, gated_decisions = burst(None, c, T0, gated, models)
        _, plain_decisions = burst(None, c, T0, plain, PartitionModels())
        verdicts["gated"] += [(d.verdict, d.reason) for d in gated_decisions]
        verdicts["plain"] += [(d.verdict, d.reason) for d in plain_decisions]
        assert 0.3 < explain(step.state, T0 + 3, CONFIG, models)["uplift"]["burst"]["score"] < 0.45
        if threshold:  # not worth sending: suppressed with its reason, kept for "why not?", not measured
            assert step.state.policy.watch == [] and step.triggers == ()
            kept = decisions_view(step.state.policy)[-1]
            assert kept["reason"] == "low_uplift" and "would not help" in kept["why"]
        else:
            assert [c.startswith("uplift: burst +0.3") for t in step.triggers for c in t.why.checks].count(True) == len(
                step.triggers)
    held = [in_holdout(f"k{i}", "holdout:burst", 0.3) for i in range(40)]
    expected = [("held_out", "holdout") if h else ("sent", None) for h in held]
    assert 5 < sum(held) < 20 and verdicts["plain"] == expected  # the holdout is the hash's, as before
    assert verdicts["gated"] == ([("suppressed", "low_uplift")] * 40 if threshold else expected)


def test_the_gate_splits_customers_by_their_own_uplift_and_never_moves_the_holdout() -> None:
    """Persuadables and sleeping dogs as the gate sees them (their features at decision time)."""
    from forethought.core.policy.decide import Context, Verdicts, decide
    from forethought.core.ledger import PolicyLedger
    from forethought.core.policy.profiles import ProfileState
    from forethought.core.signals import Detection

    rules = parse_rules(rules_text(when="scores.uplift.burst > 0.05", holdout=0.2))
    models = PartitionModels()
    warm(models)
    outcome: dict[str, list[tuple[str, str | None]]] = {"persuadable": [], "sleeping_dog": []}
    rng = random.Random(4)
    for i in range(200):
        segment = "persuadable" if i % 2 else "sleeping_dog"
        env = jitter(PERSUADABLE if segment == "persuadable" else SLEEPING_DOG, rng)
        ctx = Context(f"u{i}", None, PolicyLedger(), ProfileState(), rules, env, models.uplift)
        out = Verdicts()
        decide([Detection("error_burst", f"ep{i}", T0, {}, (REASON,))], ctx, out)
        (decision,) = out.decisions
        outcome[segment].append((decision.verdict, decision.reason))
        if decision.reason != "low_uplift":  # whoever passes is held out exactly by the hash
            assert (decision.verdict == "held_out") == in_holdout(f"u{i}", "holdout:burst", 0.2)
            assert ctx.ledger.watch and len(ctx.ledger.watch[0].x) == len(FEATURES)
        else:
            assert ctx.ledger.watch == [] and decision.verdict == "suppressed"
    skipped = {s: sum(r == "low_uplift" for _, r in v) for s, v in outcome.items()}
    assert skipped == {"persuadable": 0, "sleeping_dog": 100}


def test_while_the_estimator_is_cold_an_uplift_condition_blocks_no_one() -> None:
    gated = parse_rules(rules_text(when="scores.uplift.burst > 0", holdout=0.3))
    plain = parse_rules(rules_text(holdout=0.3))
    for i in range(20):
        step_g, gated_decisions = burst(None, f"q{i}", T0, gated, PartitionModels())
        step_p, plain_decisions = burst(None, f"q{i}", T0, plain, PartitionModels())
        assert [(d.verdict, d.reason) for d in gated_decisions] == [(d.verdict, d.reason) for d in plain_decisions]
        assert [t.trigger_id for t in step_g.triggers] == [t.trigger_id for t in step_p.triggers]
        for trigger in step_g.triggers:
            assert any(c.startswith("uplift: unknown for burst") for c in trigger.why.checks)


# --- checkpoints -----------------------------------------------------------------------------------

def test_the_uplift_estimators_survive_a_checkpoint_round_trip() -> None:
    models = PartitionModels(partition=2)
    warm(models)
    again = PartitionModels.restore(models.to_bytes(key=b"k" * 32), partition=2, key=b"k" * 32)
    assert again.origin == "restored"
    for env in (PERSUADABLE, SLEEPING_DOG):
        assert again.uplift.score("burst", snapshot(env)) == models.uplift.score("burst", snapshot(env)) is not None
    assert again.uplift.playbooks["burst"].counts == models.uplift.playbooks["burst"].counts


def forged(models: PartitionModels, change: Any) -> bytes:
    """``models``' checkpoint with its uplift part replaced by ``change(uplift data)`` (digest redone)."""
    header, payload = open_checkpoint(models.to_bytes())
    header.pop("sha256")
    payload["uplift"] = change(payload["uplift"])
    return seal(header, payload)


def _set(path: tuple[Any, ...], value: Any) -> Any:
    def change(data: Any) -> Any:
        node = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        return data
    return change


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: [1, 2], "uplift estimators are not a map"),
    (_set(("features",), ["dropoff", "plan"]), "uplift written for other features"),
    (_set(("playbooks", "burst", "counts"), [5, 9, 0, 0]), "uplift label counts are not counts"),
    (_set(("playbooks", "burst", "counts"), [1, 2]), "uplift label counts holds 2 values, expected 4"),
    (_set(("playbooks", "burst", "treated"), "__import__('os').system('id')"), "not a parameter list"),
    (_set(("playbooks", "burst", "control", 3), [1e308] * 5 + ["x"]), "uplift weights are not 6 finite numbers"),
    (_set(("playbooks", "burst", "control", 2), [-1.0] * 6), "uplift scaler variance is negative"),
    (_set(("playbooks", "burst", "treated", 5), -3), "uplift optimiser iterations is not an integer"),
    (lambda d: {**d, "playbooks": {f"p{i}": d["playbooks"]["burst"] for i in range(300)}},
     "more than 256 uplift estimators"),
])
def test_a_hostile_uplift_checkpoint_is_refused_with_its_reason(change: Any, message: str) -> None:
    models = PartitionModels(partition=1)
    warm(models)
    raw = forged(models, change)
    with pytest.raises(CheckpointError, match=message):
        PartitionModels.from_bytes(raw, partition=1)
    restored = PartitionModels.restore(raw, partition=1)
    assert restored.origin == "failed" and message in (restored.problem or "")
    assert restored.uplift.playbooks == {}  # fresh: every uplift score unknown again


def test_a_checkpoint_written_before_uplift_existed_restores_cold_estimators() -> None:
    models = PartitionModels()
    warm(models)
    header, payload = open_checkpoint(models.to_bytes())
    header.pop("sha256")
    del payload["uplift"]
    again = PartitionModels.restore(seal(header, payload))
    assert again.origin == "restored" and again.uplift.playbooks == {}


# --- the playbook vocabulary -------------------------------------------------------------------------

def rejected(text: str) -> str:
    with pytest.raises(PlaybookFileError) as caught:
        parse_rules(text)
    return str(caught.value)


def test_an_uplift_score_of_an_unknown_playbook_is_a_clear_error_at_load() -> None:
    message = rejected(rules_text(when="scores.uplift.bursts > 0"))
    assert "playbooks.0.when: unknown playbook 'bursts' in 'scores.uplift.bursts' (playbooks of this file: burst)" \
        in message


@pytest.mark.parametrize(("text", "expected"), [
    (rules_text(when="scores.uplift.burst > 0", holdout=0.0), "playbook 'burst' holds no one out"),
    (rules_text(when="scores.uplift.burst > 0", mode="shadow"), "playbook 'burst' is in shadow mode"),
    (rules_text(when="scores.uplift.burst > 0 or scores.anomaly > 3"), "reads an uplift score and something else"),
    (rules_text(when="scores.uplift > 0"), "unknown name 'scores.uplift'"),
])
def test_uplift_conditions_that_could_never_mean_what_they_say_are_refused(text: str, expected: str) -> None:
    assert expected in rejected(text)


def test_an_uplift_score_is_only_read_in_when() -> None:
    text = rules_text().replace("    mode: live\n", "    mode: live\n    context:\n      u: scores.uplift.burst\n")
    assert "playbooks.0.context.u: 'scores.uplift.burst' may only be read in 'when'" in rejected(text)


def test_the_condition_splits_into_base_and_uplift_terms() -> None:
    rules = parse_rules(rules_text(when='scores.anomaly >= 3 and scores.uplift.burst > 0.02 and signal != "x"'))
    book = rules.by_name["burst"]
    assert book.uplift is not None and book.uplift.reads == ("burst",)
    assert book.base.source == '(scores.anomaly >= 3) and (signal != "x")'
    assert book.uplift.term.source == "(scores.uplift.burst > 0.02)"
    assert book.condition.source.startswith("scores.anomaly >= 3 and scores.uplift")  # what `why` shows


def test_only_playbooks_whose_uplift_a_condition_reads_keep_features_in_their_watches() -> None:
    twin = """  - name: burst_targeted
    on: [usage_anomaly]
    when: scores.uplift.burst > 0
    channels: [in_app]
    priority: 10
    mode: shadow
"""
    alone, read = parse_rules(rules_text()), parse_rules(rules_text() + twin)
    assert alone.uplift_learned == frozenset() and read.uplift_learned == {"burst"}
    (watch,) = burst(None, "w1", T0, alone, PartitionModels())[0].state.policy.watch
    assert watch.x == b""  # no state growth and nothing to learn for a playbook nobody targets by
    (watch,) = burst(None, "w1", T0, read, PartitionModels())[0].state.policy.watch
    assert len(watch.x) == len(FEATURES)


def test_the_shortcut_score_is_the_two_classifiers_difference() -> None:
    models, sample = planted_stream(seed=2, n=1500)
    arms = models.playbooks["nudge"]
    for _, raw in sample[::20]:
        x = vector(raw)
        assert models.score("nudge", raw) == pytest.approx(arms.treated.proba(x) - arms.control.proba(x), abs=1e-6)


def _without_the_example(path: Path) -> str:
    """The shipped playbook file without its shadow example of issue #16 (``long_inactivity_learning``,
    the file's last block)."""
    text = path.read_text()
    assert EXAMPLE_MARK in text
    return text.split(EXAMPLE_MARK)[0]


EXAMPLE_MARK = "\n  # Issue #16, an example in shadow mode"


def test_only_the_shipped_shadow_example_reads_an_uplift_and_it_only_marks_long_inactivity_for_learning() -> None:
    shipped = load_rules(ROOT / "streams" / "playbooks.yaml")
    gated = [book for book in shipped.playbooks if book.uplift is not None]
    assert [(book.name, book.mode) for book in gated] == [("long_inactivity_learning", "shadow")]
    assert shipped.uplift_learned == frozenset({"long_inactivity"})


def test_the_shipped_playbooks_have_no_uplift_condition_and_fire_exactly_as_without_uplift() -> None:
    shipped = parse_rules(_without_the_example(ROOT / "streams" / "playbooks.yaml"))
    assert all(book.uplift is None and book.base is book.condition for book in shipped.playbooks)
    assert shipped.uplift_learned == frozenset()
    # a warm estimator that no playbook reads changes no decision and no trigger
    cold, hot = PartitionModels(), PartitionModels()
    warm(hot)
    for name in [b.name for b in shipped.playbooks]:
        hot.uplift.playbooks[name] = hot.uplift.playbooks["burst"]
    for i in range(10):
        c = f"s{i}"
        a = burst(None, c, T0, shipped, cold)
        b = burst(None, c, T0, shipped, hot)
        assert [t.model_dump() for t in a[0].triggers] == [t.model_dump() for t in b[0].triggers]
        assert a[1] == b[1]
        assert all(w.x == b"" for w in b[0].state.policy.watch)  # the state is as it was before uplift


# --- the customer's state and "why (not)?" -----------------------------------------------------------

def test_a_watch_keeps_its_snapshot_through_both_state_forms_and_a_bad_one_is_refused() -> None:
    from forethought.core.ledger import PolicyLedger, Watch
    from forethought.core.ledger_codec import LEDGER

    ledger = PolicyLedger(watch=[Watch("burst", "treated", T0, T0 + DAY, snapshot(PERSUADABLE)),
                                 Watch("old", "holdout", T0, T0 + DAY)])
    assert PolicyLedger.from_dict(json.loads(json.dumps(ledger.to_dict()))) == ledger
    packed = LEDGER.out(ledger, int(T0))
    assert LEDGER.back(packed, int(T0), CONFIG) == ledger
    assert len(packed[3][1]) == 4  # a watch without a snapshot is written as before uplift existed
    for bad in ("not bytes", b"x" * 33):
        packed[3][0][4] = bad
        with pytest.raises(ValueError):
            LEDGER.back(packed, int(T0), CONFIG)


def test_explain_shows_each_estimators_score_or_why_there_is_none() -> None:
    from forethought.cli_explain import render

    rules, models = parse_rules(rules_text(holdout=0.5)), PartitionModels()
    step, _ = burst(None, "e1", T0, rules, models)
    models.uplift.learn("burst", "treated", snapshot(PERSUADABLE), True)
    warm_one = PartitionModels()
    warm(warm_one)
    cold_view = explain(step.state, T0 + 5, CONFIG, models)
    assert cold_view["uplift"] == {"burst": {"score": None, "ready": False, "treated_labels": 1, "holdout_labels": 0}}
    assert "uplift: burst - (cold: 1 treated, 0 held-out labels)" in render(cold_view)
    hot = explain(step.state, T0 + 5, CONFIG, warm_one)
    assert f"uplift: burst {hot['uplift']['burst']['score']:+.4f}" in render(hot)
    assert "uplift" not in explain(step.state, T0 + 5, CONFIG, PartitionModels())  # no estimator: no line


# --- closed loop through the engine: learned online from the stream, then targeting -------------------

def history(customer: str, segment: str, rules: Rules, models: PartitionModels) -> CustomerState:
    """A persuadable: new (first seen 6 days ago, 2 visits); a sleeping dog: 60 days of visits every 3 days."""
    visits = [T0 - 6 * DAY, T0 - 2 * DAY] if segment == "persuadable" else [T0 - 60 * DAY + 3 * DAY * i
                                                                           for i in range(20)]
    state = None
    for at in visits:
        state = page(state, customer, at, rules, models).state  # type: ignore[arg-type]
    assert state is not None
    return state


def test_in_the_stream_the_gate_learns_to_skip_sleeping_dogs_and_keep_persuadables() -> None:
    rng = random.Random(7)
    learning = parse_rules(rules_text(when="scores.uplift.burst > -1", holdout=0.3, window="2d"))
    models = PartitionModels()
    for i in range(500):  # phase 1: every candidate is messaged or held out; labels come from the stream
        c, segment = f"L{i}", ("persuadable", "sleeping_dog")[i % 2]
        state = history(c, segment, learning, models)
        step, _ = burst(state, c, T0, learning, models)
        (watch,) = step.state.policy.watch
        if rng.random() < RATES[segment, watch.group == "treated"]:
            page(step.state, c, T0 + DAY, learning, models)
        else:
            tick(step.state, T0 + 2 * DAY + 10, CONFIG, learning, models=models)
    assert models.uplift.ready("burst")
    targeting = parse_rules(rules_text(when="scores.uplift.burst > 0", holdout=0.3, window="2d"))
    skipped = {"persuadable": 0, "sleeping_dog": 0}
    for i in range(200):  # phase 2: new customers of both kinds, gated on what was learned
        c, segment = f"T{i}", ("persuadable", "sleeping_dog")[i % 2]
        _, decisions = burst(history(c, segment, targeting, models), c, T0 + 3 * DAY, targeting, models, n=99)
        skipped[segment] += [d.reason for d in decisions] == ["low_uplift"]
    assert skipped["sleeping_dog"] >= 90 and skipped["persuadable"] <= 10, skipped  # of 100 each
