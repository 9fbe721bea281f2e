"""The closed-loop evaluation's metric functions compute what they claim, on hand-made inputs
(benchmarks/closed_loop_eval.py; nothing here times anything), and its playbook files load."""

from __future__ import annotations

import doctest
import sys
from pathlib import Path

from typing import Any

import pytest
import yaml

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

import closed_loop_eval as cle  # noqa: E402 - after the path is set

from forethought.ops.playbooks import parse_rules  # noqa: E402


def test_the_examples_hold() -> None:
    result = doctest.testmod(cle, verbose=False)
    assert result.attempted > 0 and result.failed == 0


def test_regret_of_a_known_sequence_against_the_best_fixed_variant_and_uniform() -> None:
    # variant b is best overall (0.9 + 0.5 = 1.4 against a's 0.1 + 0.7 = 0.8)
    rows = [({"a": 0.1, "b": 0.9}, "a"), ({"a": 0.7, "b": 0.5}, "b"), ({"a": 0.1, "b": 0.9}, "b")]
    out = cle.regret(rows)
    assert out["best_fixed"] == "b"
    assert out["bandit"] == pytest.approx(2.3 - 1.5)  # b fixed earns 0.9+0.5+0.9; the choices 0.1+0.5+0.9
    assert out["uniform"] == pytest.approx(2.3 - (0.5 + 0.6 + 0.5))
    assert out["ratio"] == pytest.approx(0.8 / 0.7, abs=1e-3)


def test_always_choosing_the_best_fixed_variant_has_no_regret() -> None:
    rows = [({"a": 0.2, "b": 0.3, "c": 0.1}, "b")] * 10
    out = cle.regret(rows)
    assert out["bandit"] == 0 and out["uniform"] == pytest.approx(1.0) and out["ratio"] == 0


def test_no_triggers_no_regret_and_no_ratio() -> None:
    assert cle.regret([])["ratio"] is None and cle.most_pulled([]) is None


def test_most_pulled_looks_at_the_last_choices_only() -> None:
    assert cle.most_pulled(["a"] * 10 + ["b"] * 6, tail=1 / 3) == "b"
    assert cle.most_pulled(["a"] * 10 + ["b"] * 6, tail=1.0) == "a"


def test_incremental_reengagements_of_a_toy_table() -> None:
    # 200 treated, 130 back; holdout 50, 25 back (rate 0.5): 130 - 100 = 30 caused by the messages
    assert cle.incremental(200, 130, 50, 25) == 30
    assert cle.incremental(200, 80, 50, 25) == -20  # messaging hurt
    assert cle.incremental(200, 130, 0, 0) is None  # no holdout: nothing to compare with


def test_reengaged_within_is_strictly_after_and_inclusive_at_the_window_end() -> None:
    times = [100, 200, 300]
    assert cle.reengaged_within(times, 100, 100)  # 200 is within (100, 200]
    assert not cle.reengaged_within(times, 300, 1000)  # nothing after the last
    assert not cle.reengaged_within([], 0, 10)


def test_relative_change() -> None:
    assert cle.relative(0.33, 0.30) == pytest.approx(0.1)
    assert cle.relative(None, 0.3) is None and cle.relative(0.3, 0) is None


@pytest.mark.parametrize("kind", ["base", "sendtime", "uplift"])
def test_each_runs_playbook_file_loads(kind: str) -> None:
    data = cle.playbook_file(kind)
    rules = parse_rules(yaml.safe_dump(data), f"<{kind}>")
    assert rules is not None
    books = {book["name"]: book for book in data["playbooks"]}
    assert [v["name"] for v in books[cle.BANDIT_PLAYBOOK]["variants"]] == list(cle.VARIANTS)
    gated = [name for name in cle.UPLIFT_PLAYBOOKS if "scores.uplift." in books[name]["when"]]
    assert gated == (list(cle.UPLIFT_PLAYBOOKS) if kind == "uplift" else [])
    windows = [name for name, book in books.items() if "send_window" in book]
    assert (kind == "sendtime") == bool(windows)


def test_risk_targeting_at_a_volume_takes_the_highest_risks() -> None:
    rows = [(0.95, -0.3, "sleeping_dog"), (0.9, 0.2, "persuadable"), (0.85, 0.0, "lost_cause"),
            (0.6, 0.4, "persuadable")]
    assert cle.at_volume(rows, 3) == {"customers": 3, "true_incremental": pytest.approx(-0.1), "sleeping_dogs": 1}
    assert cle.at_volume(rows, 10)["customers"] == 4  # fewer customers than the volume: all of them


