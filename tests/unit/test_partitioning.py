"""The pure partitioner places every key where Kafka's clients do, so replay uses the same partition's
models as the worker without importing a Kafka client."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from forethought.contracts.partitioning import partition_of

KAFKA = DefaultPartitioner()


@given(key=st.binary(max_size=64), partitions=st.integers(min_value=1, max_value=256))
def test_every_key_lands_where_aiokafka_puts_it(key: bytes, partitions: int) -> None:
    every = list(range(partitions))
    assert partition_of(key, partitions) == KAFKA(key, every, every)


@pytest.mark.parametrize("key", [b"", b"c", "cust-\N{ROCKET}".encode(), b"\xff" * 7, b"x" * 10_000])
def test_edge_keys_agree_too(key: bytes) -> None:
    assert partition_of(key, 12) == KAFKA(key, list(range(12)), list(range(12)))


def test_a_topic_without_partitions_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one partition"):
        partition_of(b"c1", 0)
