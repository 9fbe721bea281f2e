"""What one batch or sweep of the worker produced, before the worker publishes it."""

from __future__ import annotations

from dataclasses import dataclass, field

from forethought.contracts.records import DeadLetter, Trigger
from forethought.core.policy.profiles import ProfileState
from forethought.core.state import CustomerState
from forethought.stream.rekey import Rekeyed


@dataclass(slots=True)
class Outbox:
    """What one batch or sweep produced; the caller publishes it, then calls ``commit``."""

    deadletters: list[DeadLetter] = field(default_factory=list)
    rekeyed: list[Rekeyed] = field(default_factory=list)
    triggers: list[tuple[Trigger, float]] = field(default_factory=list)
    shadow: list[Trigger] = field(default_factory=list)
    states: dict[bytes, CustomerState | None] = field(default_factory=dict)
    profiles: dict[bytes, ProfileState] = field(default_factory=dict)

    def mark(self, key: bytes) -> tuple[int, int, int, int, ProfileState | None]:
        """Where the outbox stands before one record or tick of ``key`` (see :meth:`rollback`)."""
        return len(self.deadletters), len(self.rekeyed), len(self.triggers), len(self.shadow), self.profiles.get(key)

    def rollback(self, mark: tuple[int, int, int, int, ProfileState | None], key: bytes) -> None:
        """Forget what was added since ``mark``: a record that failed publishes nothing."""
        letters, rekeyed, triggers, shadow, profile = mark
        del self.deadletters[letters:], self.rekeyed[rekeyed:], self.triggers[triggers:], self.shadow[shadow:]
        if profile is None:
            self.profiles.pop(key, None)
        else:
            self.profiles[key] = profile
