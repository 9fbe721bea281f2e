"""The in-process worker tests keep their tables in memory (``FORETHOUGHT_STATE_STORE=memory``):
several apps in one process, no data directory of their own. The RocksDB store, the default, is
tested in tests/stream/test_table_store.py and, against the real broker, in
tests/integration/test_rocksdb_restart.py."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def memory_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings made without ``state_store`` take it from the environment: memory."""
    monkeypatch.setenv("FORETHOUGHT_STATE_STORE", "memory")
