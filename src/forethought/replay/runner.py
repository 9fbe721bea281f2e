"""Replay: the same core as the worker, driven by a file instead of Kafka.

Records are fed in event-time order to one :class:`~forethought.core.runtime.PartitionRuntime` per
partition, the driver the worker uses too (``partitions``: the catalogue's count; a customer's
partition is murmur2 of its id, as in Kafka), so replay and the worker compute the same way. The
clock is the newest event time seen; before each event every partition is advanced to it, so
triggers come out in event-time order.

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
from collections.abc import Callable, Iterable, Iterator
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
from forethought.contracts.events import EVENT_KINDS
from forethought.contracts.partitioning import partition_of
from forethought.contracts.records import DeadLetter, Outcome, Profile, Trigger
from forethought.core.config import EngineConfig
from forethought.core.detectors import error_burst
from forethought.core.engine import Observation, Step, facts
from forethought.core.models import PartitionModels
from forethought.core.policy.rules import Rules, builtin_rules
from forethought.core.runtime import Emission, PartitionRuntime, Record
from forethought.core.state import CustomerState
from forethought.core.summary import Summary, summary_view
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
    """Feeds lines to one :class:`~forethought.core.runtime.PartitionRuntime` per partition (as the
    worker does); calls back for triggers and dead letters."""

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
        rules = rules or builtin_rules()
        self.runtimes = [PartitionRuntime(p, config, rules, PartitionModels(p, config.model_min_labels, config))
                         for p in range(max(partitions, 1))]
        self._partition: dict[str, int] = {}
        self.sources = sources or ["input"]
        self.snapshot_at, self.on_snapshot = snapshot_at, on_snapshot
        self.counts = ReplayCounts()
        self.now: float | None = None

    @property
    def models(self) -> dict[int, PartitionModels]:
        """Each partition's models."""
        return {r.partition: r.models for r in self.runtimes if r.models is not None}

    @property
    def states(self) -> dict[str, CustomerState]:
        """Every live customer state, by customer id."""
        return {s.customer_id: s for r in self.runtimes for s in r.customers()}

    @property
    def summaries(self) -> list[Summary]:
        """Every customer evicted after idling past the TTL, as their summary."""
        return [s for r in self.runtimes for s in r.summaries()]

    def feed(self, line: Line) -> None:
        """One input line: invalid → dead letter; valid → its partition's runtime."""
        self.counts.read += 1
        if line.invalid is not None:
            return self._dead(line, Rejection(line.invalid, line.detail))  # type: ignore[arg-type]
        decoded = validate_event(orjson.loads(line.raw), ALL_KINDS)
        if isinstance(decoded, Rejection):
            return self._dead(line, decoded)
        if not isinstance(decoded, (Profile, Outcome)):
            self._advance(decoded.epoch)  # every partition's time, so outputs come in event-time order
        for emitted in self.runtime(decoded.customer_id).feed(decoded):
            if emitted.step is not None:
                self._apply(emitted.customer_id, emitted.step)
            elif emitted.due:
                self._tick_failed(emitted)
            else:  # as in the worker: dead-lettered, the customer's prior state kept
                return self._dead(line, Rejection("processing_error", describe(emitted.failure)))
        self._count(decoded)

    def finish(self, until: float | None = None) -> None:
        """Advance the clock to ``until`` (default: the last event) and take a pending snapshot."""
        end = until if until is not None else self.now
        if end is not None:
            self._advance(end)
        if self.snapshot_at is not None:
            self._snapshot()

    def runtime(self, customer_id: str) -> PartitionRuntime:
        """The runtime of ``customer_id``'s partition (murmur2 of the id, as Kafka places it)."""
        partition = self._partition.get(customer_id)
        if partition is None:
            partition = self._partition[customer_id] = partition_of(customer_id.encode(), len(self.runtimes))
        return self.runtimes[partition]

    def model(self, customer_id: str) -> PartitionModels | None:
        """The models of ``customer_id``'s partition."""
        return self.runtime(customer_id).models

    def models_report(self) -> dict[str, dict[str, Any]]:
        """Per partition: labels learned, of which dropped, and whether the model is warm."""
        return {str(p): {"labels": m.labels, "dropped": m.dropped, "warm": m.warm}
                for p, m in sorted(self.models.items())}

    def _count(self, record: Record) -> None:
        self.counts.valid += 1
        self.counts.by_type[record.type] += 1
        if isinstance(record, (Profile, Outcome)):
            return
        ts = record.epoch
        self.counts.first_event = ts if self.counts.first_event is None else min(self.counts.first_event, ts)
        self.counts.last_event = ts if self.counts.last_event is None else max(self.counts.last_event, ts)

    def _advance(self, now: float) -> None:
        if self.snapshot_at is not None and now > self.snapshot_at:
            self._advance(self.snapshot_at)
            self._snapshot()
        if self.now is not None and now <= self.now:
            return
        self.now = now
        for runtime in self.runtimes:
            for emitted in runtime.advance(now):
                if emitted.step is None:
                    self._tick_failed(emitted)
                else:
                    self._apply(emitted.customer_id, emitted.step)

    def _tick_failed(self, emitted: Emission) -> None:
        self.counts.tick_errors += 1
        self.on_tick_error(emitted.customer_id, describe(emitted.failure))

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

    def _dead(self, line: Line, rejection: Rejection) -> None:
        self.counts.invalid[rejection.reason] += 1
        self.on_deadletter(rejection.dead_letter(source=self.sources[line.source], partition=0,
                                                 offset=line.line_no, key=None, value=line.raw, at=time.time(),
                                                 max_bytes=self.deadletter_max_bytes))

    def _snapshot(self) -> None:
        at, self.snapshot_at = self.snapshot_at, None
        assert at is not None
        for row in snapshot_rows(self.states.values(), at, self.config, lambda s: self.model(s.customer_id),
                                 self.summaries):
            self.on_snapshot(row)


