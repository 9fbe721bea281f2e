"""JSON Schemas of every wire record, generated from the pydantic models, with examples.

``forethought schemas export`` writes :func:`render` into ``schemas/``; a test fails when the
files drift from the models or an example stops validating.

>>> files = render()
>>> sorted(name for name in files if not name.startswith("examples/"))[:2]
['deadletter.schema.json', 'inbound-event.schema.json']
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

from forethought.contracts.events import EVENT_ADAPTER
from forethought.contracts.records import DeadLetter, Outcome, Profile, Trigger

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
BASE_ID = "https://forethought.dev/schemas/"

_T = "2026-11-22T09:30:00+01:00"
_ENVELOPE = {"customer_id": "cust-42", "account_id": "acct-7", "session_id": "s-1", "occurred_at": _T}

EXAMPLES: dict[str, dict[str, Any]] = {
    "page_view": {**_ENVELOPE, "event_id": "ev-1", "type": "page_view", "page": "/billing"},
    "click": {**_ENVELOPE, "event_id": "ev-2", "type": "click", "target": "upgrade-button"},
    "session_start": {**_ENVELOPE, "event_id": "ev-3", "type": "session_start",
                      "properties": {"device": "ios", "app_version": "5.2.0"}},
    "session_end": {**_ENVELOPE, "event_id": "ev-4", "type": "session_end"},
    "feature_used": {**_ENVELOPE, "event_id": "ev-5", "type": "feature_used", "feature": "export_csv"},
    "error": {**_ENVELOPE, "event_id": "ev-6", "type": "error", "code": "PAYMENT_DECLINED",
              "severity": "error", "message": "card declined"},
    "usage": {**_ENVELOPE, "event_id": "ev-7", "type": "usage", "metric": "api_calls",
              "quantity": 120, "unit": "calls"},
    "profile": {"type": "profile", "customer_id": "cust-42", "updated_at": _T, "plan": "pro",
                "timezone": "Asia/Tokyo", "locale": "ja-JP", "consent": {"email": True, "in_app": True},
                "signup_date": "2026-01-15", "renewal_date": "2027-01-15", "attributes": {"seats": 12}},
    "outcome": {"type": "outcome", "outcome_id": "out-1", "customer_id": "cust-42",
                "trigger_id": "7d27f11e-aa02-58fc-8089-7530db84014f", "channel": "email",
                "status": "delivered", "occurred_at": _T},
    "trigger": {"type": "trigger", "schema_version": 1, "trigger_id": "7d27f11e-aa02-58fc-8089-7530db84014f",
                "customer_id": "cust-42", "account_id": "acct-7", "playbook": "silence_dropoff",
                "detector": "silence", "episode": "silence-1763800200.000", "channel": "email",
                "priority": 50, "fired_at": _T, "expires_at": "2026-11-23T09:30:00+01:00",
                "scores": {"dropoff": 0.991},
                "reasons": [{"signal": "silence_seconds", "observed": 259200.0, "baseline": 43200.0,
                             "unit": "seconds", "text": "No activity for 3.0 d; this customer usually "
                             "returns within 12.0 h (41 visits seen)."}],
                "context": {"last_seen_at": "2026-11-19T09:30:00+00:00", "visits": 41}},
    "deadletter": {"type": "deadletter", "reason": "schema", "detail": "occurred_at: Input should have "
                   "timezone info", "source_topic": "events.clickstream", "source_partition": 2,
                   "source_offset": 1042, "key_b64": "Y3VzdC00Mg==", "value_b64": "e30=", "received_at": _T},
}

_SCHEMAS: dict[str, tuple[str, TypeAdapter[Any] | type[BaseModel], list[str]]] = {
    "inbound-event": ("An inbound behaviour event (clickstream, error or usage).", EVENT_ADAPTER,
                      ["page_view", "click", "session_start", "session_end", "feature_used", "error", "usage"]),
    "profile": ("A customer profile (compacted topic).", Profile, ["profile"]),
    "outcome": ("What a channel sender did with a trigger.", Outcome, ["outcome"]),
    "trigger": ("An engagement trigger for channel senders.", Trigger, ["trigger"]),
    "deadletter": ("A record that could not be used, with its reason.", DeadLetter, ["deadletter"]),
}


def schema_for(name: str) -> dict[str, Any]:
    """The JSON Schema named ``name`` (e.g. ``'trigger'``)."""
    description, model, _ = _SCHEMAS[name]
    adapter = model if isinstance(model, TypeAdapter) else TypeAdapter(model)
    body = adapter.json_schema(mode="validation")
    return {"$schema": SCHEMA_DIALECT, "$id": f"{BASE_ID}{name}.schema.json",
            "title": body.pop("title", name), "description": description, **body}


def schema_name_for_kind(kind: str) -> str:
    """Which schema covers records whose ``type`` is ``kind``."""
    return next(name for name, (_, _, kinds) in _SCHEMAS.items() if kind in kinds)


def render() -> dict[str, str]:
    """Every file of ``schemas/``: relative path → text."""
    files = {f"{name}.schema.json": _dump(schema_for(name)) for name in _SCHEMAS}
    files.update({f"examples/{kind}.json": _dump(example) for kind, example in EXAMPLES.items()})
    return files


def export(directory: Path) -> list[Path]:
    """Write :func:`render` into ``directory``; returns the paths written."""
    written = []
    for relative, text in render().items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


def drift(directory: Path) -> list[str]:
    """Files in ``directory`` that differ from (or are missing against) the models."""
    return [rel for rel, text in render().items()
            if not (directory / rel).exists() or (directory / rel).read_text() != text]


def _dump(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"
