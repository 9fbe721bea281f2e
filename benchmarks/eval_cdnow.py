"""Forethought's drop-off score on real purchase data (CDNOW), against the classic baselines.

Run from the repository root::

    .venv/bin/python -m pip install -e '.[eval]'       # lifetimes: the data file and BG/NBD
    .venv/bin/python benchmarks/eval_cdnow.py
    .venv/bin/python benchmarks/eval_cdnow.py --json cdnow.json --bootstrap 500

Data
----
The CDNOW "master" file that ships inside the PyPI package ``lifetimes``
(``lifetimes/datasets/CDNOW_master.txt``): every purchase, Jan 1997 – Jun 1998, of the 23,570
people who made their *first-ever* purchase at CDNOW in Q1 1997 (one row per purchase: customer
id, date YYYYMMDD, number of CDs, dollar amount). Nobody on the team generated it. Nothing is
downloaded; ``--data`` may point at the text file or at a ``lifetimes`` wheel instead.

What is measured
----------------
* Each purchase row becomes a Forethought ``usage`` event (metric ``purchase``, quantity = dollars,
  unit ``USD``, ``occurred_at`` = the purchase date at 12:00 UTC, customer ``cdnow-<id>``).
  The engine refuses event times before 2000-01-01, so all dates are moved 28 years forward
  (1997-01-01 → 2025-01-01): the calendar repeats exactly and no gap changes. The
  events are written as JSON lines and replayed with :class:`forethought.replay.runner.Replayer`
  (the worker's core, driven by event time) with ``snapshot_at`` = 1997-10-01T00:00Z, the end of
  the standard 39-week calibration period (1997-01-01 … 1997-09-30). Holdout events are fed too,
  but the snapshot is taken before the first of them is processed, so the engine's scores cannot
  see the holdout.
* Engine settings for purchase data: ``visit_gap_seconds`` = 1 day (purchases on the same or the
  next day are one visit), ``prior_gap_seconds`` = median and ``prior_log_sd`` = standard deviation
  of the pooled log gaps between visits *in the calibration period*, ``silence_min_seconds`` =
  1 day, ``silence_max_seconds`` and ``idle_ttl_seconds`` = 5 years (with the default 180-day
  idle TTL a one-time Q1 buyer would be evicted before the snapshot and have no score at all).
  Everything else is the default (``silence_z`` 2.33, ``prior_weight`` 3, ``gap_alpha`` 0.2,
  ``min_visits_to_arm`` 2).
* Truth: a customer **dropped off** when they made **no purchase in the holdout period**
  1997-10-01 … 1998-06-30 (the next 39 weeks).
* Scores, all as of the end of calibration and from calibration data only (higher = more likely
  to drop off). "Purchase days" are distinct days with a purchase.

  - Forethought ``dropoff``: the snapshot's ``scores.dropoff`` = P(gap ≤ present silence) under the
    customer's log-normal gap model, shrunk toward the prior (rounded to 6 decimals by the engine).
  - Forethought z (diagnostic): the same model's z = (ln silence − μ)/σ, unrounded and unsaturated,
    read from the engine's state at the snapshot; same order as ``dropoff`` except for ties.
  - Recency: days since the last purchase.
  - Recency / own mean gap ("RFM-ish"): days since the last purchase divided by the customer's mean
    gap between purchase days; one-time buyers (no gap) use the calibration population's mean gap.
  - Frequency: minus the number of repeat purchase days (fewer repeats → higher risk).
  - BG/NBD 1 − P(alive): Fader, Hardie & Lee (2005), fitted by maximum likelihood on the
    calibration summaries (x = repeat purchase days, t_x, T in weeks). BG/NBD sets P(alive) = 1 for
    anyone without a repeat purchase, so all one-time buyers tie at 0.
  - BG/NBD P(no purchase in holdout): the model's own probability of the truth event,
    1 − P(alive) + P(alive)·((α+T)/(α+T+t))^(r+x) with t = 39 weeks (given alive, λ's posterior is
    Gamma(r+x, α+T) and nobody dies without purchasing). This is the fair BG/NBD baseline for this
    truth; 1 − P(alive) is reported because it is what tools usually show.
  - Silent > 90 days: the fixed-threshold rule of many SaaS tools (a 0/1 score).

* Metrics: ROC AUC (Mann–Whitney with mid-ranks, so ties count one half), its 95 % paired-bootstrap
  interval and the interval of its difference to Forethought's ``dropoff`` AUC; average precision
  (step-wise, ties grouped, as scikit-learn computes it); the base rate. Operating points:
  the customers the engine has *triggered on* for their present silence by the snapshot
  (the ``silence_dropoff`` trigger fired and no purchase since; it needs ≥ 2 visits);
  ``dropoff ≥ Φ(silence_z)`` (the same threshold, but also for one-time buyers, whom the engine
  does not arm); the 90-day rule; and every score's top-k at the engine's alert volume k (ties
  broken by a fixed random order), so precision is compared at equal alert budgets.
  AUC/AP are also given for repeat customers (≥ 2 visits, the engine's armed set) and one-time
  buyers separately.

Caveats
-------
* CDNOW is one cohort of *first-time* buyers of Q1 1997, followed from their first purchase; it is
  not a steady-state customer base. Most of them never buy again, so the base rate of "drop-off"
  is high (~70 %) and a large part of any score's AUC comes from separating one-time buyers (who
  have no gap history: Forethought can only use its prior, i.e. recency) from repeaters.
* Cadence is weeks to months and data are daily; the engine was designed for sessions that are
  minutes to days apart. The prior is estimated from this data set's calibration period (no holdout
  information), which a live deployment would also have to do per product.
* "Drop-off" here means *no purchase in the next 39 weeks*, a proxy for churn in a non-contractual
  setting: nobody tells us they left. A customer can be "alive" and still not buy in 39 weeks.
* The engine's ``dropoff`` is a probability rounded to 6 decimals: long silences of regular buyers
  saturate at 1.0 and tie; the z diagnostic shows what that costs in ranking.
* One data set, one split; the numbers are descriptive, not a claim about other businesses.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import math
import platform
import sys
import tempfile
import time
import warnings
import zipfile
from dataclasses import asdict, dataclass
from datetime import date, datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from rich.console import Console
from rich.table import Table
from scipy import optimize, special, stats

from forethought.core.baselines import normal_cdf
from forethought.core.config import EngineConfig
from forethought.core.detectors import gap_model
from forethought.replay.reader import sorted_lines
from forethought.replay.runner import Replayer

DAY = 86_400.0
WEEK = 7.0
CAL_FIRST = date(1997, 1, 1)
CAL_LAST = date(1997, 9, 30)         # last calibration day (lifetimes' observation_period_end)
HOLDOUT_LAST = date(1998, 6, 30)
# The engine rejects event times before 2000-01-01 as implausible, so every date is moved forward
# by 28 years (10,227 days): the Gregorian calendar repeats exactly (weekdays, leap years) and all
# gaps are unchanged. 1997-01-01 is replayed as 2025-01-01.
SHIFT = date(2025, 1, 1) - date(1997, 1, 1)
SNAPSHOT_AT = datetime(2025, 10, 1, tzinfo=timezone.utc).timestamp()     # end of calibration (1997-10-01)
HOLDOUT_END = datetime(2026, 7, 1, tzinfo=timezone.utc).timestamp()      # end of holdout (1998-07-01)
HOLDOUT_WEEKS = (HOLDOUT_LAST - CAL_LAST).days / WEEK                     # 273 days = 39 weeks
RULE_DAYS = 90.0
MEMBER = "lifetimes/datasets/CDNOW_master.txt"

FORETHOUGHT = "Forethought dropoff"


# ----------------------------------------------------------------------------------------- data

def locate_cdnow(explicit: Path | None) -> tuple[str, str]:
    """The CDNOW master file's text and where it came from (a file, a wheel, or a package)."""
    if explicit is not None:
        if explicit.suffix in (".whl", ".zip"):
            with zipfile.ZipFile(explicit) as wheel:
                return wheel.read(MEMBER).decode(), f"{explicit}!{MEMBER}"
        return explicit.read_text(), str(explicit)
    for package in ("lifetimes", "btyd"):
        spec = importlib.util.find_spec(package)
        for folder in (spec.submodule_search_locations or []) if spec else []:
            path = Path(folder) / "datasets" / "CDNOW_master.txt"
            if path.exists():
                return path.read_text(), str(path)
    sys.exit("CDNOW_master.txt not found: .venv/bin/python -m pip install -e '.[eval]' "
             "(or pass --data path/to/CDNOW_master.txt or a lifetimes wheel)")


