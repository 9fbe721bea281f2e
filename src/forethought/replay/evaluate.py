"""Score a replay's triggers against the simulator's ground truth.

Definitions (written down so the numbers mean something):

* **Drop-off** (detectors ``silence`` and ``decline`` together, and each alone with ``churn`` — the
  buy-till-you-die probability's own trigger — beside them). Eligible churners are
  customers whose ``dropoff_at`` lies at least ``horizon`` (default 14 days) before the end of the data,
  so a detector had time to see it.
  A drop-off trigger is a *true* alarm when its customer churned and it fired no earlier than
  ``horizon`` before the customer's last activity; every other drop-off trigger is a false alarm.
  Precision is over triggers, recall over eligible churners (detected by a true alarm).
  Lead time = last activity − first true alarm: positive means the alarm came *before* the last
  activity (early warning), negative means after it.
* **Error bursts** (detector ``error_burst``). A truth burst is detected when a burst trigger for that
  customer fired within ``onset_window`` (5 min) of its start. A trigger inside any truth burst
  (start … end + 5 min) is a true alarm, otherwise false.
* False alarms are also given per 1,000 customer-days (signup → drop-off or end of data).

>>> report = evaluate([], [], start=0.0, end=86_400.0 * 30)
>>> report["dropoff"]["recall"] is None
True
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from forethought.contracts.records import Trigger

DAY = 86_400.0


def evaluate(
    triggers: Iterable[Trigger], truth: Iterable[dict[str, Any]], *, start: float, end: float,
    horizon: float = 14 * DAY, onset_window: float = 300.0,
) -> dict[str, Any]:
    """Quality of drop-off and error-burst detection; see the module docstring."""
    truth_by_id = {row["customer_id"]: row for row in truth}
    by_detector: dict[str, list[Trigger]] = {}
    for trigger in triggers:
        by_detector.setdefault(trigger.detector, []).append(trigger)
    days = _customer_days(truth_by_id.values(), start, end)
    return {
        "customers": len(truth_by_id), "customer_days": round(days, 1),
        "dropoff": _dropoff(by_detector.get("silence", []) + by_detector.get("decline", []), truth_by_id, end, horizon,
                            days),
        "dropoff_by_detector": {name: _dropoff(by_detector.get(name, []), truth_by_id, end, horizon, days)
                                for name in ("silence", "decline", "churn")},
        "error_burst": _bursts(by_detector.get("error_burst", []), truth_by_id, onset_window, days),
        "usage": _usage(by_detector.get("usage_anomaly", []), truth_by_id, days),
        "behaviour": _behaviour(by_detector.get("behaviour_anomaly", []), truth_by_id, onset_window, days),
    }


def dropoff_leads(triggers: Iterable[Trigger], truth: dict[str, dict[str, Any]], *, end: float,
                  horizon: float = 14 * DAY) -> tuple[dict[str, float], int, int]:
    """Lead time in days of each detected eligible churner (by customer id), the number of true
    alarms and of eligible churners (definitions in the module docstring).

    >>> dropoff_leads([], {"c": {"dropoff_at": "2026-01-01T00:00:00Z"}}, end=0.0)
    ({}, 0, 0)
    """
    eligible = {cid for cid, row in truth.items() if row.get("dropoff_at") and _ts(row["dropoff_at"]) <= end - horizon
                and row.get("last_activity_at")}
    first_true: dict[str, float] = {}
    true_alarms = 0
    for t in sorted(triggers, key=lambda t: t.fired_at):
        row = truth.get(t.customer_id, {})
        last = _ts(row["last_activity_at"]) if row.get("dropoff_at") and row.get("last_activity_at") else None
        if last is not None and t.fired_at.timestamp() >= last - horizon:
            true_alarms += 1
            first_true.setdefault(t.customer_id, t.fired_at.timestamp())
    leads = {cid: (_ts(truth[cid]["last_activity_at"]) - first_true[cid]) / DAY
             for cid in eligible if cid in first_true}
    return leads, true_alarms, len(eligible)


def _dropoff(triggers: list[Trigger], truth: dict[str, dict[str, Any]], end: float, horizon: float,
             days: float) -> dict[str, Any]:
    leads, true_alarms, eligible = dropoff_leads(triggers, truth, end=end, horizon=horizon)
    return _scores(len(triggers), true_alarms, len(leads), eligible, days) | {
        "eligible_churners": eligible, "lead_time_days": _distribution(list(leads.values())),
    }


def _bursts(triggers: list[Trigger], truth: dict[str, dict[str, Any]], onset_window: float,
            days: float) -> dict[str, Any]:
    windows = [(cid, _ts(a["start"]), _ts(a["end"])) for cid, row in truth.items()
               for a in row.get("anomalies", []) if a.get("kind") == "error_burst"]
    by_customer: dict[str, list[float]] = {}
    for t in triggers:
        by_customer.setdefault(t.customer_id, []).append(t.fired_at.timestamp())
    delays = []
    for cid, begin, _ in windows:
        hits = [f - begin for f in by_customer.get(cid, []) if begin <= f <= begin + onset_window]
        if hits:
            delays.append(min(hits))
    true_alarms = sum(1 for t in triggers if any(
        cid == t.customer_id and begin <= t.fired_at.timestamp() <= stop + onset_window
        for cid, begin, stop in windows))
    return _scores(len(triggers), true_alarms, len(delays), len(windows), days) | {
        "truth_bursts": len(windows), "detection_delay_seconds": _distribution(delays),
    }


def _usage(triggers: list[Trigger], truth: dict[str, dict[str, Any]], days: float) -> dict[str, Any]:
    """Usage spikes and drops: detected when a trigger of the same direction fires inside the interval."""
    kinds = {"usage_spike": "spike", "usage_drop": "drop"}
    windows = [(cid, kinds[a["kind"]], _ts(a["start"]), _ts(a["end"])) for cid, row in truth.items()
               for a in row.get("anomalies", []) if a.get("kind") in kinds]
    def matches(t: Trigger, w: tuple[str, str, float, float]) -> bool:
        return t.customer_id == w[0] and t.context.get("direction") == w[1] and w[2] <= t.fired_at.timestamp() <= w[3]
    delays = [min(t.fired_at.timestamp() - w[2] for t in hits) for w in windows
              if (hits := [t for t in triggers if matches(t, w)])]
    true_alarms = sum(1 for t in triggers if any(matches(t, w) for w in windows))
    return _scores(len(triggers), true_alarms, len(delays), len(windows), days) | {
        "truth_anomalies": len(windows), "detection_delay_seconds": _distribution(delays),
    }


def _behaviour(triggers: list[Trigger], truth: dict[str, dict[str, Any]], onset_window: float,
               days: float) -> dict[str, Any]:
    """The multivariate detector against every injected anomaly (error bursts, usage spikes and drops).

    An anomaly is detected when a trigger fires between its start and ``onset_window`` after its end;
    a trigger inside any such interval of its customer is a true alarm. Recall is also given per kind.
    """
    windows = [(cid, a["kind"], _ts(a["start"]), _ts(a["end"]) + onset_window) for cid, row in truth.items()
               for a in row.get("anomalies", [])]
    by_customer: dict[str, list[float]] = {}
    for t in triggers:
        by_customer.setdefault(t.customer_id, []).append(t.fired_at.timestamp())
    found: dict[str, list[float]] = {}
    for cid, kind, begin, stop in windows:
        hits = [f - begin for f in by_customer.get(cid, []) if begin <= f <= stop]
        found.setdefault(kind, [])
        if hits:
            found[kind].append(min(hits))
    spans: dict[str, list[tuple[float, float]]] = {}
    for cid, _, begin, stop in windows:
        spans.setdefault(cid, []).append((begin, stop))
    true_alarms = sum(1 for t in triggers if any(begin <= t.fired_at.timestamp() <= stop
                                                 for begin, stop in spans.get(t.customer_id, [])))
    totals = {kind: sum(1 for w in windows if w[1] == kind) for kind in found}
    delays = [d for hits in found.values() for d in hits]
    return _scores(len(triggers), true_alarms, len(delays), len(windows), days) | {
        "truth_anomalies": len(windows), "detection_delay_seconds": _distribution(delays),
        "recall_by_kind": {kind: _round(len(found[kind]) / totals[kind]) for kind in sorted(found)},
    }


def _scores(fired: int, true_alarms: int, detected: int, positives: int, days: float) -> dict[str, Any]:
    precision = true_alarms / fired if fired else None
    recall = detected / positives if positives else None
    f1 = (2 * precision * recall / (precision + recall)) if precision and recall else None
    false_alarms = fired - true_alarms
    return {"triggers": fired, "true_alarms": true_alarms, "false_alarms": false_alarms,
            "precision": _round(precision), "recall": _round(recall), "f1": _round(f1),
            "false_alarms_per_1000_customer_days": _round(1000 * false_alarms / days if days else None)}


def _customer_days(rows: Iterable[dict[str, Any]], start: float, end: float) -> float:
    total = 0.0
    for row in rows:
        begin = max(start, _ts(row["signup_at"])) if row.get("signup_at") else start
        stop = min(end, _ts(row["dropoff_at"])) if row.get("dropoff_at") else end
        total += max(0.0, stop - begin) / DAY
    return total


def _distribution(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "median": None, "p10": None, "p90": None}
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"n": len(values), "median": _round(statistics.median(values)), "p10": _round(pick(0.1)),
            "p90": _round(pick(0.9))}


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
