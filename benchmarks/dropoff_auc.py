"""The learned drop-off score against the silence score, at snapshot time, on a simulated population.

Run from the repository root::

    forethought simulate --customers 2000 --days 60 --seed 3 --output var/auc/events-s3.jsonl.gz \\
        --truth var/auc/truth-s3.jsonl --quiet
    python benchmarks/dropoff_auc.py var/auc/events-s3.jsonl.gz var/auc/truth-s3.jsonl --bootstrap 200

What is measured
----------------
The file is replayed through the worker's core (:class:`~forethought.replay.runner.Replayer`,
default engine settings, one :class:`~forethought.core.models.PartitionModels` per partition of
the shipped catalogue). At every daily snapshot the engine reports both scores *as they were at
that moment*: ``scores.dropoff`` (the silence detector) and ``scores.dropoff_learned`` (the
partition's model, trained only on labels resolved before that moment: prequential, no peeking).
Snapshots while the model is cold (``None``) are counted, and left out of both AUCs so the two
scores are compared on the same snapshots.

Two targets (higher score = more likely to drop off):

* ``truth``: the simulator's ground truth, as :mod:`forethought.replay.evaluate` uses it: positive
  when the customer churned (``dropoff_at`` set) and the snapshot is no earlier than ``horizon``
  before their last activity (the early-warning window, and everything after). Only snapshots at
  least ``horizon`` before the end of the data are used.
* ``label``: the model's own delayed label: positive when no activity followed within the horizon
  (resolved snapshots only; a monthly customer's normal 3-week gap counts as positive here).

Each is reported over all snapshots and over "recent" ones (silence under 7 days at the snapshot:
the customers for whom an early warning is still news). ``--bootstrap N`` resamples customers
(snapshots of one customer are correlated) for a 90 % interval of the AUC difference.
``--model`` swaps the pipeline for a comparison (used on seed 1 to choose; report seed 3).
"""

from __future__ import annotations

import argparse
import json
import pickle
import random
import sys
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from river import forest, linear_model, naive_bayes, optim, preprocessing, tree

from forethought.core import models as core_models
from forethought.core.config import EngineConfig
from forethought.core.engine import Observation
from forethought.core.policy.rules import builtin_rules
from forethought.ops.topics import load_catalogue
from forethought.replay.reader import open_input, sorted_lines
from forethought.replay.runner import Replayer

DAY = 86_400.0
RECENT = 7 * DAY

PIPELINES: dict[str, Any] = {
    "lr": core_models.dropoff_pipeline,
    "lr-river-default": lambda: preprocessing.StandardScaler() | linear_model.LogisticRegression(),
    "lr-0.02-l2": lambda: preprocessing.StandardScaler() | linear_model.LogisticRegression(
        optimizer=optim.SGD(0.02), l2=1e-4),
    "lr-0.1": lambda: preprocessing.StandardScaler() | linear_model.LogisticRegression(optimizer=optim.SGD(0.1)),
    "lr-0.005": lambda: preprocessing.StandardScaler() | linear_model.LogisticRegression(optimizer=optim.SGD(0.005)),
    "lr-0.001": lambda: preprocessing.StandardScaler() | linear_model.LogisticRegression(optimizer=optim.SGD(0.001)),
    "lr-adam": lambda: preprocessing.StandardScaler() | linear_model.LogisticRegression(optimizer=optim.Adam(0.01)),
    "gaussian-nb": lambda: naive_bayes.GaussianNB(),
    "hoeffding-tree": lambda: tree.HoeffdingAdaptiveTreeClassifier(seed=1),
    "arf-10": lambda: forest.ARFClassifier(n_models=10, seed=1),
}


def run(events: Path, truth: Path, model: str, horizon: float, backoff: float = 1.0,
        backoff_max: float = 0.0) -> dict[str, Any]:
    """Replay ``events`` and collect every snapshot with its scores and (later) its label."""
    core_models.dropoff_pipeline = PIPELINES[model]  # type: ignore[assignment]
    # its "every daily check" rows need a look at every customer every day (core.due skips the idle ones)
    config = EngineConfig(label_horizon_seconds=horizon, look_every_day=True, look_scores=True, snapshot_backoff=backoff,
                          snapshot_backoff_max_seconds=backoff_max)
    snaps: list[dict[str, Any]] = []
    labels: dict[tuple[str, float], int] = {}

    def seen(customer: str, observation: Observation) -> None:
        d = observation.detail
        if observation.kind == "daily_scores":
            snaps.append({"customer": customer, **d})
        elif observation.kind == "label":
            labels[(customer, d["taken_at"])] = d["label"]

    replay = Replayer(config, rules=builtin_rules(), partitions=load_catalogue().partitions, on_observation=seen)
    started = time.perf_counter()
    for line in sorted_lines([events]):
        replay.feed(line)
    replay.finish()
    elapsed = time.perf_counter() - started
    for s in snaps:
        s["label"] = labels.get((s["customer"], s["at"])) if s["snapshot"] else None
    return {"snapshots": snaps, "replay": replay, "seconds": elapsed, "end": replay.counts.last_event or 0.0,
            "truth": _truth(truth)}