@dataclass(frozen=True, slots=True)
class Purchase:
    customer: int
    day: date
    cds: int
    dollars: float


def parse_cdnow(text: str) -> list[Purchase]:
    rows = []
    for line in io.StringIO(text):
        parts = line.split()
        if not parts or not parts[0].isdigit():
            continue  # header / blank
        ymd = parts[1]
        rows.append(Purchase(int(parts[0]), date(int(ymd[:4]), int(ymd[4:6]), int(ymd[6:8])),
                             int(parts[2]), float(parts[3])))
    return rows


def noon(day: date) -> float:
    """12:00 UTC of ``day``, shifted by :data:`SHIFT` (the replayed event time)."""
    day = day + SHIFT
    return datetime(day.year, day.month, day.day, 12, tzinfo=timezone.utc).timestamp()


def write_events(purchases: list[Purchase], path: Path) -> None:
    """One ``usage`` event per purchase row, as JSON lines (in file order; the reader sorts)."""
    with open(path, "wb") as out:
        for n, p in enumerate(purchases):
            out.write(orjson.dumps({
                "event_id": f"cdnow-{p.customer}-{n}", "customer_id": f"cdnow-{p.customer}",
                "type": "usage", "occurred_at": f"{(p.day + SHIFT).isoformat()}T12:00:00Z",
                "metric": "purchase", "quantity": p.dollars, "unit": "USD",
                "properties": {"cds": p.cds},
            }) + b"\n")