def test_the_harness_runs_end_to_end_on_a_tiny_population(tmp_path: Path) -> None:
    """What `make closed-loop-eval` runs, on 40 customers over 7 days: every run and its figures in the JSON."""
    import json
    import subprocess

    out = tmp_path / "loop.json"
    done = subprocess.run([sys.executable, str(BENCHMARKS / "closed_loop_eval.py"), "--customers", "40", "--days", "7",
                           "--seed", "3", "--out", str(out)], capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    [seed] = json.loads(out.read_text())["seeds"]
    assert (seed["seed"], seed["customers"]) == (3, 40)
    assert set(seed["runs"]) == {"base", "sendtime", "uplift"}
    assert seed["runs"]["base"]["bandit"]["triggers"] > 0, "the variant playbook fired on these customers"
    assert set(seed["runs"]["base"]["qini"]) == set(cle.UPLIFT_PLAYBOOKS)  # the Qini figures, per playbook


def test_the_uplift_readers_of_the_base_run_change_no_trigger() -> None:
    """The base run's shadow readers (so the uplift estimators learn, for the Qini figures) never fire
    and leave every live trigger as it is without them."""
    from forethought.closed_loop import run_closed_loop
    from forethought.simulate.plans import SimulationConfig

    with_readers = cle.playbook_file("base")
    without = copy_without_readers(with_readers)
    assert len(without["playbooks"]) == len(with_readers["playbooks"]) - len(cle.UPLIFT_PLAYBOOKS)
    config = SimulationConfig(customers=50, days=8, seed=4)
    runs = [run_closed_loop(config, None, parse_rules(yaml.safe_dump(data), "<base>"), partitions=1)
            for data in (with_readers, without)]
    ids = [[(t.trigger_id, t.playbook, t.channel, t.variant) for t in run.triggers] for run in runs]
    assert ids[0] and ids[0] == ids[1]
    assert not any(name.endswith("_uplift_reader") for name in runs[0].counts.shadow)


def copy_without_readers(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "playbooks": [b for b in data["playbooks"] if not b["name"].endswith("_uplift_reader")]}


def test_decisions_are_recorded_with_their_scores_and_compared() -> None:
    """On a small run, every watch-starting decision of the uplift playbooks is recorded (treated and
    held out) and the comparison has a figure per ranking."""
    from forethought.simulate.plans import SimulationConfig

    result, activity, _, _, decided = cle.run(SimulationConfig(customers=150, days=12, seed=3), "base", 1)
    assert decided, "the uplift playbooks decided on these customers"
    assert {row.group for row in decided} == {"treated", "holdout"}
    assert all(0 <= row.risk <= 1 for row in decided)
    lift = result.report()["playbooks"]
    for name in cle.UPLIFT_PLAYBOOKS:
        book = (lift.get(name) or {}).get("reengagement") or {}
        measured = sum((book.get(g) or {}).get("measured", 0) for g in ("treated", "holdout"))
        recorded = sum(1 for row in decided if row.playbook == name)
        assert recorded >= measured  # each measured decision was recorded (open windows are not measured yet)
        q = cle.qini_metrics(result, activity, decided, name, "email")
        assert q["decided_customers"] == len({row.customer_id for row in decided if row.playbook == name})


def test_engagement_with_the_message_counts_a_click_of_that_trigger_within_24_hours_of_its_decision() -> None:
    """Send time is also judged by what a message can change: an engaged outcome of *that* trigger
    within 24 h of its decision, and the truth's expected engagement at its arrival."""
    from datetime import datetime, timezone
    from types import SimpleNamespace

    from forethought.simulate.plans import SimulationConfig
    from forethought.simulate.responder import Responder

    responder = Responder(SimulationConfig(customers=3, days=7, seed=1))
    plan = responder.population[0]
    fired = datetime.fromtimestamp(plan.active_from / 1000 + 3600, tz=timezone.utc)
    hour = 3_600_000
    at = round(fired.timestamp() * 1000)

    def trigger(tid: str, released: int | None = None, playbook: str = "long_inactivity") -> SimpleNamespace:
        return SimpleNamespace(trigger_id=tid, playbook=playbook, mode="live", customer_id=plan.customer_id,
                               channel="email", variant=None, fired_at=fired,
                               released_at=None if released is None else datetime.fromtimestamp(released / 1000,
                                                                                                 tz=timezone.utc))

    triggers = [trigger("t1"), trigger("t2", at + 6 * hour), trigger("t3"), trigger("t4", playbook="error_burst")]
    engaged = {"t1": [at + hour],            # clicked an hour after the decision: counts
               "t2": [at + 25 * hour],       # 25 h after the decision: too late
               "t4": [at + hour]}            # not a send-window playbook
    result = SimpleNamespace(triggers=triggers, responder=responder)
    m = cle.sendtime_metrics(result, {}, engaged, {"long_inactivity"})  # type: ignore[arg-type]
    assert (m["sent"], m["engaged_24h"], m["engaged_rate_24h"]) == (3, 1, round(1 / 3, 4))
    rewards = [cle.reward(responder.model, plan, "email", "default", t) for t in (at, at + 6 * hour, at)]
    assert m["expected_engagement"] == round(sum(rewards) / 3, 4)