def snapshot_rows(states: Any, at: float, config: EngineConfig,
                  models: Callable[[CustomerState], PartitionModels | None] = lambda _s: None,
                  summaries: Iterable[Summary] = ()) -> Iterator[dict[str, Any]]:
    """Each customer's scores (``dropoff_learned`` from their partition's ``models``) and reasons
    as of event time ``at``: the live ``states`` and the ``summaries`` of customers evicted after
    idling (scored on the state their summary revives, marked ``summarised``, with the idle reason)."""
    held: list[CustomerState | Summary] = [*states, *summaries]
    for kept in sorted(held, key=lambda k: k.customer_id):  # a summary is revived only when its row is due
        summary = kept if isinstance(kept, Summary) else None
        state = kept if isinstance(kept, CustomerState) else kept.revive(config)
        scores, silent, usual_gap, errors, usual_errors = _row_view(state, at, config, models(state))
        row: dict[str, Any] = {
            "customer_id": state.customer_id, "as_of": _iso(at), "scores": scores,
            "reasons": [
                {"signal": "silence_seconds", "observed": round(silent, 3), "baseline": round(usual_gap, 3),
                 "unit": "seconds"},
                {"signal": "errors_per_bucket", "observed": errors, "baseline": round(usual_errors, 4),
                 "unit": f"errors/{config.bucket_seconds}s"},
            ],
        }
        if summary is not None:
            idle = summary_view(summary, at, config)
            row |= {"summarised": True, "evicted_at": _iso(summary.evicted_at)}
            row["reasons"].insert(0, idle["reason"])
        yield row


def _row_view(state: CustomerState, at: float, config: EngineConfig,
              models: PartitionModels | None) -> tuple[dict[str, Any], float, float, float, float]:
    """A row's scores, silence and usual gap, errors in the current bucket and their usual level:
    what :func:`~forethought.core.engine.explain` says of them, without the rest of its view (every
    detector's; three times the work, a twentieth of a CDNOW replay)."""
    config = config if models is None else models.config_at(config, at)
    found = facts(state, at, config, models)
    features, weight = found["features"], config.windows.prior_weight
    burst = state.find(error_burst.NAME)
    usual_errors = 0.0 if burst is None else error_burst.error_baseline(burst, config.section(error_burst.NAME),
                                                                         weight)[0]
    return (found["scores"], features.get("silence_seconds") or 0.0, features.get("typical_gap_seconds") or 0.0,
            features.get("errors_in_current_bucket", 0), usual_errors)


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, tz=UTC).isoformat()
