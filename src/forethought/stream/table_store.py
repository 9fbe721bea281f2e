"""Where the worker's tables live: RocksDB on the data directory (the default), or memory.

``FORETHOUGHT_STATE_STORE=rocksdb`` keeps each table partition in a RocksDB database under
``FORETHOUGHT_DATA_DIR`` (faust-streaming's store, through the ``rocksdict`` binding), together with
the changelog offset it holds: a restart reads the local databases and replays only the changelog
records written after that offset. ``memory`` keeps the tables in memory and replays the whole
changelog at every start (tests, throw-away runs).

:class:`PartitionedRocksStore` is Faust's RocksDB store with one change: it finds a key's database
by the partitioner (the tables are written with ``use_partitioner``, outside any stream event, by
the write-behind flush), where Faust's own store takes the partition of the *current event* on a
write and searches every database on a read. It also counts the changelog records it restores
(``forethought_state_restored_records_total``): what a restart replayed.

>>> store_url("memory"), store_url("rocksdb")
('memory://', 'forethought-rocksdb://')
>>> sorted(rocksdb_options(4))
['block_cache_size', 'max_write_buffer_number', 'write_buffer_size']
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, MutableMapping
from pathlib import Path
from typing import Any, Literal, cast

import rocksdict
from faust import stores
from faust.stores import rocksdb as faust_rocksdb
from faust.types import TP, EventT

from forethought.contracts.partitioning import partition_of

StoreKind = Literal["rocksdb", "memory"]
SCHEME = "forethought-rocksdb"
MIB = 1024 * 1024
ESTIMATE_KEYS = "rocksdb.estimate-num-keys"


def store_url(kind: StoreKind) -> str:
    """Faust's ``store`` URL for a ``FORETHOUGHT_STATE_STORE`` value (registers our store class)."""
    if kind == "memory":
        return "memory://"
    stores.STORES.aliases.setdefault(SCHEME, f"{__name__}:PartitionedRocksStore")
    return f"{SCHEME}://"


def rocksdb_options(cache_mb: int) -> dict[str, int]:
    """Options of one table partition's database: a block cache of ``cache_mb`` MiB and two 8 MiB
    write buffers (Faust's defaults, a 2 GiB cache and three 64 MiB buffers per database, would let
    12 databases take far more memory than the worker's states)."""
    return {"block_cache_size": cache_mb * MIB, "write_buffer_size": 8 * MIB, "max_write_buffer_number": 2}


class PartitionedRocksStore(faust_rocksdb.Store):
    """Faust's RocksDB store, each key in the database of its partition (see the module docstring)."""

    on_restored: Callable[[int], None] | None = None  # told how many changelog records each batch restored

    def _partition(self, key: bytes) -> int:
        return partition_of(key, self.table.partitions or 1)  # the worker's tables always name theirs

    def _set(self, key: bytes, value: bytes | None) -> None:
        self._db_for_partition(self._partition(key)).put(key, value)

    def _get(self, key: bytes) -> bytes | None:
        db = self._dbs.get(self._partition(key))  # not held here: not this worker's key
        return None if db is None else db.get(key)

    def _del(self, key: bytes) -> None:
        db = self._dbs.get(self._partition(key))
        if db is not None:
            db.delete(key)

    def _contains(self, key: bytes) -> bool:
        return self._get(key) is not None

    def apply_changelog_batch(self, batch: Iterable[EventT], to_key: Callable[[Any], Any],
                              to_value: Callable[[Any], Any]) -> None:
        """Faust's recovery writes a batch of changelog records: count them."""
        events = list(batch)
        super().apply_changelog_batch(events, to_key, to_value)
        if self.on_restored is not None:
            self.on_restored(len(events))

    def _dbs_for_actives(self) -> Iterator[Any]:
        """The held partitions' databases, as of now (a rebalance may change them while a reader waits)."""
        return iter(list(super()._dbs_for_actives()))

    def held_items(self) -> list[tuple[int, Iterator[tuple[bytes, bytes]]]]:
        """Each held partition's number and its raw rows, read straight from its database (no
        per-row Faust layers), without Faust's offset key: what the index rebuild reads."""
        topic = self.table.changelog_topic_name  # type: ignore[attr-defined]  # the concrete Table has it
        actives = self.app.assignor.assigned_actives()
        return [(partition, _without_offset(db.items(), self.offset_key)) for partition, db in list(self._dbs.items())
                if TP(topic=topic, partition=partition) in actives]

    def estimate_len(self) -> int:
        """How many keys the held partitions have (RocksDB's estimate: counting them reads them all)."""
        return sum(int(db.property_int_value(ESTIMATE_KEYS) or 0) for db in self._dbs_for_actives())


