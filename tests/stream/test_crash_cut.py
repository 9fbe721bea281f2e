"""A SIGKILL as the worker's :class:`BatchProcessor` meets it, on a simulated population with the shipped
playbooks and the partitions' learned models: after the restart every customer's state, every field
(next look ``daily``, learned snapshot ``snap``, churn slice ``chn``, creation time ``made``...), and every
partition's models equal those of a run that never crashed (issue #12, the chaos run's last shortfall).

What the crash leaves, as on a real broker: the tables hold the last flush whole, which the offset commit
has not reached yet (it lags a flush: the store is ahead of the committed offset); the models hold
whatever was checkpointed. The restarted processor rebuilds its index from the tables (as the worker does
before its first record), its timer runs once, and it reads again from the committed offsets.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import orjson
import pytest

from forethought.contracts.partitioning import partition_of
from forethought.core.state import CustomerState
from forethought.ops.metrics import Metrics
from forethought.ops.playbooks import load_rules
from forethought.ops.settings import Settings
from forethought.ops.topics import BEHAVIOUR_INPUTS, load_catalogue
from forethought.simulate.plans import SimulationConfig
from forethought.simulate.population import simulate
from forethought.stream.processor import BatchProcessor, RawRecord

SETTINGS = Settings(idle_grace_seconds=100_000_000)  # the clock follows the events only (as in the chaos run)
CATALOGUE = load_catalogue()
PARTITIONS = CATALOGUE.partitions
KINDS = {t: frozenset(CATALOGUE.by_name[t].kinds) for t in BEHAVIOUR_INPUTS}
RULES = load_rules(SETTINGS.playbooks_file)
FLUSH = 40  # records between two flushes (the worker's commit interval)
WALL = time.time()


def _records() -> list[RawRecord]:
    """A simulated population in strictly increasing event time, each record on its kind's input topic,
    partitioned by its key, with its offset there."""
    topic = {kind: name for name in BEHAVIOUR_INPUTS for kind in KINDS[name]}
    offsets: dict[tuple[str, int], int] = {}
    out, last = [], float("-inf")
    for body in simulate(SimulationConfig(customers=40, days=10, seed=7)):
        field = "updated_at" if body["type"] == "profile" else "occurred_at"
        at = max(datetime.fromisoformat(body[field].replace("Z", "+00:00")).timestamp(), last + 0.001)
        body[field], last = datetime.fromtimestamp(at, tz=UTC).isoformat(), at
        key = body["customer_id"].encode()
        where = (topic[body["type"]], partition_of(key, PARTITIONS))
        offset = offsets[where] = offsets.get(where, -1) + 1
        out.append(RawRecord(where[0], where[1], offset, key, orjson.dumps(body), at))
    return out


RECORDS = _records()


class Tables:
    """The worker's three changelogged tables (states, profiles, model checkpoints)."""

    def __init__(self) -> None:
        self.states: dict[bytes, bytes] = {}
        self.profiles: dict[bytes, bytes] = {}
        self.checkpoints: dict[bytes, bytes] = {}

    def processor(self) -> BatchProcessor:
        return BatchProcessor(SETTINGS.engine, self.states, dict(KINDS), Metrics(), SETTINGS.max_event_bytes,
                              idle_grace=SETTINGS.idle_grace, partition_for=lambda k: partition_of(k, PARTITIONS),
                              profiles=self.profiles, rules=RULES, checkpoints=self.checkpoints)


def _run(processor: BatchProcessor, records: list[RawRecord], on_flush: Callable[[], None] = lambda: None) -> None:
    """Handle ``records`` in batches, flushing (write-behind) after each ``FLUSH`` of them."""
    for start in range(0, len(records), FLUSH):
        processor.handle(records[start:start + FLUSH], WALL)
        processor.sweep(WALL)  # the worker's timer between batches
        processor.commit()
        on_flush()


