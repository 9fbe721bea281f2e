"""Realistic sample triggers for a playbook: what ``forethought senders preview`` renders, and the tests.

A sample carries what the engine would put in a real trigger of that playbook: the detector's
scores, its reasons with the analyst's sentence (which must never reach the customer) and
the playbook's context keys with plausible values.

>>> trigger = sample_trigger("long_inactivity", ["silence"], "email", ["usual_gap_days", "silent_days"])
>>> trigger.reasons[0].text
'No activity for 21.0 d; this customer usually returns within 12.0 h (41 visits seen).'
>>> trigger.context, trigger.scores
({'usual_gap_days': 0.5, 'silent_days': 21.0}, {'dropoff': 0.9731})
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

from forethought.contracts.records import PropertyValue, Reason, Trigger

SAMPLE_TIME = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)

# signal -> (scores, reason): values as the shipped detectors write them
DETECTIONS: dict[str, tuple[dict[str, float], Reason]] = {
    "silence": ({"dropoff": 0.9731}, Reason(
        signal="silence_seconds", observed=1814400.0, baseline=43200.0, unit="seconds",
        text="No activity for 21.0 d; this customer usually returns within 12.0 h (41 visits seen).")),
    "decline": ({"dropoff": 0.9277, "decline_ratio": 0.0723}, Reason(
        signal="events_per_7_days", observed=3.0, baseline=41.5, unit="events/7d",
        text="Activity over the last 7 days fell to 3 events; this customer's usual level is 42.")),
    "error_burst": ({"anomaly": 7.2519, "error_burst_z": 7.2519}, Reason(
        signal="errors_per_bucket", observed=17.0, baseline=0.4, unit="errors/300s",
        text="17 errors in 300s (latest PAYMENT_DECLINED, error); this customer usually sees 0.4.")),
    "usage_anomaly": ({"usage_ratio": 6.3061}, Reason(
        signal="usage.api_calls", observed=5123.0, baseline=812.4, unit="calls",
        text="5123 api_calls against this customer's usual 812.4 calls.")),
    "behaviour_anomaly": ({"behaviour_anomaly": 0.8813, "behaviour_threshold": 0.7512}, Reason(
        signal="bucket.clicks", observed=143.0, baseline=11.6, unit="clicks/min",
        text="143 clicks in a minute; this customer usually makes 11.6.")),
    "daily": ({}, Reason(
        signal="events_per_7_days", observed=2.0, baseline=37.25, unit="events/7d",
        text="2 events in the last 7 days; 3 features used so far.")),
    "feature_first_use": ({}, Reason(
        signal="features_used", observed=4.0, baseline=3.0, unit="features", text="First use of reports.")),
}

# playbook context key -> a plausible value (shipped playbooks); other keys get "sample"
CONTEXT: dict[str, PropertyValue] = {
    "error_code": "PAYMENT_DECLINED", "severity": "error", "plan": "pro", "last_seen_days_ago": 21.0,
    "usual_gap_days": 0.5, "silent_days": 21.0, "metric": "api_calls", "direction": "up", "unusual": "clicks",
    "threshold": 0.7512, "days_since_signup": 5, "feature": "reports", "renewal_date": "2026-12-20",
    "events_last_7_days": 2, "last_seen_at": "2026-11-01T09:30:00+00:00", "visits": 41,
}


def sample_trigger(playbook: str, signals: Iterable[str], channel: str, context_keys: Iterable[str] = (),
                   customer_id: str = "cust-42", context: Mapping[str, PropertyValue] | None = None) -> Trigger:
    """A trigger of ``playbook`` fired on the first of ``signals`` that has a sample detection.

    ``context`` replaces the sample values of the keys it names (e.g. hostile text in tests).
    """
    signal = next((s for s in signals if s in DETECTIONS), "daily")
    scores, reason = DETECTIONS[signal]
    values = {key: CONTEXT.get(key, "sample") for key in context_keys}
    values.update(context or {})
    return Trigger(
        trigger_id=f"sample-{playbook}-{channel}-{signal}", customer_id=customer_id, account_id="acct-7",
        playbook=playbook, detector=signal, episode=f"{signal}-sample", channel=channel,
        priority=50, fired_at=SAMPLE_TIME, expires_at=SAMPLE_TIME + timedelta(days=1), scores=dict(scores),
        reasons=[reason], context=values)
