"""Closed-loop evaluation of #16's learning parts: the bandit, send windows and uplift gating.

Each comparison runs the in-process closed loop (``forethought.closed_loop``) twice or more on
the same seed and population, with a playbook file derived from ``streams/playbooks.yaml``:

- **bandit** (run ``base``): ``feature_welcome`` (the shipped playbook that sends most) gets three
  variants the response model knows (``default``, ``short``, ``personal``). The regret is computed
  from the simulator's truth on the bandit's own trigger stream: for every trigger with a variant,
  the expected reward (P(clicked or converted), the bandit's default reward) of each variant for
  that customer at that arrival time. Bandit regret = sum over triggers of (reward of the best
  *fixed* variant - reward of the chosen one); uniform random's = the same with the mean over
  variants in place of the chosen one (its expectation; the engine has no uniform policy to run).
- **send time** (``base`` vs ``sendtime``): the same file plus ``send_window: 24h`` on every live
  playbook that respects quiet hours; re-engagement within 24 h of each sent trigger's decision
  (the customer's next non-error event), engagement with the message within 24 h of the decision
  (a ``clicked`` or ``converted`` outcome of that trigger), the truth's expected engagement per
  message at its arrival hour, and returns caused by a message within 24 h.
- **uplift** (``base`` vs ``uplift``): ``long_inactivity`` and ``dropoff_risk_high`` with holdout 0.5
  in both runs; the ``uplift`` run adds ``scores.uplift.<playbook> > 0``. Incremental
  re-engagements (treated re-engaged - treated x holdout rate, the engine's own 7-day windows), the
  truth's expected incremental returns (sum of the true uplift of each customer's first message),
  and sleeping dogs messaged.
- **Qini** (run ``base``): each decision of the two uplift playbooks, treated or held out, with the
  uplift score ``scores.uplift.<playbook>`` the engine's estimator gave at that moment and the risk
  score; the Qini coefficient of each ranking against the true effects and against the experiment,
  and the true incremental returns of the top 25/50/75 % by each (closedloopkit/targeting.py).

    .venv/bin/python benchmarks/closed_loop_eval.py --customers 1000 --days 30 --seed 8 \\
        --out var/closed_loop_eval.json

Results, commands and what they mean: docs/closed-loop-results.md.
"""

from __future__ import annotations

import argparse
import bisect
import copy
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

if str(Path(__file__).resolve().parent) not in sys.path:  # run as a script, benchmarks/ is already there
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from closedloopkit.targeting import (  # noqa: E402 - after the path is set
    Decided, compare, first_per_customer, learner_playbooks, record_decisions)

from forethought.closed_loop import ClosedLoop, LoopResult  # noqa: E402
from forethought.contracts.records import Trigger
from forethought.core.bandit import BanditSettings
from forethought.ops.playbooks import parse_rules
from forethought.simulate.plans import CustomerPlan, SimulationConfig
from forethought.simulate.response import DEFAULT_VARIANT, ResponseModel, hour_factor
from forethought.simulate.timeline import HOUR_MS

ROOT = Path(__file__).resolve().parent.parent
PLAYBOOKS = ROOT / "streams" / "playbooks.yaml"
VARIANTS = ("default", "short", "personal")
BANDIT_PLAYBOOK = "feature_welcome"
UPLIFT_PLAYBOOKS = ("long_inactivity", "dropoff_risk_high")
DAY_MS = 24 * HOUR_MS
NOT_ACTIVITY = {"outcome", "profile", "error"}
ENGAGED = BanditSettings().rewards  # engagement with a message: the bandit's default reward (clicked, converted)


# --- metric functions (tested in tests/unit/test_closed_loop_eval.py) -----------------------------

def regret(rows: Sequence[tuple[dict[str, float], str]]) -> dict[str, Any]:
    """Cumulative regret against the best fixed variant, of the choices made and of uniform random.

    ``rows``: per trigger, the expected reward of every variant and the variant chosen.

    >>> regret([({"a": 0.2, "b": 0.1}, "a"), ({"a": 0.2, "b": 0.1}, "b")])["bandit"]
    0.1
    """
    if not rows:
        return {"triggers": 0, "best_fixed": None, "bandit": 0.0, "uniform": 0.0, "ratio": None}
    names = sorted(rows[0][0])
    totals = {name: sum(r[name] for r, _ in rows) for name in names}
    best = max(names, key=lambda name: (totals[name], name))
    chosen = sum(r[v] for r, v in rows)
    uniform = sum(sum(r.values()) / len(r) for r, _ in rows)
    bandit_regret, uniform_regret = totals[best] - chosen, totals[best] - uniform
    return {"triggers": len(rows), "best_fixed": best, "totals": {k: round(v, 4) for k, v in totals.items()},
            "bandit": round(bandit_regret, 4), "uniform": round(uniform_regret, 4),
            "ratio": None if uniform_regret <= 0 else round(bandit_regret / uniform_regret, 3)}


