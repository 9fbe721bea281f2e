"""Playbook variants through the worker (#16 point 2): a trigger carries its variant and the bandit's
choice, an outcome settles its pull, and both are counted on /metrics."""

from __future__ import annotations

import json
from pathlib import Path

from forethought.contracts.records import Trigger
from forethought.ops.settings import Settings

from test_agent import ENGINE, put, recorded, settle, stored  # tests/stream is on the path (rootdir conftest)

PLAYBOOKS = """playbooks:
  - name: burst
    on: [error_burst]
    channels: [in_app, email]
    priority: 70
    variants:
      - {name: tip, template: burst_tip}
      - {name: mail, template: burst_mail, channel: email}
    bandit: {policy: thompson, reward: [clicked], reward_window: 1d}
"""


def error(customer: str, n: int) -> bytes:
    return json.dumps({"event_id": f"{customer}-{n}", "customer_id": customer, "type": "error",
                       "occurred_at": f"2026-11-22T12:00:0{n}+00:00", "code": "E1"}).encode()


async def test_a_variant_trigger_is_sent_and_its_click_rewards_the_bandit(tmp_path: Path) -> None:
    path = tmp_path / "playbooks.yaml"
    path.write_text(PLAYBOOKS)
    built, rec = recorded(Settings(topic_prefix="t.", engine=ENGINE, batch_within_seconds=0.01, playbooks_file=path,
                                   commit_interval_seconds=0.001))
    customers = [f"c{i}" for i in range(6)]
    async with built.agent.test_context() as agent:
        for customer in customers:
            for n in range(3):
                await put(agent, "t.events.errors", customer.encode(), error(customer, n), offset=n)
        await settle(lambda: len(rec["triggers"].sent) == len(customers))
        sent = [Trigger.model_validate_json(value) for _, value in rec["triggers"].sent]
        clicked = sent[0]
        outcome = {"type": "outcome", "outcome_id": "o1", "trigger_id": clicked.trigger_id,
                   "customer_id": clicked.customer_id, "channel": clicked.channel, "status": "clicked",
                   "occurred_at": "2026-11-22T12:10:00Z"}
        await put(agent, "t.engagement.outcomes", clicked.customer_id.encode(), json.dumps(outcome).encode(), 0)
        key = clicked.customer_id.encode()
        await settle(lambda: "variant_rewards_total{" in built.metrics.exposition().decode())
        await settle(lambda: built.processor.table.get(key) is not None and "u" not in stored(built, key)["pol"])
    for trigger in sent:
        assert trigger.variant in ("tip", "mail") and trigger.template == f"burst_{trigger.variant}"
        assert trigger.why is not None and trigger.why.choice is not None
        assert trigger.why.choice.variant == trigger.variant and set(trigger.why.choice.probabilities) == {"tip", "mail"}
        assert trigger.channel == ("email" if trigger.variant == "mail" else "in_app")
    waiting = [stored(built, t.customer_id.encode())["pol"].get("u") for t in sent[1:]]  # written with the click
    assert all(w is not None and len(w) == 1 for w in waiting)  # the others still await their reward
    metrics = built.metrics.exposition().decode()
    pulls = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                if line.startswith("forethought_variant_pulls_total{"))
    assert pulls == len(customers)
    assert (f'forethought_variant_rewards_total{{playbook="burst",result="success",variant="{clicked.variant}"}} 1.0'
            in metrics)
