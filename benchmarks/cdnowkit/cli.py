"""Command line of ``eval_cdnow.py``: options, the order of the steps, and their timings."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from rich.console import Console

from .baselines import FORETHOUGHT, PROBABILITIES, all_scores, bgnbd, bgnbd_inputs, bgnbd_p_zero, pareto_nbd, silence_days
from .data import DAY, HOLDOUT_WEEKS, locate_cdnow, parse_cdnow, summarize
from .engine import engine_config, run_engine
from .metrics import bootstrap_auc, operating_points, score_metrics
from .report import Evaluation, print_report


def parse_args(argv: list[str] | None, description: str) -> argparse.Namespace:
    """The options of ``eval_cdnow.py``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", type=Path, help="CDNOW_master.txt or a lifetimes wheel (default: the installed package)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--bgnbd", choices=("auto", "lifetimes", "scipy"), default="auto",
                        help="BG/NBD fitter: lifetimes, own scipy fit, or auto (lifetimes, else scipy)")
    parser.add_argument("--visit-gap-days", type=float, default=1.0)
    parser.add_argument("--prior-log-sd", type=float, help="default: estimated from calibration gaps")
    parser.add_argument("--prior-gap-days", type=float, help="default: median calibration gap")
    parser.add_argument("--bootstrap", type=int, default=200, 
                        help="bootstrap resamples for AUC intervals (0: none)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--snapshot-backoff", type=float, help="learned_dropoff snapshot_backoff (default: the engine's)")
    parser.add_argument("--snapshot-backoff-max-days", type=float, help="its cap in days (default: the engine's)")
    return parser.parse_args(argv)


class Stopwatch:
    """Wall time per named phase, in the order the phases ran."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self.started = self._clock = time.perf_counter()

    def lap(self, name: str) -> None:
        """Record the time since the previous lap (or the start) as phase ``name``."""
        now = time.perf_counter()
        self.timings[name] = now - self._clock
        self._clock = now


def main(argv: list[str] | None, description: str) -> int:
    """Load, replay, fit the baselines, score, and print (and optionally save) the report."""
    args = parse_args(argv, description)
    console = Console(width=150)
    watch = Stopwatch()
    text, source = locate_cdnow(args.data)
    purchases = parse_cdnow(text)
    cust = summarize(purchases, args.visit_gap_days)
    watch.lap("load and summarise CDNOW")
    cap = args.snapshot_backoff_max_days
    config = engine_config(cust, args.visit_gap_days, args.prior_gap_days, args.prior_log_sd,
                           snapshot_backoff=args.snapshot_backoff,
                           snapshot_backoff_max_seconds=None if cap is None else cap * DAY)
    engine = run_engine(purchases, cust, config, watch.lap)

    silence = silence_days(cust)
    x, tx, T = bgnbd_inputs(cust)
    fit = bgnbd(x, tx, T, args.bgnbd)
    p_alive = fit.pop("p_alive")
    p_zero = bgnbd_p_zero(fit["params"], p_alive, x, T, HOLDOUT_WEEKS)
    watch.lap("fit BG/NBD" + (" (lifetimes + own scipy check)" if "scipy_check" in fit else ""))
    pareto = pareto_nbd(x, tx, T, HOLDOUT_WEEKS)
    fit["pareto_nbd"] = {k: v for k, v in pareto.items() if k not in ("p_zero", "p_alive")}
    watch.lap("fit Pareto/NBD (lifetimes)")

    y = cust.dropped
    scores = all_scores(engine, cust, silence, x, p_alive, p_zero, pareto["p_zero"])
    rng = np.random.default_rng(args.seed)
    intervals = bootstrap_auc(scores, y, FORETHOUGHT, args.bootstrap, rng)
    repeat = engine.visits >= config.min_visits_to_arm
    k = int(engine.triggered.sum())
    metrics = score_metrics(scores, y, repeat, k, intervals, rng, PROBABILITIES)
    threshold, operating, operating_repeat = operating_points(
        engine.triggered, engine.dropoff, silence, y, repeat, config.silence_z)
    watch.lap("metrics" + (f" (+{args.bootstrap} bootstrap resamples)" if args.bootstrap else ""))
    total = time.perf_counter() - watch.started

    print_report(console, Evaluation(
        args, source, len(purchases), cust, config, engine, fit, y, repeat, k, metrics, threshold,
        operating, operating_repeat, watch.timings, total))
    return 0
