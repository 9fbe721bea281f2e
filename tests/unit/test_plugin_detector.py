"""Detectors are plug-ins: a detector that lives only in the tests (``streak_detector``) runs with one
registry line, with its own settings, slice, hooks, facts and signal; the registry refuses clashes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, ClassVar

import pytest
from streak_detector import DAY, Streak

from forethought.contracts.events import PageView
from forethought.contracts.playbooks import PlaybookFile
from forethought.core.config import EngineConfig
from forethought.core.engine import explain, facts
from forethought.core.plugin import Detector, Slice
from forethought.core.policy.rules import RuleError, compile_rules
from forethought.core.registry import builtin_registry
from forethought.core.runtime import PartitionRuntime
from forethought.core.state import CustomerState

REGISTRY = builtin_registry().with_detector(Streak())  # the one registry line
CONFIG = EngineConfig(REGISTRY, streak_min_days=3)
D0 = 20_500  # a day number (2026-02-16)
PLAYBOOKS = {"playbooks": [{
    "name": "streak_saver", "on": ["streak_broken"], "when": "context.streak_days >= 3 and features.events >= 3",
    "channels": ["email"], "priority": 50}]}


def visit(customer: str, day: int, hour: int = 12) -> PageView:
    return PageView(event_id=f"{customer}-{day}-{hour}", customer_id=customer,
                    occurred_at=datetime.fromtimestamp(day * DAY + hour * 3600, tz=timezone.utc))


def run(config: EngineConfig = CONFIG) -> PartitionRuntime:
    """c1: active three days in a row, then gone; c2: two separate days; both watched to day D0 + 6."""
    runtime = PartitionRuntime(0, config, compile_rules(PlaybookFile.model_validate(PLAYBOOKS), config.detectors))
    for record in (visit("c1", D0), visit("c2", D0), visit("c1", D0 + 1), visit("c1", D0 + 2), visit("c2", D0 + 2)):
        runtime.feed(record)
    return runtime


def test_a_detector_from_outside_the_package_fires_at_its_own_due_time_through_the_playbooks() -> None:
    runtime = run()
    fired = [t for e in runtime.advance((D0 + 6) * DAY) if e.step is not None for t in e.step.triggers]
    (trigger,) = fired
    assert (trigger.customer_id, trigger.playbook, trigger.detector) == ("c1", "streak_saver", "streak_broken")
    assert trigger.fired_at.timestamp() == (D0 + 4) * DAY  # the first moment a whole day was missed
    assert trigger.reasons[0].text == "Active 3 days in a row, then not at all yesterday."
    assert runtime.state("c1").slice("streak").days == 0 and runtime.state("c2").slice("streak").days == 1


def test_its_fact_is_offered_to_playbooks() -> None:
    state = run().state("c1")
    assert state is not None
    assert facts(state, (D0 + 2) * DAY + 13 * 3600, CONFIG)["features"]["streak_days"] == 3
    assert explain(state, (D0 + 2) * DAY + 13 * 3600, CONFIG)["customer_id"] == "c1"  # explain runs with it
    env = compile_rules(PlaybookFile.model_validate({"playbooks": [{
        "name": "long_streak", "on": ["daily"], "when": "features.streak_days >= 3", "channels": ["in_app"],
        "priority": 10}]}), REGISTRY)
    assert env.playbooks[0].condition.holds({"features": {"streak_days": 3}})


def test_its_slice_is_stored_with_its_own_key_and_older_states_start_it_fresh() -> None:
    state = run().state("c1")
    assert state is not None
    again = CustomerState.from_bytes(state.to_bytes(), CONFIG)
    assert again == state and again.slice("streak").last_day == D0 + 2
    builtin = EngineConfig()
    without = CustomerState.from_bytes(state.to_bytes(), builtin)  # a worker without the detector drops it
    assert "streak" not in without.slices and without.slice("silence") == state.slice("silence")
    back = CustomerState.from_bytes(without.to_bytes(), CONFIG)  # ... and one with it starts it fresh
    assert back.slice("streak").days == 0 and back.slice("streak").last_day == -1


def test_its_settings_are_engine_settings_checked_like_the_others() -> None:
    assert CONFIG.streak_min_days == 3 and CONFIG.section("streak").streak_min_days == 3
    with pytest.raises(ValueError, match="streak_min_days must be > 0"):
        EngineConfig(REGISTRY, streak_min_days=0)
    with pytest.raises(ValueError, match="unknown engine setting 'streak_min_days'"):
        EngineConfig(streak_min_days=3)  # the built-in registry does not know it


def test_playbooks_may_listen_to_its_signal_and_read_its_fact_only_where_it_is_registered() -> None:
    spec = PlaybookFile.model_validate(PLAYBOOKS)
    with pytest.raises(RuleError, match="playbooks.0.on.0: unknown signal 'streak_broken'"):
        compile_rules(spec)
    spec = PlaybookFile.model_validate({"playbooks": [{**PLAYBOOKS["playbooks"][0], "on": ["silence"],
                                                       "when": "features.streak_days > 1"}]})
    with pytest.raises(RuleError, match="unknown name 'features.streak_days'"):
        compile_rules(spec)
    assert compile_rules(spec, REGISTRY).playbooks[0].signals == {"silence"}


@dataclass(slots=True)
class _Clash(Slice):
    KEY: ClassVar[str] = "s"  # the silence slice's key


@dataclass(frozen=True, slots=True)
class _SilenceZ:
    silence_z: float = 1.0  # a setting the silence detector owns


@pytest.mark.parametrize(("attributes", "message"), [
    ({"name": "silence"}, "detector 'silence' is registered twice"),
    ({"name": "copy", "State": _Clash}, "slice key 's' is registered twice"),
    ({"name": "copy", "signals": ("silence",)}, "signal 'silence' of detector 'copy' is already offered"),
    ({"name": "copy", "features": ("events",)}, "feature 'events' of detector 'copy' is already offered"),
    ({"name": "copy", "needs": ("nothing",)}, "detector 'copy' needs 'nothing', not registered"),
])
def test_the_registry_refuses_a_detector_that_clashes(attributes: dict[str, Any], message: str) -> None:
    clash = type("Copy", (Detector,), attributes)()
    with pytest.raises(ValueError, match=message):
        builtin_registry().with_detector(clash)


def test_a_setting_name_belongs_to_one_section_only() -> None:
    registry = builtin_registry().with_detector(type("Copy", (Detector,), {"name": "copy", "Settings": _SilenceZ})())
    with pytest.raises(ValueError, match="engine setting 'silence_z' of detector 'copy' is already of silence"):
        EngineConfig(registry)
