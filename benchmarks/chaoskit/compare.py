"""What the workers published, compared with the undisturbed run.

Triggers are matched by id (deterministic: customer, playbook, episode). A trigger received twice with
one id is a harmless duplicate (senders de-duplicate by id); one whose id is not expected but whose
customer, playbook and event time (``fired_at``) are those of an expected trigger is a duplicate with a
NEW id (a sender would act twice); any other unexpected id is "extra". A customer's state differs when
its last changelog value, decoded, is not the replay's state field for field, nor byte for byte once
the worker's own bookkeeping (:data:`WORKER_ONLY`: the applied offsets) is set aside; fields named in
``ignore`` are left out.

>>> t = Tally(expected=3, received=4, lost=1, dup_id=1)
>>> (t + Tally(expected=2, received=2)).as_row()[:4]
[5, 6, 1, 1]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

from forethought.contracts.records import Trigger
from forethought.core.config import EngineConfig
from forethought.core.state import CustomerState

from .expected import Expected

WORKER_ONLY = ("applied",)  # state fields only a worker fills (how far it applied each input partition)
COLUMNS = ("expected", "received", "lost", "dup_id", "dup_new_id", "extra", "states_differ")


@dataclass
class Tally:
    """Counts for one scenario (or the sum of several)."""

    expected: int = 0
    received: int = 0
    lost: int = 0
    dup_id: int = 0
    dup_new_id: int = 0
    extra: int = 0
    states_differ: int = 0
    customers: int = 0
    differing_fields: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def __add__(self, other: Tally) -> Tally:
        summed = {f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        summed["examples"] = (self.examples + other.examples)[:10]
        return Tally(**summed)

    def as_row(self) -> list[int]:
        """The table's counting columns, in :data:`COLUMNS` order."""
        return [getattr(self, name) for name in COLUMNS]

    def as_dict(self) -> dict[str, Any]:
        """The counts, the differing fields and the examples as JSON data."""
        return {**{name: getattr(self, name) for name in COLUMNS}, "customers": self.customers,
                "differing_fields": dict(self.differing_fields), "examples": self.examples}


def _same_event(trigger: Trigger) -> tuple[str, str, float]:
    return trigger.customer_id, trigger.playbook, trigger.fired_at.timestamp()


def compare_triggers(expected: Expected, received: Iterable[Trigger], tally: Tally) -> None:
    """Fill the trigger columns of ``tally``."""
    got = list(received)
    ids = Counter(t.trigger_id for t in got)
    tally.expected, tally.received = len(expected.triggers), len(got)
    tally.lost = len(set(expected.triggers) - set(ids))
    tally.dup_id = sum(n - 1 for n in ids.values())
    known = {_same_event(t) for t in expected.triggers.values()}
    unexpected = {t.trigger_id: t for t in got if t.trigger_id not in expected.triggers}
    tally.dup_new_id = sum(1 for t in unexpected.values() if _same_event(t) in known)
    tally.extra = len(unexpected) - tally.dup_new_id
    for t in list(unexpected.values())[:3]:
        tally.examples.append(f"unexpected trigger {t.playbook} for {t.customer_id} at {t.fired_at.isoformat()}")


def differing_fields(want: dict[str, Any], have: dict[str, Any], ignore: frozenset[str]) -> list[str]:
    """The top-level fields (and ``slices.<name>``) where two state dicts differ.

    >>> differing_fields({"n": 1, "slices": {"a": 1, "b": 2}}, {"n": 2, "slices": {"a": 1, "b": 3}}, frozenset())
    ['n', 'slices.b']
    """
    names: list[str] = []
    for name in sorted(set(want) | set(have)):
        if name in ignore:
            continue
        if name == "slices" and isinstance(want.get(name), dict) and isinstance(have.get(name), dict):
            names += [f"slices.{s}" for s in sorted(set(want[name]) | set(have[name]))
                      if f"slices.{s}" not in ignore and want[name].get(s) != have[name].get(s)]
        elif want.get(name) != have.get(name):
            names.append(name)
    return names


def values(want: dict[str, Any], have: dict[str, Any], names: list[str], width: int = 60) -> str:
    """The undisturbed and the worker's values of the first differing top-level fields, shortened.

    >>> values({"daily": 100, "n": 3}, {"daily": 200, "n": 3}, ["daily"])
    'daily 100 (undisturbed) vs 200 (worker)'
    """
    return "; ".join(f"{n} {str(want.get(n))[:width]} (undisturbed) vs {str(have.get(n))[:width]} (worker)"
                     for n in names[:3] if "." not in n and not n.startswith("("))


def compare_states(expected: Expected, changelog: dict[bytes, bytes | None], config: EngineConfig,
                   tally: Tally, ignore: frozenset[str] = frozenset()) -> None:
    """Fill the state columns of ``tally`` from the customer_state changelog's last value per key."""
    have = {key.decode(): CustomerState.from_bytes(raw, config) for key, raw in changelog.items() if raw is not None}
    tally.customers = len(expected.states)
    for customer in sorted(set(expected.states) | set(have)):
        if customer not in have or customer not in expected.states:
            tally.states_differ += 1
            tally.differing_fields["(missing)" if customer not in have else "(unexpected)"] += 1
            continue
        want, got = expected.states[customer], have[customer]
        names = differing_fields(want.to_dict(), got.to_dict(), ignore)
        for name in WORKER_ONLY:  # bookkeeping the worker keeps and a replay has no use for
            if hasattr(got, name):
                setattr(got, name, getattr(want, name))
        if not names and "(encoded)" not in ignore and want.to_bytes() != got.to_bytes():
            names = ["(encoded)"]  # a part the flat form leaves out
        if names:
            tally.states_differ += 1
            tally.differing_fields.update(names)
            if len(tally.examples) < 6:
                tally.examples.append(f"state of {customer} differs in {', '.join(names)}: "
                                      + values(want.to_dict(), got.to_dict(), names))
