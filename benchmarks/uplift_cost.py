"""CPU the uplift estimators add per trigger and per label (#16 point 4), as A/B pairs interleaved in one run.

Run from the repository root::

    .venv/bin/python benchmarks/uplift_cost.py            # 20 rounds
    .venv/bin/python benchmarks/uplift_cost.py --rounds 40 --json uplift_cost.json

Per trigger, one policy pass (:func:`forethought.core.policy.decide.decide`) on an error burst of a live
playbook with a 10% holdout, each round timed as:

* **A**: no condition reads the playbook's uplift (as every shipped playbook: what the policy did
  before uplift, no snapshot);
* **B**: a shadow playbook on another signal reads it, so the pass keeps the 6-byte snapshot with the
  re-engagement watch;
* **C**: the same playbook with ``when: scores.uplift.burst > 0`` and a warm estimator (snapshot,
  both arms scored, gate evaluated).

Per label, one resolved watch: **A** the engine's bookkeeping of a customer's return without a
snapshot (nothing to learn), **B** with it (both a scaler and an SGD step of one arm's classifier).

CPU time (``time.process_time``), the median of the rounds' per-call differences; A and B alternate
within each round so the machine's load hits both alike. Print ``uptime`` beside the figures.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from forethought.contracts.records import Reason
from forethought.core.engine import _reengaged
from forethought.core.ledger import PolicyLedger, Watch
from forethought.core.models import PartitionModels
from forethought.core.policy import decide as policy
from forethought.core.policy.profiles import ProfileState
from forethought.core.signals import Detection
from forethought.core.config import EngineConfig
from forethought.core.state import CustomerState
from forethought.core.uplift import UpliftModels, snapshot
from forethought.ops.playbooks import parse_rules

T0 = 1_793_588_400.0
REASON = Reason(signal="errors", observed=5.0, baseline=0.2, text="5 errors in 10 s")
ENV = {"scores": {"dropoff": 0.71, "churn": 0.4, "anomaly": 5.2},
       "features": {"days_since_last_seen": 0.01, "visits": 14, "days_since_first_seen": 40,
                    "events_last_7_days": 35, "events": 300}, "profile": {"plan": "pro"}}


def rules(when: str, twin: bool = False) -> object:
    """One live playbook; ``twin``: plus a shadow playbook on another signal reading its uplift (so
    the live one keeps features in its watches)."""
    other = "  - {name: twin, on: [usage_anomaly], when: 'scores.uplift.burst > 0', channels: [in_app], priority: 1," \
            " mode: shadow}\n" if twin else ""
    return parse_rules(f"""policy: {{arbitration_window: 0s, reengagement_window: 7d}}
playbooks:
  - {{name: burst, on: [error_burst], when: '{when}', channels: [in_app], priority: 70, holdout: 0.1}}
{other}""")


def trained() -> UpliftModels:
    rng, models = random.Random(1), UpliftModels()
    for _ in range(2000):
        env = {"scores": {"dropoff": rng.random(), "churn": rng.random()},
               "features": {"days_since_last_seen": rng.uniform(0, 30), "visits": rng.randint(1, 90)}}
        treated = rng.random() > 0.1
        models.learn("burst", "treated" if treated else "holdout", snapshot(env), rng.random() < 0.3 + 0.2 * treated)
    return models


def trigger_pass(rule_set: object, models: UpliftModels | None, n: int) -> float:
    """CPU seconds of ``n`` policy passes (fresh ledgers: every pass decides)."""
    detections = [Detection("error_burst", "burst-1", T0, {"anomaly": 5.2}, (REASON,))]
    ctxs = [policy.Context(f"cust-{i}", None, PolicyLedger(), ProfileState(), rule_set, ENV, models)  # type: ignore[arg-type]
            for i in range(n)]
    start = time.process_time()
    for ctx in ctxs:
        policy.decide(detections, ctx, policy.Verdicts())
    return time.process_time() - start


def label_pass(with_snapshot: bool, n: int) -> float:
    """CPU seconds of ``n`` customers' returns, each resolving one watch."""
    x = snapshot(ENV) if with_snapshot else b""
    models = PartitionModels()
    states = []
    for i in range(n):
        state = CustomerState.new(f"c{i}", EngineConfig())
        state.policy.watch = [Watch("burst", "treated" if i % 10 else "holdout", T0, T0 + 604_800, x)]
        states.append(state)
    start = time.process_time()
    for state in states:
        _reengaged(state, T0 + 60, models)
    return time.process_time() - start


def interleaved(pairs: dict[str, Callable[[], float]], rounds: int, n: int) -> dict[str, float]:
    """Median µs per call of each timed callable, alternating their order round by round."""
    times: dict[str, list[float]] = {k: [] for k in pairs}
    names = list(pairs)
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            times[name].append(pairs[name]() / n * 1e6)
    return {k: round(statistics.median(v), 3) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    plain, twin, gated, models = rules("true"), rules("true", twin=True), rules("scores.uplift.burst > 0"), trained()
    per_trigger = interleaved({"A_before": lambda: trigger_pass(plain, models, args.calls),
                               "B_snapshot": lambda: trigger_pass(twin, models, args.calls),
                               "C_gate_warm": lambda: trigger_pass(gated, models, args.calls)}, args.rounds, args.calls)
    per_label = interleaved({"A_no_snapshot": lambda: label_pass(False, args.calls),
                             "B_learns": lambda: label_pass(True, args.calls)}, args.rounds, args.calls)
    result = {
        "per_trigger_us": per_trigger, "per_label_us": per_label,
        "added_per_trigger_us": round(per_trigger["B_snapshot"] - per_trigger["A_before"], 3),
        "added_per_gated_trigger_us": round(per_trigger["C_gate_warm"] - per_trigger["A_before"], 3),
        "added_per_label_us": round(per_label["B_learns"] - per_label["A_no_snapshot"], 3),
        "load": Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else None,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
