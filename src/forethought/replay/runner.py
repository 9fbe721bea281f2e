"""Replay: the same core as the worker, driven by a file instead of Kafka.

Records are fed in event-time order. The clock is the newest event time seen; before each
record, every customer whose deadline has come is ticked, exactly as the worker's timer does.

>>> from forethought.core.config import EngineConfig
>>> from forethought.replay.reader import Line
>>> fired = []
>>> replay = Replayer(EngineConfig(), on_trigger=fired.append)
>>> replay.feed(Line(0.0, 0, 1, b"{oops", "not_json", "bad"))
>>> replay.counts.invalid
Counter({'not_json': 1})
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson
from pydantic import ValidationError

from forethought.contracts.decode import Rejection, summarize, validate_event
from forethought.contracts.events import InboundEvent
from forethought.contracts.records import CONTROL_ADAPTER, DeadLetter, Trigger
from forethought.core.config import EngineConfig
from forethought.core.deadlines import DeadlineIndex
from forethought.core.engine import Step, explain, next_due, process, tick
from forethought.core.state import CustomerState
from forethought.replay.reader import Line


@dataclass
class ReplayCounts:
    """What a replay read and produced."""

    read: int = 0
    valid: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    invalid: Counter[str] = field(default_factory=Counter)
    triggers: Counter[str] = field(default_factory=Counter)
    suppressed: Counter[str] = field(default_factory=Counter)
    observations: Counter[str] = field(default_factory=Counter)
    first_event: float | None = None
    last_event: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "records_read": self.read, "valid": self.valid, "by_type": dict(self.by_type),
            "invalid_by_reason": dict(self.invalid), "triggers_by_playbook": dict(self.triggers),
            "suppressed_by_reason": dict(self.suppressed), "observations": dict(self.observations),
            "first_event_at": _iso(self.first_event), "last_event_at": _iso(self.last_event),
        }


class Replayer:
    """Feeds lines to the core; calls back for triggers and dead letters."""

    def __init__(
        self,
        config: EngineConfig,
        on_trigger: Callable[[Trigger], None] = lambda _t: None,
        on_deadletter: Callable[[DeadLetter], None] = lambda _d: None,
        sources: list[str] | None = None,
        snapshot_at: float | None = None,
        on_snapshot: Callable[[dict[str, Any]], None] = lambda _s: None,
    ) -> None:
        self.config, self.on_trigger, self.on_deadletter = config, on_trigger, on_deadletter
        self.sources = sources or ["input"]
        self.snapshot_at, self.on_snapshot = snapshot_at, on_snapshot
        self.states: dict[str, CustomerState] = {}
        self.deadlines: DeadlineIndex[str] = DeadlineIndex()
        self.counts = ReplayCounts()
        self.now: float | None = None

    def feed(self, line: Line) -> None:
        """One input line: invalid → dead letter; profile/outcome → counted; event → the core."""
        self.counts.read += 1
        if line.invalid is not None:
            return self._dead(line, Rejection(line.invalid, line.detail))  # type: ignore[arg-type]
        data = orjson.loads(line.raw)
        kind = data.get("type") if isinstance(data, dict) else None
        if kind in ("profile", "outcome"):
            return self._control(line, data)
        decoded = validate_event(data)
        if isinstance(decoded, Rejection):
            return self._dead(line, decoded)
        self._event(decoded)

    def finish(self, until: float | None = None) -> None:
        """Advance the clock to ``until`` (default: the last event) and take a pending snapshot."""
        end = until if until is not None else self.now
        if end is not None:
            self._advance(end)
        if self.snapshot_at is not None:
            self._snapshot()

    def _event(self, event: InboundEvent) -> None:
        ts = event.epoch
        self._advance(ts)
        step = process(self.states.get(event.customer_id), event, self.config)
        self._apply(event.customer_id, step)
        self.counts.valid += 1
        self.counts.by_type[event.type] += 1
        self.counts.first_event = ts if self.counts.first_event is None else min(self.counts.first_event, ts)
        self.counts.last_event = ts if self.counts.last_event is None else max(self.counts.last_event, ts)

    def _advance(self, now: float) -> None:
        if self.snapshot_at is not None and now > self.snapshot_at:
            self._advance(self.snapshot_at)
            self._snapshot()
        if self.now is not None and now <= self.now:
            return
        self.now = now
        for customer_id in self.deadlines.pop_due(now):
            state = self.states.get(customer_id)
            if state is not None:
                self._apply(customer_id, tick(state, now, self.config))

    def _apply(self, customer_id: str, step: Step) -> None:
        for trigger in step.triggers:
            self.counts.triggers[trigger.playbook] += 1
            self.on_trigger(trigger)
        for observation in step.observations:
            self.counts.observations[observation.kind] += 1
        if step.state is None:
            self.states.pop(customer_id, None)
            self.deadlines.set(customer_id, None)
        else:
            self.states[customer_id] = step.state
            self.deadlines.set(customer_id, next_due(step.state, self.config))

    def _control(self, line: Line, data: dict[str, Any]) -> None:
        try:
            record = CONTROL_ADAPTER.validate_python(data)
        except ValidationError as exc:
            return self._dead(line, Rejection("schema", summarize(exc)))
        self.counts.valid += 1
        self.counts.by_type[record.type] += 1

    def _dead(self, line: Line, rejection: Rejection) -> None:
        self.counts.invalid[rejection.reason] += 1
        self.on_deadletter(rejection.dead_letter(source=self.sources[line.source], partition=0,
                                                 offset=line.line_no, key=None, value=line.raw, at=time.time()))

    def _snapshot(self) -> None:
        at, self.snapshot_at = self.snapshot_at, None
        assert at is not None
        for row in snapshot_rows(self.states.values(), at, self.config):
            self.on_snapshot(row)


def snapshot_rows(states: Any, at: float, config: EngineConfig) -> Iterator[dict[str, Any]]:
    """Each customer's scores and reasons as of event time ``at``."""
    for state in sorted(states, key=lambda s: s.customer_id):
        view = explain(state, at, config)
        yield {
            "customer_id": state.customer_id, "as_of": _iso(at), "scores": view["scores"],
            "reasons": [
                {"signal": "silence_seconds", "observed": round(view["silence_seconds"], 3),
                 "baseline": round(view["typical_gap_seconds"], 3), "unit": "seconds"},
                {"signal": "errors_per_bucket", "observed": view["errors_in_current_bucket"],
                 "baseline": round(view["error_baseline_per_bucket"], 4), "unit": f"errors/{config.bucket_seconds}s"},
            ],
        }


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat()
