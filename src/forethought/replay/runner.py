"""Replay: the same core as the worker, driven by a file instead of Kafka.

Records are fed in event-time order. The clock is the newest event time seen; before each
record, every customer whose deadline has come is ticked, exactly as the worker's timer does.
Like the worker, replay keeps one :class:`~forethought.core.models.PartitionModels` per partition
(``partitions``: the catalogue's count; a customer's partition is murmur2 of its id, as in Kafka).

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
from datetime import UTC, datetime
from typing import Any

import orjson

from forethought.contracts.decode import (
    CONTROL_KINDS,
    DEFAULT_DEADLETTER_MAX_BYTES,
    Rejection,
    describe,
    validate_event,
)
from forethought.contracts.events import EVENT_KINDS, InboundEvent
from forethought.contracts.partitioning import partition_of
from forethought.contracts.records import DeadLetter, Outcome, Profile, Trigger
from forethought.core.config import EngineConfig
from forethought.core.deadlines import DeadlineIndex
from forethought.core.engine import (
    Observation,
    Step,
    explain,
    next_due,
    observe_outcome,
    observe_profile,
    process,
    tick,
)
from forethought.core.models import PartitionModels
from forethought.core.policy.profiles import ProfileState
from forethought.core.policy.rules import Rules, builtin_rules
from forethought.core.state import CustomerState
from forethought.replay.reader import Line

ALL_KINDS = EVENT_KINDS | CONTROL_KINDS


@dataclass
class ReplayCounts:
    """What a replay read and produced."""

    read: int = 0
    valid: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    invalid: Counter[str] = field(default_factory=Counter)
    triggers: Counter[str] = field(default_factory=Counter)
    suppressed: Counter[str] = field(default_factory=Counter)
    shadow: Counter[str] = field(default_factory=Counter)
    decisions: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    reengagement: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    observations: Counter[str] = field(default_factory=Counter)
    tick_errors: int = 0
    first_event: float | None = None
    last_event: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "records_read": self.read, "valid": self.valid, "by_type": dict(self.by_type),
            "invalid_by_reason": dict(self.invalid), "triggers_by_playbook": dict(self.triggers),
            "suppressed_by_reason": dict(self.suppressed), "shadow_by_playbook": dict(self.shadow),
            "decisions_by_playbook": self.decisions_by_playbook(), "lift": lift(self.reengagement),
            "observations": dict(self.observations), "tick_errors": self.tick_errors,
            "first_event_at": _iso(self.first_event), "last_event_at": _iso(self.last_event),
        }


    def decisions_by_playbook(self) -> dict[str, dict[str, int]]:
        """``{playbook: {"sent": n, "suppressed:cooldown": n, ...}}``."""
        table: dict[str, dict[str, int]] = {}
        for (playbook, verdict, reason), n in sorted(self.decisions.items()):
            label = f"{verdict}:{reason}" if reason else verdict
            table.setdefault(playbook, {})[label] = n
        return table


def lift(tally: Counter[tuple[str, str, str]]) -> dict[str, dict[str, Any]]:
    """Per playbook: measured decisions and re-engagement rate per group, and the lift of the
    treated group over the holdout (difference of rates; None without both groups)."""
    report: dict[str, dict[str, Any]] = {}
    for playbook in sorted({p for p, _, _ in tally}):
        groups = {}
        for group in sorted({g for p, g, _ in tally if p == playbook}):
            back, gone = tally[(playbook, group, "reengaged")], tally[(playbook, group, "not_reengaged")]
            groups[group] = {"measured": back + gone, "reengaged": back, "rate": round(back / (back + gone), 4)}
        treated, held = groups.get("treated"), groups.get("holdout")
        difference = None if not (treated and held) else round(treated["rate"] - held["rate"], 4)
        report[playbook] = {**groups, "lift": difference}
    return report


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
        rules: Rules | None = None,
        partitions: int = 1,
        on_observation: Callable[[str, Observation], None] = lambda _c, _o: None,
        on_shadow: Callable[[Trigger], None] = lambda _t: None,
        deadletter_max_bytes: int = DEFAULT_DEADLETTER_MAX_BYTES,
        on_tick_error: Callable[[str, str], None] = lambda _c, _e: None,
    ) -> None:
        self.deadletter_max_bytes, self.on_tick_error = deadletter_max_bytes, on_tick_error
        self.config, self.on_trigger, self.on_deadletter = config, on_trigger, on_deadletter
        self.partitions, self.on_observation, self.on_shadow = partitions, on_observation, on_shadow
        self.models: dict[int, PartitionModels] = {}
        self._partition: dict[str, int] = {}
        self.rules = rules or builtin_rules()
        self.profiles: dict[str, ProfileState] = {}
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
        decoded = validate_event(orjson.loads(line.raw), ALL_KINDS)
        if isinstance(decoded, Rejection):
            return self._dead(line, decoded)
        try:
            if isinstance(decoded, (Profile, Outcome)):
                self._control(decoded)
            else:
                self._event(decoded)
        except _RecordFailed as failed:  # as in the worker: dead-lettered, the customer's prior state kept
            self._dead(line, Rejection("processing_error", failed.detail))

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
        customer = event.customer_id
        step = _guarded(process, self._held(customer), event, self.config, self.rules, self._profile(customer),
                        self.model(customer))
        self._apply(customer, step)
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
            if state is None:
                continue
            try:  # a tick that raises keeps the prior state; the customer's next record tries again
                step = _guarded(tick, state.copy(), now, self.config, self.rules, self._profile(customer_id),
                                self.model(customer_id))
            except _RecordFailed as failed:
                self.counts.tick_errors += 1
                self.on_tick_error(customer_id, failed.detail)
                continue
            self._apply(customer_id, step)

    def _apply(self, customer_id: str, step: Step) -> None:
        for trigger in step.triggers:
            self.counts.triggers[trigger.playbook] += 1
            self.on_trigger(trigger)
        for trigger in step.shadow:
            self.counts.shadow[trigger.playbook] += 1
            self.on_shadow(trigger)
        for decision in step.decisions:
            self.counts.decisions[(decision.playbook, decision.verdict, decision.reason or "")] += 1
            if decision.verdict == "suppressed":
                self.counts.suppressed[decision.reason or "unknown"] += 1
        for observation in step.observations:
            self.counts.observations[observation.kind] += 1
            self.on_observation(customer_id, observation)
            if observation.kind in ("reengaged", "not_reengaged"):
                detail = observation.detail
                self.counts.reengagement[(detail["playbook"], detail["group"], observation.kind)] += 1
        if step.profile is not None:
            self.profiles[customer_id] = step.profile
        if step.state is None:
            self.states.pop(customer_id, None)
            self.deadlines.set(customer_id, None)
        else:
            self.states[customer_id] = step.state
            self.deadlines.set(customer_id, next_due(step.state, self.config))

    def model(self, customer_id: str) -> PartitionModels:
        """The models of ``customer_id``'s partition (created fresh on first use)."""
        partition = self._partition.get(customer_id)
        if partition is None:
            partition = self._partition[customer_id] = partition_of(customer_id.encode(), self.partitions)
        models = self.models.get(partition)
        if models is None:
            models = self.models[partition] = PartitionModels(partition, self.config.model_min_labels, self.config)
        return models

    def models_report(self) -> dict[str, dict[str, Any]]:
        """Per partition: labels learned, of which dropped, and whether the model is warm."""
        return {str(p): {"labels": m.labels, "dropped": m.dropped, "warm": m.warm}
                for p, m in sorted(self.models.items())}

    def _held(self, customer_id: str) -> CustomerState | None:
        """A copy of the customer's state for the core to work on (it mutates states in place)."""
        state = self.states.get(customer_id)
        return None if state is None else state.copy()

    def _profile(self, customer_id: str) -> ProfileState:
        return self.profiles.get(customer_id) or ProfileState()

    def _control(self, record: Profile | Outcome) -> None:
        """Profiles and outcomes go through the same core entry points as in the worker."""
        self.counts.valid += 1
        self.counts.by_type[record.type] += 1
        customer = record.customer_id
        if isinstance(record, Profile):
            at = record.updated_at.timestamp()
            self._advance(at)
            step = _guarded(observe_profile, self._held(customer), self._profile(customer), record,
                            max(at, self.now or at), self.config)
        else:
            self._advance(record.occurred_at.timestamp())
            step = _guarded(observe_outcome, self._held(customer), self._profile(customer), record, self.config,
                            self.rules, self.model(customer))
        self._apply(customer, step)

    def _dead(self, line: Line, rejection: Rejection) -> None:
        self.counts.invalid[rejection.reason] += 1
        self.on_deadletter(rejection.dead_letter(source=self.sources[line.source], partition=0,
                                                 offset=line.line_no, key=None, value=line.raw, at=time.time(),
                                                 max_bytes=self.deadletter_max_bytes))

    def _snapshot(self) -> None:
        at, self.snapshot_at = self.snapshot_at, None
        assert at is not None
        for row in snapshot_rows(self.states.values(), at, self.config, lambda s: self.model(s.customer_id)):
            self.on_snapshot(row)


class _RecordFailed(Exception):
    """The core raised on one record or tick; ``detail`` names the exception (bounded)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _guarded(entry: Callable[..., Step], *args: Any) -> Step:
    """Call a core entry point; any exception it raises becomes :class:`_RecordFailed`."""
    try:
        return entry(*args)
    except Exception as error:  # noqa: BLE001 - one record never stops a replay (rule 6)
        raise _RecordFailed(describe(error)) from error


def snapshot_rows(states: Any, at: float, config: EngineConfig,
                  models: Callable[[CustomerState], PartitionModels | None] = lambda _s: None,
                  ) -> Iterator[dict[str, Any]]:
    """Each customer's scores (``dropoff_learned`` from their partition's ``models``) and reasons
    as of event time ``at``."""
    for state in sorted(states, key=lambda s: s.customer_id):
        view = explain(state, at, config, models(state))
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
    return None if epoch is None else datetime.fromtimestamp(epoch, tz=UTC).isoformat()
