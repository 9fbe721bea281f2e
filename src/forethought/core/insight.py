"""What the engine knows of a customer as of a time, read without changing anything: the facts
playbooks and models read (``features.*``, ``scores.*``) and the whole view people and web views
read (:func:`explain`). The engine (:mod:`forethought.core.engine`) re-exports both.

>>> from forethought.core.config import EngineConfig
>>> from forethought.core.state import CustomerState
>>> found = facts(CustomerState.new("c1", EngineConfig()), 1_790_000_000.0, EngineConfig())
>>> found["features"]["events"], found["features"]["days_since_first_seen"]
(0, None)
"""

from __future__ import annotations

import math
from typing import Any

from forethought.core.config import EngineConfig
from forethought.core.models import PartitionModels
from forethought.core.plugin import Moment
from forethought.core.state import HOUR, CustomerState
from forethought.core.uplift import snapshot
from forethought.core.windows import BucketRing

DAY = 86_400.0


def facts(state: CustomerState, now: float, config: EngineConfig, models: PartitionModels | None = None,
          brief: bool = False) -> dict[str, Any]:
    """The ``features.*`` and ``scores.*`` names of the expression language as of ``now``: the
    shared windows' here, the rest from each detector. ``brief``: only what a learned-model
    snapshot reads (:mod:`forethought.core.snapshots`)."""
    silence_for = None if state.last_seen is None else max(0.0, now - state.last_seen)
    features: dict[str, Any] = {"events": state.events, "visits": state.visits, "error_total": state.error_total,
                                "days_since_first_seen": _days(state.first_seen, now)}
    if not brief:
        width = config.windows.bucket_seconds
        features.update({
            "late_events": state.late, "days_since_last_seen": _days(state.last_seen, now), "sessions": state.visits,
            "session_seconds": _session_seconds(state, now, silence_for, config),
            "events_last_hour": _recent(state.activity, now, width, HOUR),
            "events_last_24_hours": _recent(state.hours, now, HOUR, DAY),
        })
    found: dict[str, Any] = {"scores": {}, "features": features}
    m = Moment(now, config, models)
    for detector, settings in config.plan:
        detector.facts(state, now, settings, m, found, brief)
    return found


def explain(state: CustomerState, now: float, config: EngineConfig,
            models: PartitionModels | None = None) -> dict[str, Any]:
    """Scores, features, baselines and the policy's memory as of ``now``, for people and web views."""
    configured, config = config, (config if models is None else models.config_at(config, now))
    found = facts(state, now, config, models)
    features = found["features"]
    view: dict[str, Any] = {
        "customer_id": state.customer_id, "as_of": now, "scores": found["scores"],
        "events": state.events, "late_events": state.late, "visits": state.visits, "by_type": dict(state.by_type),
        "sessions": features["sessions"], "session_seconds": features["session_seconds"],
        "events_last_hour": features["events_last_hour"], "events_last_24_hours": features["events_last_24_hours"],
        "events_last_7_days": features.get("events_last_7_days"),
        "usual_events_per_7_days": features.get("usual_events_per_7_days"),
        "policy": {
            "sent": [{"at": s.at, "playbook": s.playbook, "channel": s.channel} for s in state.policy.sent],
            "deferred": [{"release_at": p.release_at, "trigger_id": p.trigger["trigger_id"],
                          "playbook": p.trigger["playbook"]} for p in state.policy.pending],
            "measuring": [{"playbook": w.playbook, "group": w.group, "until": w.until} for w in state.policy.watch],
            "next_daily_check": state.daily_at,  # the next look (core.due): not necessarily tomorrow
        },
    }
    if models is not None and models.uplift.playbooks:  # scores.uplift.<playbook>, with each estimator's labels
        view["uplift"] = models.uplift.view(snapshot(found))
    m = Moment(now, config, models)
    for detector, settings in config.plan:
        view.update(detector.explain(state, now, settings, m))
    if "population_prior" in view:
        view["population_prior"]["learned"] = config is not configured
    return view


def _session_seconds(state: CustomerState, now: float, silence_for: float | None, config: EngineConfig) -> float:
    """How long the present session has lasted; 0 once it ended (no activity for ``visit_gap_seconds``)."""
    if state.session_start is None or silence_for is None or silence_for > config.windows.visit_gap_seconds:
        return 0.0
    return round(max(0.0, now - state.session_start), 3)


def _recent(ring: BucketRing, now: float, width: float, span: float) -> int:
    """Events in ``ring`` (buckets ``width`` seconds wide) over the ``span`` seconds ending at ``now``."""
    newest = math.floor(now / width)
    return int(ring.span_total(newest - math.ceil(span / width) + 1, newest))


def _days(since: float | None, now: float) -> float | None:
    return None if since is None else round((now - since) / DAY, 4)
