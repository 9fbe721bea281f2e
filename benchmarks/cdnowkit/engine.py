"""Forethought's side: engine settings for purchase data, the replay, and its scores at the snapshot."""

from __future__ import annotations

import math
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from forethought.core.config import EngineConfig
from forethought.core.detectors import churn, churn_learned, silence
from forethought.core.plugin import Moment
from forethought.ops.collector import tune_collector
from forethought.replay.reader import sorted_lines
from forethought.replay.runner import Replayer

from .data import DAY, HOLDOUT_END, HOLDOUT_WEEKS, SNAPSHOT_AT, Customers, Purchase, write_events


def engine_config(cust: Customers, visit_gap_days: float, prior_gap_days: float | None,
                  prior_log_sd: float | None, **more: Any) -> EngineConfig:
    """Purchase-data settings; the prior defaults to the median and SD of the calibration log gaps;
    ``more``: other engine settings (None: the default)."""
    log_gaps = np.log(np.array(cust.visit_gaps) * DAY)
    prior_gap = prior_gap_days * DAY if prior_gap_days else float(np.exp(np.median(log_gaps)))
    prior_sd = prior_log_sd if prior_log_sd else float(np.std(log_gaps))
    return EngineConfig(
        visit_gap_seconds=visit_gap_days * DAY, prior_gap_seconds=prior_gap, prior_log_sd=prior_sd,
        silence_min_seconds=DAY, silence_max_seconds=5 * 365 * DAY,  # the idle TTL stays the default (180 days)
        **{k: v for k, v in more.items() if v is not None},
    )


def replay(path: Path, config: EngineConfig) -> tuple[dict[str, dict[str, Any]], Replayer, int]:
    """Replay the events; the snapshot rows (plus z and trigger state) by customer id."""
    rows: dict[str, dict[str, Any]] = {}
    fired_by_snapshot = 0
    episodes: set[tuple[str, str]] = set()  # (customer, silence episode) of each trigger fired by the snapshot

    def count(trigger: Any) -> None:
        nonlocal fired_by_snapshot
        if trigger.fired_at.timestamp() <= SNAPSHOT_AT:
            fired_by_snapshot += 1
            episodes.add((trigger.customer_id, trigger.episode))

    def on_snapshot(row: dict[str, Any]) -> None:
        customer = row["customer_id"]
        runtime = runner.runtime(customer)  # the state as of the snapshot (``runner.states`` would build a
        state = runtime.state(customer)  # dict of every customer per row: quadratic, minutes on CDNOW)
        if state is None:  # evicted after idling past the TTL: what its summary keeps, as the row was made from
            kept = runtime.summary(customer)
            assert kept is not None
            state = kept.revive(config)
        mu, sd = silence.gap_model(state, config.section("silence"), config.prior_weight)
        silent = SNAPSHOT_AT - state.last_seen
        s = config.section("churn")  # the same model, asked about the truth's horizon (39 weeks)
        params = churn.prior(s, runner.model(customer))
        at_truth = Moment(SNAPSHOT_AT, truth_horizon, runner.model(customer))
        rows[row["customer_id"]] = row | {
            "churn_learned_truth_horizon": churn_learned.score(state, SNAPSHOT_AT, at_truth)[0],
            "churn_truth_horizon": churn.score(state, SNAPSHOT_AT, s, params, HOLDOUT_WEEKS * 7),
            "churn_prior": dict(params._asdict()),
            "z": (math.log(silent) - mu) / sd, "visits": state.visits,
            # a trigger went out for the silence since the last purchase (the episode names its start: the
            # state of a customer evicted after idling no longer says, its summary keeps no silence)
            "triggered": (customer, f"silence-{state.last_seen:.3f}") in episodes,
        }

    truth_horizon = config.replace(churn_horizon_seconds=HOLDOUT_WEEKS * 7 * DAY)
    tune_collector()  # as `forethought replay` does
    runner = Replayer(config, on_trigger=count, snapshot_at=SNAPSHOT_AT, on_snapshot=on_snapshot)
    for line in sorted_lines([path]):
        runner.feed(line)
    runner.finish(until=HOLDOUT_END)
    return rows, runner, fired_by_snapshot


@dataclass
class EngineResult:
    """The replay's counts and, per customer in :class:`Customers` order, the engine's view at the snapshot."""

    runner: Replayer
    fired_by_snapshot: int
    dropoff: np.ndarray
    learned: np.ndarray  # ``dropoff_learned`` at the snapshot (NaN while the partition's model was cold)
    z: np.ndarray
    churn: np.ndarray  # ``scores.churn`` at the snapshot (default horizon)
    churn_truth_horizon: np.ndarray  # the same model's P(no activity in the holdout's 39 weeks)
    churn_learned: np.ndarray  # ``scores.churn_learned`` at the snapshot (default horizon)
    churn_learned_truth_horizon: np.ndarray  # the same, asked about the holdout's 39 weeks
    churn_priors: list[dict[str, float]]  # the (r, α, a, b) each customer's score used
    triggered: np.ndarray
    visits: np.ndarray


def run_engine(purchases: list[Purchase], cust: Customers, config: EngineConfig,
               lap: Callable[[str], None]) -> EngineResult:
    """Write the events to a temporary file, replay them, and read every customer's snapshot row."""
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
    return EngineResult(runner, fired_by_snapshot,
                        dropoff=np.array([rows[k]["scores"]["dropoff"] for k in keys]),
                        learned=np.array([_or_nan(rows[k]["scores"].get("dropoff_learned")) for k in keys]),
                        z=np.array([rows[k]["z"] for k in keys]),
                        churn=np.array([rows[k]["scores"]["churn"] for k in keys]),
                        churn_truth_horizon=np.array([rows[k]["churn_truth_horizon"] for k in keys]),
                        churn_learned=np.array([rows[k]["scores"]["churn_learned"] for k in keys]),
                        churn_learned_truth_horizon=np.array([rows[k]["churn_learned_truth_horizon"] for k in keys]),
                        churn_priors=[rows[k]["churn_prior"] for k in keys],
                        triggered=np.array([rows[k]["triggered"] for k in keys]),
                        visits=np.array([rows[k]["visits"] for k in keys]))


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def labels(runner: Replayer) -> tuple[int, int]:
    """Labels the learned drop-off models learned over the whole replay, and how many said "dropped"."""
    report = runner.models_report().values()
    return sum(m["labels"] for m in report), sum(m["dropped"] for m in report)