@dataclass
class Customers:
    """Per-customer calibration summaries and holdout truth, in one order (by CDNOW id)."""

    ids: np.ndarray
    first: np.ndarray        # days since CAL_FIRST of the first purchase
    last: np.ndarray         # ... of the last calibration purchase
    days: np.ndarray         # distinct purchase days in calibration
    mean_gap: np.ndarray     # mean gap between purchase days (NaN for one-time buyers)
    dropped: np.ndarray      # truth: no purchase in the holdout (bool)
    visit_gaps: list[float]  # calibration gaps between engine visits (> visit gap), pooled, days


def summarize(purchases: list[Purchase], visit_gap_days: float) -> Customers:
    cal: dict[int, set[int]] = {}
    holdout: set[int] = set()
    for p in purchases:
        offset = (p.day - CAL_FIRST).days
        if p.day <= CAL_LAST:
            cal.setdefault(p.customer, set()).add(offset)
        elif p.day <= HOLDOUT_LAST:
            holdout.add(p.customer)
    ids = np.array(sorted(cal))
    first, last, count, mean_gap, visit_gaps = [], [], [], [], []
    for cid in ids:
        days = sorted(cal[cid])
        first.append(days[0]); last.append(days[-1]); count.append(len(days))
        mean_gap.append((days[-1] - days[0]) / (len(days) - 1) if len(days) > 1 else math.nan)
        seen = days[0]  # gaps between visits exactly as the engine forms them
        for d in days[1:]:
            if d - seen > visit_gap_days:
                visit_gaps.append(float(d - seen))
            seen = d
    return Customers(ids, np.array(first, float), np.array(last, float), np.array(count),
                     np.array(mean_gap), np.array([c not in holdout for c in ids]), visit_gaps)