def most_pulled(chosen: Sequence[str], tail: float = 1 / 3) -> str | None:
    """The variant chosen most in the last ``tail`` of the choices (what the bandit settled on).

    >>> most_pulled(["a", "a", "b", "b", "b", "a"], tail=0.5)
    'b'
    """
    if not chosen:
        return None
    last = chosen[int(len(chosen) * (1 - tail)):] or chosen
    counts = Counter(last)
    return max(sorted(counts), key=lambda name: counts[name])


def incremental(treated: int, treated_back: int, holdout: int, holdout_back: int) -> float | None:
    """Re-engagements the messages caused: treated re-engaged minus what the holdout's rate predicts.

    >>> incremental(100, 60, 20, 10)
    10.0
    """
    if holdout == 0:
        return None
    return round(treated_back - treated * holdout_back / holdout, 3)


def reengaged_within(times: Sequence[int], at_ms: int, window_ms: int) -> bool:
    """Whether sorted activity ``times`` have one in ``(at_ms, at_ms + window_ms]``.

    >>> reengaged_within([10, 50], 10, 30), reengaged_within([10, 50], 10, 40)
    (False, True)
    """
    i = bisect.bisect_right(times, at_ms)
    return i < len(times) and times[i] <= at_ms + window_ms


def relative(new: float | None, old: float | None) -> float | None:
    """``new / old - 1`` (None when either is missing or ``old`` is 0).

    >>> relative(0.33, 0.30)
    0.1
    """
    if new is None or old is None or old == 0:
        return None
    return round(new / old - 1, 4)


def at_volume(rows: Sequence[tuple[float, float, str]], n: int) -> dict[str, Any]:
    """Risk-score targeting at a volume of ``n`` customers: of ``rows`` (risk, true uplift, response
    type) per customer messaged, the ``n`` of highest risk; their summed true uplift and sleeping dogs.

    >>> at_volume([(0.9, -0.2, "sleeping_dog"), (0.8, 0.3, "persuadable"), (0.5, 0.1, "persuadable")], 2)
    {'customers': 2, 'true_incremental': 0.1, 'sleeping_dogs': 1}
    """
    top = sorted(rows, key=lambda row: -row[0])[:n]
    return {"customers": len(top), "true_incremental": round(sum(row[1] for row in top), 3),
            "sleeping_dogs": sum(1 for row in top if row[2] == "sleeping_dog")}


# --- playbook files ---------------------------------------------------------------------------

def playbook_file(kind: str) -> dict[str, Any]:
    """The shipped playbooks, changed for run ``kind`` (base, sendtime, uplift)."""
    data = yaml.safe_load(PLAYBOOKS.read_text())
    # the shipped shadow example of #16 reads long_inactivity's uplift and has a send window of its own:
    # each run here sets those itself
    data["playbooks"] = [book for book in data["playbooks"] if book["name"] != "long_inactivity_learning"]
    for book in data["playbooks"]:
        if True in book:  # YAML 1.1 reads the key `on` as true; the project's loader does not
            book["on"] = book.pop(True)
    books = {book["name"]: book for book in data["playbooks"]}
    books[BANDIT_PLAYBOOK]["variants"] = [{"name": name, "template": f"welcome_{name}"} for name in VARIANTS]
    for name in UPLIFT_PLAYBOOKS:
        books[name]["holdout"] = 0.5
        if kind == "uplift":
            books[name]["when"] = f"({books[name]['when']}) and scores.uplift.{name} > 0"
    if kind == "base":  # the estimators learn (a never-firing shadow reader each) for the Qini figures
        data["playbooks"].extend(learner_playbooks(UPLIFT_PLAYBOOKS))
    if kind == "sendtime":
        for book in books.values():
            if book.get("quiet_hours") != "ignore" and book.get("mode", "live") == "live":
                book["send_window"] = "24h"
    return copy.deepcopy(data)


# --- one run ----------------------------------------------------------------------------------

