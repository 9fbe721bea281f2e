"""The JSON Schema of each wire record, generated from the pydantic models, and an example of each
kind (published by :mod:`forethought.contracts.schemas`, used by :mod:`forethought.contracts.asyncapi`).

The records Forethought reads (inbound events, profiles, outcomes) have two schemas: the tolerant
one (``NAME.schema.json``, the default: fields the contract does not know are allowed, and the
worker ignores and counts them) and the strict one (``NAME.strict.schema.json``, for topics marked
``strict: true`` in ``streams/topics.yaml``: an unknown field dead-letters the record).

>>> schema_for("inbound-event")["$id"]
'https://forethought.dev/schemas/inbound-event.schema.json'
"""

from __future__ import annotations

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

SCHEMAS: dict[str, tuple[str, TypeAdapter[Any] | type[BaseModel], list[str]]] = {
    "inbound-event": ("An inbound behaviour event (clickstream, error or usage).", EVENT_ADAPTER,
                      ["page_view", "click", "session_start", "session_end", "feature_used", "error", "usage"]),
    "profile": ("A customer profile (compacted topic).", Profile, ["profile"]),
    "outcome": ("What a channel sender did with a trigger.", Outcome, ["outcome"]),
    "trigger": ("An engagement trigger for channel senders.", Trigger, ["trigger"]),
    "deadletter": ("A record that could not be used, with its reason.", DeadLetter, ["deadletter"]),
}


INPUTS = ("inbound-event", "profile", "outcome")
"""The schemas of records the worker reads: published tolerant and strict."""
TOLERANT_NOTE = (" Tolerant reader: a top-level field this schema does not name is allowed; the worker ignores it"
                 " and counts it (forethought_unknown_fields_total). Topics marked strict use NAME.strict.schema.json.")
STRICT_NOTE = " Strict: a top-level field this schema does not name is rejected (dead letter reason unknown_field)."


def schema_for(name: str, *, strict: bool = False) -> dict[str, Any]:
    """The JSON Schema named ``name`` (e.g. ``'trigger'``); for the records the worker reads, the
    tolerant variant unless ``strict``.

    >>> schema_for("outcome")["additionalProperties"], schema_for("outcome", strict=True)["additionalProperties"]
    (True, False)
    """
    description, model, _ = SCHEMAS[name]
    adapter = model if isinstance(model, TypeAdapter) else TypeAdapter(model)
    body = adapter.json_schema(mode="validation")
    file = f"{name}.strict.schema.json" if strict else f"{name}.schema.json"
    if name in INPUTS:
        description += (STRICT_NOTE if strict else TOLERANT_NOTE).replace("NAME", name)
        if not strict:
            _tolerate_unknown_fields(body)
    return {"$schema": SCHEMA_DIALECT, "$id": f"{BASE_ID}{file}",
            "title": body.pop("title", name), "description": description, **body}


def _tolerate_unknown_fields(body: dict[str, Any]) -> None:
    """Allow unknown top-level fields: on the root object, or on each record the root's ``oneOf`` names."""
    records = [body] + [body["$defs"][ref["$ref"].rsplit("/", 1)[1]] for ref in body.get("oneOf", [])]
    for record in records:
        if record.get("additionalProperties") is False:
            record["additionalProperties"] = True


def schema_name_for_kind(kind: str) -> str:
    """Which schema covers records whose ``type`` is ``kind``."""
    return next(name for name, (_, _, kinds) in SCHEMAS.items() if kind in kinds)
