"""What ``eval_cdnow.py`` prints (summary lines and three tables) and writes with ``--json``."""

from __future__ import annotations

import argparse
import json
import math
import platform
from dataclasses import dataclass
from datetime import date
from importlib import metadata
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from forethought.core.config import EngineConfig

from .baselines import FORETHOUGHT, LEARNED
from .data import CAL_FIRST, CAL_LAST, DAY, HOLDOUT_LAST, HOLDOUT_WEEKS, Customers
from .engine import EngineResult, labels
from .metrics import auc, average_precision


@dataclass
class Evaluation:
    """Everything one run computed, as the report needs it."""

    args: argparse.Namespace
    source: str
    purchase_rows: int
    cust: Customers
    config: EngineConfig
    engine: EngineResult
    fit: dict[str, Any]
    y: np.ndarray
    repeat: np.ndarray
    k: int
    metrics: dict[str, Any]
    threshold: float
    operating: dict[str, Any]
    operating_repeat: dict[str, Any]
    timings: dict[str, float]
    total: float


def print_report(console: Console, ev: Evaluation) -> None:
    """Summary lines, ranking, operating points, runtime; the JSON file when asked."""
    _print_summary(console, ev)
    console.print(_ranking_table(ev))
    console.print(_operating_table(ev))
    console.print(_runtime_table(ev))
    console.print(f"replay throughput: {ev.engine.runner.counts.valid / ev.timings['replay through Replayer']:,.0f} events/s "
                  f"(JSON decode + validation + core, one process)")
    if ev.args.json:
        ev.args.json.write_text(json.dumps(json_report(ev), indent=2, default=str))
        console.print(f"wrote {ev.args.json}")


def _print_summary(console: Console, ev: Evaluation) -> None:
    y, repeat, config, runner = ev.y, ev.repeat, ev.config, ev.engine.runner
    n, n_pos = len(y), int(y.sum())
    console.print(f"[bold]CDNOW drop-off evaluation[/]  data: {ev.source}")
    console.print(
        f"{n:,} customers, {ev.purchase_rows:,} purchase rows ({runner.counts.valid:,} valid events, "
        f"{sum(runner.counts.invalid.values())} invalid); calibration {CAL_FIRST} … {CAL_LAST}, "
        f"holdout … {HOLDOUT_LAST} ({HOLDOUT_WEEKS:g} weeks)")
    console.print(
        f"truth: dropped off (no holdout purchase) {n_pos:,} = base rate {n_pos / n:.3f};  repeat customers "
        f"(≥{config.min_visits_to_arm} visits in calibration) {int(repeat.sum()):,}, their base rate {y[repeat].mean():.3f}; "
        f"one-time buyers {int((~repeat).sum()):,}, base rate {y[~repeat].mean():.3f}")
    console.print(
        f"engine: prior gap {config.prior_gap_seconds / DAY:.1f} d (median of {len(ev.cust.visit_gaps):,} calibration gaps), "
        f"prior_log_sd {config.prior_log_sd:.3f}, visit gap {ev.args.visit_gap_days:g} d, silence_z {config.silence_z}; "
        f"silence triggers fired by the snapshot {ev.engine.fired_by_snapshot:,}, live for the present silence {ev.k:,}; "
        f"dropoff scores tied at 1.0: {int((ev.engine.dropoff >= 1.0).sum()):,}")
    learned = learned_summary(ev)
    console.print(
        f"learned model (snapshot_backoff {learned['snapshot_backoff']}, cap "
        f"{learned['snapshot_backoff_max_days']} d): {learned['labels']:,} labels ({learned['dropped']:,} dropped); "
        f"'{LEARNED}' at the snapshot: AUC/AP dev half (odd ids) "
        f"{learned['dev']['auc']:.4f}/{learned['dev']['ap']:.4f}, "
        f"report half (even ids) {learned['report']['auc']:.4f}/{learned['report']['ap']:.4f}")
    fit, p = ev.fit, ev.fit["params"]
    console.print(
        f"BG/NBD: {fit['implementation']}  r={p['r']:.4f} α={p['alpha']:.4f} a={p['a']:.4f} b={p['b']:.4f} "
        f"(weeks), log-lik {fit['loglik']:.1f}, fit {fit['seconds']:.1f} s"
        + (f"; own scipy fit agrees: max |ΔP(alive)| = {fit['scipy_check']['p_alive_max_abs_diff']:.2e} "
           f"({fit['scipy_check']['seconds']:.1f} s)" if "scipy_check" in fit else ""))


def learned_summary(ev: Evaluation) -> dict[str, Any]:
    """The learned model's labels and its score's AUC/AP on two halves of the customers: odd ids (used to
    choose ``snapshot_backoff``'s default) and even ids (reported)."""
    total, dropped = labels(ev.engine.runner)
    s = ev.config.section("learned_dropoff")
    score, odd = np.nan_to_num(ev.engine.learned, nan=0.5), ev.cust.ids % 2 == 1
    halves = {name: {"auc": auc(score[m], ev.y[m]) if 0 < ev.y[m].sum() < m.sum() else math.nan,
                     "ap": average_precision(score[m], ev.y[m]) if ev.y[m].any() else math.nan,
                     "customers": int(m.sum())} for name, m in (("dev", odd), ("report", ~odd))}
    return {"labels": total, "dropped": dropped, "snapshot_backoff": getattr(s, "snapshot_backoff", 1.0),
            "snapshot_backoff_max_days": getattr(s, "snapshot_backoff_max_seconds", 0.0) / DAY, **halves}


