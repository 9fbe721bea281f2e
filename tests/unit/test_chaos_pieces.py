"""The chaos harness's pieces on small inputs (no broker): its examples, how it tells a harmless
same-id duplicate from a new-id duplicate, and how it finds a state that differs."""

from __future__ import annotations

import doctest
import importlib
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

from chaoskit.compare import Tally, compare_states, compare_triggers  # noqa: E402 - after the path is set
from chaoskit.expected import Expected, undisturbed  # noqa: E402
from chaoskit.scenarios import WORKER_ENV  # noqa: E402
from chaoskit.workload import build_workload  # noqa: E402

from forethought.contracts.records import Trigger  # noqa: E402
from forethought.core.config import EngineConfig  # noqa: E402
from forethought.core.state import CustomerState  # noqa: E402

PIECES = ["workload", "compare", "report", "scenarios", "cluster"]
AT = datetime(2026, 9, 10, 12, tzinfo=UTC)


@pytest.mark.parametrize("name", PIECES)
def test_chaos_piece_examples_hold(name: str) -> None:
    result = doctest.testmod(importlib.import_module(f"chaoskit.{name}"), verbose=False)
    assert result.attempted > 0 and result.failed == 0


def trigger(tid: str, customer: str = "c1", playbook: str = "error_burst", at: datetime = AT) -> Trigger:
    return Trigger(trigger_id=tid, customer_id=customer, playbook=playbook, detector="error_burst", episode="e1",
                   channel="email", priority=50, fired_at=at, expires_at=at + timedelta(days=1), scores={},
                   reasons=[{"signal": "errors", "observed": 9, "baseline": 1, "text": "errors"}])


def test_a_same_id_repeat_is_harmless_a_new_id_for_the_same_event_is_a_duplicate_and_a_missing_id_is_lost() -> None:
    expected = Expected({t.trigger_id: t for t in [trigger("a"), trigger("b", "c2"), trigger("c", "c3")]}, {})
    received = [trigger("a"), trigger("a"), trigger("b2", "c2"), trigger("z", "c9", at=AT + timedelta(hours=1))]
    tally = Tally()
    compare_triggers(expected, received, tally)
    counts = (tally.expected, tally.received, tally.lost, tally.dup_id, tally.dup_new_id, tally.extra)
    assert counts == (3, 4, 2, 1, 1, 1)


def test_a_state_counted_twice_differs_and_a_missing_one_too() -> None:
    workload = build_workload(customers=3, days=1, seed=5)
    expected = undisturbed(workload, WORKER_ENV)
    config = EngineConfig()
    customers = sorted(expected.states)
    same = {c.encode(): expected.states[c].to_bytes() for c in customers}
    tally = Tally()
    compare_states(expected, same, config, tally)
    assert (tally.states_differ, tally.customers) == (0, len(customers))

    doubled = CustomerState.from_bytes(same[customers[0].encode()], config)  # a copy
    doubled.events += 1
    changed = {**same, customers[0].encode(): doubled.to_bytes()}
    del changed[customers[1].encode()]
    tally = Tally()
    compare_states(expected, changed, config, tally)
    assert tally.states_differ == 1 + 1 and tally.differing_fields["(missing)"] == 1
    assert tally.differing_fields["n"] == 1