# ---------------------------------------------------------------------------------- Forethought

def replay(path: Path, config: EngineConfig) -> tuple[dict[str, dict[str, Any]], Replayer, int]:
    """Replay the events; the snapshot rows (plus z and trigger state) by customer id."""
    rows: dict[str, dict[str, Any]] = {}
    fired_by_snapshot = 0

    def count(trigger: Any) -> None:
        nonlocal fired_by_snapshot
        fired_by_snapshot += trigger.fired_at.timestamp() <= SNAPSHOT_AT

    def on_snapshot(row: dict[str, Any]) -> None:
        state = runner.states[row["customer_id"]]  # the state as of the snapshot
        mu, sd = gap_model(state, config)
        silence = SNAPSHOT_AT - state.last_seen
        rows[row["customer_id"]] = row | {
            "z": (math.log(silence) - mu) / sd, "visits": state.visits,
            "triggered": state.silence_fired_for == state.last_seen,
        }

    runner = Replayer(config, on_trigger=count, snapshot_at=SNAPSHOT_AT, on_snapshot=on_snapshot)
    for line in sorted_lines([path]):
        runner.feed(line)
    runner.finish(until=HOLDOUT_END)
    return rows, runner, fired_by_snapshot


# --------------------------------------------------------------------------------------- BG/NBD

