"""The write-behind side of :class:`~forethought.stream.processor.BatchProcessor` (a mixin): live
states and profiles go to the changelogged tables once per flush, and are read back from them
when a runtime does not hold the customer.

A flush is :meth:`StateStore.capture` (what changed, fixed at once) then :meth:`StateStore.write`
(encode and store it, possibly in chunks while batches go on: ``stream.running.Worker.flush_behind``).
In between, a customer the runtime does not hold is read from what was captured, which is newer
than the table.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Collection, Mapping, MutableMapping
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version

import orjson

from forethought.core.config import EngineConfig
from forethought.core.engine import next_due
from forethought.core.policy.profiles import ProfileState
from forethought.core.runtime import Dirty, PartitionRuntime
from forethought.core.state import CustomerState
from forethought.core.summary import Summary, decode_stored
from forethought.stream.outbox import Outbox

HINT = struct.Struct("<ddI")  # next due, last seen (NaN: none), CRC-32 of the state's bytes (from hint_seed)
HINT_FORMAT = 2  # bump when the meaning of a hint changes: every older hint is then not believed


_SEEDS: dict[int, tuple[EngineConfig, int]] = {}  # by the config's identity: hashing a config costs ~8 µs


def hint_seed(config: EngineConfig) -> int:
    """Where a hint's CRC-32 starts: the engine settings, the detectors and the release that computed
    its due time. A hint written under other settings or by another release is not believed (its
    state is decoded once more), so a changed setting never leaves a stale deadline behind.

    >>> hint_seed(EngineConfig()) == hint_seed(EngineConfig()) != hint_seed(EngineConfig().replace(silence_z=9.0))
    True
    """
    found = _SEEDS.get(id(config))
    if found is not None and found[0] is config:
        return found[1]
    detectors = [f"{type(detector).__module__}.{type(detector).__qualname__}" for detector, _ in config.plan]
    seed = zlib.crc32(repr((HINT_FORMAT, _release(), detectors, sorted(config.items()))).encode())
    if len(_SEEDS) >= 8:
        _SEEDS.clear()
    _SEEDS[id(config)] = (config, seed)
    return seed


def due_hint(state: CustomerState, raw: bytes, config: EngineConfig) -> bytes:
    """What a restart needs of a stored state without decoding it, tied to its exact bytes and to
    the settings that computed it (:func:`hint_seed`).

    >>> from forethought.core.config import EngineConfig
    >>> state = CustomerState.new("c1", EngineConfig())
    >>> raw = state.to_bytes()
    >>> read_hint(due_hint(state, raw, EngineConfig()), raw, EngineConfig())
    (None, None)
    >>> read_hint(due_hint(state, raw, EngineConfig()), raw + b"x", EngineConfig()) is None  # other bytes
    True
    >>> read_hint(due_hint(state, raw, EngineConfig()), raw, EngineConfig().replace(silence_z=9.0)) is None
    True
    """
    due, seen = next_due(state, config), state.last_seen
    return HINT.pack(math.nan if due is None else due, math.nan if seen is None else seen,
                     zlib.crc32(raw, hint_seed(config)))


def read_hint(hint: bytes | None, raw: bytes, config: EngineConfig) -> tuple[float | None, float | None] | None:
    """(next due, last seen) from a hint written for exactly ``raw`` under ``config``; None when it is not."""
    if hint is None or len(hint) != HINT.size:
        return None
    due, seen, crc = HINT.unpack(hint)
    if crc != zlib.crc32(raw, hint_seed(config)):
        return None
    return (None if math.isnan(due) else due), (None if math.isnan(seen) else seen)


def _release() -> str:
    """The installed release of forethought (its due logic may differ from another's)."""
    try:
        return version("forethought")
    except PackageNotFoundError:  # run from a source tree without an install
        return "unknown"


class StateStore:
    """Tables, runtimes and the captured-but-unwritten overlay (set up by ``BatchProcessor``)."""

    config: EngineConfig
    table: MutableMapping[bytes, bytes]
    profiles: MutableMapping[bytes, bytes]
    runtimes: dict[int, PartitionRuntime]
    due_hints: MutableMapping[bytes, bytes] | None  # a local store (RocksDB): what rebuild_index reads instead
    _unwritten: dict[str, CustomerState | Summary | None]
    _unwritten_profiles: dict[str, ProfileState]

    def load(self, raw: bytes) -> CustomerState | Summary:
        """A state from its changelog bytes (the binary codec, or the JSON older versions wrote), or
        the summary of a customer evicted after idling (:mod:`forethought.core.summary`)."""
        return decode_stored(raw, self.config)

    def dump(self, state: CustomerState | Summary) -> bytes:
        """A state's (or summary's) changelog bytes (:mod:`forethought.core.state_codec`)."""
        return state.to_bytes()

    def commit(self, outbox: Outbox | None = None) -> int:
        """Phase 3: write every state and profile changed since the last commit to the tables (the
        caller then awaits their changelog writes before acknowledging the records behind them).
        ``outbox`` is accepted for callers that commit per batch. Returns how many states were
        written or deleted. :meth:`capture` and :meth:`write` are its two halves."""
        return self.write(self.capture())

    def capture(self) -> Dirty:
        """What changed since the last capture, as of now: the states are the runtimes' own objects,
        which no later record changes (each runs on a draft), so they can be written later. Until
        :meth:`write` has stored them, the runtimes load those customers from them, not the tables."""
        captured, witnesses, rest = Dirty(), {}, {}
        for partition, runtime in self.runtimes.items():
            dirty = runtime.take_dirty()
            if (witness := self._witness(dirty.states)) is not None:
                customer, raw = witness
                witnesses[partition] = (customer, -1 if raw is None else zlib.crc32(raw))
                captured.states[customer] = dirty.states.pop(customer)  # first in, so written last (popitem)
            rest.update(dirty.states)
            captured.profiles.update(dirty.profiles)
        captured.states.update(rest)
        self.capture_models(witnesses=witnesses)  # the models of this very cut, written before its states
        self._unwritten.update(captured.states)
        self._unwritten_profiles.update(captured.profiles)
        return captured

    def write(self, captured: Dirty, limit: int | None = None) -> int:
        """Write (and remove from ``captured``) its profiles and up to ``limit`` of its states to the
        tables; returns how many states were written or deleted. The models' checkpoints captured
        with them go first (a restart never finds states ahead of the models that learned from them)."""
        self.write_models()
        while captured.profiles:
            customer, profile = captured.profiles.popitem()
            self.profiles[customer.encode()] = orjson.dumps(profile.to_dict())
            if self._unwritten_profiles.get(customer) is profile:
                del self._unwritten_profiles[customer]
        written = 0
        while captured.states and (limit is None or written < limit):
            customer, state = captured.states.popitem()
            key = customer.encode()
            if state is None:
                self.table.pop(key, None)
                if self.due_hints is not None:
                    self.due_hints.pop(key, None)
            else:
                self.table[key] = raw = self.dump(state)
                if self.due_hints is not None and isinstance(state, CustomerState):
                    self.due_hints[key] = due_hint(state, raw, self.config)
                elif self.due_hints is not None:  # a summary has no deadline: read at restart
                    self.due_hints.pop(key, None)
            if customer in self._unwritten and self._unwritten[customer] is state:
                del self._unwritten[customer]
            written += 1
        return written

    def _witness(self, states: dict[str, CustomerState | Summary | None]) -> tuple[str, bytes | None] | None:
        """A state of one partition's flush whose bytes differ from the stored ones, with its new
        bytes (None: deleted): stored as written, it shows the flush's states were (it is written
        last). None when every state is stored already as it is (then there is nothing to show)."""
        for customer, state in states.items():
            raw = None if state is None else self.dump(state)
            if self.table.get(customer.encode()) != raw:
                return customer, raw
        return None

    def capture_models(self, partitions: Collection[int] | None = None, every: float | None = None,
                       witnesses: Mapping[int, tuple[str, int]] | None = None) -> int:
        raise NotImplementedError  # ModelCheckpoints

    def write_models(self) -> int:
        raise NotImplementedError  # ModelCheckpoints

    def has_dirty(self) -> bool:
        """Whether any held customer changed since the last :meth:`commit`."""
        return any(runtime.has_dirty() for runtime in self.runtimes.values())

    def _stored_state(self, customer: str) -> CustomerState | Summary | None:
        if customer in self._unwritten:  # captured for a flush still under way: newer than the table
            return self._unwritten[customer]
        raw = self.table.get(customer.encode())
        return None if raw is None else self.load(raw)

    def _stored_profile(self, customer: str) -> ProfileState | None:
        if customer in self._unwritten_profiles:
            return self._unwritten_profiles[customer]
        raw = self.profiles.get(customer.encode())
        return None if raw is None else _parse_profile(raw)


@lru_cache(maxsize=4096)
def _parse_profile(raw: bytes) -> ProfileState:
    """Profiles change rarely and are read for every batch a customer is in: validate each version once."""
    return ProfileState.from_dict(orjson.loads(raw))
