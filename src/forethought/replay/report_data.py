"""The numbers behind ``forethought replay --html``: plain data, no markup (``report_html`` draws them).

Every function here takes what a replay already has — its triggers, its report, the engine's
``daily_scores`` observations and the simulator's truth — and returns JSON-able values.

>>> histogram([0.1, 0.2, 0.9], lo=0.0, hi=1.0, bins=2)
[2, 1]
>>> [round(x, 4) for x in newcombe_interval(56, 70, 48, 80)]  # Newcombe (1998), example (a), method 10
[0.0524, 0.3339]
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, NamedTuple

from forethought.contracts.records import Trigger
from forethought.core.quality import average_precision
from forethought.replay.evaluate import DAY, dropoff_leads

Z95 = 1.959964  # the normal quantile of a two-sided 95 % interval


class ScoreRow(NamedTuple):
    """One ``daily_scores`` observation of the engine: customer, event time and both drop-off scores."""

    customer_id: str
    at: float
    dropoff: float | None
    learned: float | None


def triggers_per_day(triggers: Iterable[Trigger]) -> dict[str, Any]:
    """Live triggers per UTC day and playbook, every day between the first and the last one included.

    >>> from datetime import datetime, UTC
    >>> class T: pass
    >>> a, b = T(), T()
    >>> a.playbook, a.fired_at = "win-back", datetime(2026, 1, 1, 5, tzinfo=UTC)
    >>> b.playbook, b.fired_at = "win-back", datetime(2026, 1, 3, 5, tzinfo=UTC)
    >>> triggers_per_day([a, b])  # doctest: +NORMALIZE_WHITESPACE
    {'days': ['2026-01-01', '2026-01-02', '2026-01-03'], 'series': {'win-back': [1, 0, 1]}}
    """
    counts: Counter[tuple[str, int]] = Counter()
    for t in triggers:
        counts[(t.playbook, int(t.fired_at.timestamp() // DAY))] += 1
    if not counts:
        return {"days": [], "series": {}}
    first, last = min(d for _, d in counts), max(d for _, d in counts)
    days = list(range(first, last + 1))
    playbooks = sorted({p for p, _ in counts}, key=lambda p: (-sum(n for (q, _), n in counts.items() if q == p), p))
    return {"days": [datetime.fromtimestamp(d * DAY, tz=UTC).date().isoformat() for d in days],
            "series": {p: [counts[(p, d)] for d in days] for p in playbooks}}


def suppressions(decisions_by_playbook: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """``{reason: {playbook: n}}`` of the suppressed decisions, the most frequent reason first.

    >>> suppressions({"a": {"sent": 3, "suppressed:cooldown": 2}, "b": {"suppressed:quiet": 5}})
    {'quiet': {'b': 5}, 'cooldown': {'a': 2}}
    """
    table: dict[str, dict[str, int]] = {}
    for playbook, verdicts in decisions_by_playbook.items():
        for label, n in verdicts.items():
            verdict, _, reason = label.partition(":")
            if verdict == "suppressed":
                table.setdefault(reason or "unknown", {})[playbook] = n
    return dict(sorted(table.items(), key=lambda kv: (-sum(kv[1].values()), kv[0])))


def labelled_scores(rows: Iterable[ScoreRow], truth: dict[str, dict[str, Any]], *, end: float,
                    horizon: float = 14 * DAY) -> list[tuple[ScoreRow, int]]:
    """Each daily score with its truth label (as ``benchmarks/dropoff_auc.py`` and ``evaluate`` define it):
    1 when the customer churned and the score was taken no earlier than ``horizon`` before their last
    activity, else 0. Only scores taken at least ``horizon`` before the end of the data (``end``) count."""
    last_by_id = {cid: _ts(row["last_activity_at"]) for cid, row in truth.items()
                  if row.get("dropoff_at") and row.get("last_activity_at")}
    labelled = []
    for row in rows:
        if row.at > end - horizon or row.customer_id not in truth:
            continue
        last = last_by_id.get(row.customer_id)
        labelled.append((row, int(last is not None and row.at >= last - horizon)))
    return labelled


def histogram(values: Iterable[float], *, lo: float, hi: float, bins: int) -> list[int]:
    """Counts of ``values`` in ``bins`` equal bins over [lo, hi] (values outside go to the end bins)."""
    counts = [0] * bins
    width = (hi - lo) / bins or 1.0
    for v in values:
        counts[min(bins - 1, max(0, int((v - lo) / width)))] += 1
    return counts


def score_distributions(labelled: list[tuple[ScoreRow, int]], bins: int = 20) -> dict[str, Any]:
    """Per score (``dropoff``, ``dropoff_learned``): the histogram over [0, 1] of churning and of retained
    customers' daily scores, and how many scores each group has."""
    out: dict[str, Any] = {}
    for name, pick in (("dropoff", lambda r: r.dropoff), ("dropoff_learned", lambda r: r.learned)):
        groups = {label: [v for r, y in labelled if y == want and (v := pick(r)) is not None]
                  for label, want in (("churned", 1), ("retained", 0))}
        if any(groups.values()):
            out[name] = {g: {"n": len(v), "counts": histogram(v, lo=0.0, hi=1.0, bins=bins)} for g, v in groups.items()}
    return out


