"""The worker's tables as a crash leaves them, for the crash-point tests (test_crash_points,
test_crash_prior): states and profiles, and with models the checkpoint of the last flush whose
states were all written. A flush writes every profile first, then the states (sorted by customer),
as the worker's write-behind does."""

from __future__ import annotations

from forethought.core.config import EngineConfig
from forethought.core.models import PartitionModels
from forethought.core.policy.profiles import ProfileState
from forethought.core.runtime import PartitionRuntime, Record
from forethought.core.state import CustomerState


class Store:
    """States (encoded), profiles (their JSON form) and, when ``models``, the models' checkpoint."""

    def __init__(self, config: EngineConfig, models: bool = False) -> None:
        self.config, self.models = config, models
        self.states: dict[str, bytes] = {}
        self.profiles: dict[str, dict[str, object]] = {}
        self.checkpoint: bytes | None = None

    def flush(self, runtime: PartitionRuntime, only: int | None = None) -> None:
        """Write what changed: every profile, then the states, ``only`` the first n (the crash cut
        the flush there; 0: between the profiles and the states). The checkpoint is written, before
        the states, only by a flush that writes them all."""
        dirty = runtime.take_dirty()
        self.profiles.update({c: p.to_dict() for c, p in dirty.profiles.items()})
        if self.models and only is None:
            assert runtime.models is not None
            self.checkpoint = runtime.models.to_bytes()
        for customer in sorted(dirty.states)[:only]:
            state = dirty.states[customer]
            assert isinstance(state, CustomerState), "nobody idles long enough to be evicted here"
            self.states[customer] = state.to_bytes()

    def restart(self) -> PartitionRuntime:
        """A runtime restored from the tables, its clock moved on as the worker's timer does."""
        models = PartitionModels.restore(self.checkpoint, config=self.config) if self.models else None
        runtime = PartitionRuntime(
            0, self.config, models=models, load_state=self.state,
            load_profile=lambda c: ProfileState.from_dict(self.profiles[c]) if c in self.profiles else None)
        runtime.restore(self.state(c) for c in sorted(self.states))
        if runtime.now is not None:  # the worker's timer: the partition's clock restored from the states
            runtime.advance(runtime.now + 1)
        return runtime

    def state(self, customer: str) -> CustomerState | None:
        """A customer's stored state, decoded (None: none stored)."""
        raw = self.states.get(customer)
        return None if raw is None else CustomerState.from_bytes(raw, self.config)


def feed(runtime: PartitionRuntime, records: list[tuple[Record, tuple[int, int, int]]]) -> None:
    """Run the records at their (lane, partition, offset) positions; none may fail."""
    for record, position in records:
        assert all(e.error is None for e in runtime.feed(record, position))
