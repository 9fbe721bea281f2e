"""The baseline scores: recency, RFM-ish, frequency, the 90-day rule and BG/NBD (Fader, Hardie & Lee 2005)."""

from __future__ import annotations

import time
import warnings
from importlib import metadata
from typing import Any

import numpy as np
from scipy import optimize, special

from .data import CAL_FIRST, CAL_LAST, DAY, RULE_DAYS, SNAPSHOT_AT, WEEK, Customers, noon
from .engine import EngineResult

FORETHOUGHT = "Forethought dropoff"
LEARNED = "Forethought learned"
CHURN = "Forethought churn (scores.churn)"
CHURN_39 = "Forethought churn, 39-week horizon"
CHURN_LEARNED = "Forethought churn_learned (scores.churn_learned)"
CHURN_LEARNED_39 = "Forethought churn_learned, 39-week horizon"
PARETO = "Pareto/NBD P(0 in holdout)"
# scores meant as P(truth): they get a Brier score
PROBABILITIES = (CHURN, CHURN_39, CHURN_LEARNED, CHURN_LEARNED_39, "BG/NBD P(0 in holdout)", PARETO)


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
    """Maximum-likelihood parameters (Nelder-Mead, then L-BFGS-B, on log parameters)."""
    def nll(log_params: np.ndarray) -> float:
        return -float(bgnbd_loglik(np.exp(log_params), x, tx, T).sum())
    best = optimize.minimize(nll, np.zeros(4), method="Nelder-Mead",
                             options={"xatol": 1e-8, "fatol": 1e-8, "maxiter": 20_000, "maxfev": 20_000})
    best = optimize.minimize(nll, best.x, method="L-BFGS-B")
    return dict(zip(("r", "alpha", "a", "b"), map(float, np.exp(best.x))))


def bgnbd_p_alive(params: dict[str, float], x: np.ndarray, tx: np.ndarray, T: np.ndarray) -> np.ndarray:
    """P(alive | x, t_x, T); 1 for customers without a repeat purchase."""
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
            out = _bgnbd_lifetimes(x, tx, T)
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


def _bgnbd_lifetimes(x: np.ndarray, tx: np.ndarray, T: np.ndarray) -> dict[str, Any]:
    """lifetimes' BetaGeoFitter, checked against this module's P(alive) formula."""
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from lifetimes import BetaGeoFitter
        fitter = BetaGeoFitter(penalizer_coef=0.0).fit(x, tx, T)
        p_alive = np.asarray(fitter.conditional_probability_alive(x, tx, T), float)
    params = {k: float(v) for k, v in fitter.params_.items()}
    return {"implementation": f"lifetimes {metadata.version('lifetimes')} BetaGeoFitter",
            "params": params, "p_alive": p_alive, "seconds": time.perf_counter() - started,
            "p_alive_formula_max_abs_diff": float(np.max(np.abs(p_alive - bgnbd_p_alive(params, x, tx, T))))}


def pareto_nbd(x: np.ndarray, tx: np.ndarray, T: np.ndarray, t: float) -> dict[str, Any]:
    """Pareto/NBD (Schmittlein, Morrison & Colombo 1987) fitted with lifetimes' ParetoNBDFitter on the same
    summaries; its own conditional P(no purchase in the next ``t`` weeks | history)."""
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from lifetimes import ParetoNBDFitter
        fitter = ParetoNBDFitter(penalizer_coef=0.0).fit(x, tx, T)
        p_zero = np.asarray(fitter.conditional_probability_of_n_purchases_up_to_time(0, t, x, tx, T), float)
        p_alive = np.asarray(fitter.conditional_probability_alive(x, tx, T), float)
    return {"implementation": f"lifetimes {metadata.version('lifetimes')} ParetoNBDFitter",
            "params": {k: float(v) for k, v in fitter.params_.items()}, "p_zero": p_zero, "p_alive": p_alive,
            "seconds": time.perf_counter() - started}


def silence_days(cust: Customers) -> np.ndarray:
    """Days from the last calibration purchase to the snapshot (= the engine's silence, in days)."""
    return (SNAPSHOT_AT - noon(CAL_FIRST)) / DAY - cust.last


def bgnbd_inputs(cust: Customers) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BG/NBD's x (repeat purchase days), t_x and T (weeks) from the calibration summaries."""
    x = (cust.days - 1).astype(float)
    tx = (cust.last - cust.first) / WEEK
    T = ((CAL_LAST - CAL_FIRST).days - cust.first) / WEEK
    return x, tx, T


def all_scores(engine: EngineResult, cust: Customers, silence: np.ndarray, x: np.ndarray,
               p_alive: np.ndarray, p_zero: np.ndarray, pareto_zero: np.ndarray) -> dict[str, np.ndarray]:
    """Every score by display name, Forethought's first (higher = more likely to drop off)."""
    pop_mean_gap = float(np.nanmean(cust.mean_gap))
    return {
        FORETHOUGHT: engine.dropoff,
        CHURN: engine.churn,
        CHURN_39: engine.churn_truth_horizon,
        CHURN_LEARNED: engine.churn_learned,
        CHURN_LEARNED_39: engine.churn_learned_truth_horizon,
        "Forethought z (unrounded)": engine.z,
        LEARNED: np.nan_to_num(engine.learned, nan=0.5),  # a cold model ranks nobody
        "Recency (days silent)": silence,
        "Recency / own mean gap": silence / np.where(np.isnan(cust.mean_gap), pop_mean_gap, cust.mean_gap),
        "Frequency (− repeats)": -x,
        "BG/NBD 1 − P(alive)": 1.0 - p_alive,
        "BG/NBD P(0 in holdout)": p_zero,
        PARETO: pareto_zero,
        f"Silent > {RULE_DAYS:g} days (rule)": (silence > RULE_DAYS).astype(float),
    }
