"""Each uplift playbook's decisions with the scores they were made on, and what ranking them by the
uplift score or by the risk score would achieve (benchmarks/closed_loop_eval.py, #16 point 5).

:func:`record_decisions` sees every step the replay applies (the harness wraps the replay's
``_apply``; no product code changes): for each decision of a watched playbook that starts a
re-engagement watch (``sent``, ``deferred``, ``held_out``), it reads the watch's feature snapshot
(the 6 bytes the uplift estimator learns from, ``core.uplift.snapshot``) and asks the customer's
partition estimator for ``scores.uplift.<playbook>`` **at that moment** (it has learned only from
watches already resolved: no look-ahead). The risk score is ``max(scores.dropoff, scores.churn)``
from the same snapshot (what both playbooks fire on, quantised to 1/255).

The estimator learns only for playbooks whose uplift some condition reads: the ``base`` run adds
one shadow playbook per uplift playbook whose base condition never holds (:func:`learner_playbooks`),
so it changes no decision and the live triggers stay those of the ungated playbooks.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from closedloopkit.qini import effect_curve, qini_auc_score, top, true_qini_score
from forethought.closed_loop import ClosedLoop
from forethought.core.engine import Step
from forethought.core.uplift import vector

STARTS_WATCH = frozenset({"sent", "deferred", "held_out"})
FRACTIONS = (0.25, 0.5, 0.75)  # volumes compared, fixed before any run (0.5 the headline)
BOOTSTRAP = 400  # resamples for the intervals


@dataclass(frozen=True)
class Decided:
    """One decision that started a watch: who, when (s), group, and the two scores then."""

    customer_id: str
    playbook: str
    at: float
    group: str
    uplift: float | None
    risk: float


def learner_playbooks(names: Sequence[str]) -> list[dict[str, Any]]:
    """Shadow playbooks that read ``scores.uplift.<name>`` (so each estimator learns) and never fire."""
    return [{"name": f"{name}_uplift_reader", "on": ["silence"], "mode": "shadow", "channels": ["email"],
             "priority": 1, "when": f"scores.dropoff > 1 and scores.uplift.{name} > 0"} for name in names]


def record_decisions(loop: ClosedLoop, playbooks: Sequence[str]) -> list[Decided]:
    """Wrap ``loop``'s replay so that each watch-starting decision of ``playbooks`` is recorded (in order)."""
    rows: list[Decided] = []
    replay, wanted = loop.replay, frozenset(playbooks)
    original = replay._apply

    def apply(customer_id: str, step: Step) -> None:
        if step.state is not None:
            for decision in step.decisions:
                if decision.playbook in wanted and decision.verdict in STARTS_WATCH:
                    rows.append(_decided(replay, customer_id, step, decision))
        original(customer_id, step)

    replay._apply = apply  # type: ignore[method-assign]
    return rows


def _decided(replay: Any, customer_id: str, step: Step, decision: Any) -> Decided:
    since = float(math.floor(decision.at))
    assert step.state is not None
    watch = next((w for w in reversed(step.state.policy.watch) if w.playbook == decision.playbook
                  and w.since == since), None)
    x = watch.x if watch is not None else b""
    models = replay.model(customer_id)
    score = None if models is None or not x else models.uplift.score(decision.playbook, x)
    features = vector(x) if x else {"dropoff": 0.0, "churn": 0.0}
    group = watch.group if watch is not None else ("holdout" if decision.verdict == "held_out" else "treated")
    return Decided(customer_id, decision.playbook, decision.at, group, score, max(features["dropoff"], features["churn"]))


def first_per_customer(rows: Sequence[Decided], playbook: str) -> list[Decided]:
    """Each customer's first decision by ``playbook`` (a customer is targeted once)."""
    seen: dict[str, Decided] = {}
    for row in rows:
        if row.playbook == playbook:
            seen.setdefault(row.customer_id, row)
    return list(seen.values())