def _final(processor: BatchProcessor) -> dict[str, dict[str, object]]:
    """Every customer's whole state (the applied offsets aside: only a restarted worker skips by them)."""
    states: Iterator[CustomerState] = (s for r in processor.runtimes.values() for s in r.customers())
    return {s.customer_id: {k: v for k, v in s.to_dict().items() if k != "applied"} for s in states}


def _models(processor: BatchProcessor) -> dict[int, bytes]:
    out = {}
    for partition, models in processor.models.items():
        models.clock = models.fed = models.cut = None  # where it was checkpointed, not what it learned
        out[partition] = models.to_bytes()
    return out


def _undisturbed() -> tuple[dict[str, dict[str, object]], dict[int, bytes]]:
    processor = Tables().processor()
    _run(processor, RECORDS)
    return _final(processor), _models(processor)


UNDISTURBED, UNDISTURBED_MODELS = _undisturbed()


def test_the_population_exercises_the_models_and_the_schedule() -> None:
    assert len(UNDISTURBED) >= 20 and sum(bool(s.get("snap")) for s in UNDISTURBED.values()) >= 5
    assert sum(bool(s.get("daily")) for s in UNDISTURBED.values()) >= 5 and len(UNDISTURBED_MODELS) == PARTITIONS


@pytest.mark.parametrize("crash", [len(RECORDS) * n // 5 for n in (1, 2, 3, 4)])
def test_a_sigkill_with_the_store_ahead_of_the_commit_ends_in_the_undisturbed_states_and_models(crash: int) -> None:
    tables = Tables()
    first = tables.processor()
    committed: list[dict[tuple[str, int], int]] = [{}]
    _run(first, RECORDS[:crash], on_flush=lambda: committed.append(dict(first.processed)))
    restart_at = committed[-2]  # the last flush is in the tables, its offsets not committed yet
    second = tables.processor()  # SIGKILL: the first processor is never flushed again
    second.rebuild_index(lambda _key: True)
    second.sweep(WALL)  # the new worker's first sweep, before it reads anything
    again = [r for r in RECORDS if r.offset >= restart_at.get((r.topic, r.partition), 0)]
    _run(second, again)
    assert _final(second) == UNDISTURBED
    assert _models(second) == UNDISTURBED_MODELS


@pytest.mark.parametrize("crash", [len(RECORDS) * n // 5 for n in (1, 2, 3, 4)])
def test_a_sigkill_after_a_flush_wrote_its_models_but_before_its_states_ends_in_the_undisturbed_run(
        crash: int) -> None:
    """The flush writes (and awaits) the models' checkpoint, with its clock, before the states it
    captured with them: a SIGKILL in between leaves the models and clock of that flush beside the
    states of the flush before. The restart must resume the models and clock of the stored states'
    cut, not the newer ones: otherwise the records read again teach the models twice, and the clock,
    ahead of those records, fires due looks before them (the chaos run's extra triggers)."""
    tables = Tables()
    first = tables.processor()
    committed: list[dict[tuple[str, int], int]] = [{}]
    _run(first, RECORDS[:crash], on_flush=lambda: committed.append(dict(first.processed)))
    first.handle(RECORDS[crash:crash + FLUSH], WALL)  # the next batch, and its flush begins:
    first.sweep(WALL)
    first.capture()  # the states and models of its cut are fixed,
    assert first.write_models() > 0  # the models are on the broker, and the SIGKILL comes before the states
    restart_at = committed[-2]  # the offset commit lags the last complete flush
    second = tables.processor()
    second.rebuild_index(lambda _key: True)
    second.sweep(WALL)
    again = [r for r in RECORDS if r.offset >= restart_at.get((r.topic, r.partition), 0)]
    _run(second, again)
    assert _final(second) == UNDISTURBED
    assert _models(second) == UNDISTURBED_MODELS


def _crash_after_models(processor: BatchProcessor, records: list[RawRecord]) -> None:
    """Handle ``records``, begin their flush, write its models' checkpoint and die before its states."""
    processor.handle(records, WALL)
    processor.sweep(WALL)
    processor.capture()
    assert processor.write_models() > 0


def test_two_sigkills_each_after_a_flush_wrote_its_models_end_in_the_undisturbed_run() -> None:
    """After the first restart passed over a checkpoint whose states were never stored, its next
    checkpoint takes that slot (with a higher number), so a second such SIGKILL resumes the second
    worker's last complete flush, not the first worker's stale one."""
    tables = Tables()
    first, cuts = tables.processor(), [2 * len(RECORDS) // 5, 3 * len(RECORDS) // 5]
    committed: list[dict[tuple[str, int], int]] = [{}]
    _run(first, RECORDS[:cuts[0]], on_flush=lambda: committed.append(dict(first.processed)))
    _crash_after_models(first, RECORDS[cuts[0]:cuts[0] + FLUSH])
    second = tables.processor()
    second.rebuild_index(lambda _key: True)
    again = [r for r in RECORDS if r.offset >= committed[-1].get((r.topic, r.partition), 0)]
    upto = next(i for i, r in enumerate(again) if r is RECORDS[cuts[1]])
    _run(second, again[:upto], on_flush=lambda: committed.append(dict(second.processed)))
    _crash_after_models(second, again[upto:upto + FLUSH])
    third = tables.processor()
    third.rebuild_index(lambda _key: True)
    third.sweep(WALL)
    _run(third, [r for r in RECORDS if r.offset >= committed[-1].get((r.topic, r.partition), 0)])
    assert _final(third) == UNDISTURBED
    assert _models(third) == UNDISTURBED_MODELS


def test_a_first_checkpoint_whose_states_were_never_stored_gives_fresh_models_and_no_clock() -> None:
    tables = Tables()
    first = tables.processor()
    _crash_after_models(first, RECORDS[:FLUSH])  # the very first flush dies between models and states
    assert tables.checkpoints and not tables.states
    second = tables.processor()
    second.rebuild_index(lambda _key: True)
    assert all(second.model(p).origin == "fresh" and second.model(p).clock is None for p in range(PARTITIONS))
    _run(second, RECORDS)
    assert _final(second) == UNDISTURBED
    assert _models(second) == UNDISTURBED_MODELS


async def test_a_restarted_worker_rebuilds_its_index_before_the_first_record() -> None:
    """A stored customer's next look is due before the first record the restarted worker reads (of
    another customer of the partition): it fires as that record moves the clock past it, not later (at
    the first sweep's rebuild, when the clock has run on) or never (no record after that sweep)."""
    from test_agent import put, recorded, settle, stored

    from forethought.contracts.records import Profile
    from forethought.core.engine import observe_profile
    from forethought.core.policy.profiles import ProfileState

    built, _ = recorded(Settings(topic_prefix="t.", batch_within_seconds=0.01, commit_interval_seconds=0.001))
    built.owner = lambda: (lambda _key: True)  # type: ignore[method-assign]  # test_context assigns nothing
    quiet, busy = "s1", next(f"o{n}" for n in range(100) if partition_of(f"o{n}".encode(), 4) == partition_of(b"s1", 4))
    t0 = (time.time() // 86_400 - 20) * 86_400
    seen = Profile(customer_id=quiet, updated_at=datetime.fromtimestamp(t0, tz=UTC), plan="pro")
    before = observe_profile(None, ProfileState(), seen, t0, built.settings.engine).state
    assert before is not None and before.daily_at is not None
    built.processor.table[quiet.encode()] = before.to_bytes()  # what the crashed worker had flushed
    view = {"event_id": "v1", "customer_id": busy, "type": "page_view",
            "occurred_at": datetime.fromtimestamp(before.daily_at + 3600, tz=UTC).isoformat()}
    async with built.agent.test_context() as agent:
        await put(agent, "t.events.clickstream", busy.encode(), orjson.dumps(view), offset=0)
        await settle(lambda: built.processor.processed.get(("t.events.clickstream", partition_of(b"s1", 4))) == 1)
        await built.flush()
    assert stored(built, quiet.encode()).get("daily") != before.daily_at, "the look fired at the record"