class DueHints(MutableMapping[bytes, bytes]):
    """A local RocksDB database (``<data dir>/due-hints.db``, no changelog) of each stored state's
    next due time and last event time, tied to the state's exact bytes
    (:func:`forethought.stream.state_store.due_hint`): a restart rebuilds its deadline index from
    these instead of decoding every state. A missing or outdated hint only costs that decoding.
    Opened on first use (a worker that is only built, as in tests, takes no lock)."""

    def __init__(self, path: Path, cache_mb: int = 8) -> None:
        self.path, self.cache_mb = path, cache_mb
        self._opened: rocksdict.Rdict | None = None

    @property
    def _db(self) -> rocksdict.Rdict:
        if self._opened is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            options = rocksdict.Options(raw_mode=True)
            options.create_if_missing(True)
            options.set_write_buffer_size(4 * MIB)
            table = rocksdict.BlockBasedOptions()
            table.set_block_cache(rocksdict.Cache(self.cache_mb * MIB))
            options.set_block_based_table_factory(table)
            self._opened = rocksdict.Rdict(str(self.path), options=options)
        return self._opened

    def __getitem__(self, key: bytes) -> bytes:
        value = self._db.get(key)
        if value is None:
            raise KeyError(key)
        return value  # type: ignore[no-any-return]

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._db.put(key, value)

    def __delitem__(self, key: bytes) -> None:
        self._db.delete(key)

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        """The hints of ``keys`` (None where there is none) in one multi-get."""
        if not keys:
            return []
        return cast("list[bytes | None]", self._db.get(cast("list[str | int | float | bytes | bool]", keys)))

    def __iter__(self) -> Iterator[bytes]:
        return (bytes(key) for key in self._db.keys())  # type: ignore[arg-type]  # raw mode: bytes

    def __len__(self) -> int:
        return int(self._db.property_int_value(ESTIMATE_KEYS) or 0)

    def close(self) -> None:
        """Release the database (its lock) before the process ends."""
        if self._opened is not None:
            self._opened.close()
            self._opened = None


def count_restored(table: object, count: Callable[[int], None]) -> None:
    """Have ``count`` told how many changelog records recovery restores into ``table`` (RocksDB only:
    the memory store restores the whole changelog at every start)."""
    store = getattr(table, "data", None)
    if isinstance(store, PartitionedRocksStore):
        store.on_restored = count


def _without_offset(rows: Iterable[tuple[bytes, bytes]], offset_key: bytes) -> Iterator[tuple[bytes, bytes]]:
    """``rows`` without the row where Faust keeps the database's changelog offset."""
    return (row for row in rows if row[0] != offset_key)


def held_partitions(table: object) -> list[tuple[int, Iterator[tuple[bytes, bytes]]]] | None:
    """The held partitions' raw rows of a RocksDB-backed table (:meth:`PartitionedRocksStore.held_items`);
    None for any other table (read it as a mapping)."""
    store = getattr(table, "data", None)
    return store.held_items() if isinstance(store, PartitionedRocksStore) else None


def stored_customers(table: MutableMapping[bytes, bytes]) -> int:
    """How many keys ``table`` holds for this worker: an estimate on RocksDB, exact in memory."""
    store = getattr(table, "data", None)
    if isinstance(store, PartitionedRocksStore):
        return store.estimate_len()
    return len(table)