def run(config: SimulationConfig, kind: str,
        partitions: int) -> tuple[LoopResult, dict[str, list[int]], dict[str, list[int]], float, list[Decided]]:
    """One closed-loop run; returns the result, each customer's activity times, each trigger's engaged
    outcome times (:data:`ENGAGED`, by trigger id), CPU seconds, and (run ``base``) the uplift
    playbooks' decisions with their scores."""
    rules = parse_rules(yaml.safe_dump(playbook_file(kind)), f"<{kind}>")
    activity: dict[str, list[int]] = {}
    engaged: dict[str, list[int]] = {}
    holder: list[ClosedLoop] = []

    def seen(record: dict[str, Any]) -> None:
        if "event_id" in record and record.get("type") not in NOT_ACTIVITY:
            activity.setdefault(record["customer_id"], []).append(holder[0].clock)
        elif record.get("type") == "outcome" and record.get("status") in ENGAGED:
            engaged.setdefault(record["trigger_id"], []).append(holder[0].clock)

    loop = ClosedLoop(config, None, rules, ResponseModel(config.seed), partitions, on_record=seen)
    holder.append(loop)
    decided = record_decisions(loop, UPLIFT_PLAYBOOKS) if kind == "base" else []
    started = time.process_time()
    result = loop.run()
    return result, activity, engaged, time.process_time() - started, decided


def _ms(moment: Any) -> int:
    return round(moment.timestamp() * 1000)


def _arrival(trigger: Trigger) -> int:
    return _ms(trigger.released_at or trigger.fired_at)


def reward(model: ResponseModel, plan: CustomerPlan, channel: str, variant: str, at_ms: int) -> float:
    """P(clicked or converted) of one message: a click, or a persuadable coming back after opening."""
    p_open = model.p_open(plan, channel, variant, hour_factor(plan, at_ms))
    p_click = model.p_click(plan, channel, variant)
    if model.traits(plan).kind == "persuadable":
        return p_open * (p_click + (1 - p_click) * model.traits(plan).persuaded_after_open)
    return p_open * p_click


