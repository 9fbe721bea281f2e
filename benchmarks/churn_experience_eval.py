"""Does the customer's experience (usage trend, errors, sessions, features, plan, triggers) improve
``scores.churn_learned`` on the simulator? The same replay with and without it, side by side.

    .venv/bin/forethought simulate --customers 3000 --days 120 --seed 1 \\
        --output dev.jsonl.gz --truth dev-truth.jsonl         # the development population (seed 42: report)
    .venv/bin/python benchmarks/churn_experience_eval.py --events dev.jsonl.gz --truth dev-truth.jsonl \\
        --at-day 100 [--json out.json]

Each population is replayed up to the snapshot (``--at-day`` days after its first record), with the
engine's default settings, twice: ``churn_learn_experience`` on and off. At the snapshot every customer
who had been active is scored; the label is the simulator's truth: 1 when the customer's last activity
is at or before the snapshot (they never come back), else 0. Reported per run: ROC-AUC, average
precision and Brier score (at the default 14-day horizon) of ``scores.churn`` (BTYD, the same in both
runs), ``scores.churn_learned`` and recency (the silence), over every customer and over those active
in the 14 days before the snapshot (the ones a team can still reach), and the prequential AUC of the
learned correction on the examples it resolved (each scored before it was learned; ``prior``: BTYD on
the same examples).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from forethought.core.config import EngineConfig
from forethought.core.quality import average_precision, roc_auc
from forethought.ops.collector import tune_collector
from forethought.replay.reader import sorted_lines
from forethought.replay.runner import Replayer

DAY = 86_400.0
RECENT_DAYS = 14.0  # "recently active": seen within this many days before the snapshot


def stamp(text: str) -> float:
    """POSIX seconds of an RFC 3339 time."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def last_activity(truth: Path) -> dict[str, float]:
    """Customer → their last activity (the simulator's truth)."""
    out = {}
    for line in truth.read_text().splitlines():
        row = orjson.loads(line)
        if row.get("last_activity_at"):
            out[row["customer_id"]] = stamp(row["last_activity_at"])
    return out


def run(events: Path, snap: float, experience: bool) -> dict[str, Any]:
    """One replay to the snapshot: every active customer's scores, and the correction's examples."""
    config = EngineConfig(churn_learn_experience=experience)
    rows: dict[str, dict[str, float]] = {}
    examples: list[tuple[float, float, int]] = []

    def on_snapshot(row: dict[str, Any]) -> None:
        silence = next(r["observed"] for r in row["reasons"] if r["signal"] == "silence_seconds")
        rows[row["customer_id"]] = {**row["scores"], "silence": silence}

    def on_observation(_cid: str, o: Any) -> None:
        if o.kind == "label" and o.detail.get("model") == "churn" and o.detail.get("predicted") is not None:
            examples.append((o.detail["predicted"], o.detail["prior"], o.detail["label"]))

    tune_collector()
    runner = Replayer(config, snapshot_at=snap, on_snapshot=on_snapshot, on_observation=on_observation)
    cpu = time.process_time()
    for line in sorted_lines([events]):
        if line.ts > snap:
            break
        runner.feed(line)
    runner.finish(until=snap + 1)
    return {"rows": rows, "examples": examples, "cpu": time.process_time() - cpu,
            "correction": [m.churn_learned.to_data() for m in runner.models.values()]}


def grade(pairs: list[tuple[float, int]]) -> dict[str, float | None]:
    """ROC-AUC, average precision and (for probabilities) the Brier score."""
    brier = (sum((p - y) ** 2 for p, y in pairs) / len(pairs)) if all(0 <= p <= 1 for p, _ in pairs) else None
    auc, ap = roc_auc(pairs), average_precision(pairs)
    return {"auc": None if auc is None else round(auc, 4), "ap": None if ap is None else round(ap, 4),
            "brier": None if brier is None else round(brier, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=Path, required=True)
    parser.add_argument("--truth", type=Path, required=True)
    parser.add_argument("--at-day", type=float, default=28.0, help="snapshot: days after the first record")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    first = next(iter(sorted_lines([args.events]))).ts
    snap = first + args.at_day * DAY
    last = last_activity(args.truth)
    out: dict[str, Any] = {"events": str(args.events), "snapshot_at": snap}
    for name, flag in (("with_experience", True), ("history_only", False)):
        got = run(args.events, snap, flag)
        ids = [c for c in got["rows"] if c in last]
        y = {c: int(last[c] <= snap) for c in ids}
        out["customers"], out["base_rate"] = len(ids), round(sum(y.values()) / max(1, len(ids)), 4)
        recent = [c for c in ids if got["rows"][c]["silence"] <= RECENT_DAYS * DAY]
        out[name] = {
            **{k: grade([(got["rows"][c][k], y[c]) for c in ids]) for k in ("churn", "churn_learned", "silence")},
            "recently_active": {"customers": len(recent),
                                "base_rate": round(sum(y[c] for c in recent) / len(recent), 4),
                                **{k: grade([(got["rows"][c][k], y[c]) for c in recent])
                                   for k in ("churn", "churn_learned", "silence")}},
            "prequential": {"examples": len(got["examples"]),
                            "learned_auc": roc_auc([(p, y) for p, _, y in got["examples"]]),
                            "prior_auc": roc_auc([(q, y) for _, q, y in got["examples"]])},
            "replay_cpu_s": round(got["cpu"], 1),
            "labels": [(c["labels"], c["positives"]) for c in got["correction"]],
            "weights": [{k: round(v, 3) for k, v in c["weights"].items()} for c in got["correction"]],
        }
        print(name, json.dumps(out[name]), file=sys.stderr, flush=True)
    print(json.dumps(out, indent=1))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
