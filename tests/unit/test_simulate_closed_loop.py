"""The in-process closed loop: deterministic, customers react as their type says, the rest untouched."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from forethought.cli import app
from forethought.closed_loop import LoopResult, run_closed_loop
from forethought.contracts.records import Trigger
from forethought.ops.playbooks import parse_rules
from forethought.simulate.plans import SimulationConfig
from forethought.simulate.population import simulate
from forethought.simulate.responder import Responder
from forethought.simulate.response import ResponseModel, Variant
from forethought.simulate.timeline import iso

PLAYBOOK = """
version: 1
policy:
  reengagement_window: 7d
playbooks:
  - name: nudge
    on: [silence, churn]
    when: scores.dropoff >= 0.8 or scores.churn >= 0.9
    channels: [in_app]
    priority: 50
    cooldown: 7d
    holdout: 0.5
  - name: checkin
    on: [daily]
    when: features.events_last_7_days >= 5
    channels: [in_app]
    priority: 40
    cooldown: 30d
    holdout: 0.5
"""
CONFIG = SimulationConfig(customers=600, days=21, seed=3, churn_rate=0.5)
EAGER = {"in_app": (0.95, 0.9)}  # customers who nearly always open and click: a strong, visible effect


class Run:
    def __init__(self, config: SimulationConfig, model: ResponseModel) -> None:
        self.records: list[dict[str, Any]] = []
        self.result: LoopResult = run_closed_loop(config, rules=parse_rules(PLAYBOOK), model=model,
                                                  on_record=self.records.append)
        self.report = self.result.report()


@pytest.fixture(scope="module")
def loop() -> Run:
    return Run(CONFIG, ResponseModel(CONFIG.seed, channels=EAGER))


def _digest(records: list[dict[str, Any]]) -> str:
    return hashlib.sha256(b"\n".join(orjson.dumps(r) for r in records)).hexdigest()


def test_same_seed_same_run_and_another_seed_another() -> None:
    config = SimulationConfig(customers=150, days=10, seed=8, churn_rate=0.5)
    first, second = Run(config, ResponseModel(8, channels=EAGER)), Run(config, ResponseModel(8, channels=EAGER))
    assert first.report == second.report and _digest(first.records) == _digest(second.records)
    assert first.report["playbooks"]["nudge"]["triggers"] > 0
    other = Run(config, ResponseModel(9, channels=EAGER))
    assert _digest(other.records) != _digest(first.records)


def test_customers_whose_activity_no_message_changed_do_exactly_what_simulate_writes(loop: Run) -> None:
    fates = loop.result.responder.fates
    changed = {f"cust-{i:06d}" for i, fate in fates.items() if fate.back or fate.gone}
    assert changed, "the run should change someone's activity"
    fed: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in loop.records:
        if record["type"] != "outcome":
            fed[record["customer_id"]].append(record)
    own: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in simulate(CONFIG):
        own[record["customer_id"]].append(record)
    untouched = set(own) - changed
    assert all(fed[c] == own[c] for c in untouched)
    for customer in changed:  # until the message changed it, their own activity
        n = next((k for k, (a, b) in enumerate(zip(fed[customer], own[customer], strict=False)) if a != b),
                 min(len(fed[customer]), len(own[customer])))
        assert n > 0 and fed[customer][:n] == own[customer][:n]


def test_a_message_brings_persuadables_back_and_pushes_sleeping_dogs_away(loop: Run) -> None:
    nudge, checkin = loop.report["playbooks"]["nudge"], loop.report["playbooks"]["checkin"]
    persuadable = nudge["reengagement_by_type"]["persuadable"]  # lapsing customers nudged vs held out
    assert persuadable["treated"]["measured"] >= 10 and persuadable["holdout"]["measured"] >= 5
    assert persuadable["treated"]["rate"] >= persuadable["holdout"]["rate"] + 0.2
    assert nudge["reengagement"]["lift"] > 0.05
    assert nudge["responses"]["returned"] > 0 and nudge["responses"]["converted"] > 0
    dogs = checkin["reengagement_by_type"]["sleeping_dog"]  # active customers disturbed vs left alone
    assert dogs["treated"]["measured"] >= 10 and dogs["holdout"]["measured"] >= 10
    assert dogs["treated"]["rate"] < dogs["holdout"]["rate"]
    assert checkin["responses"]["left"] > 0
    assert loop.report["invalid"] == {} and loop.report["tick_errors"] == 0


def test_a_leaving_customer_has_no_activity_after_leaving_and_a_returning_one_comes_back(loop: Run) -> None:
    responder = loop.result.responder
    gone = {i: f for i, f in responder.fates.items() if f.gone}
    back = {i: f for i, f in responder.fates.items() if f.back}
    assert gone and back
    assert all(responder.model.traits(responder.population[i]).kind == "sleeping_dog" for i in gone)
    assert all(responder.model.traits(responder.population[i]).kind == "persuadable" for i in back)
    activity: dict[str, list[str]] = defaultdict(list)
    for record in loop.records:
        if record["type"] not in ("outcome", "profile"):
            activity[record["customer_id"]].append(record["occurred_at"])
    for index, fate in gone.items():
        assert fate.changed_at is not None
        assert max(activity[responder.population[index].customer_id]) < iso(fate.changed_at)
    for index, fate in back.items():
        plan = responder.population[index]
        assert fate.changed_at is not None
        after = [t for t in activity[plan.customer_id] if t >= iso(fate.changed_at)]
        assert after and (plan.dropoff is None or fate.changed_at < plan.stop or after[-1] > iso(plan.stop))
    ids = [r["event_id"] for r in loop.records if "event_id" in r]
    assert len(ids) == len(set(ids)), "a returning customer's events have their own ids"


def _trigger(customer: str = "cust-000001", **extra: Any) -> dict[str, Any]:
    now = datetime(2026, 9, 8, 14, tzinfo=UTC).isoformat()
    body: dict[str, Any] = {
        "trigger_id": f"t-{customer}", "customer_id": customer, "playbook": "nudge", "detector": "silence",
        "episode": "e1", "channel": "in_app", "priority": 50, "fired_at": now, "expires_at": now,
        "scores": {}, "reasons": [{"signal": "silence_seconds", "observed": 1, "baseline": 1, "text": "quiet"}],
    }
    return body | extra


def test_bad_triggers_are_counted_and_skipped_and_the_next_one_is_answered() -> None:
    config = SimulationConfig(customers=5, days=7, seed=3)
    responder = Responder(config, ResponseModel(3, channels=EAGER))
    bad = [b"{oops", b"[1, 2]", orjson.dumps({"type": "trigger"}), orjson.dumps(_trigger(variant=7)),
           orjson.dumps(_trigger("cust-999999")), orjson.dumps(_trigger(variant="nope"))]
    answers = []
    for raw in bad:
        decoded = responder.decode(raw)
        if decoded is not None:
            answers.append(responder.answer(decoded[0], 0, decoded[1]))
    assert answers == [None, None, None]
    assert dict(responder.skipped) == {"malformed": 4, "unknown_customer": 1, "unknown_variant": 1}
    decoded = responder.decode(orjson.dumps(_trigger(variant="short")))
    assert decoded is not None
    answer = responder.answer(decoded[0], 0, decoded[1])
    assert answer is not None and answer.variant == "short" and answer.outcomes[0][1]["status"] == "delivered"
    plain = responder.answer(Trigger.model_validate(_trigger()), 0)
    assert plain is not None and plain.variant == "default"


def test_a_loop_whose_triggers_cannot_be_answered_still_runs_and_counts_them() -> None:
    config = SimulationConfig(customers=150, days=10, seed=8, churn_rate=0.5)
    run = Run(config, ResponseModel(8, variants=(Variant("only-this"),), channels=EAGER))
    sent = sum(row["triggers"] for row in run.report["playbooks"].values())
    assert sent > 0 and run.report["skipped_triggers"] == {"unknown_variant": sent}
    assert run.report["records"] == {"base": sum(1 for _ in simulate(config))}


def test_the_command_runs_the_loop_and_writes_report_records_and_truth(tmp_path: Path) -> None:
    playbooks = tmp_path / "playbooks.yaml"
    playbooks.write_text(PLAYBOOK)
    report, records, truth_file = tmp_path / "report.json", tmp_path / "records.jsonl", tmp_path / "truth.jsonl"
    args = ["simulate", "--closed-loop", "--customers", "120", "--days", "10", "--seed", "8", "--churn-rate", "0.5",
            "--playbooks", str(playbooks), "--report", str(report), "--output", str(records), "--truth",
            str(truth_file)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "nudge" in result.output and "holdout" in result.output
    data = orjson.loads(report.read_bytes())
    fed = [orjson.loads(line) for line in records.read_bytes().splitlines()]
    assert sum(data["records"].values()) == len(fed)
    assert data["playbooks"]["nudge"]["triggers"] > 0 and any(r["type"] == "outcome" for r in fed)
    rows = [orjson.loads(line) for line in truth_file.read_bytes().splitlines()]
    assert len(rows) == 120 and all(row["response"]["type"] for row in rows)
    bad = CliRunner().invoke(app, ["simulate", "--closed-loop", "--customers", "0", "--playbooks", str(playbooks)])
    assert bad.exit_code == 2 and "--customers" in bad.output
    both = CliRunner().invoke(app, ["simulate", "--closed-loop", "--to-kafka", "--playbooks", str(playbooks)])
    assert both.exit_code == 2 and "--closed-loop runs in-process" in both.output
