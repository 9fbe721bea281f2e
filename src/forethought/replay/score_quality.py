"""Prediction quality of every score a replay computed, against the truth (``replay --truth``).

Two views, each per score (``dropoff``, ``dropoff_learned`` and any other score the engine offers),
with :func:`forethought.core.quality.score_quality`'s measures (ROC-AUC, lift quality and its grade,
average precision, Brier score and calibration deciles):

- **daily**: every score the engine took at a customer's daily look (the ``daily_scores``
  observation), labelled as :func:`forethought.replay.report_data.labelled_scores` defines it
  (1 when the customer churned and the look came no earlier than the horizon before their last
  activity; a truth row without ``dropoff_at``, such as one made from purchase data, counts its
  ``last_activity_at`` as the drop-off); looks within the horizon of the end of the data are left out
  (their answer is not known);
- **snapshot** (``--snapshot-at``): every customer's scores at the snapshot, evicted ones included,
  labelled 1 when the truth's ``last_activity_at`` is at or before the snapshot (no activity in the
  rest of the data), or by the truth's own ``label`` (0/1) when a row has one. The horizon is the
  rest of the data; a snapshot at or after the data's end has no labels, and a customer whose
  ``signup_at`` is after the snapshot is left out.

Every score is measured against the drop-off label, those that do not mean to predict it too
(``anomaly``): read those rows as "not a drop-off score".

>>> rows = [{"customer_id": "a", "scores": {"dropoff": 0.9}}, {"customer_id": "b", "scores": {"dropoff": 0.2}}]
>>> truth = {"a": {"last_activity_at": "1970-01-01T00:00:00Z"}, "b": {"label": 0}}
>>> q = snapshot_quality(rows, truth, at=10.0, end=100.0)
>>> q["customers"], q["scores"]["dropoff"]["auc"], q["scores"]["dropoff"]["grade"]
(2, 1.0, 'Excellent')
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from forethought.core.quality import Pair, score_quality
from forethought.replay.evaluate import DAY
from forethought.replay.report_data import labelled_scores

NOT_SCORES = frozenset({"at", "silence_seconds", "snapshot"})  # the rest of a daily_scores observation is scores


class DailyScores:
    """One ``daily_scores`` observation: customer, event time and every score in it."""

    __slots__ = ("at", "customer_id", "scores")

    def __init__(self, customer_id: str, detail: dict[str, Any]) -> None:
        self.customer_id, self.at = customer_id, float(detail["at"])
        self.scores = {k: v for k, v in detail.items() if k not in NOT_SCORES and isinstance(v, (int, float))}


def daily_quality(rows: Iterable[DailyScores], truth: dict[str, dict[str, Any]], *, end: float,
                  horizon: float = 14 * DAY) -> dict[str, Any]:
    """Per score: the quality of the daily looks' scores (see the module docstring)."""
    pairs: dict[str, list[Pair]] = {}
    truth = {c: r if "dropoff_at" in r else {**r, "dropoff_at": r.get("last_activity_at")} for c, r in truth.items()}
    for row, label in labelled_scores(rows, truth, end=end, horizon=horizon):  # type: ignore[arg-type]
        for name, value in row.scores.items():  # type: ignore[attr-defined]
            pairs.setdefault(name, []).append((float(value), label))
    return {"horizon_days": horizon / DAY, "scores": {name: score_quality(p) for name, p in sorted(pairs.items())}}


def snapshot_quality(rows: Iterable[dict[str, Any]], truth: dict[str, dict[str, Any]], *, at: float,
                     end: float) -> dict[str, Any]:
    """Per score: the quality of the snapshot's scores (see the module docstring); also how many
    customers of the truth had no row (never scored) and how many rows were of evicted customers."""
    pairs: dict[str, list[Pair]] = {}
    seen, summarised = set(), 0
    for row in rows:
        label = _snapshot_label(truth.get(row["customer_id"]), at, end)
        if label is None:
            continue
        seen.add(row["customer_id"])
        summarised += bool(row.get("summarised"))
        for name, value in row["scores"].items():
            if isinstance(value, (int, float)):
                pairs.setdefault(name, []).append((float(value), label))
    labelled = sum(1 for row in truth.values() if _snapshot_label(row, at, end) is not None)
    return {"customers": len(seen), "summarised": summarised, "missing_from_snapshot": labelled - len(seen),
            "horizon_days": round(max(0.0, end - at) / DAY, 2),
            "scores": {name: score_quality(p) for name, p in sorted(pairs.items())}}


def _snapshot_label(row: dict[str, Any] | None, at: float, end: float) -> int | None:
    if row is None or end <= at or (row.get("signup_at") and _ts(row["signup_at"]) > at):
        return None  # no answer yet, or not a customer yet
    if row.get("label") in (0, 1):
        return int(row["label"])
    last = row.get("last_activity_at")
    return 1 if last is None or _ts(last) <= at else 0


def print_quality(console: Console, quality: dict[str, Any]) -> None:
    """The prediction-quality tables of a replay report (``prediction_quality``)."""
    for view, part in quality.items():
        if not part.get("scores"):
            continue
        extra = (f"{part['customers']:,} customers ({part['summarised']:,} evicted and summarised), "
                 if view == "snapshot" else "")
        table = Table(title=f"Prediction quality, {view} scores ({extra}horizon {part['horizon_days']:g} days; "
                            "positive = dropped)")
        for column in ("score", "n", "base rate", "ROC-AUC", "lift quality", "grade", "AP", "Brier"):
            table.add_column(column, justify="left" if column in ("score", "grade") else "right")
        for name, q in part["scores"].items():
            table.add_row(name, f"{q['n']:,}", _f(q["base_rate"]), _f(q["auc"]), _f(q["lift_quality"]),
                          q["grade"] or "-", _f(q["average_precision"]), _f(q["brier"]))
        console.print(table)
        _print_calibration(console, view, part["scores"])


def _print_calibration(console: Console, view: str, scores: dict[str, Any]) -> None:
    shown = {name: q["calibration"] for name, q in scores.items() if q["calibration"]}
    if not shown:
        return
    table = Table(title=f"Calibration, {view} scores: mean predicted / observed rate per decile of the prediction")
    table.add_column("score")
    for k in range(1, 1 + max(map(len, shown.values()))):
        table.add_column(f"d{k}", justify="right")
    for name, bins in shown.items():
        table.add_row(name, *(f"{b['predicted']:.2f}/{b['observed']:.2f}" for b in bins))
    console.print(table)


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