def _ranking_table(ev: Evaluation) -> Table:
    y, repeat = ev.y, ev.repeat
    table = Table(title=f"Ranking quality (positive = dropped off; base rate {int(y.sum()) / len(y):.3f} = AP of a random score); "
                  f"'rep.' = repeat customers only (base rate {y[repeat].mean():.3f}); "
                  f"@k = top k = {ev.k:,} (the engine's alert volume)", show_lines=False)
    for col in ("score", "AUC", "lift q.", "Brier", "AUC 95% CI", "ΔAUC vs FT (95%)", "AP", "AUC rep.", "AP rep.", "AUC 1-time",
                "P@k", "P@k rep."):
        table.add_column(col, justify="left" if col == "score" else "right")
    for name, m in ev.metrics.items():
        ci = m.get("auc_95ci")
        diff = m.get("auc_diff_vs_forethought_95ci")
        at_k = m["at_engine_alert_volume"]
        table.add_row(
            name, f"{m['auc']:.4f}", f"{m['lift_quality'] * 100:.1f}", _f(m["brier"]), f"{ci[0]:.3f}–{ci[1]:.3f}" if ci else "",
            "" if not diff or name == FORETHOUGHT else f"{diff[0]:+.3f}…{diff[1]:+.3f}",
            f"{m['average_precision']:.4f}", f"{m['auc_repeat_customers']:.4f}", f"{m['ap_repeat_customers']:.4f}",
            f"{m['auc_one_time_buyers']:.4f}", _f(at_k["precision"]),
            _f(m["at_engine_alert_volume_repeat_customers"]["precision"]))
    return table


def _operating_table(ev: Evaluation) -> Table:
    ops = Table(title="Operating points (all customers; last two rows: repeat customers only)")
    for col in ("rule", "flagged", "TP", "precision", "recall", "F1"):
        ops.add_column(col, justify="left" if col == "rule" else "right")
    for label, group in (("", ev.operating), (" [repeat]", ev.operating_repeat)):
        for name, m in group.items():
            ops.add_row(name + label, f"{m['flagged']:,}", f"{m['true_positives']:,}", _f(m["precision"]),
                        _f(m["recall"]), _f(m["f1"]))
    return ops


def _runtime_table(ev: Evaluation) -> Table:
    times = Table(title="Runtime")
    times.add_column("phase"); times.add_column("seconds", justify="right")
    for name, seconds in ev.timings.items():
        times.add_row(name, f"{seconds:.2f}")
    times.add_row("[bold]total[/]", f"[bold]{ev.total:.2f}[/]")
    return times


def json_report(ev: Evaluation) -> dict[str, Any]:
    """The ``--json`` document: counts, settings, BG/NBD fit, every metric, runtime and environment."""
    y, repeat, args = ev.y, ev.repeat, ev.args
    n, n_pos = len(y), int(y.sum())
    return {
        "data": ev.source, "customers": n, "purchase_rows": ev.purchase_rows, "dropped_off": n_pos,
        "base_rate": n_pos / n, "repeat_customers": int(repeat.sum()),
        "base_rate_repeat": float(y[repeat].mean()), "base_rate_one_time": float(y[~repeat].mean()),
        "calibration": [CAL_FIRST.isoformat(), CAL_LAST.isoformat()],
        "holdout": [date.fromordinal(CAL_LAST.toordinal() + 1).isoformat(), HOLDOUT_LAST.isoformat()],
        "engine_config": dict(ev.config), "dropoff_threshold": ev.threshold,
        "triggers_fired_by_snapshot": ev.engine.fired_by_snapshot, "triggers_live_at_snapshot": ev.k,
        "replay_counts": ev.engine.runner.counts.as_dict(), "learned_model": learned_summary(ev),
        "bgnbd": ev.fit, "scores": ev.metrics, "churn_priors_at_snapshot": _priors(ev),
        "operating_points": ev.operating, "operating_points_repeat_customers": ev.operating_repeat,
        "bootstrap_resamples": args.bootstrap, "seed": args.seed,
        "runtime_seconds": {**ev.timings, "total": ev.total},
        "environment": {"python": platform.python_version(), "numpy": np.__version__,
                        "scipy": metadata.version("scipy"), "machine": platform.machine()},
    }


def _priors(ev: Evaluation) -> dict[str, Any]:
    """The churn priors the snapshot used: how many customers scored with each (r, α, a, b)."""
    counts: dict[str, int] = {}
    for p in ev.engine.churn_priors:
        key = json.dumps(p, sort_keys=True)
        counts[key] = counts.get(key, 0) + 1
    return counts


def _f(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"