def pr_curve(pairs: list[tuple[float, int]], points: int = 200) -> dict[str, Any]:
    """Precision and recall at every threshold of ``(score, label)`` pairs (at most ``points`` kept),
    the average precision and the share of positives (the curve of a random score).

    >>> curve = pr_curve([(0.9, 1), (0.8, 0), (0.7, 1), (0.1, 0)])
    >>> curve["points"][0], curve["average_precision"], curve["positives"]
    ([0.9, 1.0, 0.5], 0.8333, 2)
    """
    positives = sum(y for _, y in pairs)
    if not positives or positives == len(pairs):
        return {"points": [], "average_precision": None, "positives": positives, "n": len(pairs)}
    ordered = sorted(pairs, key=lambda p: -p[0])
    curve: list[list[float]] = []
    tp = fp = 0
    for i, (score, label) in enumerate(ordered):
        tp, fp = tp + label, fp + (1 - label)
        if i + 1 < len(ordered) and ordered[i + 1][0] == score:
            continue  # ties: one point per threshold
        curve.append([round(score, 4), round(tp / (tp + fp), 4), round(tp / positives, 4)])
    step = max(1, math.ceil(len(curve) / points))
    kept = curve[::step] + ([curve[-1]] if (len(curve) - 1) % step else [])
    return {"points": kept, "average_precision": round(average_precision(ordered) or 0.0, 4), "positives": positives,
            "n": len(pairs)}


def lead_times(triggers: Iterable[Trigger], truth: dict[str, dict[str, Any]], *, end: float,
               horizon: float = 14 * DAY) -> dict[str, Any]:
    """Lead time (days before the last activity) of each detected churner's first true drop-off alarm,
    as a histogram of one-day bins (``evaluate``'s definition, so the median matches the JSON report)."""
    dropoff = [t for t in triggers if t.detector in ("silence", "decline")]
    leads, _, eligible = dropoff_leads(dropoff, truth, end=end, horizon=horizon)
    if not leads:
        return {"eligible": eligible, "detected": 0, "lo": 0, "counts": []}
    lo, hi = math.floor(min(leads.values())), math.floor(max(leads.values())) + 1
    return {"eligible": eligible, "detected": len(leads), "lo": lo,
            "counts": histogram(leads.values(), lo=lo, hi=hi, bins=hi - lo)}


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval of a proportion.

    >>> [round(x, 4) for x in wilson_interval(81, 263)]  # Newcombe (1998), Statistics in Medicine 17
    [0.2553, 0.3662]
    """
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_interval(x1: int, n1: int, x2: int, n2: int, z: float = Z95) -> tuple[float, float]:
    """Newcombe's hybrid score interval (from two Wilson intervals) of the difference of two
    proportions x1/n1 − x2/n2: good coverage with small groups and rates near 0 or 1."""
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson_interval(x1, n1, z)
    l2, u2 = wilson_interval(x2, n2, z)
    d = p1 - p2
    return d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def lift_intervals(lift: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The replay report's ``lift`` with a 95 % interval (``lift_ci95``) for every playbook measured in
    both groups (treated and holdout); others get ``None``.

    >>> row = {"treated": {"measured": 100, "reengaged": 60, "rate": 0.6},
    ...        "holdout": {"measured": 100, "reengaged": 40, "rate": 0.4}, "lift": 0.2}
    >>> lift_intervals({"p": row})["p"]["lift_ci95"]
    [0.0614, 0.3281]
    """
    out: dict[str, dict[str, Any]] = {}
    for playbook, row in lift.items():
        treated, held = row.get("treated"), row.get("holdout")
        interval = None
        if treated and held and treated["measured"] and held["measured"]:
            low, high = newcombe_interval(treated["reengaged"], treated["measured"],
                                          held["reengaged"], held["measured"])
            interval = [round(low, 4), round(high, 4)]
        out[playbook] = {**row, "lift_ci95": interval}
    return out


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