def auc(pairs: list[tuple[float, int]]) -> float | None:
    """Area under the ROC curve (Mann-Whitney, ties count half); None without both classes."""
    ordered = sorted(pairs)
    ranks, i = [0.0] * len(ordered), 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1][0] == ordered[i][0]:
            j += 1
        for k in range(i, j + 1):
            ranks[k] = (i + j) / 2 + 1
        i = j + 1
    positives = sum(y for _, y in ordered)
    negatives = len(ordered) - positives
    if not positives or not negatives:
        return None
    rank_sum = sum(r for r, (_, y) in zip(ranks, ordered) if y)
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def score(result: dict[str, Any], horizon: float, bootstrap: int, seed: int = 0) -> dict[str, Any]:
    """AUCs of both scores for both targets, over all and recent snapshots, and for the truth
    also over every daily check (a snapshot is only taken when none is pending)."""
    checks, truth, end = result["snapshots"], result["truth"], result["end"]
    warm = [s for s in checks if s["dropoff_learned"] is not None]
    snaps = [s for s in checks if s["snapshot"]]
    report: dict[str, Any] = {
        "daily_checks": len(checks), "snapshots": len(snaps),
        "cold_share_of_snapshots": round(1 - sum(s["dropoff_learned"] is not None for s in snaps) / len(snaps), 4),
    }
    targets = {
        "truth@snapshot": [(s, _truth_label(s, truth, horizon)) for s in warm if s["snapshot"] and s["at"] <= end - horizon],
        "label@snapshot": [(s, s["label"]) for s in warm if s["snapshot"] and s["label"] is not None],
        "truth@daily": [(s, _truth_label(s, truth, horizon)) for s in warm if s["at"] <= end - horizon],
    }
    for name, rows in targets.items():
        for subset, keep in (("all", lambda s: True), ("recent", lambda s: (s["silence_seconds"] or 0) < RECENT)):
            chosen = [(s, y) for s, y in rows if keep(s)]
            report[f"{name}/{subset}"] = _compare(chosen, bootstrap, seed)
    return report


def _compare(rows: list[tuple[dict[str, Any], int]], bootstrap: int, seed: int) -> dict[str, Any]:
    learned = auc([(s["dropoff_learned"], y) for s, y in rows])
    silence = auc([(s["dropoff"], y) for s, y in rows])
    out = {"n": len(rows), "positives": sum(y for _, y in rows), "auc_learned": _r(learned), "auc_dropoff": _r(silence)}
    if bootstrap and learned is not None and silence is not None:
        out["difference_90ci"] = _bootstrap(rows, bootstrap, seed)
    return out


def _bootstrap(rows: list[tuple[dict[str, Any], int]], rounds: int, seed: int) -> list[float]:
    by_customer: dict[str, list[tuple[dict[str, Any], int]]] = defaultdict(list)
    for s, y in rows:
        by_customer[s["customer"]].append((s, y))
    customers, rng, diffs = sorted(by_customer), random.Random(seed), []
    for _ in range(rounds):
        sample = [r for c in rng.choices(customers, k=len(customers)) for r in by_customer[c]]
        a, b = auc([(s["dropoff_learned"], y) for s, y in sample]), auc([(s["dropoff"], y) for s, y in sample])
        if a is not None and b is not None:
            diffs.append(a - b)
    diffs.sort()
    return [_r(diffs[int(0.05 * len(diffs))]), _r(diffs[int(0.95 * len(diffs)) - 1])]


def costs(replay: Replayer) -> dict[str, Any]:
    """Checkpoint size and learn/score time per call of the trained models."""
    models = list(replay.models.values())
    sizes = [len(m.to_bytes()) for m in models]
    probe = models[0]
    x = {name: 0.5 for name in core_models.snapshots.NAMES}
    clone = pickle.loads(pickle.dumps(probe.dropoff_model))
    started = time.perf_counter()
    for i in range(2000):
        clone.learn_one(x, i % 7 == 0)
    learn = (time.perf_counter() - started) / 2000
    started = time.perf_counter()
    for _ in range(2000):
        probe.dropoff_model.predict_proba_one(x)
    predict = (time.perf_counter() - started) / 2000
    return {"checkpoint_bytes": max(sizes), "learn_us": round(learn * 1e6, 1), "score_us": round(predict * 1e6, 1),
            "labels": replay.models_report()}


def _truth(path: Path) -> dict[str, dict[str, Any]]:
    with open_input(path) as handle:
        return {row["customer_id"]: row for row in map(orjson.loads, handle) if row}


def _truth_label(snapshot: dict[str, Any], truth: dict[str, dict[str, Any]], horizon: float) -> int:
    row = truth.get(snapshot["customer"], {})
    if not row.get("dropoff_at") or not row.get("last_activity_at"):
        return 0
    return int(snapshot["at"] >= _ts(row["last_activity_at"]) - horizon)


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("events", type=Path)
    parser.add_argument("truth", type=Path)
    parser.add_argument("--model", choices=sorted(PIPELINES), default="lr")
    parser.add_argument("--horizon-days", type=float, default=14.0)
    parser.add_argument("--bootstrap", type=int, default=0)
    parser.add_argument("--snapshot-backoff", type=float, default=1.0, help="the engine's snapshot_backoff")
    parser.add_argument("--snapshot-backoff-max-days", type=float, default=0.0, help="its cap (0: none)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    horizon = args.horizon_days * DAY
    result = run(args.events, args.truth, args.model, horizon, args.snapshot_backoff,
                 args.snapshot_backoff_max_days * DAY)
    report = {"model": args.model, "snapshot_backoff": args.snapshot_backoff,
              "snapshot_backoff_max_days": args.snapshot_backoff_max_days,
              "replay_seconds": round(result["seconds"], 1),
              "labels": sum(m.labels for m in result["replay"].models.values()),
              "dropped": sum(m.dropped for m in result["replay"].models.values()),
              **score(result, horizon, args.bootstrap), **costs(result["replay"])}
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
