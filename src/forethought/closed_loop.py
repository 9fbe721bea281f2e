"""The closed loop in one process: simulated customers, the engine, and the customers' answers.

:func:`run_closed_loop` feeds the population's records in event-time order to the same
:class:`~forethought.replay.runner.Replayer` replay uses (one ``PartitionRuntime`` per partition);
each trigger the engine sends is answered by the :class:`~forethought.simulate.responder.Responder`
and the answer (outcome records, a returning customer's resumed activity, a leaving customer's end)
goes back into the same event-time order through a heap keyed by event time. Everything is
deterministic per seed: the same configuration gives the same report, byte for byte.

A customer no message reaches produces exactly the records ``forethought simulate`` writes.

>>> from forethought.simulate.plans import SimulationConfig
>>> result = run_closed_loop(SimulationConfig(customers=4, days=2, seed=1))
>>> result.report()["records"]["base"] > 0
True
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from forethought.contracts.records import Trigger
from forethought.core.config import EngineConfig
from forethought.core.engine import Observation
from forethought.core.policy.rules import Rules
from forethought.replay.reader import Line
from forethought.replay.runner import ReplayCounts, Replayer
from forethought.simulate.behaviour import Customer
from forethought.simulate.plans import SimulationConfig
from forethought.simulate.population import items, plans
from forethought.simulate.responder import Answer, Responder
from forethought.simulate.response import ResponseModel
from forethought.simulate.timeline import DAY_MS

DAY, RECORD = 0, 1  # heap entry kinds; a resumed customer's next day is generated when its time comes


@dataclass
class LoopResult:
    """What a closed-loop run did: the engine's counts and the customers' answers."""

    counts: ReplayCounts
    responder: Responder
    records: Counter[str] = field(default_factory=Counter)
    triggers: list[Trigger] = field(default_factory=list, repr=False)
    by_type: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)  # playbook, type, group, kind

    def report(self) -> dict[str, Any]:
        """Per playbook: triggers, decisions, outcomes and returns, re-engagement of treated vs
        holdout (the engine's own measurement); what was fed, and triggers skipped by reason."""
        counts, answers = self.counts, self.responder.report()
        lift = counts.as_dict()["lift"]
        decisions = counts.decisions_by_playbook()
        names = sorted(set(counts.triggers) | set(lift) | set(decisions))
        playbooks = {name: {"triggers": counts.triggers.get(name, 0), "decisions": decisions.get(name, {}),
                            "responses": answers["responses_by_playbook"].get(name, {}),
                            "reengagement": lift.get(name), "reengagement_by_type": self.by_response_type(name)}
                     for name in names}
        return {"playbooks": playbooks, "records": dict(sorted(self.records.items())),
                "skipped_triggers": answers["skipped_triggers"], "invalid": dict(counts.invalid),
                "tick_errors": counts.tick_errors}


    def by_response_type(self, playbook: str) -> dict[str, dict[str, dict[str, float]]]:
        """``{type: {group: {"measured", "reengaged", "rate"}}}``: the engine's re-engagement
        measurement split by the customers' hidden response type (what no real system can see)."""
        table: dict[str, dict[str, dict[str, float]]] = {}
        for (book, kind, group, _), _n in sorted(self.by_type.items()):
            if book != playbook or group in table.get(kind, {}):
                continue
            back = self.by_type[(book, kind, group, "reengaged")]
            gone = self.by_type[(book, kind, group, "not_reengaged")]
            table.setdefault(kind, {})[group] = {"measured": back + gone, "reengaged": back,
                                                 "rate": round(back / (back + gone), 4)}
        return table


class ClosedLoop:
    """One run; see :func:`run_closed_loop`. ``on_record`` sees every record fed, in order."""

    def __init__(self, config: SimulationConfig, engine: EngineConfig | None = None, rules: Rules | None = None,
                 model: ResponseModel | None = None, partitions: int = 1,
                 on_record: Callable[[dict[str, Any]], None] = lambda _r: None) -> None:
        self.config, self.on_record = config, on_record
        self.population = plans(config)
        self.responder = Responder(config, model, self.population)
        self.fired: list[Trigger] = []
        self.replay = Replayer(engine or EngineConfig(), on_trigger=self.fired.append, rules=rules,
                               partitions=partitions, on_observation=self._observed)
        self.result = LoopResult(self.replay.counts, self.responder)
        self.heap: list[tuple[int, int, int, int, Any]] = []
        self.order = itertools.count()
        self.cut: dict[tuple[int, int], int] = {}  # (customer index, generation) -> its activity ends here
        self.clock = config.start_ms
        self.lines = itertools.count(1)

    def run(self) -> LoopResult:
        """Feed everything to the horizon's end; returns the result."""
        for ms, source, record in self._merged():
            self.clock = max(self.clock, ms)
            self.result.records[source] += 1
            self._feed(ms, record)
        self.replay.finish(self.config.end_ms / 1000)
        self.clock = self.config.end_ms
        self._answer()  # triggers of the last tick: their answers fall beyond the horizon
        return self.result

    def _observed(self, customer_id: str, observation: Observation) -> None:
        if observation.kind in ("reengaged", "not_reengaged"):
            plan = self.responder.by_id.get(customer_id)
            kind = "unknown" if plan is None else self.responder.model.traits(plan).kind
            detail = observation.detail
            self.result.by_type[(detail["playbook"], kind, detail["group"], observation.kind)] += 1

    def _merged(self) -> Iterator[tuple[int, str, dict[str, Any]]]:
        """The population's own records and the heap's, in event-time order (the own first on a tie)."""
        heap = self.heap
        for ms, index, _, record in items(self.config, self.population):
            while heap and heap[0][0] < ms:
                yield from self._pop()
            if self._kept(index, 0, ms):
                yield ms, "base", record
        while heap:
            yield from self._pop()

    def _pop(self) -> Iterator[tuple[int, str, dict[str, Any]]]:
        ms, kind, _, index, payload = heapq.heappop(self.heap)
        if kind == DAY:
            self._day(index, *payload)
            return
        source, generation, record = payload
        if generation < 0 or self._kept(index, generation, ms):
            yield ms, source, record

    def _kept(self, index: int, generation: int, ms: int) -> bool:
        cut = self.cut.get((index, generation))
        return cut is None or ms < cut

    def _feed(self, ms: int, record: dict[str, Any]) -> None:
        self.on_record(record)
        self.replay.feed(Line(ms / 1000, 0, next(self.lines), orjson.dumps(record)))
        if self.fired:
            self._answer()

    def _answer(self) -> None:
        fired = list(self.fired)
        self.fired.clear()  # the list the replay appends to
        self.result.triggers.extend(fired)
        for trigger in fired:
            answer = self.responder.answer(trigger, self.clock)
            if answer is not None:
                self._schedule(answer)

    def _schedule(self, answer: Answer) -> None:
        index = answer.index
        for ms, record in answer.outcomes:
            self._push(ms, RECORD, index, ("outcome", -1, record))
        if answer.cut_at is not None:
            previous = answer.generation - 1 if answer.resumed is not None else self._generation(index)
            self.cut[(index, previous)] = answer.cut_at
        if answer.resumed is not None:
            self._push(answer.cut_at or self.clock, DAY, index, (answer.resumed, answer.generation,
                                                               answer.resumed.first_day))

    def _generation(self, index: int) -> int:
        fate = self.responder.fates.get(index)
        return 0 if fate is None else fate.generation

    def _day(self, index: int, customer: Customer, generation: int, day: int) -> None:
        for ms, _, _, record in customer.day(day):
            self._push(ms, RECORD, index, ("reaction", generation, record))
        if day < customer.last_day:
            self._push((day + 1) * DAY_MS, DAY, index, (customer, generation, day + 1))

    def _push(self, ms: int, kind: int, index: int, payload: Any) -> None:
        heapq.heappush(self.heap, (max(ms, self.clock), kind, next(self.order), index, payload))


def run_closed_loop(config: SimulationConfig, engine: EngineConfig | None = None, rules: Rules | None = None,
                    model: ResponseModel | None = None, partitions: int = 1,
                    on_record: Callable[[dict[str, Any]], None] = lambda _r: None) -> LoopResult:
    """Run the closed loop over ``config``'s population with the engine's ``rules`` (default: the
    built-in pass-through playbooks) and ``model`` (default: the seed's response model)."""
    return ClosedLoop(config, engine, rules, model, partitions, on_record).run()
