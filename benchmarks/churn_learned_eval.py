"""``scores.churn`` and ``scores.churn_learned`` on CDNOW at several calibration cutoffs, against BG/NBD.

    .venv/bin/python benchmarks/churn_learned_eval.py --split dev        # choose settings here only
    .venv/bin/python benchmarks/churn_learned_eval.py --split std        # the 39-week split (report)
    .venv/bin/python benchmarks/churn_learned_eval.py --split late       # a second split (report)
    ... [--set churn_label_gap_multiple=3] [--no-correction] [--json out.json]

(``make eval-real`` installs the data: lifetimes ships the CDNOW file.) Splits: ``dev`` calibrates on
1997-01-01 … 06-30 (26 weeks) and labels "no purchase in the next 39 weeks" (to 1998-03-31); ``std`` is
``eval_cdnow.py``'s (39 + 39 weeks); ``late`` calibrates 52 weeks (to 1997-12-31), holdout 26 weeks.
Only calibration events are replayed (as in ``eval_cdnow.py``'s settings: purchases at noon, dates
moved 28 years, a 5-year idle TTL); the snapshot at the cutoff scores every customer. Reported: ROC-AUC
of the scores at the default horizon and of recency, and the Brier score of each model's probability of
no purchase over the holdout (``churn``/``churn_learned`` asked at the holdout's horizon, BG/NBD by
lifetimes on the same calibration summaries); replay CPU seconds (``time.process_time``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cdnowkit.data import CAL_FIRST, SHIFT, Purchase, locate_cdnow, parse_cdnow, write_events  # noqa: E402

from forethought.core.config import EngineConfig  # noqa: E402
from forethought.core.detectors import churn_learned  # noqa: E402
from forethought.core.plugin import Moment  # noqa: E402
from forethought.core.quality import roc_auc as _roc_auc  # noqa: E402
from forethought.ops.collector import tune_collector  # noqa: E402
from forethought.replay.reader import sorted_lines  # noqa: E402
from forethought.replay.runner import Replayer  # noqa: E402

DAY = 86_400.0
SPLITS = {"dev": (date(1997, 6, 30), date(1998, 3, 31)), "std": (date(1997, 9, 30), date(1998, 6, 30)),
          "late": (date(1997, 12, 31), date(1998, 6, 30))}


def shifted(day: date) -> float:
    d = day + SHIFT
    return datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()


def truth(purchases: list[Purchase], cal_last: date, hold_last: date) -> tuple[dict[int, list[int]], set[int]]:
    """Calibration purchase days per customer, and who bought in the holdout."""
    cal: dict[int, set[int]] = {}
    back: set[int] = set()
    for p in purchases:
        if p.day <= cal_last:
            cal.setdefault(p.customer, set()).add((p.day - CAL_FIRST).days)
        elif p.day <= hold_last:
            back.add(p.customer)
    return {c: sorted(d) for c, d in cal.items()}, back


def bgnbd_p_zero(days: dict[int, list[int]], ids: list[int], end: int, weeks: float) -> np.ndarray:
    """BG/NBD (lifetimes) P(no purchase in ``weeks``) given the calibration summary (in weeks)."""
    from lifetimes import BetaGeoFitter
    x = np.array([len(days[c]) - 1 for c in ids], float)
    tx = np.array([(days[c][-1] - days[c][0]) / 7 for c in ids])
    T = np.array([(end - days[c][0]) / 7 for c in ids])
    fit = BetaGeoFitter(penalizer_coef=0.0).fit(x, tx, T)
    r, alpha, a, b = (fit.params_[k] for k in ("r", "alpha", "a", "b"))
    alive = fit.conditional_probability_alive(x, tx, T)
    return np.asarray(1 - alive + alive * ((alpha + T) / (alpha + T + weeks)) ** (r + x))


def roc_auc(scores: np.ndarray, y: np.ndarray) -> float | None:
    """ROC-AUC with mid-ranks (core.quality's)."""
    return _roc_auc(list(zip(scores.tolist(), y.astype(int).tolist())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", choices=sorted(SPLITS), default="dev")
    parser.add_argument("--data", type=Path)
    parser.add_argument("--set", action="append", default=[], help="engine setting NAME=VALUE")
    parser.add_argument("--no-correction", action="store_true", help="churn_learn_correction=false (CPU baseline)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--dump", type=Path, help="write every resolved example and the snapshot's inputs here")
    args = parser.parse_args()
    cal_last, hold_last = SPLITS[args.split]
    purchases = parse_cdnow(locate_cdnow(args.data)[0])
    days, back = truth(purchases, cal_last, hold_last)
    ids = sorted(days)
    end = (cal_last - CAL_FIRST).days + 1
    snap = shifted(cal_last) + DAY
    horizon = (hold_last - cal_last).days
    more: dict[str, Any] = {k: float(v) if "." in v or "e" in v else int(v)
                            for k, v in (item.split("=", 1) for item in args.set)}
    if args.no_correction:
        more["churn_learn_correction"] = False
    config = EngineConfig(**{"visit_gap_seconds": DAY, "silence_min_seconds": DAY, "silence_max_seconds": 5 * 365 * DAY,
                             "idle_ttl_seconds": 5 * 365 * DAY, **more})  # --set overrides these too
    rows: dict[str, dict[str, Any]] = {}
    snaps: list[dict[str, Any]] = []
    sizes: list[tuple[int, int]] = []
    examples: list[dict[str, Any]] = []

    def on_observation(cid: str, o: Any) -> None:
        if args.dump and o.kind == "label" and o.detail.get("model") == "churn":
            examples.append({"id": cid, **{k: o.detail[k] for k in ("label", "taken_at", "horizon_days", "prior",
                                                                   "features")}})

    def on_snapshot(row: dict[str, Any]) -> None:
        cid = row["customer_id"]
        runtime = runner.runtime(cid)
        state = runtime.state(cid)
        if state is None:  # evicted after idling (a shorter --set idle_ttl_seconds): scored from its summary
            kept = runtime.summary(cid)
            assert kept is not None
            state = kept.revive(config)
        long = config.replace(churn_horizon_seconds=horizon * DAY)
        lm = Moment(snap, long, runner.model(cid))
        p_long, b_long, _ = churn_learned.score(state, snap, lm)
        if args.dump:
            from forethought.core.detectors import churn as ch
            x, tx, T = ch.summary(state, snap)
            snaps.append({"id": cid, "x": x, "tx": tx, "T": T, "events": state.events, "visits": state.visits,
                          "prior": list(ch.prior(config.section("churn"), runner.model(cid)))})
        bare = state.copy()
        bare.slices["churn_learned"] = churn_learned.ChurnLearnedState()
        sizes.append((len(state.to_bytes()), len(bare.to_bytes())))
        rows[cid] = {"churn": row["scores"]["churn"], "learned": row["scores"]["churn_learned"],
                     "churn_h": b_long, "learned_h": p_long}

    tune_collector()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "events.jsonl"
        write_events([p for p in purchases if p.day <= cal_last], path)
        cpu = time.process_time()
        runner = Replayer(config, snapshot_at=snap, on_snapshot=on_snapshot, on_observation=on_observation)
        for line in sorted_lines([path]):
            runner.feed(line)
        runner.finish(until=snap + 1)
        cpu = time.process_time() - cpu
    keys = [f"cdnow-{c}" for c in ids]
    y = np.array([c not in back for c in ids], float)
    recency = np.array([end - days[c][-1] for c in ids], float)
    got = {k: np.array([rows[key][k] for key in keys]) for k in ("churn", "learned", "churn_h", "learned_h")}
    p_bg = bgnbd_p_zero(days, ids, end, horizon / 7)
    models = list(runner.models.values())
    out = {
        "split": args.split, "calibration_end": cal_last.isoformat(), "holdout_days": horizon,
        "customers": len(ids), "base_rate": round(float(y.mean()), 4), "settings": more,
        "replay_cpu_s": round(cpu, 2),
        "state_bytes_mean": round(sum(a for a, _ in sizes) / len(sizes), 1),
        "state_bytes_mean_without_the_example": round(sum(b for _, b in sizes) / len(sizes), 1),
        "correction": [{"labels": m.churn_learned.labels, "silent": m.churn_learned.positives,
                        "warm": m.churn_learned.warm,
                        "weights": {k: round(v, 4) for k, v in m.churn_learned.weights.items()},
                        "intercept": round(m.churn_learned.intercept, 4)} for m in models],
        "auc": {"churn": roc_auc(got["churn"], y), "churn_learned": roc_auc(got["learned"], y),
                "churn_holdout_horizon": roc_auc(got["churn_h"], y),
                "churn_learned_holdout_horizon": roc_auc(got["learned_h"], y),
                "recency": roc_auc(recency, y), "bgnbd": roc_auc(p_bg, y)},
        "brier_holdout_horizon": {"churn": float(np.mean((got["churn_h"] - y) ** 2)),
                                  "churn_learned": float(np.mean((got["learned_h"] - y) ** 2)),
                                  "bgnbd": float(np.mean((p_bg - y) ** 2))},
    }
    for group in ("auc", "brier_holdout_horizon"):
        out[group] = {k: round(float(v), 4) if v is not None and not math.isnan(v) else None
                      for k, v in out[group].items()}
    print(json.dumps(out, indent=1))
    if args.dump:
        args.dump.write_text(json.dumps({"examples": examples, "snapshot": snaps, "truth": dict(zip(keys, y.tolist())),
                                         "holdout_days": horizon}))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
