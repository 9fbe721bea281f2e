"""The worker's RocksDB tables (FORETHOUGHT_STATE_STORE=rocksdb, the default) on a real data directory.

The write-behind flush writes states outside any stream event: each must land in the database of
its key's partition (the producer's partitioner, as its changelog record), be read back from there,
and still be there for the next worker that opens the same data directory."""

from __future__ import annotations

from pathlib import Path

import rocksdict
from faust.types import TP

from forethought.core.state import CustomerState
from forethought.ops.settings import Settings
from forethought.ops.topics import partition_of
from forethought.stream.table_store import PartitionedRocksStore, held_partitions
from forethought.stream.worker import build_worker

KEYS = [f"cust-{i}".encode() for i in range(40)]


async def open_all(store: PartitionedRocksStore, partitions: int) -> None:
    """What an assignment of every partition does to the store."""
    topic = store.table.changelog_topic.get_topic_name()
    await store.assign_partitions(store.table, {TP(topic, p) for p in range(partitions)})


async def test_states_written_outside_an_event_stay_in_their_partition_database_across_workers(
        tmp_path: Path) -> None:
    settings = Settings(topic_prefix="t.", data_dir=tmp_path, state_store="rocksdb")
    first = build_worker(settings)
    store = first.processor.table.data
    assert isinstance(store, PartitionedRocksStore)
    partitions = first.processor.table.partitions
    await open_all(store, partitions)
    for key in KEYS:
        store[key] = b"state of " + key
    del store[KEYS[0]]
    assert store.get(KEYS[1]) == b"state of cust-1" and KEYS[0] not in store and b"nobody" not in store
    await store.stop()  # releases the databases' locks, as a stopping worker does

    second = build_worker(settings)
    again = second.processor.table.data
    assert isinstance(again, PartitionedRocksStore)
    await open_all(again, partitions)
    assert [again.get(k) for k in KEYS[1:]] == [b"state of " + k for k in KEYS[1:]]
    assert again.get(KEYS[0]) is None
    await again.stop()

    for partition in range(partitions):  # each key in its own partition's database, nowhere else
        db = rocksdict.Rdict(str(again.partition_path(partition)), options=rocksdict.Options(raw_mode=True))
        try:
            held = {k for k in db.keys() if not k.startswith(b"__faust")}
        finally:
            db.close()
        assert held == {k for k in KEYS[1:] if partition_of(k, partitions) == partition}



async def test_the_index_rebuild_reads_the_held_partitions_raw_and_never_faust_s_offset_key(tmp_path: Path) -> None:
    built = build_worker(Settings(topic_prefix="t.", data_dir=tmp_path, state_store="rocksdb"))
    table = built.processor.table
    store = table.data
    assert isinstance(store, PartitionedRocksStore)
    partitions = table.partitions
    await open_all(store, partitions)
    topic = store.table.changelog_topic.get_topic_name()
    for key in KEYS:
        store[key] = b"state of " + key
    for partition in range(partitions):
        store.set_persisted_offset(TP(topic, partition), 41)  # Faust's row beside the states
    held = {0, partitions - 1}
    built.app.assignor.assigned_actives = lambda: {TP(topic, p) for p in held}  # type: ignore[method-assign]  # this worker's share
    rows = {partition: list(found) for partition, found in held_partitions(table) or []}
    assert set(rows) == held, "only the partitions this worker holds"
    for partition, found in rows.items():
        assert found == sorted((k, b"state of " + k) for k in KEYS if partition_of(k, partitions) == partition)
    assert held_partitions({}) is None, "any other table is read as a mapping"
    await store.stop()


async def test_a_rebuild_over_held_partitions_with_no_stored_state_adds_no_runtime_and_no_clock(tmp_path: Path) -> None:
    """A fresh worker's first rebuild must leave its partitions as replay starts them: an empty
    restored-time clock would take part in the partition's stream time (test_parity found the
    learned snapshots moving when it did)."""
    built = build_worker(Settings(topic_prefix="t.", data_dir=tmp_path, state_store="rocksdb"))
    table = built.processor.table
    store = table.data
    assert isinstance(store, PartitionedRocksStore)
    await open_all(store, table.partitions)
    topic = store.table.changelog_topic.get_topic_name()
    built.app.assignor.assigned_actives = lambda: {TP(topic, p) for p in range(table.partitions)}  # type: ignore[method-assign]
    assert built.processor.rebuild_index(lambda key: True) == 0
    assert built.processor.runtimes == {} and built.processor.clocks == {}
    store["c1".encode()] = CustomerState.new("c1", built.processor.config).to_bytes()
    built.processor.rebuild_index(lambda key: True)
    assert list(built.processor.runtimes) == [partition_of(b"c1", table.partitions)]
    await store.stop()