def bandit_metrics(result: LoopResult) -> dict[str, Any]:
    """Regret of the bandit's choices against the best fixed variant and uniform random (truth)."""
    model, by_id = result.responder.model, result.responder.by_id
    rows, chosen = [], []
    for trigger in result.triggers:
        if trigger.playbook != BANDIT_PLAYBOOK or trigger.mode != "live" or trigger.variant is None:
            continue
        plan, at = by_id[trigger.customer_id], _arrival(trigger)
        rows.append(({v: reward(model, plan, trigger.channel, v, at) for v in VARIANTS}, trigger.variant))
        chosen.append(trigger.variant)
    out = regret(rows)
    out["settled_on"] = most_pulled(chosen)
    out["found_best"] = out["settled_on"] == out["best_fixed"] if rows else None
    out["pulls"] = dict(sorted(Counter(chosen).items()))
    half = rows[len(rows) // 2:]
    out["second_half"] = regret(half) if half else None
    return out


def sendtime_metrics(result: LoopResult, activity: dict[str, list[int]], engaged_at: dict[str, list[int]],
                     playbooks: set[str]) -> dict[str, Any]:
    """Per sent live trigger of ``playbooks``: re-engaged within 24 h of its decision (next activity),
    engaged with the message within 24 h of it (a clicked or converted outcome), the truth's expected
    engagement at its arrival (:func:`reward`), and a return caused by a message within 24 h of it
    (the responder's fates)."""
    for times in (*activity.values(), *engaged_at.values()):
        times.sort()
    model, fates, by_id = result.responder.model, result.responder.fates, result.responder.by_id
    sent = back = engaged = caused = 0
    expected = 0.0
    for trigger in result.triggers:
        if trigger.playbook not in playbooks or trigger.mode != "live":
            continue
        decided = _ms(trigger.fired_at)
        sent += 1
        back += reengaged_within(activity.get(trigger.customer_id, []), decided, DAY_MS)
        engaged += reengaged_within(engaged_at.get(trigger.trigger_id, []), decided, DAY_MS)
        expected += reward(model, by_id[trigger.customer_id], trigger.channel, trigger.variant or DEFAULT_VARIANT,
                           _arrival(trigger))
        fate = fates.get(by_id[trigger.customer_id].index)
        caused += bool(fate and fate.back and fate.changed_at is not None
                       and decided < fate.changed_at <= decided + DAY_MS)
    return {"sent": sent, "reengaged_24h": back, "rate_24h": round(back / sent, 4) if sent else None,
            "engaged_24h": engaged, "engaged_rate_24h": round(engaged / sent, 4) if sent else None,
            "expected_engagement": round(expected / sent, 4) if sent else None,
            "returns_caused_24h": caused, "deferred": sum(1 for t in result.triggers
                                                           if t.playbook in playbooks and t.released_at)}


def uplift_metrics(result: LoopResult, playbook: str) -> dict[str, Any]:
    """The engine's re-engagement of treated vs holdout, the truth's expected incremental returns of
    the customers messaged, and sleeping dogs messaged."""
    model, by_id = result.responder.model, result.responder.by_id
    lift = result.report()["playbooks"].get(playbook, {}).get("reengagement") or {}
    treated, holdout = lift.get("treated") or {}, lift.get("holdout") or {}
    first: dict[str, Trigger] = {}
    for trigger in result.triggers:
        if trigger.playbook == playbook and trigger.mode == "live":
            first.setdefault(trigger.customer_id, trigger)
    kinds = Counter(model.traits(by_id[c]).kind for c in first)
    rows = [(max(t.scores.get("dropoff", 0.0), t.scores.get("churn", 0.0)),
             model.uplift(by_id[c], t.channel, t.variant, hour_factor(by_id[c], _arrival(t))),
             model.traits(by_id[c]).kind) for c, t in first.items()]
    true_uplift = sum(row[1] for row in rows)
    decisions = result.report()["playbooks"].get(playbook, {}).get("decisions", {})
    return {"sent": sum(1 for t in result.triggers if t.playbook == playbook and t.mode == "live"),
            "customers_messaged": len(first), "kinds_messaged": dict(sorted(kinds.items())),
            "sleeping_dogs_messaged": kinds.get("sleeping_dog", 0),
            "low_uplift_suppressed": decisions.get("suppressed:low_uplift", 0),
            "treated": treated, "holdout": holdout,
            "incremental": incremental(treated.get("measured", 0), treated.get("reengaged", 0),
                                       holdout.get("measured", 0), holdout.get("reengaged", 0)),
            "true_incremental": round(true_uplift, 3), "rows": rows}


def qini_metrics(result: LoopResult, activity: dict[str, list[int]], decided: list[Decided],
                 playbook: str, channel: str) -> dict[str, Any]:
    """Qini and equal-volume targeting of one playbook's decided customers (first decision each) whose
    uplift score was known; true effect: ``ResponseModel.uplift`` of the playbook's first ``channel``,
    default variant, at the decision's hour; observed: active again within 7 days of the decision."""
    model, by_id = result.responder.model, result.responder.by_id
    rows = first_per_customer(decided, playbook)
    known = [row for row in rows if row.uplift is not None]
    tau, kinds, back = [], [], []
    for row in known:
        plan, at = by_id[row.customer_id], round(row.at * 1000)
        tau.append(model.uplift(plan, channel, None, hour_factor(plan, at)))
        kinds.append(model.traits(plan).kind)
        back.append(int(reengaged_within(sorted(activity.get(row.customer_id, [])), at, 7 * DAY_MS)))
    out = compare(known, tau, kinds, back)
    out["decided_customers"], out["cold_start_customers"] = len(rows), len(rows) - len(known)
    return out


# --- the report -------------------------------------------------------------------------------

def evaluate(customers: int, days: float, seed: int, partitions: int, kinds: Sequence[str]) -> dict[str, Any]:
    """Run ``kinds`` on one seed; the metrics of each run and the comparisons between them."""
    config = SimulationConfig(customers=customers, days=days, seed=seed)
    runs: dict[str, Any] = {}
    window_books = {b["name"] for b in playbook_file("sendtime")["playbooks"] if "send_window" in b}
    for kind in kinds:
        result, activity, engaged, cpu, decided = run(config, kind, partitions)
        runs[kind] = {"cpu_seconds": round(cpu, 1), "bandit": bandit_metrics(result),
                      "sendtime": sendtime_metrics(result, activity, engaged, window_books),
                      "uplift": {name: uplift_metrics(result, name) for name in UPLIFT_PLAYBOOKS},
                      "skipped_triggers": result.report()["skipped_triggers"]}
        if kind == "base":
            first = {b["name"]: b["channels"][0] for b in playbook_file("base")["playbooks"]}
            runs[kind]["qini"] = {name: qini_metrics(result, activity, decided, name, first[name])
                                  for name in UPLIFT_PLAYBOOKS}
        print(f"  seed {seed} {kind}: {cpu:.0f} CPU s", file=sys.stderr, flush=True)
    out: dict[str, Any] = {"seed": seed, "customers": customers, "days": days, "partitions": partitions,
                           "runs": runs}
    if "base" in runs and "uplift" in runs:
        out["uplift_vs_risk_at_volume"] = {}
        for name in UPLIFT_PLAYBOOKS:
            gated = runs["uplift"]["uplift"][name]
            risk = at_volume(runs["base"]["uplift"][name]["rows"], gated["customers_messaged"])
            out["uplift_vs_risk_at_volume"][name] = {
                "gated": {"customers": gated["customers_messaged"], "true_incremental": gated["true_incremental"],
                          "sleeping_dogs": gated["sleeping_dogs_messaged"]}, "risk_top": risk}
    for data in runs.values():
        for metrics in data["uplift"].values():
            metrics.pop("rows")
    if "base" in runs and "sendtime" in runs:
        at_once, windowed = runs["base"]["sendtime"], runs["sendtime"]["sendtime"]
        out["sendtime_relative"] = relative(windowed["rate_24h"], at_once["rate_24h"])
        out["sendtime_engaged_relative"] = relative(windowed["engaged_rate_24h"], at_once["engaged_rate_24h"])
        out["sendtime_expected_relative"] = relative(windowed["expected_engagement"], at_once["expected_engagement"])
    return out


def table(report: dict[str, Any]) -> str:
    """A plain-text summary of one seed's report."""
    lines = [f"seed {report['seed']}: {report['customers']} customers x {report['days']} days, "
             f"{report['partitions']} partition(s)"]
    for kind, data in report["runs"].items():
        b, s = data["bandit"], data["sendtime"]
        lines.append(f"  [{kind}] cpu {data['cpu_seconds']} s; bandit: {b['triggers']} pulls {b.get('pulls')}, "
                     f"regret {b['bandit']} vs uniform {b['uniform']} (ratio {b['ratio']}), best fixed "
                     f"{b.get('best_fixed')}, settled on {b.get('settled_on')}")
        lines.append(f"    send-window playbooks: {s['sent']} sent ({s['deferred']} deferred), re-engaged "
                     f"<=24h {s['reengaged_24h']} ({s['rate_24h']}), engaged with the message <=24h "
                     f"{s['engaged_24h']} ({s['engaged_rate_24h']}; expected {s['expected_engagement']}), "
                     f"returns caused <=24h {s['returns_caused_24h']}")
        for name, u in data["uplift"].items():
            lines.append(f"    {name}: sent {u['sent']} to {u['customers_messaged']} customers, sleeping dogs "
                         f"{u['sleeping_dogs_messaged']}, low_uplift {u['low_uplift_suppressed']}, treated "
                         f"{u['treated'].get('reengaged')}/{u['treated'].get('measured')}, holdout "
                         f"{u['holdout'].get('reengaged')}/{u['holdout'].get('measured')}, incremental "
                         f"{u['incremental']}, true incremental {u['true_incremental']}")
    for name, q in report["runs"].get("base", {}).get("qini", {}).items():
        lines.append(f"  [base] {name}: {q['customers']} decided customers with a known uplift score (of "
                     f"{q['decided_customers']}); Qini vs truth: uplift {q['qini_true']['uplift']}, risk "
                     f"{q['qini_true']['risk']}; vs treated/held-out outcomes: uplift {q['qini_observed']['uplift']}, "
                     f"risk {q['qini_observed']['risk']}")
        if q.get("bootstrap_95"):
            lines.append(f"    bootstrap 95 % (customers resampled): {q['bootstrap_95']}")
        for v in q["at_volume"]:
            lines.append(f"    top {v['fraction']:.0%} ({v['messages']}): true incremental uplift "
                         f"{v['uplift']['true_incremental']} vs risk {v['risk']['true_incremental']} (random "
                         f"{v['random_true_incremental']}), sleeping dogs {v['uplift']['sleeping_dogs']} vs "
                         f"{v['risk']['sleeping_dogs']}")
    for name, pair in report.get("uplift_vs_risk_at_volume", {}).items():
        lines.append(f"  {name} at equal volume: gated {pair['gated']} vs base's highest-risk {pair['risk_top']}")
    if "sendtime_relative" in report:
        lines.append(f"  send time, relative change: re-engagement within 24 h {report['sendtime_relative']}, "
                     f"engagement with the message within 24 h {report['sendtime_engaged_relative']}, "
                     f"expected engagement per message {report['sendtime_expected_relative']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--days", type=float, default=30)
    parser.add_argument("--seed", type=int, nargs="+", default=[8])
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--runs", nargs="+", default=["base", "sendtime", "uplift"],
                        choices=["base", "sendtime", "uplift"])
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "closed_loop_eval.json")
    args = parser.parse_args(argv)
    reports = []
    for seed in args.seed:
        report = evaluate(args.customers, args.days, seed, args.partitions, args.runs)
        print(table(report), flush=True)
        reports.append(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"argv": list(argv or sys.argv[1:]), "seeds": reports}, indent=2) + "\n")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