def compare(rows: Sequence[Decided], tau: Sequence[float], kinds: Sequence[str],
            reengaged: Sequence[int]) -> dict[str, Any]:
    """For the decided customers ``rows`` with a known uplift score, their true effects ``tau``,
    response ``kinds`` and observed 7-day re-engagement: the Qini coefficient of each score, against
    the truth and against the experiment (treated vs held out), and targeting at equal volumes."""
    uplift = [row.uplift if row.uplift is not None else 0.0 for row in rows]
    risk = [row.risk for row in rows]
    treated = [1 if row.group == "treated" else 0 for row in rows]
    out: dict[str, Any] = {
        "customers": len(rows), "treated": sum(treated), "true_incremental_all": round(sum(tau), 3),
        "sleeping_dogs_all": kinds.count("sleeping_dog"),
        "qini_true": {"uplift": _round(true_qini_score(tau, uplift)), "risk": _round(true_qini_score(tau, risk))},
        "qini_observed": {"uplift": _round(qini_auc_score(reengaged, treated, uplift)),
                          "risk": _round(qini_auc_score(reengaged, treated, risk))},
        "curve_true": {"uplift": _thin(effect_curve(tau, uplift)), "risk": _thin(effect_curve(tau, risk))},
        "at_volume": [],
    }
    for fraction in FRACTIONS:
        n = round(len(rows) * fraction)
        picks = {"uplift": top(uplift, n), "risk": top(risk, n)}
        entry: dict[str, Any] = {"fraction": fraction, "messages": n,
                                 "random_true_incremental": round(sum(tau) * n / len(rows), 3) if rows else 0.0}
        for name, chosen in picks.items():
            entry[name] = {"true_incremental": round(sum(tau[i] for i in chosen), 3),
                           "sleeping_dogs": sum(1 for i in chosen if kinds[i] == "sleeping_dog"),
                           "persuadables": sum(1 for i in chosen if kinds[i] == "persuadable")}
        risk_gain = entry["risk"]["true_incremental"]
        entry["ratio"] = round(entry["uplift"]["true_incremental"] / risk_gain, 3) if risk_gain > 0 else None
        out["at_volume"].append(entry)
    out["kinds"] = dict(sorted(Counter(kinds).items()))
    out["bootstrap_95"] = bootstrap(tau, uplift, risk) if len(rows) >= 20 else None
    return out


def bootstrap(tau: Sequence[float], uplift: Sequence[float], risk: Sequence[float], rounds: int = BOOTSTRAP,
              seed: int = 0) -> dict[str, list[float]]:
    """95 % percentile intervals, over customers resampled with replacement, of each score's Qini
    coefficient against the truth, their difference (uplift - risk), and the difference of true
    incremental returns of the top half by each (a fixed seed: the same figures every run)."""
    rng, n = random.Random(seed), len(tau)
    draws: dict[str, list[float]] = {"qini_true_uplift": [], "qini_true_risk": [], "qini_true_difference": [],
                                     "top_half_difference": []}
    for _ in range(rounds):
        pick = [rng.randrange(n) for _ in range(n)]
        t, u, r = [tau[i] for i in pick], [uplift[i] for i in pick], [risk[i] for i in pick]
        qu, qr = true_qini_score(t, u), true_qini_score(t, r)
        if qu is None or qr is None:
            continue
        draws["qini_true_uplift"].append(qu)
        draws["qini_true_risk"].append(qr)
        draws["qini_true_difference"].append(qu - qr)
        half = round(n / 2)
        draws["top_half_difference"].append(sum(t[i] for i in top(u, half)) - sum(t[i] for i in top(r, half)))
    return {name: _interval(values) for name, values in draws.items()}


def _interval(values: list[float]) -> list[float]:
    values = sorted(values)
    if not values:
        return []
    return [round(values[int(0.025 * (len(values) - 1))], 3), round(values[int(0.975 * (len(values) - 1))], 3)]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _thin(curve: list[tuple[float, float]], points: int = 11) -> list[list[float]]:
    """About ``points`` points of a curve (for the JSON), first and last kept."""
    if len(curve) <= points:
        return [[x, round(y, 3)] for x, y in curve]
    step = (len(curve) - 1) / (points - 1)
    return [[curve[round(k * step)][0], round(curve[round(k * step)][1], 3)] for k in range(points)]