def bgnbd_loglik(params: np.ndarray, x: np.ndarray, tx: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Per-customer BG/NBD log-likelihood (Fader, Hardie & Lee 2005, eq. 6)."""
    r, alpha, a, b = params
    gl = special.gammaln
    common = gl(r + x) - gl(r) + r * np.log(alpha) + gl(a + b) + gl(b + x) - gl(b) - gl(a + b + x)
    a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(x > 0, np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) - (r + x) * np.log(alpha + tx), -np.inf)
    return common + np.logaddexp(a3, a4)


def bgnbd_fit_scipy(x: np.ndarray, tx: np.ndarray, T: np.ndarray) -> dict[str, float]:
    def nll(log_params: np.ndarray) -> float:
        return -float(bgnbd_loglik(np.exp(log_params), x, tx, T).sum())
    best = optimize.minimize(nll, np.zeros(4), method="Nelder-Mead",
                             options={"xatol": 1e-8, "fatol": 1e-8, "maxiter": 20_000, "maxfev": 20_000})
    best = optimize.minimize(nll, best.x, method="L-BFGS-B")
    return dict(zip(("r", "alpha", "a", "b"), map(float, np.exp(best.x))))


def bgnbd_p_alive(params: dict[str, float], x: np.ndarray, tx: np.ndarray, T: np.ndarray) -> np.ndarray:
    r, alpha, a, b = (params[k] for k in ("r", "alpha", "a", "b"))
    with np.errstate(divide="ignore", invalid="ignore"):
        odds = a / np.maximum(b + x - 1, 1e-300) * np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + tx)))
    return np.where(x > 0, 1.0 / (1.0 + odds), 1.0)


def bgnbd_p_zero(params: dict[str, float], p_alive: np.ndarray, x: np.ndarray, T: np.ndarray, t: float) -> np.ndarray:
    """P(no purchase in (T, T+t] | history) = P(dead) + P(alive)·E[exp(−λt) | alive, history]."""
    r, alpha = params["r"], params["alpha"]
    return 1.0 - p_alive + p_alive * np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + T + t)))


def bgnbd(x: np.ndarray, tx: np.ndarray, T: np.ndarray, which: str) -> dict[str, Any]:
    """Fit BG/NBD with lifetimes (when importable and asked) and with scipy; use one, compare both."""
    out: dict[str, Any] = {}
    if which in ("auto", "lifetimes"):
        try:
            started = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from lifetimes import BetaGeoFitter
                fitter = BetaGeoFitter(penalizer_coef=0.0).fit(x, tx, T)
                p_alive = np.asarray(fitter.conditional_probability_alive(x, tx, T), float)
            params = {k: float(v) for k, v in fitter.params_.items()}
            out = {"implementation": f"lifetimes {metadata.version('lifetimes')} BetaGeoFitter",
                   "params": params, "p_alive": p_alive, "seconds": time.perf_counter() - started,
                   "p_alive_formula_max_abs_diff": float(np.max(np.abs(p_alive - bgnbd_p_alive(params, x, tx, T))))}
        except Exception as exc:  # noqa: BLE001 - any failure of the third-party fitter falls back
            if which == "lifetimes":
                raise
            out = {"lifetimes_error": f"{type(exc).__name__}: {exc}"}
    started = time.perf_counter()
    scipy_params = bgnbd_fit_scipy(x, tx, T)
    scipy_seconds = time.perf_counter() - started
    scipy_alive = bgnbd_p_alive(scipy_params, x, tx, T)
    if "params" in out:
        out["scipy_check"] = {"params": scipy_params, "seconds": scipy_seconds,
                              "p_alive_max_abs_diff": float(np.max(np.abs(scipy_alive - out["p_alive"])))}
    else:
        out |= {"implementation": f"own (scipy {metadata.version('scipy')} maximum likelihood)",
                "params": scipy_params, "p_alive": scipy_alive, "seconds": scipy_seconds}
    out["loglik"] = float(bgnbd_loglik(np.array([out["params"][k] for k in ("r", "alpha", "a", "b")]), x, tx, T).sum())
    return out


# -------------------------------------------------------------------------------------- metrics

def auc(score: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC as the Mann–Whitney statistic with mid-ranks (a tie counts one half)."""
    ranks = stats.rankdata(score)
    n_pos = int(positive.sum())
    n_neg = len(score) - n_pos
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(score: np.ndarray, positive: np.ndarray) -> float:
    """Σ (R_k − R_{k−1})·P_k over distinct thresholds, high to low (scikit-learn's definition)."""
    order = np.argsort(-score, kind="mergesort")
    s, y = score[order], positive[order].astype(float)
    tp = np.cumsum(y)
    cut = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each tied group
    tp, flagged = tp[cut], cut + 1.0
    recall = tp / tp[-1]
    precision = tp / flagged
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def prf(flag: np.ndarray, positive: np.ndarray) -> dict[str, float | int | None]:
    tp = int((flag & positive).sum())
    n_flag, n_pos = int(flag.sum()), int(positive.sum())
    precision = tp / n_flag if n_flag else None
    recall = tp / n_pos if n_pos else None
    f1 = 2 * precision * recall / (precision + recall) if precision and recall else None
    return {"flagged": n_flag, "true_positives": tp, "precision": precision, "recall": recall, "f1": f1}


def top_k(score: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """The k highest scores; ties broken by a fixed random order."""
    order = np.lexsort((rng.permutation(len(score)), -score))
    flag = np.zeros(len(score), bool)
    flag[order[:k]] = True
    return flag


def bootstrap_auc(scores: dict[str, np.ndarray], positive: np.ndarray, reference: str, n: int,
                  rng: np.random.Generator) -> dict[str, dict[str, tuple[float, float]]]:
    """95 % percentile intervals of each AUC and of (AUC − reference AUC), resampling customers."""
    if n <= 0:
        return {}
    draws: dict[str, list[float]] = {name: [] for name in scores}
    for _ in range(n):
        idx = rng.integers(0, len(positive), len(positive))
        y = positive[idx]
        for name, score in scores.items():
            draws[name].append(auc(score[idx], y))
    ref = np.array(draws[reference])
    pct = lambda v: (float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5)))  # noqa: E731
    return {name: {"auc": pct(np.array(v)), "diff_vs_forethought": pct(np.array(v) - ref)}
            for name, v in draws.items()}


# ------------------------------------------------------------------------------------------ main

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="CDNOW_master.txt or a lifetimes wheel (default: the installed package)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--bgnbd", choices=("auto", "lifetimes", "scipy"), default="auto",
                        help="BG/NBD fitter: lifetimes, own scipy fit, or auto (lifetimes, else scipy)")
    parser.add_argument("--visit-gap-days", type=float, default=1.0)
    parser.add_argument("--prior-log-sd", type=float, help="default: estimated from calibration gaps")
    parser.add_argument("--prior-gap-days", type=float, help="default: median calibration gap")
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples for AUC intervals (0: none)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    console = Console(width=150)
    timings: dict[str, float] = {}
    started = clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = now - clock
        clock = now

    text, source = locate_cdnow(args.data)
    purchases = parse_cdnow(text)
    cust = summarize(purchases, args.visit_gap_days)
    lap("load and summarise CDNOW")

    log_gaps = np.log(np.array(cust.visit_gaps) * DAY)
    prior_gap = args.prior_gap_days * DAY if args.prior_gap_days else float(np.exp(np.median(log_gaps)))
    prior_sd = args.prior_log_sd if args.prior_log_sd else float(np.std(log_gaps))
    config = EngineConfig(
        visit_gap_seconds=args.visit_gap_days * DAY, prior_gap_seconds=prior_gap, prior_log_sd=prior_sd,
        silence_min_seconds=DAY, silence_max_seconds=5 * 365 * DAY, idle_ttl_seconds=5 * 365 * DAY,
    )

    with tempfile.TemporaryDirectory(prefix="forethought-cdnow-") as folder:
        events = Path(folder) / "cdnow.jsonl"
        write_events(purchases, events)
        lap("write JSON-lines events")
        rows, runner, fired_by_snapshot = replay(events, config)
        lap("replay through Replayer")

    if runner.counts.invalid:
        sys.exit(f"the engine rejected events: {dict(runner.counts.invalid)}")
    keys = [f"cdnow-{cid}" for cid in cust.ids]
    missing = [k for k in keys if k not in rows]
    if missing:
        sys.exit(f"{len(missing)} customers missing from the snapshot (evicted?), e.g. {missing[:3]}")
    dropoff = np.array([rows[k]["scores"]["dropoff"] for k in keys])
    z = np.array([rows[k]["z"] for k in keys])
    triggered = np.array([rows[k]["triggered"] for k in keys])
    visits = np.array([rows[k]["visits"] for k in keys])

    silence_days = (SNAPSHOT_AT - noon(CAL_FIRST)) / DAY - cust.last  # = the engine's silence, in days
    pop_mean_gap = float(np.nanmean(cust.mean_gap))
    x = (cust.days - 1).astype(float)
    tx = (cust.last - cust.first) / WEEK
    T = ((CAL_LAST - CAL_FIRST).days - cust.first) / WEEK
    fit = bgnbd(x, tx, T, args.bgnbd)
    p_alive = fit.pop("p_alive")
    p_zero = bgnbd_p_zero(fit["params"], p_alive, x, T, HOLDOUT_WEEKS)
    lap("fit BG/NBD" + (" (lifetimes + own scipy check)" if "scipy_check" in fit else ""))

    y = cust.dropped
    scores = {
        FORETHOUGHT: dropoff,
        "Forethought z (unrounded)": z,
        "Recency (days silent)": silence_days,
        "Recency / own mean gap": silence_days / np.where(np.isnan(cust.mean_gap), pop_mean_gap, cust.mean_gap),
        "Frequency (− repeats)": -x,
        "BG/NBD 1 − P(alive)": 1.0 - p_alive,
        "BG/NBD P(0 in holdout)": p_zero,
        f"Silent > {RULE_DAYS:g} days (rule)": (silence_days > RULE_DAYS).astype(float),
    }
    rng = np.random.default_rng(args.seed)
    intervals = bootstrap_auc(scores, y, FORETHOUGHT, args.bootstrap, rng)
    repeat = visits >= config.min_visits_to_arm
    k = int(triggered.sum())
    metrics: dict[str, Any] = {}
    for name, score in scores.items():
        metrics[name] = {
            "auc": auc(score, y), "average_precision": average_precision(score, y),
            "auc_repeat_customers": auc(score[repeat], y[repeat]),
            "ap_repeat_customers": average_precision(score[repeat], y[repeat]),
            "auc_one_time_buyers": auc(score[~repeat], y[~repeat]),
            "at_engine_alert_volume": prf(top_k(score, k, rng), y),
            "at_engine_alert_volume_repeat_customers": prf(top_k(score[repeat], k, rng), y[repeat]),
            **({"auc_95ci": intervals[name]["auc"], "auc_diff_vs_forethought_95ci": intervals[name]["diff_vs_forethought"]}
               if intervals else {}),
        }
    threshold = normal_cdf(config.silence_z)
    operating = {
        "Forethought trigger fired (present silence)": prf(triggered, y),
        f"Forethought dropoff ≥ Φ({config.silence_z}) = {threshold:.4f}": prf(dropoff >= threshold, y),
        f"Silent > {RULE_DAYS:g} days": prf(silence_days > RULE_DAYS, y),
        "Flag everyone": prf(np.ones_like(y), y),
    }
    operating_repeat = {
        "Forethought trigger fired (present silence)": prf(triggered[repeat], y[repeat]),
        f"Silent > {RULE_DAYS:g} days": prf(silence_days[repeat] > RULE_DAYS, y[repeat]),
    }
    lap("metrics" + (f" (+{args.bootstrap} bootstrap resamples)" if args.bootstrap else ""))
    total = time.perf_counter() - started

    # ---------------------------------------------------------------------------- report
    n, n_pos = len(y), int(y.sum())
    console.print(f"[bold]CDNOW drop-off evaluation[/]  data: {source}")
    console.print(
        f"{n:,} customers, {len(purchases):,} purchase rows ({runner.counts.valid:,} valid events, "
        f"{sum(runner.counts.invalid.values())} invalid); calibration {CAL_FIRST} … {CAL_LAST}, "
        f"holdout … {HOLDOUT_LAST} ({HOLDOUT_WEEKS:g} weeks)")
    console.print(
        f"truth: dropped off (no holdout purchase) {n_pos:,} = base rate {n_pos / n:.3f};  repeat customers "
        f"(≥{config.min_visits_to_arm} visits in calibration) {int(repeat.sum()):,}, their base rate {y[repeat].mean():.3f}; "
        f"one-time buyers {int((~repeat).sum()):,}, base rate {y[~repeat].mean():.3f}")
    console.print(
        f"engine: prior gap {prior_gap / DAY:.1f} d (median of {len(cust.visit_gaps):,} calibration gaps), "
        f"prior_log_sd {prior_sd:.3f}, visit gap {args.visit_gap_days:g} d, silence_z {config.silence_z}; "
        f"silence triggers fired by the snapshot {fired_by_snapshot:,}, live for the present silence {k:,}; "
        f"dropoff scores tied at 1.0: {int((dropoff >= 1.0).sum()):,}")
    p = fit["params"]
    console.print(
        f"BG/NBD: {fit['implementation']}  r={p['r']:.4f} α={p['alpha']:.4f} a={p['a']:.4f} b={p['b']:.4f} "
        f"(weeks), log-lik {fit['loglik']:.1f}, fit {fit['seconds']:.1f} s"
        + (f"; own scipy fit agrees: max |ΔP(alive)| = {fit['scipy_check']['p_alive_max_abs_diff']:.2e} "
           f"({fit['scipy_check']['seconds']:.1f} s)" if "scipy_check" in fit else ""))

    table = Table(title=f"Ranking quality (positive = dropped off; base rate {n_pos / n:.3f} = AP of a random score); "
                  f"'rep.' = repeat customers only (base rate {y[repeat].mean():.3f}); "
                  f"@k = top k = {k:,} (the engine's alert volume)", show_lines=False)
    for col in ("score", "AUC", "AUC 95% CI", "ΔAUC vs FT (95%)", "AP", "AUC rep.", "AP rep.", "AUC 1-time",
                "P@k", "P@k rep."):
        table.add_column(col, justify="left" if col == "score" else "right")
    for name, m in metrics.items():
        ci = m.get("auc_95ci")
        diff = m.get("auc_diff_vs_forethought_95ci")
        at_k = m["at_engine_alert_volume"]
        table.add_row(
            name, f"{m['auc']:.4f}", f"{ci[0]:.3f}–{ci[1]:.3f}" if ci else "",
            "" if not diff or name == FORETHOUGHT else f"{diff[0]:+.3f}…{diff[1]:+.3f}",
            f"{m['average_precision']:.4f}", f"{m['auc_repeat_customers']:.4f}", f"{m['ap_repeat_customers']:.4f}",
            f"{m['auc_one_time_buyers']:.4f}", _f(at_k["precision"]),
            _f(m["at_engine_alert_volume_repeat_customers"]["precision"]))
    console.print(table)

    ops = Table(title="Operating points (all customers; last two rows: repeat customers only)")
    for col in ("rule", "flagged", "TP", "precision", "recall", "F1"):
        ops.add_column(col, justify="left" if col == "rule" else "right")
    for label, group in (("", operating), (" [repeat]", operating_repeat)):
        for name, m in group.items():
            ops.add_row(name + label, f"{m['flagged']:,}", f"{m['true_positives']:,}", _f(m["precision"]),
                        _f(m["recall"]), _f(m["f1"]))
    console.print(ops)

    times = Table(title="Runtime")
    times.add_column("phase"); times.add_column("seconds", justify="right")
    for name, seconds in timings.items():
        times.add_row(name, f"{seconds:.2f}")
    times.add_row("[bold]total[/]", f"[bold]{total:.2f}[/]")
    console.print(times)
    console.print(f"replay throughput: {runner.counts.valid / timings['replay through Replayer']:,.0f} events/s "
                  f"(JSON decode + validation + core, one process)")

    if args.json:
        report = {
            "data": source, "customers": n, "purchase_rows": len(purchases), "dropped_off": n_pos,
            "base_rate": n_pos / n, "repeat_customers": int(repeat.sum()),
            "base_rate_repeat": float(y[repeat].mean()), "base_rate_one_time": float(y[~repeat].mean()),
            "calibration": [CAL_FIRST.isoformat(), CAL_LAST.isoformat()],
            "holdout": [date.fromordinal(CAL_LAST.toordinal() + 1).isoformat(), HOLDOUT_LAST.isoformat()],
            "engine_config": asdict(config), "dropoff_threshold": threshold,
            "triggers_fired_by_snapshot": fired_by_snapshot, "triggers_live_at_snapshot": k,
            "replay_counts": runner.counts.as_dict(), "bgnbd": fit, "scores": metrics,
            "operating_points": operating, "operating_points_repeat_customers": operating_repeat,
            "bootstrap_resamples": args.bootstrap, "seed": args.seed,
            "runtime_seconds": {**timings, "total": total},
            "environment": {"python": platform.python_version(), "numpy": np.__version__,
                            "scipy": metadata.version("scipy"), "machine": platform.machine()},
        }
        args.json.write_text(json.dumps(report, indent=2, default=str))
        console.print(f"wrote {args.json}")
    return 0


def _f(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    raise SystemExit(main())
